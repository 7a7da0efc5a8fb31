"""Stage `dedup`: reject candidates that repeat an item already kept or released.

Pictures are compared one by one through their 64-bit perceptual hashes in a multi-index hash
table tuned to the search radius `d` (`builder.stages.dedup.hashindex`: exact by the pigeonhole principle,
with `d + 1` substrings or more and no bit flipping), and every hit is verified by its true
Hamming distance. An item's text is one unit vector in a faiss inner-product index, hits
verified by their exact cosine: the mean of its parts' vectors (the prompt and each image
description), each part encoded alone. So no part is cut off at the text model's length limit
(MiniLM reads 256 tokens; a long prompt and four descriptions can be more), and a part that
many items share, such as the description of a picture they all show, is encoded once. A
candidate is rejected when
- two of its own images show the same picture (within `picture_max_distance`);
- its images repeat a kept item's (same count, each slot identical by sha256 or within
  `phash_max_distance` of the other's slot);
- one of its pictures already appears in as many kept items as the reuse cap allows (within
  `picture_max_distance`: a single picture needs a closer match than a whole set of them). The
  cap is `image_reuse_max`, or `image_reuse_share` of the kept items and the round's candidates
  where that is more: a pool's pictures can fill only pool size x cap slots, so a fixed cap
  would starve a benchmark-size build;
- its text is as similar as `text_similarity` to a kept item's.
Kept items are those still in play or waiting for people (in a status the pipeline gives
from dedup onward), every earlier release given as history or recorded by the store, and the
round's candidates accepted before this one: candidates are decided in id order, so reruns
decide alike.

The indexes persist under `artifacts/dedup/` and grow incrementally: each run adds only the
items not yet indexed. A row stays in the index when its item later drops out; hits are kept
only when their owner is kept now, with the same content (an item id keeps its id when a new
composer version redraws it), so stale rows never decide anything.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Self

import faiss
import numpy as np

from builder.config.sections import DedupSettings
from builder.core.items import Item, ItemStatus, Verdict
from builder.core.stats import StageStats
from builder.stages.base import Place, Stage
from builder.stages.dedup.hashindex import HashIndex, parse

if TYPE_CHECKING:
    from builder.stages.workspace import Workspace

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


class DedupStage(Stage):
    """Mark each of a round's candidates unique or rejected, against every kept item, every
    release in `history` and the candidates accepted before it (in id order, so reruns decide
    alike). `text_vectors` gives a unit vector per text, from `text_model`."""

    name = "dedup"
    gives = ItemStatus.UNIQUE
    funnel_label = "duplicates"
    Settings = DedupSettings
    whole_round = True  # duplicates are a property of the set
    batch_size = None

    def __init__(
        self,
        kept: list[Item],
        text_vectors: Callable[[list[str]], np.ndarray],
        *,
        phash_max_distance: int,
        text_similarity: float,
        picture_max_distance: int = 2,
        image_reuse_max: int = 3,
        image_reuse_share: float = 0.0,
        index_dir: Path | None = None,
        history: Iterable[tuple[str, list[Entry]]] = (),
        text_model: str = "",
    ):
        self.kept, self.text_vectors, self.text_model = kept, text_vectors, text_model
        self.picture_max_distance = picture_max_distance
        self.phash_max_distance, self.text_similarity = phash_max_distance, text_similarity
        self.image_reuse_max, self.image_reuse_share = image_reuse_max, image_reuse_share
        self.index_dir, self.history = index_dir, history

    @classmethod
    def open(cls, workspace: Workspace, place: Place) -> Self:
        dedup = workspace.settings.stages.dedup
        return cls(
            workspace.store.items_with_statuses(place.onward),
            workspace.text_vectors,
            phash_max_distance=dedup.phash_max_distance,
            text_similarity=dedup.text_similarity,
            picture_max_distance=dedup.picture_max_distance,
            image_reuse_max=dedup.image_reuse_max,
            image_reuse_share=dedup.image_reuse_share,
            index_dir=workspace.artifacts / "dedup",
            history=workspace.once("release_history", lambda: release_history(workspace)),
            text_model=dedup.text_model,
        )

    def _index(self, items: list[Item]) -> tuple[DedupIndex, set[str], np.ndarray]:
        """The index with every kept item and history entry in it, the entry keys kept now, and
        the text vectors of `items`: one call for the kept entries not yet indexed and the
        round's candidates together."""
        index = DedupIndex(self.index_dir, self.text_model)
        wanted = [Entry.of(item) for item in self.kept]
        for source, entries in self.history:
            wanted += entries
            if source not in index.sources:
                index.sources.append(source)
        kept = {entry.key for entry in wanted}
        fresh = list({entry.key: entry for entry in wanted if entry.key not in index.entries}.values())
        texts = [entry.texts for entry in fresh] + [item_texts(item) for item in items]
        vectors = mean_vectors(texts, self.text_vectors)
        for entry, vector in zip(fresh, vectors[: len(fresh)], strict=True):
            index.add(entry, vector)
        return index, kept, vectors[len(fresh) :]

    def reuse_cap(self, kept: int, candidates: int) -> int:
        """How many items may show one picture, with `kept` items kept and `candidates` in the round."""
        return max(self.image_reuse_max, math.ceil(self.image_reuse_share * (kept + candidates)))

    def process(self, items: list[Item], stats: StageStats, advance: Callable[[int], None]) -> None:
        index, kept, vectors = self._index(items)
        cap = self.reuse_cap(len(kept), len(items))
        for item, vector in zip(items, vectors, strict=True):
            verdict = self._judge(item, vector, index, kept, cap)
            if verdict.passed:
                item.verdicts.append(verdict)
                item.status = self.gives
                entry = Entry.of(item)
                index.add(entry, vector)
                kept.add(entry.key)
            else:
                item.reject(verdict)
            advance(1)
        index.save()

    def _reject(self, reason: str, detail: str, score: float) -> Verdict:
        return Verdict(name="dedup", version=VERSION, passed=False, score=score, reason=reason, detail=detail)

    def _judge(self, item: Item, vector: np.ndarray, index: DedupIndex, kept: set[str], cap: int) -> Verdict:
        limit, same_picture = self.phash_max_distance, self.picture_max_distance
        slots = item.slots
        for a in range(len(slots)):
            for b in range(a + 1, len(slots)):
                distance = hamming(slots[a].phash, slots[b].phash)
                if slots[a].sha256 == slots[b].sha256 or distance <= same_picture:
                    return self._reject(
                        "two images of one item show the same picture",
                        f"slots {a + 1} and {b + 1} (Hamming distance {distance})",
                        float(distance),
                    )
        hits = [
            [
                (key, slot, d)
                for key, slot, d in index.picture_hits(s.phash or "0", max(limit, same_picture))
                if key in kept
            ]
            for s in slots
        ]
        entry = Entry.of(item)
        for key in sorted({key for key, _, _ in hits[0]} if hits else set()):
            other = index.entries[key]
            if len(other.phash) != len(slots):
                continue
            if other.sha256 == entry.sha256:
                return self._reject(
                    "exact duplicate images", f"of {other.owner} (max Hamming distance 0)", 0.0
                )
            distances = [hamming(a, b) for a, b in zip(entry.phash, other.phash, strict=True)]
            if max(distances) <= limit:
                return self._reject(
                    "near-duplicate images",
                    f"of {other.owner} (max Hamming distance {max(distances)})",
                    float(max(distances)),
                )
        for number, slot_hits in enumerate(hits, start=1):
            owners = sorted({index.entries[key].owner for key, _, d in slot_hits if d <= same_picture})
            if len(owners) >= cap:
                return self._reject(
                    "picture reused in too many items",
                    f"slot {number} already in {len(owners)} item(s) (cap {cap}): {', '.join(owners[:5])}",
                    float(len(owners)),
                )
        text = [(key, cosine) for key, cosine in index.text_hits(vector, self.text_similarity) if key in kept]
        if text:
            key, similarity = max(text, key=lambda hit: (hit[1], hit[0]))
            return self._reject(
                "near-duplicate text",
                f"of {index.entries[key].owner} (cosine {similarity:.3f})",
                round(similarity, 4),
            )
        return Verdict(name="dedup", version=VERSION, passed=True)


def release_entries(folder: Path) -> tuple[str, list[Entry]]:
    """What dedup needs of an earlier release: (its name, one entry per item). Picture hashes
    come from the manifest when it carries them, else from the images in its Parquet files;
    texts come from its Parquet rows."""
    import io

    import imagehash
    import pyarrow.parquet as pq
    from PIL import Image

    from builder.core.errors import InputError

    manifest_path = Path(folder) / "manifest.json"
    if not manifest_path.is_file():
        raise InputError("not a mirbench release (no manifest.json)", path=folder)
    raw = manifest_path.read_bytes()
    manifest = json.loads(raw)
    hashes = {row["id"]: row.get("images") for row in manifest.get("selection", [])}
    version = str(manifest.get("version", Path(folder).name))
    entries = []
    for shard in sorted((Path(folder) / "data").glob("*.parquet")):
        columns = ["id", "revised_prompt", "image_descriptions"]
        known = all(
            hashes.get(row_id) for row_id in pq.read_table(shard, columns=["id"]).column("id").to_pylist()
        )
        table = pq.read_table(shard, columns=columns if known else [*columns, "images"])
        for row in table.to_pylist():
            images = hashes.get(row["id"]) or [
                {
                    "sha256": hashlib.sha256(image["bytes"]).hexdigest(),
                    "phash": str(imagehash.phash(Image.open(io.BytesIO(image["bytes"])))),
                }
                for image in row["images"]
            ]
            entries.append(
                Entry(
                    f"{version}/{row['id']}",
                    tuple(image["sha256"] for image in images),
                    tuple(image["phash"] for image in images),
                    (row["revised_prompt"], *row["image_descriptions"]),
                )
            )
    return f"release {version} ({hashlib.sha256(raw).hexdigest()[:12]})", entries


def release_history(workspace: Workspace) -> list[tuple[str, list[Entry]]]:
    """Every earlier release a build compares with: those the settings name and those its
    store recorded (when their folder is still there)."""
    folders = [Path(path) for path in workspace.settings.stages.dedup.history]
    folders += [Path(row.location) for row in workspace.store.releases() if Path(row.location).is_dir()]
    unique = list(dict.fromkeys(folder.resolve() for folder in folders))
    return [release_entries(folder) for folder in unique]
