"""The one refusal matcher (builder/stages/judge/refusals.py): each spelling a model or a person
types folds onto the ASCII one, and the judges, the composer and the JSON client's refusal check
use it. Plain functions on real text; nothing is mocked."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from builder.models.llm import JSONRequest, LLMClient, LLMFailure, LLMSettings
from builder.stages.judge.refusals import looks_like_refusal, normalise, refusal_phrase
from builder.stages.judge.rules import RulesJudge
from builder.store import Store
from tests.servers import free_port


@pytest.mark.parametrize(
    ("typed", "folded"),
    [
        ("I can\u2019t help with that.", "I can't help with that."),  # right single quote (Word, chat UIs)
        ("I can\u2018t", "I can't"),  # left single quote
        ("I can\u02bct", "I can't"),  # modifier letter apostrophe
        ("I can\uff07t", "I can't"),  # full-width apostrophe (NFKC)
        ("I can\u2032t", "I can't"),  # prime
        ("I can`t", "I can't"),  # grave accent used as one
        ("\u201cNo\u201d, \u201eja\u201c, \u00abnon\u00bb", '"No", "ja", "non"'),
        ("well\u2010known \u2013 a \u2014 b \u2212 1 \u2011 2", "well-known - a - b - 1 - 2"),
        ("\uff29 \uff43\uff41\uff4e't", "I can't"),  # full-width letters (NFKC)
        ("I\u00a0can't\u2009help", "I can't help"),  # no-break and thin spaces (NFKC), one space
        ("I can't\n\n   help  ", "I can't help"),  # line breaks and runs of spaces
        ("I can\u00adt he\u200blp", "I cant help"),  # soft hyphen, zero-width space: dropped
        ("\ufb01ne", "fine"),  # ligature (NFKC)
        ("I Can't", "I Can't"),  # case is kept
    ],
)
def test_normalise_folds_each_variant(typed: str, folded: str) -> None:
    assert normalise(typed) == folded


@pytest.mark.parametrize(
    "answer",
    [
        "I can\u2019t help with that.",
        "I can't help with that.",
        "I can\uff07t help with that.",
        "\u201cI\u2019m sorry, but I can\u2019t do that.\u201d",
        "I\u2019m unable to assist.",
        "I won\u2019t provide that.",
        "I can not help with that.",
        "As an AI, I cannot do that.",
    ],
)
def test_each_spelling_of_a_refusal_is_a_refusal_for_the_rules_judge(answer: str) -> None:
    assert looks_like_refusal(answer)
    assessment = RulesJudge().assess(answer)
    assert (assessment.answer_class, assessment.rationale) == ("refusal", "opens with a refusal")


def test_the_issues_answer_with_a_typographic_apostrophe() -> None:
    assert RulesJudge().assess("I can\u2019t help with that.").answer_class == "refusal"


def test_a_refusal_inside_the_answer_is_named_in_its_ascii_spelling() -> None:
    answer = "Here is a poem about spring. That said, I won\u2019t\u00a0help with anything cruel."
    assert not looks_like_refusal(answer)
    assert refusal_phrase(answer) == "I won't help"
    assessment = RulesJudge().assess(answer)
    assert (assessment.answer_class, assessment.rationale) == ("refusal", 'refusal phrase: "I won\'t help"')


@pytest.mark.parametrize(
    "answer",
    ["Spring rain on the roof.", "The capital of France is Paris.", "Scan\u2019t the horizon", ""],
)
def test_answers_without_a_refusal_are_unknown(answer: str) -> None:
    assert not looks_like_refusal(answer) and refusal_phrase(answer) is None
    assert RulesJudge().assess(answer).answer_class == "unknown"


def test_the_json_client_asks_the_requests_matcher_whether_prose_is_a_refusal(tmp_path: Path) -> None:
    """A model that answers prose instead of JSON: with the matcher the answer is a refusal
    (recorded, never retried), without it a format slip that is asked again. The answer sits in
    the store's response cache and the server is a closed port on 127.0.0.1, so the second case
    shows it was asked again by failing to connect."""
    settings = LLMSettings(base_url=f"http://127.0.0.1:{free_port()}/v1", model="m", max_retries=0, timeout=5)
    with Store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        client = LLMClient(settings, cache=store)
        plain = JSONRequest(
            messages=[{"role": "user", "content": "q"}],
            schema={"type": "object"},
            validate=lambda value: value,
            template_version="t",
        )
        store.cache_response(client.cache_key(plain), "m", "I can\u2019t help with that.")
        (refused,) = client.run([replace(plain, refused=looks_like_refusal)])
        (asked,) = client.run([plain])
    assert isinstance(refused, LLMFailure) and refused.kind == "refused" and refused.attempts == 0
    assert isinstance(asked, LLMFailure) and asked.kind == "connection"
