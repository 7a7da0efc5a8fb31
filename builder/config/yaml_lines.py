"""YAML reading that keeps line numbers, so validation errors can point at `file:line`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from builder.config.user_files import control_character, decode_text
from builder.core.errors import InputError

# Configuration and taxonomy files nest a few levels; anything near this is a mistake.
MAX_DEPTH = 32


def read_yaml(path: Path) -> tuple[Any, yaml.Node | None]:
    """Parse `path`; return the data and its node tree (for line look-ups).

    Every way the file can be wrong (unreadable, not UTF-8, control characters, bad syntax,
    nesting deeper than MAX_DEPTH) is an InputError naming `file:line`.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror}", path=path) from exc
    text = decode_text(path, data)
    for number, line in enumerate(text.splitlines(), start=1):
        problem = control_character(line)
        if problem:
            raise InputError(f"{problem}: not allowed in a YAML file", path=path, line=number)
    try:
        _check_depth(path, text)
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            value = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        message = f"invalid YAML: {exc.problem or exc.context}"
        if exc.problem and exc.context and exc.context_mark and exc.context_mark.line + 1 != line:
            message += f" ({exc.context} at line {exc.context_mark.line + 1})"
        raise InputError(message, path=path, line=line) from None
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        raise InputError(f"invalid YAML: {exc.reason}", path=path, line=line) from None
    except yaml.YAMLError as exc:
        raise InputError(f"invalid YAML: {exc}", path=path, line=1) from None
    return value, node


def _check_depth(path: Path, text: str) -> None:
    """PyYAML builds nested values recursively: refuse runaway nesting before it overflows."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise InputError(
                    f"nested more than {MAX_DEPTH} levels deep", path=path, line=event.start_mark.line + 1
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def line_of(node: yaml.Node | None, location: tuple[int | str, ...]) -> int:
    """1-based line of the deepest node along `location` (a pydantic error `loc`); 1 for an empty file."""
    if node is None:
        return 1
    line = node.start_mark.line + 1
    for key in location:
        child = _child(node, key)
        if child is None:
            break
        if isinstance(node, yaml.MappingNode):
            line = next(name for name, value in node.value if value is child).start_mark.line + 1
        else:
            line = child.start_mark.line + 1
        node = child
    return line


def validation_errors(exc: ValidationError, sources: list[tuple[Path, yaml.Node | None]]) -> list[InputError]:
    """One InputError per pydantic error, located in the source that spells out the field."""
    errors = []
    for error in exc.errors():
        location = tuple(error["loc"])
        field = ".".join(str(part) for part in location) or "(file)"
        # The source that spells out most of the field's path is where the user must look.
        path, node = max(sources, key=lambda source: match_depth(source[1], location))
        errors.append(InputError(f"field '{field}': {error['msg']}", path=path, line=line_of(node, location)))
    return errors


def _child(node: yaml.Node, key: int | str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        return next((value for name, value in node.value if name.value == key), None)
    if isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
        return node.value[key]
    return None


def match_depth(node: yaml.Node | None, location: tuple[int | str, ...]) -> int:
    depth = 0
    for key in location:
        node = _child(node, key) if node is not None else None
        if node is None:
            break
        depth += 1
    return depth
