"""What dedup knows of every item kept or released: its pictures' perceptual hashes (a
multi-index hash table, builder/stages/dedup/hashindex.py) and one text vector (a faiss
inner-product index), each row tagged with the entry it belongs to. The index persists under
`artifacts/dedup/`, written atomically, and grows by the entries not yet in it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from builder.core.items import Item
from builder.stages.dedup.hashindex import HashIndex, parse

VERSION = "3"  # 3: texts are the mean of their parts' vectors
TEXT_ENCODING = "mean of parts"  # how the index's text vectors were made, with the model's name


def item_texts(item: Item) -> tuple[str, ...]:
    """The parts of an item's text: its prompt, then each image's description."""
    return (item.revised_prompt, *(slot.description for slot in item.slots))


def mean_vectors(texts: list[tuple[str, ...]], text_vectors: Callable[[list[str]], np.ndarray]) -> np.ndarray:
    """One unit vector per tuple of parts: the normalised mean of its parts' unit vectors."""
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    vectors = text_vectors([part for parts in texts for part in parts])
    starts = np.cumsum([0, *(len(parts) for parts in texts[:-1])])
    sums = np.add.reduceat(vectors, starts, axis=0)
    return (sums / np.linalg.norm(sums, axis=1, keepdims=True)).astype(np.float32)


def hamming(a: str | None, b: str | None) -> int:
    return (parse(a) ^ parse(b)).bit_count()


@dataclass(frozen=True)
class Entry:
    """What dedup knows of one kept item (or released one): its pictures and its text."""

    owner: str  # an item id, or "<release version>/<item id>"
    sha256: tuple[str, ...]
    phash: tuple[str, ...]
    texts: tuple[str, ...]  # the prompt, then each image's description

    @property
    def key(self) -> str:
        """The owner and a digest of its content: what index rows are tagged with."""
        content = "\x1f".join([*self.sha256, *self.phash, *self.texts])
        return f"{self.owner}#{hashlib.sha256(content.encode()).hexdigest()[:16]}"

    @classmethod
    def of(cls, item: Item) -> Entry:
        return cls(
            item.id,
            tuple(slot.sha256 or "" for slot in item.slots),
            tuple(slot.phash or "0" for slot in item.slots),
            item_texts(item),
        )


class DedupIndex:
    """Perceptual hashes and text vectors of everything seen, each row tagged with its owner."""

    def __init__(self, directory: Path | None = None, text_model: str = ""):
        self.directory = directory
        self.text_encoding = f"{TEXT_ENCODING} of {text_model}"
        self.hashes = HashIndex(0)  # re-tuned to the radius that searches ask for
        self.texts: faiss.IndexFlatIP | None = None
        self.image_rows: list[tuple[str, int]] = []  # (entry key, slot) per hash row
        self.text_rows: list[str] = []  # entry key per vector row
        self.entries: dict[str, Entry] = {}
        self.sources: list[str] = []  # histories already read in
        if directory is not None and (directory / "meta.json").is_file():
            self._load(directory)

    def _load(self, directory: Path) -> None:
        meta = json.loads((directory / "meta.json").read_text())
        if meta.get("text_encoding") != self.text_encoding:
            return  # vectors of another model or kind: every entry is indexed again
        self.hashes = HashIndex(0, np.load(directory / "hashes.npy"))
        if (directory / "texts.faiss").is_file():
            self.texts = faiss.read_index(str(directory / "texts.faiss"))
        self.image_rows = [(key, slot) for key, slot in meta["image_rows"]]
        self.text_rows = meta["text_rows"]
        entries = (
            Entry(e["owner"], tuple(e["sha256"]), tuple(e["phash"]), tuple(e["texts"]))
            for e in meta["entries"]
        )
        self.entries = {entry.key: entry for entry in entries}
        self.sources = meta["sources"]

    def save(self) -> None:
        """Write the index atomically (each file replaced whole)."""
        if self.directory is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        meta = {
            "version": VERSION,
            "text_encoding": self.text_encoding,
            "image_rows": self.image_rows,
            "text_rows": self.text_rows,
            "entries": [
                {"owner": e.owner, "sha256": e.sha256, "phash": e.phash, "texts": e.texts}
                for e in self.entries.values()
            ],
            "sources": self.sources,
        }
        writes: list[tuple[str, Callable[[str], None]]] = [
            ("hashes.npy", self._save_hashes),
            ("meta.json", lambda path: Path(path).write_text(json.dumps(meta))),
        ]
        if self.texts is not None:
            texts = self.texts
            writes.insert(1, ("texts.faiss", lambda path: faiss.write_index(texts, path)))
        for name, write in writes:
            handle, temporary = tempfile.mkstemp(dir=self.directory, suffix=".part")
            os.close(handle)
            write(temporary)
            os.replace(temporary, self.directory / name)

    def _save_hashes(self, path: str) -> None:
        with open(path, "wb") as handle:  # a path would get ".npy" appended
            np.save(handle, self.hashes.codes)

    def add(self, entry: Entry, vector: np.ndarray) -> None:
        key = entry.key
        if key in self.entries:
            return
        self.entries[key] = entry
        if entry.phash:
            self.hashes.add([parse(h) for h in entry.phash])
            self.image_rows += [(key, slot) for slot in range(len(entry.phash))]
        if self.texts is None:
            self.texts = faiss.IndexFlatIP(vector.shape[0])
        self.texts.add(vector.reshape(1, -1).astype(np.float32))
        self.text_rows.append(key)

    def picture_hits(self, phash: str, max_distance: int) -> list[tuple[str, int, int]]:
        """(entry key, slot, true Hamming distance) of every indexed picture within `max_distance`."""
        if not self.image_rows:
            return []
        if self.hashes.radius != max_distance:
            self.hashes = HashIndex(max_distance, self.hashes.codes)
        return [(*self.image_rows[row], distance) for row, distance in self.hashes.search(parse(phash))]

    def text_hits(self, vector: np.ndarray, threshold: float) -> list[tuple[str, float]]:
        """(entry key, exact cosine) of every indexed text at or above `threshold`."""
        if self.texts is None or not self.text_rows:
            return []
        query = vector.reshape(1, -1).astype(np.float32)
        limits, _, rows = self.texts.range_search(query, float(threshold) - 1e-4)
        hits = []
        for row in rows[limits[0] : limits[1]]:
            similarity = float(np.dot(self.texts.reconstruct(int(row)), query[0]))
            if similarity >= threshold:
                hits.append((self.text_rows[int(row)], similarity))
        return hits
