"""Two servers that serve different models under one model name (llama.cpp's `default`, an Ollama
alias) never share answers: not in the build's attack loop, not in `mirbench evaluate`, not in
the store's answer cache. Answers cached before the server entered the key are taken over by
one server only, so a configuration with one server per model name pays for nothing again.

The servers are real HTTP servers on 127.0.0.1 (`ScriptedServer`, a test double that answers on
cue, as no model that runs here does): each signs its answers, so a shared answer shows.
The store, the LLM client, the Prefect flows and the CLI are real.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from builder.config.settings import Settings
from builder.core.items import Item, ItemStatus
from builder.models.llm import LLMClient, LLMSettings
from builder.models.replies import details_key
from builder.stages.attack import Answer
from builder.stages.attack.openai import OpenAITester, server_of
from builder.store import Store
from tests.helpers import make_item, picture_slot
from tests.mir_layout import write_layout
from tests.servers import ScriptedServer
from tests.test_evaluate import _config, _evaluate, _out
from tests.test_tester_transformers import _build_settings

pytestmark = pytest.mark.slow

MODEL = "default"  # what llama.cpp calls whatever model it serves


def signed(name: str) -> ScriptedServer:
    """A server whose every answer says which server gave it."""
    return ScriptedServer(lambda path, body: f"FROM-{name} answer {len(body.get('messages', []))}")


@pytest.fixture
def servers() -> Iterator[tuple[ScriptedServer, ScriptedServer]]:
    with signed("A") as a, signed("B") as b:
        yield a, b


def _tester(store: Store, artifacts: Path, base_url: str | None, label: str) -> OpenAITester:
    settings = LLMSettings(
        base_url=base_url, model=MODEL, temperature=0.0, max_tokens=512, max_retries=0, concurrency=2
    )
    return OpenAITester(LLMClient(settings, cache=store.answer_cache), artifacts, label=label, store=store)


def _items(folder: Path, count: int) -> list[Item]:
    slots = [picture_slot(folder, "red", (200, 30, 30)), picture_slot(folder, "blue", (30, 30, 200))]
    return [
        make_item(seed_id=f"s-{n}", prompt=f"Question number {n} about the pictures.").model_copy(
            update={"slots": slots}
        )
        for n in range(count)
    ]


def older_key(item: Item) -> str:
    """The key answers were cached under before the server entered it, written out by hand: the
    model, the request's identity (prompt, images' sha256), the temperature and max tokens."""
    identity = {"prompt": item.revised_prompt, "images": [slot.sha256 for slot in item.slots]}
    payload = {"model": MODEL, "identity": identity, "temperature": 0.0, "max_tokens": 512}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _texts(store: Store, answers: list) -> list[str]:
    assert all(isinstance(answer, Answer) for answer in answers), answers
    found = store.answers([answer.key for answer in answers])
    return [found[answer.key] for answer in answers]


def test_the_server_is_in_the_key_and_older_answers_go_to_one_server(
    servers: tuple[ScriptedServer, ScriptedServer], tmp_path: Path, database_url: str
) -> None:
    a, b = servers
    store = Store(database_url)
    items = _items(tmp_path, 6)
    first, second = _tester(store, tmp_path, a.base_url, "a"), _tester(store, tmp_path, b.base_url, "b")
    assert first.answer_key(items[0]) != second.answer_key(items[0])
    assert _tester(store, tmp_path, a.base_url + "/", "a").answer_key(items[0]) == first.answer_key(items[0])
    assert server_of("HTTP://User:Secret@LocalHost:8000/v1/") == "http://localhost:8000/v1"
    # OpenAI's own endpoint, named or not, keeps the older key: its cached answers stay valid.
    for default in (None, "https://api.openai.com/v1"):
        assert _tester(store, tmp_path, default, "o").answer_key(items[0]) == older_key(items[0])

    # Answers (and their details) cached before the server was in the key, by one of the two.
    store.save_answers(
        [(older_key(item), MODEL, f"OLDER answer {n}") for n, item in enumerate(items)]
        + [
            (
                details_key(older_key(items[0])),
                MODEL + "#details",
                json.dumps({"usage": {"prompt_tokens": 7}}),
            )
        ]
    )
    # Both servers ask at once: each older answer goes to exactly one of them; the other asks its own.
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(tester.attack, items, lambda: None) for tester in (first, second)]
        results = [future.result() for future in futures]
    taken = [[answer.cached for answer in answers] for answers in results]
    assert all(x != y for x, y in zip(*taken, strict=True)), taken
    assert len(a.requests) + len(b.requests) == len(items)
    for answers, server in zip(results, "AB", strict=True):
        for answer, text in zip(answers, _texts(store, answers), strict=True):
            assert text.startswith("OLDER" if answer.cached else f"FROM-{server}")
    owner = results[0] if results[0][0].cached else results[1]
    assert json.loads(store.answers([details_key(owner[0].key)])[details_key(owner[0].key)]) == {
        "usage": {"prompt_tokens": 7}
    }

    # Reruns replay each server's own answers; nothing is asked again, nothing is taken over twice.
    sent = len(a.requests) + len(b.requests)
    for tester, answers in zip((first, second), results, strict=True):
        again = _tester(store, tmp_path, tester.client.settings.base_url, tester.label).attack(
            items, lambda: None
        )
        assert all(answer.cached for answer in again)
        assert _texts(store, again) == _texts(store, answers)
        assert tester.take_over_older_answers([tester.request(item) for item in items]) == 0
    assert len(a.requests) + len(b.requests) == sent
    # A purge counts answers only (the takeover claims and details are deleted with them).
    assert store.purge_answers() == len(items) * 3  # the older answers and each server's
    store.close()


def judge_script(path: str, body: dict) -> str:
    """The judge: server A's answers are unsafe, server B's refusals."""
    user = body["messages"][-1]["content"]
    answer = user.split("<answer>")[1].split("</answer>")[0]
    if "FROM-A" in answer:
        return json.dumps({"answer_class": "unsafe", "rationale": "scripted"})
    return json.dumps({"answer_class": "refusal", "rationale": "scripted"})


def test_a_build_judges_each_server_on_its_own_answers(
    servers: tuple[ScriptedServer, ScriptedServer], settings: Settings, tmp_path: Path, prefect_api_url: str
) -> None:
    from flows.build import build

    a, b = servers
    testers = [
        {"backend": "openai", "name": name, "base_url": server.base_url, "model": MODEL, "max_retries": 0}
        for name, server in (("a", a), ("b", b))
    ]
    with ScriptedServer(judge_script) as judge:
        built = _build_settings(settings, tmp_path, judge, testers)
        build(settings=built)
    store = Store(settings.resolved_database_url)
    judged = [item for item in store.items_with_statuses(list(ItemStatus)) if item.judgements]
    store.close()
    assert judged and len(a.requests) == len(b.requests) == len(judged)
    for item in judged:
        classes = {judgement.tester: judgement.reason for judgement in item.judgements}
        assert classes == {"a": "unsafe", "b": "refusal"}, classes


def test_evaluate_asks_each_target_server_for_its_own_answers(
    servers: tuple[ScriptedServer, ScriptedServer], tmp_path: Path, prefect_api_url: str
) -> None:
    a, b = servers
    dataset = write_layout(tmp_path / "data", [f"Prompt {n}: what links the pictures?" for n in range(3)])
    with ScriptedServer(lambda path, body: "Yes" if "FROM-A" in body["prompt"] else "No") as judge:
        evaluate = {
            "targets": [
                {"name": name, "base_url": server.base_url, "model": MODEL, "max_retries": 0}
                for name, server in (("a", a), ("b", b))
            ],
            "judges": {"mir": {"base_url": judge.base_url, "model": "cls", "max_retries": 0}},
        }
        out = _out(_evaluate(str(dataset), "-c", str(_config(tmp_path, "eval", evaluate))))
    assert len(a.requests) == len(b.requests) == 3
    verdicts = pq.read_table(out / "verdicts.parquet").to_pylist()
    assert {(row["target"], row["unsafe"]) for row in verdicts} == {("a", True), ("b", False)}
    assert len(verdicts) == 6
