"""Benchmark a benchmark-size build: about 2,676 items over all 6 x 9 cells, offline defaults.

MIR-SafetyBench's shape: 536 of the bundled seeds (spread over the categories), each against 5
relations dealt in turn within its category (`--relations-per-seed`), 2,680 pairs. Each build
is a `mirbench build` process of its own, as a user runs it. Prints its wall time, items/s,
per-stage time, the start-up before the run, the orchestration overhead, the time of a rebuild,
and each figure's ratio to its goal (wall 60 s, overhead 5%). Overhead is (time - busy) / time,
over the run and over the whole command, where busy is the time at least one stage task was
working (the union of the tasks' intervals, so concurrent shards are not counted twice).

    python bench/build.py [--runner thread|dask] [--workers N] [--seeds 536] [--relations-per-seed 5]
    python bench/build.py --runner dask --workers 2 --database-url postgresql+psycopg://...

With --runner dask the build runs twice, on 1 worker and on N, each on a fresh schema of the
given PostgreSQL database (its public schema is DROPPED: use a database of its own), and the
speed-up of N workers over one is printed.

The bench sets its own environment: `MIRBENCH_*` variables of the shell (a database URL, a
config file, renderer settings) would make its builds differ from the defaults it measures, or
write to a store it does not read, so it sets them aside and says which; `--database-url`
chooses the store.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

GOAL_WALL_SECONDS = 60.0
GOAL_OVERHEAD = 0.05


def busy_seconds(records: list[dict[str, Any]]) -> float:
    """Length of the union of the tasks' [start, end] intervals."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(tuple(record["interval"]) for record in records):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


# Not settings of a build: where this machine keeps its caches (the picture pool's index), and
# the test suite's own variables.
KEPT = ("MIRBENCH_CACHE_DIR", "MIRBENCH_TEST_")


def own_environment() -> list[str]:
    """Set aside the shell's MIRBENCH_* settings (for this process and the builds it starts);
    returns their names."""
    ignored = sorted(
        name
        for name in os.environ
        if name.upper().startswith("MIRBENCH_") and not name.upper().startswith(KEPT)
    )
    for name in ignored:
        del os.environ[name]
    return ignored


def reset_schema(url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def timed_build(settings: Any, seeds: int) -> tuple[Any, float, float, float]:
    """(report, wall, run span, busy seconds) of one `mirbench build`, a process of its own as a
    user runs it: its private Prefect server (in a fresh PREFECT_HOME the first time) starts
    while the text model loads, and a build with nothing to do skips Prefect."""
    from builder.run.report import BuildReport
    from builder.store import Store

    command = [sys.executable, "-c", "from builder.cli import run; run()", "build", "--limit", str(seeds)]
    command += [
        "--artifacts",
        str(settings.artifacts),
        "--relations-per-seed",
        str(settings.relations_per_seed),
    ]
    command += ["--runner", settings.runner.kind, "--workers", str(settings.runner.workers)]
    command += ["--database-url", settings.resolved_database_url]  # the store read back below
    env = {**os.environ, "MIRBENCH_RENDERER__SIZE": str(settings.renderer.size)}
    from builder.run.prefect_server import migrated_template

    if not (settings.artifacts / ".prefect" / "prefect.db").exists():
        cached = migrated_template().is_file()
        print(f"Prefect's new database: {'copied from the cache' if cached else 'migrated from nothing'}")
    start = time.perf_counter()
    subprocess.run(command, env=env, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    latest = max((settings.artifacts / "runs").glob("*/stats.json"), key=lambda path: path.stat().st_mtime)
    report = BuildReport.model_validate_json(latest.read_text())
    store = Store(settings.resolved_database_url)
    busy = busy_seconds(store.task_records(report.run_id))
    run = next((row for row in store.runs(limit=50) if row.id == report.run_id), None)
    store.close()
    if run is None or run.finished_at is None:
        raise SystemExit(f"run {report.run_id} is not finished in the store {settings.resolved_database_url}")
    return report, wall, (run.finished_at - run.started_at).total_seconds(), busy


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=536, help="bundled seeds, spread over the categories")
    parser.add_argument("--relations-per-seed", type=int, default=5)
    parser.add_argument("--size", type=int, default=512, help="rendered image side (px)")
    parser.add_argument("--runner", choices=["thread", "dask"], default="thread")
    parser.add_argument("--workers", type=int, default=2, help="threads or Dask worker processes")
    parser.add_argument("--database-url", help="the store (required for --runner dask: PostgreSQL)")
    parser.add_argument("--keep", type=Path, help="write artifacts here instead of a temp folder")
    args = parser.parse_args()
    if args.runner == "dask" and not args.database_url:
        parser.error("--runner dask needs --database-url postgresql+psycopg://... (a database of its own)")

    ignored = own_environment()
    if ignored:
        print(f"set aside from the shell (the bench measures the defaults): {', '.join(ignored)}")
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="mirbench-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from builder.config.settings import Settings
    from builder.run.prepare import prepare

    worker_counts = [1, args.workers] if args.runner == "dask" and args.workers > 1 else [args.workers]
    walls: dict[int, float] = {}
    for workers in worker_counts:
        if args.database_url:
            reset_schema(args.database_url)
        settings = Settings(
            artifacts=workdir / f"artifacts-{args.runner}-{workers}",
            database_url=args.database_url,
            relations_per_seed=args.relations_per_seed,
            renderer={"size": args.size},
            runner={"kind": args.runner, "workers": workers},
        )
        # Checked as every build is (run.prepare) before the clock starts: bad inputs or a backend's
        # preflight stop the benchmark here, with the message the build would give.
        prepared = prepare(settings, args.seeds)
        for note in [*prepared.scope, *prepared.notes]:
            print(f"note: {note}")
        report, wall, span, busy = timed_build(settings, args.seeds)
        walls[workers] = wall
        funnel = {row.label: row.count for row in report.funnel}
        candidates = funnel["candidates composed (all rounds)"]
        print(f"== runner {args.runner}, {workers} worker(s)")
        print(
            f"pairs {report.pairs}  candidates {candidates}  queued {funnel['queued for review']}  "
            f"cells {report.cells_queued}/{report.cells_total}  image size {args.size}"
        )
        print(
            f"wall {wall:.1f}s (the whole `mirbench build` command)  goal {GOAL_WALL_SECONDS:.0f}s  "
            f"wall/goal {wall / GOAL_WALL_SECONDS:.2f}  candidates/s {candidates / wall:.1f}"
        )
        for name, stats in report.stages.items():
            print(f"  {name:<8} {stats.seconds:7.2f}s  in {stats.items_in:5d}  {stats.statuses()}")
        print(
            f"start-up {wall - span:.1f}s (Python, imports, input checks, Prefect's server; the text "
            f"model loads meanwhile)  run {span:.1f}s  busy {busy:.1f}s"
        )
        for label, total in (("of the run (open to report)", span), ("of the command", wall)):
            overhead = (total - busy) / total
            print(
                f"orchestration overhead {label}: (time - busy) / time = {overhead:.1%}  "
                f"goal {GOAL_OVERHEAD:.0%}  overhead/goal {overhead / GOAL_OVERHEAD:.2f}"
            )
        _, rewall, _, _ = timed_build(settings, args.seeds)
        print(
            f"rebuild (failed items with attempts left are retried, the rest is done): {rewall:.1f}s "
            f"= {rewall / wall:.1%} of the full build"
        )
    if len(walls) > 1:
        print(f"speed-up of {args.workers} Dask workers over 1: {walls[1] / walls[args.workers]:.2f}x")
    print(f"artifacts: {workdir}")


if __name__ == "__main__":
    main()
