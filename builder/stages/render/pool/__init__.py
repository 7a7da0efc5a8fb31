"""Image pools for the retrieval renderer: the built-in picture pool, a folder of captioned
images or a Hugging Face dataset, indexed by caption embeddings in a persistent faiss index.

A pool is either
- the built-in picture pool (`pool: None`; `builder/stages/render/pool/twemoji.py`), whose
  index is kept in the user's cache folder and shared by every artifacts folder, since its
  content is fixed by the installed package version;
- a folder holding images and a sidecar `captions.jsonl` (or `captions.csv`) with the fields
  `file`, `caption` and, optionally, `source` and `license`; or
- a Hugging Face dataset saved with `save_to_disk`, with an image and a text column.
Bad pool content (unreadable files, unsupported modes, huge images, decompression bombs) is
skipped at indexing time with a reason; Pillow's MAX_IMAGE_PIXELS guard stays in force.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import imagehash
import numpy as np
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel

from builder.config.input_limits import InputLimits
from builder.config.user_cache import cache_dir
from builder.config.user_files import control_character, read_records
from builder.core import progress
from builder.core.errors import InputError, InputErrors
from builder.models.embeddings import ClipEncoder
from builder.stages.dedup.hashindex import parse
from builder.stages.render.pool import twemoji

CAPTION_FILES = ("captions.jsonl", "captions.csv")
CONVERTIBLE_MODES = frozenset({"RGB", "RGBA", "L", "LA", "P", "PA", "CMYK", "YCbCr", "1"})
INDEX_VERSION = "2"  # 2: phashes.npy, each picture's perceptual hash


class PoolEntry(BaseModel):
    id: str  # file path relative to the pool, or "row:N" for a dataset
    caption: str
    source: str
    license: str


class Skipped(BaseModel):
    id: str
    reason: str


class PoolIndexReport(BaseModel):
    pool: str
    index_dir: Path
    indexed: int
    skipped: list[Skipped]
    model: str


@dataclass(frozen=True)
class _Record:
    entry: PoolEntry
    load: Callable[[], Image.Image]


def pool_label(pool: Path | None) -> str:
    return str(pool) if pool is not None else f"the built-in picture pool ({twemoji.status().label})"


def _move_into_place(work: Path, directory: Path) -> None:
    """Replace `directory` by `work` (an older index moves aside first, then goes)."""
    old = None
    if directory.exists():
        old = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f"{directory.name}.old-"))
        os.replace(directory, old / "index")
    try:
        os.replace(work, directory)
    except OSError:  # another process moved its own copy in first: same content, keep that one
        shutil.rmtree(work, ignore_errors=True)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def index_dir_for(artifacts: Path, pool: Path | None, model: str = "") -> Path:
    """Where a pool's index lives: under the artifacts folder, so read-only pools work too; the
    built-in pool's (`None`) in the cache folder, one per package version and text model."""
    if pool is None:
        version = twemoji.status().version or "missing"
        digest = hashlib.sha256(f"{INDEX_VERSION}\x1f{version}\x1f{model}".encode()).hexdigest()[:12]
        return cache_dir() / "pools" / f"{twemoji.NAME}-{version}-{digest}"
    digest = hashlib.sha256(str(Path(pool).resolve()).encode()).hexdigest()[:12]
    return artifacts / "pools" / f"{Path(pool).name}-{digest}"


def open_rgb(load: Callable[[], Image.Image]) -> Image.Image:
    """Decode fully and convert to RGB; raise ValueError with a reason for bad content."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = load()
            if image.mode not in CONVERTIBLE_MODES:
                raise ValueError(f"unsupported image mode {image.mode}")
            image.load()
            if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                # transparent pixels (icons, emoji) go on white, not on whatever colour they hide
                rgba = image.convert("RGBA")
                background = Image.new("RGBA", rgba.size, "white")
                image = Image.alpha_composite(background, rgba)
    except Image.DecompressionBombWarning as exc:
        raise ValueError(f"huge image, over Pillow's MAX_IMAGE_PIXELS: {exc}") from None
    except Image.DecompressionBombError as exc:
        raise ValueError(f"decompression bomb: {exc}") from None
    except UnidentifiedImageError:
        raise ValueError("not an image Pillow can read") from None
    except OSError as exc:
        raise ValueError(f"unreadable image: {exc}") from None
    return image.convert("RGB")


def _caption_problem(pool: Path, row: dict[str, Any]) -> str | None:
    if not all(isinstance(row.get(name) or "", str) for name in ("file", "caption", "source", "license")):
        return "'file', 'caption', 'source' and 'license' must be strings"
    if not row.get("file") or not row.get("caption", "").strip():
        return "each row needs 'file' and a non-empty 'caption'"
    problem = next(filter(None, (control_character(str(value)) for value in row.values())), None)
    if problem:
        return problem
    if Path(row["file"]).is_absolute() or not (pool / row["file"]).resolve().is_relative_to(pool.resolve()):
        return f"file '{row['file']}' is outside the pool folder"
    return None


def _folder_records(pool: Path, max_record_chars: int) -> list[_Record]:
    """The sidecar's rows as records; every malformed row is reported (InputErrors) by file:line."""
    sidecar = next((pool / name for name in CAPTION_FILES if (pool / name).is_file()), None)
    if sidecar is None:
        raise InputError(f"an image pool folder needs a {' or '.join(CAPTION_FILES)} sidecar", path=pool)
    rows = read_records(sidecar, max_record_chars, required=frozenset({"file", "caption"}))
    errors = list(rows.errors)
    records = []
    for line, row in rows.rows:
        problem = _caption_problem(pool, row)
        if problem is not None:
            errors.append(InputError(problem, path=sidecar, line=line))
            continue
        path = pool / row["file"]
        entry = PoolEntry(
            id=row["file"],
            caption=row["caption"].strip(),
            source=row.get("source") or row["file"],
            license=row.get("license") or "unspecified",
        )
        records.append(_Record(entry, lambda path=path: Image.open(path)))
    if errors:
        raise InputErrors(errors)
    return records


def _dataset_records(pool: Path, image_column: str, text_column: str) -> Iterator[_Record]:
    from datasets import load_from_disk

    try:
        dataset = load_from_disk(str(pool))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot load the saved dataset: {exc}", path=pool) from None
    if hasattr(dataset, "keys"):  # a DatasetDict: take the first split
        dataset = dataset[next(iter(dataset.keys()))]
    missing = {image_column, text_column} - set(dataset.column_names)
    if missing:
        raise InputError(f"dataset has no column(s) {sorted(missing)}; has {dataset.column_names}", path=pool)
    return _dataset_rows(pool, dataset, image_column, text_column)


def _dataset_rows(pool: Path, dataset: Any, image_column: str, text_column: str) -> Iterator[_Record]:
    raw = dataset.cast_column(image_column, dataset.features[image_column].__class__(decode=False))
    for number, row in enumerate(raw):
        value = row[image_column] or {}

        def load(value: dict[str, Any] = value) -> Image.Image:
            if value.get("bytes"):
                return Image.open(io.BytesIO(value["bytes"]))
            return Image.open(value["path"])

        entry = PoolEntry(
            id=f"row:{number}",
            caption=str(row[text_column] or "").strip(),
            source=str(row.get("source") or f"{pool.name}#{number}"),
            license=str(row.get("license") or "unspecified"),
        )
        yield _Record(entry, load)


def _builtin_records() -> list[_Record]:
    status = twemoji.status()
    if not status.installed:
        raise InputError(str(status.missing))
    return [
        _Record(
            PoolEntry(
                id=picture.id,
                caption=picture.caption,
                source=f"{status.label} '{picture.caption}'",
                license=twemoji.LICENSE,
            ),
            lambda path=picture.path: Image.open(path),
        )
        for picture in twemoji.pictures()
    ]


def pool_records(
    pool: Path | None,
    image_column: str = "image",
    text_column: str = "text",
    max_record_chars: int = InputLimits().max_record_chars,
) -> Iterator[_Record]:
    """The pool's records (`None`: the built-in pool); a missing pool, a malformed caption file or
    missing dataset columns raise InputError at once (a dataset's rows are then read lazily)."""
    if pool is None:
        return iter(_builtin_records())
    pool = Path(pool)
    if not pool.is_dir():
        raise InputError("no such image pool folder", path=pool)
    if (pool / "dataset_info.json").is_file() or (pool / "dataset_dict.json").is_file():
        return _dataset_records(pool, image_column, text_column)
    return iter(_folder_records(pool, max_record_chars))


class PoolIndex:
    """A built index: entries, their caption vectors in faiss, and how to open each image."""

    def __init__(
        self, directory: Path, pool: Path | None, image_column: str = "image", text_column: str = "text"
    ):
        import faiss

        meta_file = directory / "meta.json"
        if not meta_file.is_file():
            raise InputError("no pool index here; run `mirbench pool index`", path=directory)
        self.meta = json.loads(meta_file.read_text())
        self.entries = [
            PoolEntry.model_validate_json(line)
            for line in (directory / "entries.jsonl").read_text().splitlines()
            if line
        ]
        self.index = faiss.read_index(str(directory / "captions.faiss"))
        images = directory / "images.faiss"
        self.image_index = faiss.read_index(str(images)) if images.is_file() else None
        hashes = directory / "phashes.npy"
        # per entry, the picture's 64-bit perceptual hash (None: an index made before they were kept)
        self.phashes: np.ndarray | None = np.load(hashes) if hashes.is_file() else None
        self._loaders = {
            record.entry.id: record.load for record in pool_records(pool, image_column, text_column)
        }

    @property
    def model(self) -> str:
        return str(self.meta["model"])

    @property
    def clip_model(self) -> str | None:
        """The CLIP model whose image vectors this index holds, if any."""
        return self.meta.get("clip_model")

    def similarities(self, query: np.ndarray, ids: Sequence[int], images: bool = False) -> np.ndarray:
        """Cosine of `query` with the caption (or CLIP image) vectors of entries `ids`."""
        index = self.image_index if images else self.index
        vectors = np.stack([index.reconstruct(int(i)) for i in ids])
        return vectors @ query

    @property
    def fingerprint(self) -> str:
        return str(self.meta["fingerprint"])

    def search(self, vectors: np.ndarray, k: int, images: bool = False) -> tuple[np.ndarray, np.ndarray]:
        index = self.image_index if images else self.index
        return index.search(np.ascontiguousarray(vectors, dtype=np.float32), min(k, len(self.entries)))

    def image(self, entry: PoolEntry) -> Image.Image:
        return open_rgb(self._loaders[entry.id])


def build_index(
    pool: Path | None,
    directory: Path,
    encode: Callable[[Sequence[str]], np.ndarray],
    model: str,
    image_column: str = "image",
    text_column: str = "text",
    clip: ClipEncoder | None = None,
    max_record_chars: int = InputLimits().max_record_chars,
) -> PoolIndexReport:
    """Screen every pool image, embed the captions of the good ones (and, with a CLIP model,
    the images themselves), write the index."""
    import faiss

    records = list(pool_records(pool, image_column, text_column, max_record_chars))
    advance = progress.track("pool", len(records))
    kept: list[PoolEntry] = []
    phashes: list[int] = []
    image_vectors: list[np.ndarray] = []
    skipped: list[Skipped] = []
    for record in records:
        if not record.entry.caption:
            skipped.append(Skipped(id=record.entry.id, reason="empty caption"))
        else:
            try:
                image = open_rgb(record.load)
            except ValueError as exc:
                skipped.append(Skipped(id=record.entry.id, reason=str(exc)))
            else:
                kept.append(record.entry)
                phashes.append(parse(str(imagehash.phash(image.convert("L")))))
                if clip is not None:
                    image_vectors.append(clip.encode_images([image])[0])
        advance(1)
    if not kept:
        raise InputError(f"no usable images in the pool ({len(skipped)} skipped)", path=pool)
    vectors = encode([entry.caption for entry in kept])
    index = faiss.IndexFlatIP(vectors.shape[1])  # inner product of unit vectors = cosine
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    directory.parent.mkdir(parents=True, exist_ok=True)
    # Written in a folder of its own, then moved into place: processes that index the same pool
    # at once never read a half-written index.
    work = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f"{directory.name}.part-"))
    faiss.write_index(index, str(work / "captions.faiss"))
    np.save(work / "phashes.npy", np.array(phashes, dtype=np.uint64))
    if clip is not None:
        images = faiss.IndexFlatIP(image_vectors[0].shape[0])
        images.add(np.ascontiguousarray(np.stack(image_vectors), dtype=np.float32))
        faiss.write_index(images, str(work / "images.faiss"))
    lines = "".join(entry.model_dump_json() + "\n" for entry in kept)
    (work / "entries.jsonl").write_text(lines)
    clip_model = clip.model_name if clip is not None else None
    fingerprint = hashlib.sha256(
        f"{INDEX_VERSION}\x1f{model}\x1f{clip_model}\x1f{lines}".encode()
    ).hexdigest()[:16]
    meta = {
        "model": model,
        "clip_model": clip_model,
        "count": len(kept),
        "pool": pool_label(pool),
        "fingerprint": fingerprint,
        "version": INDEX_VERSION,
    }
    (work / "skipped.jsonl").write_text("".join(s.model_dump_json() + "\n" for s in skipped))
    (work / "meta.json").write_text(json.dumps(meta))
    _move_into_place(work, directory)
    return PoolIndexReport(
        pool=pool_label(pool), index_dir=directory, indexed=len(kept), skipped=skipped, model=model
    )
