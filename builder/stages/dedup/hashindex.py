"""Near-duplicate search over 64-bit perceptual hashes by multi-index hashing, in numpy.

Split the 64 bits into `radius + k` substrings: two hashes within `radius` bits differ in at most
`radius` substrings, so at least `k` substrings are equal in both (the pigeonhole rule). Every
pair within the radius therefore has an equal key in one of the tables keyed by `k` of the
substrings together, with no bit flipping, and every candidate is verified by its true Hamming
distance: the search is exact. `k = 1` gives `radius + 1` tables of short keys; `k = 2` gives
more tables of keys twice as long, whose buckets stay nearly empty up to millions of hashes.
`tables` picks the `k` with the least estimated work for the number of hashes.

- `HashIndex` answers "which rows are within `radius` of this hash" and grows one row at a time
  (the build's dedup); rows added since the last sort sit in a short tail that is scanned whole.
- `pairs_within` finds every pair within `radius` among a whole set of hashes at once (a release
  history checked against itself): per table, sort by key and compare each hash with the ones
  after it in its bucket, all positions of one offset at a time (vectorised).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from itertools import combinations
from math import comb, log2

import numpy as np

HASH_BITS = 64
# Rows added since the last sort that are scanned linearly rather than re-sorted on every add.
TAIL_ROWS = 4096
ROW_BITS = 32  # row numbers packed under the key, so one plain sort orders rows by key

Table = tuple[tuple[int, int], ...]  # the (shift, width) of each substring making up a key


def tables(radius: int, rows: int, k: int | None = None) -> list[Table]:
    """One key per table: `k` of `radius + k` near-equal substrings of the 64 bits; unless given,
    the `k` (1 to 3) with the least estimated work (sorts plus candidate pairs) over `rows` hashes."""
    radius = min(max(radius, 0), HASH_BITS - 1)

    def work(k: int) -> float:
        count, width = comb(radius + k, k), HASH_BITS * k / (radius + k)
        return count * rows * (1 + log2(rows + 1)) + count * rows * rows / 2 ** (width + 1)

    k = k or min((k for k in (1, 2, 3) if radius + k <= HASH_BITS), key=work)
    count = radius + k
    widths = [HASH_BITS // count + (1 if n < HASH_BITS % count else 0) for n in range(count)]
    shifts = np.cumsum([0, *widths[:-1]]).tolist()
    return list(combinations(zip(shifts, widths, strict=True), k))


def parse(phash: str | None) -> int:
    """A hex perceptual hash as an integer (a missing one is all zeros)."""
    return int(phash or "0", 16)


def _key(codes: np.ndarray, table: Table) -> np.ndarray:
    """The table's substrings of each code, side by side in the low bits."""
    key = np.zeros_like(codes)
    for shift, width in table:
        key = (key << np.uint64(width)) | ((codes >> np.uint64(shift)) & np.uint64((1 << width) - 1))
    return key


def _sorted(keys: np.ndarray, table: Table) -> tuple[np.ndarray, np.ndarray]:
    """(keys sorted, the row of each)."""
    if sum(width for _, width in table) + ROW_BITS > HASH_BITS:
        order = np.argsort(keys)
        return keys[order], order
    packed = (keys << np.uint64(ROW_BITS)) | np.arange(len(keys), dtype=np.uint64)
    packed.sort()
    return packed >> np.uint64(ROW_BITS), (packed & np.uint64((1 << ROW_BITS) - 1)).astype(np.int64)


def _distances(a: np.ndarray, b: np.ndarray | np.uint64) -> np.ndarray:
    return np.bitwise_count(a ^ b)


def _table_pairs(codes: np.ndarray, radius: int, table: Table, earlier: list[Table]) -> np.ndarray:
    """Pairs within `radius` whose keys are equal in `table` and in none of the `earlier` ones
    (so that each pair is found in one table only)."""
    sorted_keys, order = _sorted(_key(codes, table), table)
    total, found = len(codes), []
    active = np.flatnonzero(sorted_keys[1:] == sorted_keys[:-1])  # positions with a later partner
    offset = 1
    while active.size:
        a, b = order[active], order[active + offset]
        close = _distances(codes[a], codes[b]) <= radius
        pair = np.stack([np.minimum(a[close], b[close]), np.maximum(a[close], b[close])], axis=1)
        for other in earlier:
            pair = pair[_key(codes[pair[:, 0]], other) != _key(codes[pair[:, 1]], other)]
        found.append(pair)
        offset += 1
        active = active[active + offset < total]
        active = active[sorted_keys[active] == sorted_keys[active + offset]]
    return np.concatenate(found) if found else np.zeros((0, 2), dtype=np.int64)


def pairs_within(
    codes: np.ndarray, radius: int, workers: int | None = None, k: int | None = None
) -> np.ndarray:
    """Every pair (i, j), i < j, of rows of `codes` (uint64) within `radius` bits, each once,
    sorted. Tables (see `tables`) are searched in `workers` threads (numpy lets go of the GIL
    while sorting)."""
    codes = np.ascontiguousarray(codes, dtype=np.uint64)
    plan = tables(radius, len(codes), k)
    with ThreadPoolExecutor(workers or len(os.sched_getaffinity(0))) as pool:
        found = list(pool.map(lambda n: _table_pairs(codes, radius, plan[n], plan[:n]), range(len(plan))))
    pairs = np.concatenate(found).astype(np.int64)
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


class HashIndex:
    """64-bit hashes, one row each in order of addition, searchable within a fixed radius."""

    def __init__(self, radius: int, codes: np.ndarray | None = None):
        self.radius = radius
        self._sorted = np.asarray(codes if codes is not None else [], dtype=np.uint64)
        self._tail: list[int] = []
        # (table, keys sorted, rows), built on the first search after the sorted rows change
        self._tables: list[tuple[Table, np.ndarray, np.ndarray]] | None = None

    def __len__(self) -> int:
        return len(self._sorted) + len(self._tail)

    @property
    def codes(self) -> np.ndarray:
        """Every row's hash, in order of addition."""
        return np.concatenate([self._sorted, np.asarray(self._tail, dtype=np.uint64)])

    def _build(self) -> list[tuple[Table, np.ndarray, np.ndarray]]:
        if self._tables is None:
            plan = tables(self.radius, len(self._sorted))
            self._tables = [(table, *_sorted(_key(self._sorted, table), table)) for table in plan]
        return self._tables

    def add(self, codes: list[int]) -> None:
        self._tail += codes
        if len(self._tail) > TAIL_ROWS:
            self._sorted, self._tail, self._tables = self.codes, [], None

    def search(self, code: int) -> list[tuple[int, int]]:
        """(row, Hamming distance) of every row within the radius of `code`, by row."""
        query = np.asarray([code], dtype=np.uint64)
        found = []
        for table, keys, rows in self._build():
            key = _key(query, table)[0]
            found.append(rows[np.searchsorted(keys, key, "left") : np.searchsorted(keys, key, "right")])
        rows = np.unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)
        distances = _distances(self._sorted[rows], query[0])
        tail_distances = _distances(np.asarray(self._tail, dtype=np.uint64), query[0])
        tail_rows = np.flatnonzero(tail_distances <= self.radius)
        keep = distances <= self.radius
        return [(int(r), int(d)) for r, d in zip(rows[keep], distances[keep], strict=True)] + [
            (len(self._sorted) + int(r), int(tail_distances[r])) for r in tail_rows
        ]
