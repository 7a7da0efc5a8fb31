"""Near-duplicates between the cosine threshold and the band's floor: how many pairs of the
shipped sources' seeds fall there, how many the words test (`curation.same_behaviour`) merges,
and a fixed sample of both kinds to check by hand.

The shipped sources are imported into a scratch store and merged at the threshold alone; every
pair of the representatives left whose MiniLM cosine is in [floor, threshold) is one pair of the
band. The sample is every Nth pair of each kind, in order of cosine.

    python bench/seed_band.py [--floor 0.8] [--threshold 0.9] [--sample 20]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SOURCES = ["advbench", "harmbench", "strongreject", "donotanswer", "pyrit", "deepteam", "forgelm"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--floor", type=float, default=0.8)
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--sample", type=int, default=20, help="Pairs shown of each kind.")
    options = parser.parse_args()

    import numpy as np

    from builder.config.input_limits import InputLimits
    from builder.config.settings import bundled
    from builder.config.taxonomy import load_taxonomy
    from builder.curation.importer import import_source, load_source
    from builder.curation.merge import merge_near_duplicates
    from builder.curation.same_behaviour import same_behaviour
    from builder.models.embeddings import TextEmbedder
    from builder.store import SeedState, Store

    categories = set(load_taxonomy(bundled("taxonomy")).categories)
    embedder = TextEmbedder()
    with tempfile.TemporaryDirectory() as scratch:
        store = Store(f"sqlite:///{Path(scratch) / 'seeds.db'}")
        for name in SOURCES:
            import_source(
                store, load_source(bundled("taxonomy") / "sources", name, categories), InputLimits()
            )
        merge_near_duplicates(store, embedder.encode, options.threshold, {"donotanswer": 1})
        rows = [row for row in store.seed_candidates() if row.state != SeedState.ALIAS]
        store.close()
    vectors = embedder.encode([row.text for row in rows])
    cosines = vectors @ vectors.T
    first, second = np.where(np.triu(cosines, 1) >= options.floor)
    started = time.perf_counter()
    band = sorted(
        (
            (float(cosines[a, b]), rows[a], rows[b])
            for a, b in zip(first, second, strict=True)
            if cosines[a, b] < options.threshold
        ),
        key=lambda pair: -pair[0],
    )
    merged = [pair for pair in band if same_behaviour(pair[1].text, pair[2].text)]
    apart = [pair for pair in band if not same_behaviour(pair[1].text, pair[2].text)]
    elapsed = time.perf_counter() - started
    print(f"{len(rows)} seeds after the merge at {options.threshold}")
    print(f"pairs in [{options.floor}, {options.threshold}): {len(band)}")
    print(f"  same behaviour by their words (merged): {len(merged)} ({len(merged) / max(len(band), 1):.0%})")
    print(f"  kept apart: {len(apart)}")
    print(f"words test: {len(band) / max(elapsed, 1e-9):,.0f} pairs/s")
    for title, pairs in (("merged", merged), ("kept apart", apart)):
        step = max(len(pairs) // options.sample, 1)
        print(f"\nsample of {title} (every {step}th):")
        for cosine, one, other in pairs[::step][: options.sample]:
            print(
                f"  {cosine:.3f}  {one.source}: {one.text[:90]}\n         {other.source}: {other.text[:90]}"
            )


if __name__ == "__main__":
    main()
