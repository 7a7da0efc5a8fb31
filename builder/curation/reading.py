"""Reading a source's rows: a Hub dataset at its pinned revision, or local files (one file, a
folder's data files, or a list), each file read on its own through `datasets.load_dataset`, so a
file that cannot be parsed, or lacks a field the profile names, is the one the error names (and
files with different columns do not have to agree). Blank lines of plain-text files are skipped
and counted; a `LICENSE` or `NOTICE.md` beside the data is not a data file."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from builder.config.user_files import SNIFF_BYTES, wide_encoding
from builder.config.yaml_lines import read_yaml
from builder.core.errors import InputError
from builder.curation.sources import SUFFIXES, Format, LoadedSource, SourceProfile, SourceRow, expand

_LOADERS = {"jsonl": "json", "csv": "csv", "parquet": "parquet", "text": "text"}


def read_source(profile: SourceProfile, path: Path, local: Path | None = None) -> LoadedSource:
    """Every row of the source (from `local`, a file or folder, instead of its origin, when given)."""
    revision = profile.pinned_revision if local is None else f"{profile.pinned_revision}+local"
    if local is None and profile.origin.hub is not None:
        location = f"{profile.origin.hub}@{profile.origin.revision}"
        records = list(enumerate(_hub_dataset(profile, path, location), start=1))
        _check_fields(profile, path, location, records)
        rows = [_row(profile, number, record, location, None) for number, record in records]
        return LoadedSource(profile, path, location, revision, rows)
    files, kind, location, notes = _local_files(profile, path, local)
    rows: list[SourceRow] = []
    blank = 0
    for file in files:
        records, skipped = _file_records(profile, file, kind)
        _check_fields(profile, path, str(file), records)
        blank += skipped
        rows.extend(_row(profile, number, record, str(file), file.stem) for number, record in records)
    return LoadedSource(profile, path, location, revision, rows, len(files), blank, tuple(notes))


def _row(
    profile: SourceProfile, number: int, record: dict[str, Any], file: str, stem: str | None
) -> SourceRow:
    fields = profile.fields
    labels = [label for name in fields.labels for label in _labels(record[name])]
    if fields.label_from == "file_stem" and stem is not None:
        labels.append(stem)
    source_id = None if fields.id is None or record[fields.id] is None else str(record[fields.id])
    return SourceRow(number, source_id, record[fields.text], labels, file)


def _check_fields(
    profile: SourceProfile, path: Path, location: str, records: list[tuple[int, dict[str, Any]]]
) -> None:
    if not records:
        return
    columns = set(records[0][1])
    fields = profile.fields
    wanted = [("text", fields.text), ("id", fields.id)] + [("labels", label) for label in fields.labels]
    for role, name in wanted:
        if name is not None and name not in columns:
            raise InputError(
                f"field '{name}' (fields.{role} in {path.name}) is not in the data; its fields: "
                + ", ".join(sorted(columns)),
                path=location,
            )


def _labels(value: Any) -> Iterator[str]:
    if value is None:
        return
    if isinstance(value, list | tuple):
        for part in value:
            yield from _labels(part)
    elif str(value).strip():
        yield str(value).strip()


def _local_files(
    profile: SourceProfile, path: Path, local: Path | None
) -> tuple[list[Path], Format, str, list[str]]:
    """The data files, the format to read them in, where they are (for messages), and notes."""
    origin = profile.origin
    notes: list[str] = []
    kind: Format = profile.format
    if local is not None:
        targets = [expand(local, Path.cwd())]
        if targets[0].is_file():
            known = {suffix: name for name, suffixes in SUFFIXES.items() for suffix in suffixes}
            suffix = targets[0].suffix.lower()
            if suffix in known:
                kind = known[suffix]
            else:
                notes.append(
                    f"'{suffix or '(no suffix)'}' is no format's suffix: {targets[0].name} is read as "
                    f"{profile.format}, the profile's format"
                )
    else:
        targets = [expand(entry, path.parent) for entry in origin.paths]
    files: list[Path] = []
    for target in targets:
        if not target.exists():
            raise InputError("no such file or folder (the source's data)", path=target)
        if kind == "datasets" or target.is_file():
            files.append(target)
            continue
        patterns = [origin.glob] if origin.glob else [f"*{suffix}" for suffix in SUFFIXES[kind]]
        found = sorted(
            {
                p
                for pattern in patterns
                for p in target.glob(pattern)
                if p.is_file() and not p.name.startswith(".")
            }
        )
        if not found:
            raise InputError(f"no data files ({', '.join(patterns)}) in the folder", path=target)
        files.extend(found)
    location = str(targets[0]) if len(targets) == 1 else f"{len(targets)} files ({targets[0].parent})"
    return files, kind, location, notes


def _hub_dataset(profile: SourceProfile, path: Path, location: str) -> list[dict[str, Any]]:
    datasets = _datasets()
    origin = profile.origin
    try:
        loaded = datasets.load_dataset(
            origin.hub, origin.config, split=origin.split, revision=origin.revision
        )
    except Exception as exc:  # the Hub client's errors differ by version: report the reason
        raise InputError(
            f"field 'origin.revision': cannot load {location}: {str(exc).splitlines()[0][:300]}", path=path
        ) from None
    return list(loaded)


def _file_records(
    profile: SourceProfile, file: Path, kind: Format
) -> tuple[list[tuple[int, dict[str, Any]]], int]:
    """One file's rows, numbered as the file holds them (text: by line), and the blank lines skipped."""
    datasets = _datasets()
    origin = profile.origin
    try:
        if kind == "datasets":
            loaded = datasets.load_from_disk(str(file))
            loaded = loaded[origin.split] if isinstance(loaded, datasets.DatasetDict) else loaded
        elif kind == "yaml":
            loaded = _yaml_dataset(file, origin.records_key)
        else:
            _check_utf8(file)
            options: dict[str, Any] = {"field": origin.records_key} if origin.records_key else {}
            loaded = datasets.load_dataset(_LOADERS[kind], data_files=[str(file)], split="train", **options)
    except InputError:
        raise
    except Exception as exc:  # a file `datasets` cannot parse: name it and say why
        reason = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        cause = exc.__cause__ or exc.__context__
        if cause is not None and str(cause):
            reason += f" ({str(cause).splitlines()[0][:200]})"
        raise InputError(f"cannot read as {kind}: {reason}", path=file) from None
    records = list(enumerate(loaded, start=1))
    if kind != "text":
        return records, 0
    kept = [(number, record) for number, record in records if str(record.get("text") or "").strip()]
    return kept, len(records) - len(kept)


def _check_utf8(file: Path) -> None:
    """A text file saved as UTF-16 or UTF-32 is named as such, before `datasets` reads it as
    broken UTF-8."""
    with open(file, "rb") as handle:
        wide = wide_encoding(handle.read(SNIFF_BYTES))
    if wide is not None:
        raise InputError(f"the file is {wide}, not UTF-8: save it as UTF-8", path=file)


def _datasets() -> Any:
    import datasets
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()
    return datasets


def _yaml_dataset(path: Path, records_key: str | None) -> Any:
    """A YAML file of rows (or a mapping whose `records_key` holds them), through `load_dataset`."""
    datasets = _datasets()
    data, _ = read_yaml(path)
    rows = data.get(records_key) if isinstance(data, dict) and records_key else data
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        where = f"key '{records_key}'" if records_key else "the file"
        raise InputError(f"{where} must hold a list of mappings (one per row)", path=path)
    with tempfile.TemporaryDirectory(prefix="mirbench-yaml-") as folder:
        converted = Path(folder) / f"{path.stem}.jsonl"
        converted.write_text("".join(json.dumps(row, default=str) + "\n" for row in rows), encoding="utf-8")
        return datasets.load_dataset("json", data_files=str(converted), split="train", keep_in_memory=True)
