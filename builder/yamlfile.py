"""YAML reading that keeps line numbers, so validation errors can point at `file:line`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from builder.errors import InputError


def read_yaml(path: Path) -> tuple[Any, yaml.Node | None]:
    """Parse `path`; return the data and its node tree (for line look-ups)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror}", path=path) from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise InputError(f"invalid YAML: {exc.problem}", path=path, line=line) from exc
    return data, node


def line_of(node: yaml.Node | None, location: tuple[int | str, ...]) -> int | None:
    """1-based line of the deepest node along `location` (a pydantic error `loc`)."""
    if node is None:
        return None
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
        path, node = max(sources, key=lambda source: _match_depth(source[1], location))
        errors.append(InputError(f"field '{field}': {error['msg']}", path=path, line=line_of(node, location)))
    return errors


def _child(node: yaml.Node, key: int | str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        return next((value for name, value in node.value if name.value == key), None)
    if isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
        return node.value[key]
    return None


def _match_depth(node: yaml.Node | None, location: tuple[int | str, ...]) -> int:
    depth = 0
    for key in location:
        node = _child(node, key) if node is not None else None
        if node is None:
            break
        depth += 1
    return depth
