"""Benchmark the attack stage's `openai` tester against a local vision chat server.

Starts the tiny LLaVA test server (tests/tiny_vlm.py: a real LlavaForConditionalGeneration with
random weights, one generation at a time, like a single-stream server) in its own process on
127.0.0.1, then measures in one run: the server's saturated throughput on the tester's own
request bodies sent raw (no cache, no store) at concurrency 8, and the tester at concurrency
1, 2, 4, 8 (cache off). Each tester run is paired with a saturated run just before it and the
pairs are repeated; the median ratio per concurrency is reported, so a machine whose load
changes from one second to the next disturbs the ratio less. Goal: tester / saturated >= 0.9.

Then the `llm` judge against llama.cpp (SmolLM2, which answers `json_schema` with HTTP 500):
requests per judgement in a first build (one extra request learns the format) and in the next
build, a new process that finds the format in the store (goal: 1.00).

    python bench/attack.py [--items 64] [--images 3] [--repeats 3] [--base-url URL --model NAME]
                           [--judgements 8 (0: skip the judge)]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.items import items
from builder.core.items import Item
from builder.models.llm import LLMClient, LLMSettings
from builder.stages.attack.openai import OpenAITester


async def saturated(tester: OpenAITester, work: list[Item], concurrency: int) -> float:
    """Requests/s with the tester's exact bodies sent straight to the server."""
    from openai import AsyncOpenAI

    settings = tester.client.settings
    client = AsyncOpenAI(api_key="no-key", base_url=settings.base_url, max_retries=0, timeout=600)
    limit = asyncio.Semaphore(concurrency)

    async def one(item: Item) -> None:
        async with limit:
            await client.chat.completions.create(
                model=settings.model,
                messages=tester.messages(item),
                temperature=settings.temperature,
                max_tokens=settings.max_tokens,
            )

    start = time.perf_counter()
    await asyncio.gather(*(one(item) for item in work))
    await client.close()
    return len(work) / (time.perf_counter() - start)


def _start_server() -> tuple[subprocess.Popen[bytes], str]:
    from tests.servers import free_port

    port = free_port()
    root = Path(__file__).resolve().parent.parent
    process = subprocess.Popen([sys.executable, "-m", "tests.tiny_vlm", str(port)], cwd=root)
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{base_url}/models", timeout=2)
        except urllib.error.HTTPError:
            return process, base_url  # up (404: no /models route)
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError("the tiny vision server did not come up within 120 s")


def judge_requests(work: list[Item], folder: Path) -> None:
    """The `llm` judge's requests per judgement in two builds sharing one store."""
    from builder.config.settings import bundled
    from builder.config.taxonomy import load_taxonomy
    from builder.models import llm
    from builder.models.formats import StoredFormats
    from builder.stages.judge import Case
    from builder.stages.judge.llm import LLMJudge
    from builder.store import Store
    from tests.servers import LlamaServer

    taxonomy = load_taxonomy(bundled("taxonomy"))
    with LlamaServer() as server:
        store = Store(f"sqlite:///{folder}/judge.db")
        settings = LLMSettings(
            base_url=server.base_url, model="smollm2", temperature=0, max_tokens=96, max_retries=0
        )
        for build in ("first build", "next build (format from the store)"):
            llm._learned.clear()  # each build in a fresh process
            client = LLMClient(settings, formats=StoredFormats(store))
            judge = LLMJudge(client, bundled("taxonomy") / "prompts", taxonomy)
            judge.judge_many([Case(item, "bench", f"answer {item.seed_id}") for item in work], lambda: None)
            print(
                f"llm judge, {build}: {client.requests_sent / len(work):.2f} requests per judgement "
                f"({client.requests_sent} for {len(work)})"
            )
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--base-url", help="use this server instead of starting the tiny LLaVA one")
    parser.add_argument("--model", default="tiny-llava")
    parser.add_argument(
        "--judgements", type=int, default=8, help="llm judge requests per judgement (0: skip)"
    )
    args = parser.parse_args()

    process, base_url = (None, args.base_url) if args.base_url else _start_server()
    try:
        with tempfile.TemporaryDirectory() as folder:
            work = items(Path(folder), args.items, args.images)
            settings = LLMSettings(
                base_url=base_url,
                model=args.model,
                temperature=0,
                max_tokens=args.max_tokens,
                max_retries=0,
                timeout=600,
            )

            def tester(concurrency: int) -> OpenAITester:
                client = LLMClient(settings.model_copy(update={"concurrency": concurrency}))
                return OpenAITester(client, Path(folder), label=args.model)

            tester(1).attack(work[:2], lambda: None)  # warm-up
            ceilings: list[float] = []
            rates: dict[int, list[float]] = {1: [], 2: [], 4: [], 8: []}
            ratios: dict[int, list[float]] = {1: [], 2: [], 4: [], 8: []}
            failed = 0
            for _ in range(args.repeats):
                for concurrency in rates:
                    ceilings.append(asyncio.run(saturated(tester(8), work, concurrency=8)))
                    start = time.perf_counter()
                    answers = tester(concurrency).attack(work, lambda: None)
                    rates[concurrency].append(len(work) / (time.perf_counter() - start))
                    ratios[concurrency].append(rates[concurrency][-1] / ceilings[-1])
                    failed += sum(1 for answer in answers if not hasattr(answer, "key"))
            print(f"server saturated (raw requests, concurrency 8): median {median(ceilings):.2f} req/s")
            for concurrency in rates:
                print(
                    f"tester concurrency {concurrency}: median {median(rates[concurrency]):.2f} attacks/s "
                    f"(median ratio to the paired saturated run {median(ratios[concurrency]):.2f})"
                )
            print(f"failed requests: {failed}")
            best = max(median(values) for values in ratios.values())
            print(f"best tester / saturated server (attacks/s, median of pairs) = {best:.2f}")
            if args.judgements:
                judge_requests(work[: args.judgements], Path(folder))
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)


if __name__ == "__main__":
    main()
