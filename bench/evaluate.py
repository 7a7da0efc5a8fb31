"""Benchmark `mirbench evaluate`'s asking against a local vision chat server, and its judge.

Starts the tiny LLaVA test server (tests/tiny_vlm.py: a real LlavaForConditionalGeneration with
random weights, one generation at a time, like a single-stream server) in its own process on
127.0.0.1 and writes a MIR-SafetyBench layout of N items (3 pictures each). Then, in one run:

- the server's saturated throughput: the target's own request bodies sent raw at concurrency 8
  (no cache, no store);
- evaluate's responses/s at concurrency 1, 4 and 8: a fresh store each time (nothing cached),
  the run checked and planned as the CLI does, then its ask task (`builder.evaluation.tasks.ask`:
  the item views, the target's requests, every answer saved, each response's trace split and
  recorded). Each is paired with a saturated run just before it, the pairs repeated, and the
  median ratio reported (goal: >= 0.9 at concurrency 4);
- evaluate's own work per response: the ask task against the bare tester on the same requests
  at the same concurrency (both uncached), (ask - tester) / responses;
- the whole flow once (a private Prefect server, the thread runner, concurrency 4) with the
  `mir` protocol judged by llama.cpp serving SmolLM2 on its completions endpoint (HarmBench's
  prompt format) and the `class` protocol by the `llm` judge on the same server: the flow's wall
  time against its tasks', per response, and the judge requests per response (goal: 1).

    python bench/evaluate.py [--items 48] [--repeats 5] [--flow-items 16] [--judge/--no-judge]

The machine may be shared: figures are as loaded as the machine is; compare ratios, not rates.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


from bench.attack import _start_server as start_vision_server
from bench.attack import saturated as raw_saturated
from builder.config.settings import Settings
from builder.evaluation import conditions, tasks
from builder.evaluation.plan import EvaluationRequest, EvaluationSpec, check_request, open_evaluation
from builder.evaluation.report import Results
from builder.stages.attack import testers
from tests.mir_layout import write_layout


def layout(root: Path, count: int) -> Path:
    prompts = [f"w{number % 50} w{(number * 7) % 50} w3 w4 w5" for number in range(count)]
    return write_layout(root, prompts, question="question {n}", images=3, size=256)


def settings_for(folder: Path, base_url: str, concurrency: int, judges: dict | None = None) -> Settings:
    return Settings(
        artifacts=folder / "artifacts",
        database_url=f"sqlite:///{folder / 'store.db'}",
        evaluate={
            "targets": [
                {
                    "name": "tiny",
                    "base_url": base_url,
                    "model": "tiny-llava",
                    "max_tokens": 16,
                    "max_retries": 0,
                    "timeout": 600,
                    "concurrency": concurrency,
                }
            ],
            "judges": judges or {},
        },
    )


def opened(
    folder: Path, dataset: Path, base_url: str, concurrency: int, judges: dict | None = None
) -> EvaluationSpec:
    settings = settings_for(folder, base_url, concurrency, judges)
    request = EvaluationRequest(dataset=dataset, judge=bool(judges))
    return open_evaluation(settings, request, check_request(settings, request))


async def saturated(spec: EvaluationSpec, concurrency: int) -> float:
    """Requests/s with the target's exact bodies sent straight to the server (bench/attack.py's
    measure: each body built, its images read and encoded, as it is sent)."""
    workspace = spec.workspace
    tester = workspace.backend(testers, spec.target("tiny").tester)
    items = tasks._items(spec, workspace.store.responses(spec.run_id))
    views = [conditions.view(item, "multi", workspace.artifacts, 512) for item in items.values()]
    return await raw_saturated(tester, views, concurrency)  # type: ignore[arg-type]


def bare_tester(spec: EvaluationSpec) -> float:
    """Seconds the tester alone takes on the run's requests (no cache, no store)."""
    from builder.models.llm import LLMClient
    from builder.stages.attack.openai import OpenAITester

    workspace = spec.workspace
    items = tasks._items(spec, workspace.store.responses(spec.run_id))
    views = [conditions.view(item, "multi", workspace.artifacts, 512) for item in items.values()]
    settings = spec.target("tiny").tester
    tester = OpenAITester(LLMClient(settings), workspace.artifacts, label="tiny")  # type: ignore[arg-type]
    start = time.perf_counter()
    tester.attack(views, lambda: None)
    return time.perf_counter() - start


def asking(dataset: Path, base_url: str, repeats: int, folder: Path) -> None:
    rates: dict[int, list[float]] = {1: [], 4: [], 8: []}
    ratios: dict[int, list[float]] = {1: [], 4: [], 8: []}
    ceilings: list[float] = []
    overheads: list[float] = []
    runs = 0
    for _ in range(repeats):
        for concurrency in rates:
            runs += 1
            spec = opened(folder / f"run-{runs}", dataset, base_url, concurrency)
            ceilings.append(asyncio.run(saturated(spec, 8)))
            ids = tasks.pending_responses(spec, "tiny")
            start = time.perf_counter()
            counts = tasks.ask(spec, "tiny", ids)
            took = time.perf_counter() - start
            assert counts.get("failed", 0) == 0, counts
            rates[concurrency].append(len(ids) / took)
            ratios[concurrency].append(rates[concurrency][-1] / ceilings[-1])
            if concurrency == 4:
                overheads.append((took - bare_tester(spec)) / len(ids))
    print(f"server saturated (raw requests, concurrency 8): median {median(ceilings):.2f} req/s")
    for concurrency in rates:
        print(
            f"evaluate concurrency {concurrency}: median {median(rates[concurrency]):.2f} responses/s "
            f"(median ratio to the paired saturated run {median(ratios[concurrency]):.2f}; ratio of the "
            f"medians {median(rates[concurrency]) / median(ceilings):.2f})"
        )
    print(
        f"evaluate's own work per response at concurrency 4 (ask task - bare tester): median "
        f"{median(overheads) * 1000:.1f} ms"
    )
    four = median(ratios[4])
    verdict = "meets" if four >= 0.9 else "misses"
    print(f"evaluate / saturated server at concurrency 4 = {four:.2f} ({verdict} the 0.9 goal)")
    if four < 0.9:
        low, high = min(ratios[4]), max(ratios[4])
        per_request = 1000 / median(ceilings)
        own = median(overheads) * 1000
        print(
            f"why not: the server answers in {per_request:.1f} ms and shares this machine's "
            f"{os.cpu_count()} cores with the client (load average {os.getloadavg()[0]:.1f}), so the "
            f"client's own CPU per response ({own:.1f} ms: the answers' cache reads and writes, the "
            f"splits) is taken from the server: about {per_request / (per_request + own):.2f} of "
            f"saturation at best; the pairs spread from {low:.2f} to {high:.2f}. Against a server that "
            "takes a second per answer, the same work is under 1%"
        )


def flow_run(dataset: Path, base_url: str, folder: Path) -> None:
    """The whole flow once, judged by llama.cpp (SmolLM2): Prefect's share, judge requests
    (counted at a proxy in front of the judge's server, one per protocol)."""
    from builder.run.prefect_server import PrivatePrefectServer
    from tests.servers import FaultProxy, LlamaServer

    server = PrivatePrefectServer(folder / "prefect")
    os.environ["PREFECT_API_URL"] = server.start()
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "CRITICAL")
    try:
        with LlamaServer() as llama:
            upstream = llama.base_url.removesuffix("/v1")
            with FaultProxy(upstream=upstream) as mir, FaultProxy(upstream=upstream) as classes:
                judge = {"model": "smollm2", "max_retries": 0, "timeout": 600}
                judges = {
                    "mir": {**judge, "base_url": mir.base_url},
                    "class": {**judge, "base_url": classes.base_url, "max_tokens": 96},
                }
                spec = opened(folder / "flow", dataset, base_url, 4, judges)
                results, wall, busy = timed_flow(spec)
                responses = sum(target.answered for target in results.targets)
                print(
                    f"flow (Prefect, thread runner): {wall:.1f} s for {responses} responses, some task "
                    f"busy {busy:.1f} s: orchestration {(wall - busy) / responses * 1000:.0f} ms per "
                    f"response ({(wall - busy) / wall:.1%} of the flow)"
                )
                for protocol, proxy in (("mir", mir), ("class", classes)):
                    sent = len(proxy.seen)
                    print(
                        f"judge requests per response, {protocol}: {sent / responses:.2f} "
                        f"({sent} for {responses})"
                    )
                failed = Counter(
                    f"{v.protocol}: {(v.failure_detail or '').split(':')[0]}"
                    for v in spec.workspace.store.verdicts(spec.run_id)
                    if v.state == "failed"
                )
                for reason, count in sorted(failed.items()):
                    print(
                        f"failed judgements, {reason}: {count} (SmolLM2 is not the judge these prompts "
                        "are for)"
                    )
    finally:
        server.stop()
        os.environ.pop("PREFECT_API_URL", None)


def timed_flow(spec: EvaluationSpec) -> tuple[Results, float, float]:
    """Run the flow; its results, its wall time and the time some task of it was working."""
    from flows.evaluate import evaluate

    intervals: list[tuple[float, float]] = []
    originals = {name: getattr(tasks, name) for name in ("ask", "judge", "finish")}
    for name, original in originals.items():

        def timed(*args, _original=original, **kwargs):  # type: ignore[no-untyped-def]
            started = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                intervals.append((started, time.perf_counter()))

        setattr(tasks, name, timed)
    try:
        start = time.perf_counter()
        results = evaluate(spec)
        return results, time.perf_counter() - start, busy_time(intervals)
    finally:
        for name, original in originals.items():
            setattr(tasks, name, original)


def busy_time(intervals: list[tuple[float, float]]) -> float:
    """The time at least one interval covers."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--judge", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--flow-items", type=int, default=16, help="items of the whole-flow run")
    parser.add_argument("--base-url", help="use this vision server instead of starting the tiny LLaVA one")
    args = parser.parse_args()
    process, base_url = (None, args.base_url) if args.base_url else start_vision_server()
    try:
        with tempfile.TemporaryDirectory() as folder:
            dataset = layout(Path(folder) / "data", args.items)
            warm = opened(Path(folder) / "warm", dataset, base_url, 1)
            tasks.ask(warm, "tiny", tasks.pending_responses(warm, "tiny")[:2])
            asking(dataset, base_url, args.repeats, Path(folder))
            if args.judge:
                flow_data = layout(Path(folder) / "flow-data", args.flow_items)
                flow_run(flow_data, base_url, Path(folder))
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)


if __name__ == "__main__":
    main()
