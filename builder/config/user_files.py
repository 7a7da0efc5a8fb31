"""Rows of user data files (JSONL, or CSV with a header), read defensively.

Seed files and image-pool caption files are written by people and other tools: this reader
never raises on their content. Every problem comes back as an InputError naming `file:line`,
and all of a file's problems are found in one pass. A UTF-8 byte-order mark is accepted; a
file in UTF-16 or UTF-32 is named as such, not read as broken UTF-8.

A row's line is the first physical line it starts on (a CSV field may span lines). A caller
that allows comments names their prefix: lines starting with it at the top of the file (before
a CSV header) are skipped and counted; further down, such a line is data, and a problem with it
says that it looks like a comment.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builder.core.errors import InputError

RECORD_SUFFIXES = (".jsonl", ".csv")
# C0 controls other than tab, newline and carriage return, DEL, and the C1 controls.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# Byte-order marks of the encodings a file saved "as Unicode" may be in, UTF-32 first (its
# little-endian mark begins with UTF-16's).
_WIDE_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32 (little-endian)"),
    (codecs.BOM_UTF32_BE, "UTF-32 (big-endian)"),
    (codecs.BOM_UTF16_LE, "UTF-16 (little-endian)"),
    (codecs.BOM_UTF16_BE, "UTF-16 (big-endian)"),
)
SNIFF_BYTES = 4096
_NOT_SKIPPED = "comment lines are not skipped in this file"
_LIMIT_HINT = "raise limits.max_record_chars (or MIRBENCH_LIMITS__MAX_RECORD_CHARS) if this is intended"


@dataclass
class Records:
    """What one file holds: (line, row) pairs in file order, and the problems found."""

    rows: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    errors: list[InputError] = field(default_factory=list)
    comments: int = 0  # comment lines skipped at the top
    comment_like: set[int] = field(default_factory=set)  # lines further down that start like one

    def note_comment(self, line: int, message: str) -> str:
        """`message`, with a note when the line starts like a comment below the top."""
        if line not in self.comment_like:
            return message
        return f"{message} (the line starts like a comment: comments are skipped only at the top of the file)"


def control_character(text: str) -> str | None:
    """A description of the first control character in `text` (None if there is none)."""
    match = _CONTROL.search(text)
    if match is None:
        return None
    return f"control character U+{ord(match.group()):04X} at column {match.start() + 1}"


def wide_encoding(data: bytes) -> str | None:
    """The name of the UTF-16 or UTF-32 encoding `data` is in, by its byte-order mark or, without
    one, by the NUL bytes that text in those encodings has at fixed places (None otherwise)."""
    for bom, name in _WIDE_BOMS:
        if data.startswith(bom):
            return name
    head = data[:SNIFF_BYTES]
    if b"\x00" not in head:
        return None
    for width, name in ((4, "UTF-32"), (2, "UTF-16")):
        units = len(head) // width
        if units < 2:
            continue
        nuls = [head[place : width * units : width].count(0) for place in range(width)]
        mostly = [count > units // 2 for count in nuls]
        if not nuls[0] and all(mostly[1:]):
            return f"{name} (little-endian, no byte-order mark)"
        if not nuls[-1] and all(mostly[:-1]):
            return f"{name} (big-endian, no byte-order mark)"
    return None


def decode_text(path: Path, data: bytes) -> str:
    """`data` as text (a leading BOM dropped); InputError naming the line of the first bad byte,
    or the encoding, for a file in UTF-16 or UTF-32."""
    wide = wide_encoding(data)
    if wide is not None:
        raise InputError(f"the file is {wide}, not UTF-8: save it as UTF-8", path=path, line=1)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(
            f"not UTF-8 text: byte 0x{data[exc.start]:02x} cannot be decoded; save the file as UTF-8",
            path=path,
            line=line,
        ) from None


def read_records(
    path: Path,
    max_record_chars: int,
    required: frozenset[str] = frozenset(),
    allowed: frozenset[str] | None = None,
    comment_prefix: str | None = None,
) -> Records:
    """The rows of a `.jsonl` or `.csv` file; an empty file, or a CSV with a header only, is a problem.

    A CSV header is checked once against the `required` and `allowed` columns (JSONL rows are
    checked by the caller's model, row by row). `comment_prefix`: lines starting with it at the
    top of the file are skipped (None: no line is a comment).
    """
    records = Records()
    if path.suffix.lower() not in RECORD_SUFFIXES:
        records.errors.append(
            InputError(f"unsupported file type '{path.suffix}' (use .jsonl or .csv)", path=path)
        )
        return records
    try:
        text = decode_text(path, path.read_bytes())
    except InputError as error:
        records.errors.append(error)
        return records
    except OSError as exc:
        records.errors.append(InputError(f"cannot read: {exc.strerror}", path=path))
        return records
    if not text.strip():
        records.errors.append(InputError("the file is empty: no records", path=path, line=1))
        return records
    lines = io.StringIO(text, newline="").readlines()  # as csv counts them: \n, \r\n or \r
    skipped = _top_comments(lines, comment_prefix, records)
    if comment_prefix:
        records.comment_like = {
            number
            for number, line in enumerate(lines[skipped:], start=skipped + 1)
            if line.lstrip().startswith(comment_prefix)
        }
    if path.suffix.lower() == ".jsonl":
        _jsonl_rows(path, lines, skipped, max_record_chars, records)
    else:
        _csv_rows(path, "".join(lines[skipped:]), skipped, max_record_chars, required, allowed, records)
    if not records.rows and not records.errors:
        what = "a header but no records" if path.suffix.lower() == ".csv" else "no records"
        if records.comments:
            what += f" ({records.comments} comment line(s) skipped)"
        records.errors.append(InputError(what, path=path, line=skipped + 1))
    return records


def _top_comments(lines: list[str], prefix: str | None, records: Records) -> int:
    """How many lines the comments at the top take (blank lines among them included)."""
    if not prefix:
        return 0
    taken = 0
    for line in lines:
        if line.lstrip().startswith(prefix):
            records.comments += 1
        elif line.strip():
            break
        taken += 1
    return taken


def _jsonl_rows(path: Path, lines: list[str], skipped: int, max_record_chars: int, records: Records) -> None:
    for number, line in enumerate(lines[skipped:], start=skipped + 1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        if len(line) > max_record_chars:
            records.errors.append(
                InputError(
                    f"line is {len(line):,} characters, over the limit of {max_record_chars:,}; "
                    + _LIMIT_HINT,
                    path=path,
                    line=number,
                )
            )
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            message = records.note_comment(number, f"malformed JSON: {exc.msg}")
            records.errors.append(InputError(message, path=path, line=number))
            continue
        except RecursionError:
            records.errors.append(
                InputError("JSON nested too deeply (a record is one flat object)", path=path, line=number)
            )
            continue
        except ValueError as exc:  # e.g. an integer with more digits than Python converts
            records.errors.append(InputError(f"malformed JSON: {exc}", path=path, line=number))
            continue
        if not isinstance(row, dict):
            records.errors.append(
                InputError(f"expected a JSON object, got {_json_type(row)}", path=path, line=number)
            )
            continue
        records.rows.append((number, row))


def _json_type(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


@contextmanager
def _csv_field_limit(limit: int) -> Iterator[None]:
    """csv's own limit (131,072) is process-wide and names no setting: ours replaces it while we read."""
    previous = csv.field_size_limit(limit)
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def _header_problem(
    columns: list[str], required: frozenset[str], allowed: frozenset[str] | None
) -> str | None:
    duplicates = sorted({name for name in columns if columns.count(name) > 1})
    if duplicates:
        return f"the header row has duplicate column(s) {duplicates}"
    if not all(columns):
        return "the header row has an empty column name"
    missing = sorted(required - set(columns))
    if missing:
        return f"the header row lacks the column(s) {missing}; it has {columns}"
    unknown = sorted(set(columns) - allowed) if allowed is not None else []
    if unknown:
        return f"unknown column(s) {unknown}; known: {sorted(allowed or ())}"
    return None


def _csv_rows(
    path: Path,
    text: str,
    skipped: int,
    max_record_chars: int,
    required: frozenset[str],
    allowed: frozenset[str] | None,
    records: Records,
) -> None:
    """The rows of the CSV `text`, which starts on line `skipped + 1` of the file."""
    reader = csv.reader(io.StringIO(text, newline=""))
    with _csv_field_limit(max_record_chars):
        try:
            header = next(reader, None)
            if header is None:
                records.errors.append(
                    InputError(f"only comment lines ({records.comments}), no header", path=path, line=1)
                )
                return
            columns = [name.strip() for name in header]
            problem = _header_problem(columns, required, allowed)
            # A comment read as the header: every row then looks wrong; say why, once.
            unskipped = f" (line {skipped + 1}, the header, starts with '#': {_NOT_SKIPPED})"
            commented = bool(header) and header[0].lstrip().startswith("#")
            if problem is not None:
                records.errors.append(
                    InputError(problem + unskipped * commented, path=path, line=skipped + 1)
                )
                return
            while True:
                line = skipped + reader.line_num + 1  # the row's first line: a field may span several
                values = next(reader, None)
                if values is None:
                    break
                if not any(value.strip() for value in values):
                    continue
                if len(values) > len(columns):
                    message = records.note_comment(line, "more values than header columns")
                    records.errors.append(InputError(message + unskipped * commented, path=path, line=line))
                    commented = False
                    continue
                size = sum(map(len, values))
                if size > max_record_chars:
                    records.errors.append(
                        InputError(
                            f"row is {size:,} characters, over the limit of {max_record_chars:,}; "
                            + _LIMIT_HINT,
                            path=path,
                            line=line,
                        )
                    )
                    continue
                records.rows.append(
                    (line, {name: value for name, value in zip(columns, values, strict=False) if value != ""})
                )
        except csv.Error as exc:
            # The reader cannot find its place again after this: the rest of the file is not read.
            message = str(exc)
            if "field larger than field limit" in message:
                message = f"a field longer than the limit of {max_record_chars:,} characters; {_LIMIT_HINT}"
            else:
                message = f"malformed CSV: {message}"
            records.errors.append(InputError(message, path=path, line=skipped + max(reader.line_num, 1)))
