"""Benchmark the CLI where people wait on it: a `mirbench build` with nothing to do.

Builds `--limit` seeds of one relation once (that run starts Prefect), then times `--repeats`
reruns of the same command, each a fresh process, as people run it: the store says there is
nothing to do, so no Prefect server starts. For reference, the same process also times what
such a rerun cost before: starting and stopping the private Prefect server alone.

    python bench/cli.py [--limit 4] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GOAL_SECONDS = 3.0


def mirbench(*args: str) -> float:
    started = time.perf_counter()
    command = [sys.executable, "-c", "from builder.cli import run; run()", *args]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("PREFECT_API_URL", None)
    subprocess.run(command, cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--limit", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from builder.run.prefect_server import PrivatePrefectServer

    with tempfile.TemporaryDirectory() as folder:
        build = [
            "build",
            "--artifacts",
            str(Path(folder) / "art"),
            "-r",
            "analogy",
            "--limit",
            str(args.limit),
        ]
        first = mirbench(*build)
        reruns = [mirbench(*build) for _ in range(args.repeats)]
        starts = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            server = PrivatePrefectServer(Path(folder) / "prefect-home")
            server.start()
            server.stop()
            starts.append(time.perf_counter() - started)
    rerun = statistics.median(reruns)
    print(f"load average {os.getloadavg()[0]:.1f}; first build ({args.limit} pairs) {first:.1f}s")
    print(
        f"no-change `mirbench build`: {rerun:.2f}s (median of {', '.join(f'{s:.2f}' for s in reruns)}); "
        f"goal {GOAL_SECONDS:.0f}s: {rerun / GOAL_SECONDS:.2f} of it"
    )
    print(
        f"  the private Prefect server's start and stop alone (no longer paid): "
        f"{statistics.median(starts):.2f}s"
    )


if __name__ == "__main__":
    main()
