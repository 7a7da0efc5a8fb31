"""Benchmark dedup's picture search: 1,000,000 random 64-bit perceptual hashes plus `--planted`
near-duplicates of some of them (each within `--radius` bits), in one run:

- all pairs within the radius among every hash (a release history checked against itself), by
  `builder.stages.dedup.hashindex.pairs_within`, against the 15 s goal, and by the off-the-shelf anchor, faiss
  `IndexBinaryMultiHash(64, 5, 12)` at nflip 0 searched with every hash, in the same process;
- the build's incremental use: the index of every hash searched with each planted copy.

Recall counts the planted pairs found, and the pairs of `--sample` random rows against every
hash found by brute force (numpy popcount). Text vectors: bench/embeddings.py.

    python bench/dedup.py [--hashes 1000000] [--planted 10000] [--radius 4] [--no-anchor]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

GOAL_SECONDS = 15.0
GOAL_RECALL = 0.99


def _planted(total: int, planted: int, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """`total` random codes followed by `planted` copies of some of them; (codes, planted pairs)."""
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 2**64 - 1, size=total + planted, dtype=np.uint64)
    originals = rng.choice(total, planted, replace=False)
    for row, original in enumerate(originals):  # flip 1..radius random bits of each copy
        copy = int(codes[original])
        for bit in rng.choice(64, rng.integers(1, radius + 1), replace=False):
            copy ^= 1 << int(bit)
        codes[total + row] = copy
    return codes, np.stack([originals, np.arange(total, total + planted)], axis=1)


def _recall(found: np.ndarray, planted: np.ndarray, codes: np.ndarray, radius: int, sample: int) -> str:
    known = {(int(a), int(b)) for a, b in found}
    planted_found = sum((int(a), int(b)) in known for a, b in planted)
    rows = np.random.default_rng(1).choice(len(codes), sample, replace=False)
    truth = set()
    for row in rows:
        for other in np.flatnonzero(np.bitwise_count(codes ^ codes[row]) <= radius):
            if other != row:
                truth.add((min(int(row), int(other)), max(int(row), int(other))))
    sampled = set(rows.tolist())
    reported = {pair for pair in known if pair[0] in sampled or pair[1] in sampled}
    beyond = sum(int(np.bitwise_count(codes[a] ^ codes[b])) > radius for a, b in known)
    recall = min(planted_found / len(planted), len(truth & reported) / max(len(truth), 1))
    return (
        f"recall {recall:.4f} (goal {GOAL_RECALL}): planted {planted_found}/{len(planted)}, "
        f"sampled rows {len(truth & reported)}/{len(truth)}; pairs beyond the radius {beyond}"
    )


def _faiss_pairs(codes: np.ndarray, radius: int) -> np.ndarray:
    import faiss

    index = faiss.IndexBinaryMultiHash(64, 5, 12)
    as_bytes = codes.astype(">u8").view(np.uint8).reshape(-1, 8)
    index.add(as_bytes)
    index.nflip = 0
    limits, _, rows = index.range_search(as_bytes, radius + 1)
    queries = np.repeat(np.arange(len(codes)), np.diff(limits).astype(np.int64))
    pairs = np.stack([queries, rows], axis=1)
    return pairs[pairs[:, 0] < pairs[:, 1]]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hashes", type=int, default=1_000_000)
    parser.add_argument("--planted", type=int, default=10_000)
    parser.add_argument("--radius", type=int, default=4)
    parser.add_argument("--sample", type=int, default=300)
    parser.add_argument("--no-anchor", action="store_true", help="skip the faiss run (about 1 min)")
    args = parser.parse_args()
    from builder.stages.dedup.hashindex import HashIndex, pairs_within, tables

    codes, planted = _planted(args.hashes, args.planted, args.radius)
    plan = tables(args.radius, len(codes))
    print(
        f"hashes {len(codes):,} ({args.planted:,} planted within {args.radius} bits), "
        f"cores {len(os.sched_getaffinity(0))}, load average {os.getloadavg()[0]:.1f}"
    )
    start = time.perf_counter()
    found = pairs_within(codes, args.radius)
    seconds = time.perf_counter() - start
    print(
        f"all pairs, multi-index hashing ({len(plan)} tables of {len(plan[0])} substring(s)): "
        f"{seconds:.2f}s, {len(found):,} pairs; goal {GOAL_SECONDS:.0f}s: {seconds / GOAL_SECONDS:.2f} of it"
    )
    print("  " + _recall(found, planted, codes, args.radius, args.sample))
    if not args.no_anchor:
        start = time.perf_counter()
        anchor = _faiss_pairs(codes, args.radius)
        anchor_seconds = time.perf_counter() - start
        print(
            f"all pairs, faiss IndexBinaryMultiHash(64, 5, 12) nflip 0: {anchor_seconds:.2f}s, "
            f"{len(anchor):,} pairs; ours is {anchor_seconds / seconds:.1f}x faster"
        )
        print("  " + _recall(anchor, planted, codes, args.radius, args.sample))
    start = time.perf_counter()
    index = HashIndex(args.radius, codes)
    hits = [index.search(int(code)) for code in codes[args.hashes :]]
    searched = time.perf_counter() - start
    found_copies = sum(int(a) in {row for row, _ in hit} for (a, _), hit in zip(planted, hits, strict=True))
    print(
        f"incremental: index of every hash, searched with each planted copy: {searched:.2f}s "
        f"({searched / args.planted * 1e6:.0f} us a search), planted found {found_copies}/{args.planted}"
    )
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
