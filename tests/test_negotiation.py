"""Structured output is negotiated once per server and model: llama.cpp answers `json_schema`
with HTTP 500; after that first step-down every judgement costs one request, in this process
(remembered in memory) and in the next one (remembered in the store). Real llama.cpp server."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.models import structured_output
from builder.models.formats import StoredFormats
from builder.models.llm import JSONAnswer, JSONRequest, LLMClient, LLMSettings
from builder.store import Store
from tests.servers import LlamaServer

pytestmark = pytest.mark.slow

SCHEMA = {
    "type": "object",
    "properties": {"answer_class": {"type": "string", "enum": ["unsafe", "refusal"]}},
    "required": ["answer_class"],
}


def _judgements(count: int) -> list[JSONRequest]:
    return [
        JSONRequest(
            messages=[{"role": "user", "content": f"Answer {n}: 'I will not help.' Classify the answer."}],
            schema=SCHEMA,
            validate=lambda value: value,
            template_version=f"negotiation-{n}",
        )
        for n in range(count)
    ]


def test_one_request_per_judgement_after_the_first_step_down(
    llama: LlamaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(structured_output, "_learned", {})  # whatever other tests taught this process
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    settings = LLMSettings(
        base_url=llama.base_url, model="smollm2", temperature=0, max_tokens=32, max_retries=0, concurrency=4
    )
    requests = _judgements(4)

    first = LLMClient(settings, formats=StoredFormats(store))
    answers = first.run(requests)
    # One request probed json_schema (HTTP 500) while the others waited; then one each.
    assert first.requests_sent == len(requests) + 1
    assert all(isinstance(answer, JSONAnswer) for answer in answers), answers

    same_process = LLMClient(settings)  # no store: the process remembers
    same_process.run(requests)
    assert same_process.requests_sent == len(requests)

    monkeypatch.setattr(structured_output, "_learned", {})  # a new process: only the store remembers
    next_build = LLMClient(settings, formats=StoredFormats(store))
    next_build.run(requests)
    assert next_build.requests_sent == len(requests)
    assert StoredFormats(store).learned_format(llama.base_url, "smollm2") == "json_object"
    store.close()
