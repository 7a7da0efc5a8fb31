"""Where an evaluation's items come from: the three dataset sources, read into one row shape.

- a mirbench release folder (`data/*.parquet`, MIR-SafetyBench's row fields, images embedded);
- a Hugging Face dataset repo at a revision, through `datasets.load_dataset` (the first split, as
  MIR-SafetyBench's `extract_data.py` takes it; images as bytes);
- MIR-SafetyBench's extracted layout, `<Category>/<Relation>_final.json` with the images under
  `<Category>/images/<Relation>/`, as its `extract_data.py` and `mirbench release --layout mir`
  write it (the category from the folder, the relation from the file name, as its `eval.py`
  reads them).

Rows are read without their images first (filters pick rows by category and relation); the
images of the rows kept are read afterwards, once to check them and once to store them, so
a dataset far larger than memory loads in bounded memory. Every problem names the file and
row (or entry) at fault.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.core.errors import InputError
from builder.release.rows import PUBLISHED_FIELDS

TEXT_COLUMNS = tuple(name for name in PUBLISHED_FIELDS if name != "images")  # the rows' text fields


@dataclass(frozen=True)
class Row:
    """One dataset row without its images, as any source reads it."""

    where: str  # what an error names: "file row N", "file entry N"
    id: str
    category: str  # as the dataset spells it (published name or slug)
    relation: str
    original_question: str
    revised_prompt: str
    descriptions: list[str]
    keywords: list[list[str]]
    iteration: int
    images: int


class Source(ABC):
    kind: str
    location: str
    revision: str | None = None

    def description(self) -> dict[str, Any]:
        return {"kind": self.kind, "location": self.location, "revision": self.revision}

    @abstractmethod
    def rows(self) -> list[Row]:
        """Every row, in the dataset's order, without images."""

    @abstractmethod
    def images(self, numbers: Sequence[int]) -> Iterator[tuple[int, list[bytes]]]:
        """The image bytes of rows `numbers` (indices into `rows()`), in that order."""


def _text(value: Any, field: str, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{where}: field '{field}' must be a non-empty text")
    return value


def _keywords(value: Any) -> list[str]:
    """One image's keywords: a list, or the comma-separated text the published rows carry."""
    if isinstance(value, list):
        return [str(word).strip() for word in value if str(word).strip()]
    return [word.strip() for word in str(value or "").split(",") if word.strip()]


def make_row(record: dict[str, Any], where: str, images: int, category: str, relation: str) -> Row:
    """A row from a record with MIR-SafetyBench's field names (`images`: how many it has)."""
    descriptions = record.get("image_descriptions") or []
    keywords = record.get("image_keywords") or []
    if not isinstance(descriptions, list) or not isinstance(keywords, list):
        raise InputError(f"{where}: image_descriptions and image_keywords must be lists")
    if images < 1:
        raise InputError(f"{where}: the row has no images")
    raw_id = record.get("id")
    if raw_id is None or str(raw_id).strip() == "":
        raise InputError(f"{where}: the row has no id")
    iteration = record.get("iteration")
    return Row(
        where=where,
        id=str(raw_id),
        category=_text(category, "category", where),
        relation=_text(relation, "relationship_type", where),
        original_question=_text(record.get("original_question"), "original_question", where),
        revised_prompt=_text(record.get("revised_prompt"), "revised_prompt", where),
        descriptions=[str(descriptions[k]) if k < len(descriptions) else "" for k in range(images)],
        keywords=[_keywords(keywords[k]) if k < len(keywords) else [] for k in range(images)],
        iteration=iteration if isinstance(iteration, int) and iteration >= 1 else 1,
        images=images,
    )


def _image_bytes(value: Any, where: str, number: int) -> bytes:
    data = value.get("bytes") if isinstance(value, dict) else value
    if not isinstance(data, bytes | bytearray) or not data:
        raise InputError(f"{where}: image {number} has no embedded bytes")
    return bytes(data)


class ReleaseFolder(Source):
    """A mirbench release folder: its Parquet shards under data/."""

    kind = "release"

    def __init__(self, folder: Path):
        self.folder = folder
        self.location = str(folder.resolve())
        self.files = sorted((folder / "data").glob("*.parquet"))
        if not self.files:
            raise InputError("a release folder holds data/*.parquet; none found", path=folder / "data")
        self._places: list[tuple[Path, int]] = []

    def rows(self) -> list[Row]:
        import pyarrow.parquet as pq

        rows = []
        self._places = []
        for file in self.files:
            try:
                table = pq.read_table(file, columns=list(TEXT_COLUMNS))
            except Exception as exc:  # pyarrow's errors: a bad file, a missing column
                raise InputError(
                    f"cannot read the release's rows: {str(exc).splitlines()[0]}", path=file
                ) from None
            for number, record in enumerate(table.to_pylist()):
                where = f"{file} row {number + 1}"
                rows.append(
                    make_row(
                        record,
                        where,
                        int(record.get("num_images") or 0),
                        record["category"],
                        record["relationship_type"],
                    )
                )
                self._places.append((file, number))
        return rows

    def images(self, numbers: Sequence[int]) -> Iterator[tuple[int, list[bytes]]]:
        import pyarrow.parquet as pq

        by_file: dict[Path, list[int]] = {}
        for number in numbers:
            by_file.setdefault(self._places[number][0], []).append(number)
        for file, wanted in by_file.items():
            handle = pq.ParquetFile(file)
            rows_of = {self._places[number][1]: number for number in wanted}
            offset = 0
            for batch in handle.iter_batches(batch_size=64, columns=["images"]):
                for position, value in enumerate(batch.column(0).to_pylist()):
                    number = rows_of.get(offset + position)
                    if number is not None:
                        where = f"{file} row {offset + position + 1}"
                        yield number, [_image_bytes(image, where, k + 1) for k, image in enumerate(value)]
                offset += batch.num_rows


class MirLayout(Source):
    """MIR-SafetyBench's folders: `<Category>/<Relation>_final.json`, images beside them."""

    kind = "mir"

    def __init__(self, folder: Path):
        self.folder = folder
        self.location = str(folder.resolve())
        self.files = sorted(folder.glob("*/*_final.json"))
        self._paths: list[list[Path]] = []

    def rows(self) -> list[Row]:
        rows, self._paths = [], []
        for file in self.files:
            try:
                entries = json.loads(file.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise InputError(f"cannot read the layout's entries: {exc}", path=file) from None
            entries = entries if isinstance(entries, list) else [entries]
            category, relation = file.parent.name, file.name.removesuffix("_final.json")
            for number, entry in enumerate(entries, start=1):
                where = f"{file} entry {number}"
                if not isinstance(entry, dict):
                    raise InputError(f"{where}: an entry is a JSON object")
                paths = entry.get("images")
                if not isinstance(paths, list):
                    raise InputError(f"{where}: field 'images' must be a list of paths")
                rows.append(make_row(entry, where, len(paths), category, relation))
                self._paths.append([file.parent / str(path) for path in paths])
        return rows

    def images(self, numbers: Sequence[int]) -> Iterator[tuple[int, list[bytes]]]:
        for number in numbers:
            images = []
            for path in self._paths[number]:
                try:
                    images.append(path.read_bytes())
                except OSError as exc:
                    raise InputError(f"image missing or unreadable: {exc.strerror}", path=path) from None
            yield number, images


class HubDataset(Source):
    """A dataset repo on the Hugging Face Hub (or a mirror at HF_ENDPOINT), at a revision."""

    kind = "hub"

    def __init__(self, repo: str, revision: str | None):
        self.location, self.revision = repo, revision
        self._dataset: Any = None

    def _load(self) -> Any:
        from datasets import Image, List, load_dataset

        shown = f"Hub dataset {self.location}" + (f" at revision {self.revision}" if self.revision else "")
        try:
            loaded = load_dataset(self.location, revision=self.revision)
        except Exception as exc:  # the Hub's and datasets' errors: offline, not found, no access
            offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") else ""
            reason = next(iter(str(exc).strip().splitlines()), type(exc).__name__)
            raise InputError(f"{shown} could not be loaded{offline}: {reason}") from None
        split = "train" if "train" in loaded else next(iter(loaded))
        dataset = loaded[split]
        missing = [name for name in (*TEXT_COLUMNS, "images") if name not in dataset.column_names]
        if missing:
            raise InputError(f"{shown}: the rows lack the field(s) {', '.join(missing)}")
        return dataset.cast_column("images", List(Image(decode=False)))

    def rows(self) -> list[Row]:
        self._dataset = self._dataset if self._dataset is not None else self._load()
        records = self._dataset.select_columns(list(TEXT_COLUMNS)).to_list()
        return [
            make_row(
                record,
                f"{self.location} row {number}",
                int(record.get("num_images") or 0),
                record["category"],
                record["relationship_type"],
            )
            for number, record in enumerate(records, start=1)
        ]

    def images(self, numbers: Sequence[int]) -> Iterator[tuple[int, list[bytes]]]:
        for number in numbers:
            value = self._dataset[number]["images"]
            where = f"{self.location} row {number + 1}"
            yield number, [_image_bytes(image, where, k + 1) for k, image in enumerate(value)]


def open_source(path: Path | None, hub: str | None, revision: str | None) -> Source:
    """The source a command names: a local folder (a release or MIR's layout), or a Hub repo."""
    if hub is not None:
        return HubDataset(hub, revision)
    assert path is not None
    if not path.exists():
        raise InputError("no such dataset folder", path=path)
    if not path.is_dir():
        raise InputError("a dataset is a folder: a mirbench release or MIR-SafetyBench's layout", path=path)
    if (path / "data").is_dir() and any((path / "data").glob("*.parquet")):
        return ReleaseFolder(path)
    layout = MirLayout(path)
    if layout.files:
        return layout
    raise InputError(
        "not a dataset: expected a mirbench release folder (data/*.parquet) or MIR-SafetyBench's "
        "layout (<Category>/<Relation>_final.json)",
        path=path,
    )
