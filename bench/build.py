"""Benchmark a benchmark-size build: about 2,676 items over all 6 x 9 cells, offline defaults.

Seeds are the shipped ones, replicated with a varied context prefix until there are enough
(298 seeds x 9 relations = 2,682 pairs). Prints wall time, items/s, per-stage time and the
orchestration overhead, (wall - sum of stage work) / wall.

    python bench/build.py [--seeds-total 298] [--size 512] [--keep DIR]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import tempfile
import time
from pathlib import Path

CONTEXTS = [
    "At school",
    "At work",
    "Online",
    "In a small town",
    "On holiday",
    "At a party",
    "In a big city",
    "During an exam",
    "On the bus",
    "At the gym",
    "In a hospital",
    "At a concert",
]


def replicated_seeds(target: Path, total: int) -> int:
    from builder.seeds import load_seeds
    from builder.settings import bundled
    from builder.taxonomy import load_taxonomy

    seeds = load_seeds([bundled("seeds")], load_taxonomy(bundled("taxonomy")))
    with target.open("w") as out:
        for n, seed in enumerate(itertools.islice(itertools.cycle(seeds), total)):
            copy = n // len(seeds)  # the k-th copy of every seed gets the k-th context
            context = CONTEXTS[(copy - 1) % len(CONTEXTS)]
            query = seed.query if copy == 0 else f"{context}, {seed.query[0].lower()}{seed.query[1:]}"
            out.write(json.dumps({**seed.model_dump(), "id": f"{seed.id}-{n:04d}", "query": query}) + "\n")
    return total


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds-total", type=int, default=298)
    parser.add_argument("--size", type=int, default=512, help="rendered image side (px)")
    parser.add_argument("--keep", type=Path, help="write artifacts here instead of a temp folder")
    args = parser.parse_args()

    workdir = args.keep or Path(tempfile.mkdtemp(prefix="mirbench-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_HOME", str(workdir / ".prefect"))
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from builder.settings import Settings
    from flows.build import build

    seeds_file = workdir / "seeds.jsonl"
    replicated_seeds(seeds_file, args.seeds_total)
    settings = Settings(artifacts=workdir / "artifacts", seeds=[seeds_file], renderer={"size": args.size})
    start = time.perf_counter()
    report = build(settings=settings)
    wall = time.perf_counter() - start
    work = sum(stats.seconds for stats in report.stages.values())
    funnel = {row.label: row.count for row in report.funnel}
    candidates = funnel["candidates composed (all rounds)"]
    print(
        f"pairs {report.pairs}  candidates {candidates}  queued {funnel['queued for review']}  "
        f"cells {report.cells_queued}/{report.cells_total}  image size {args.size}"
    )
    print(f"wall {wall:.1f}s (includes Prefect start)  candidates/s {candidates / wall:.1f}")
    for name, stats in report.stages.items():
        print(f"  {name:<8} {stats.seconds:7.2f}s  in {stats.items_in:5d}  {dict(stats.outcomes)}")
    print(f"stage work {work:.1f}s  orchestration overhead (wall - work) / wall = {(wall - work) / wall:.1%}")
    print(f"artifacts: {workdir}")


if __name__ == "__main__":
    main()
