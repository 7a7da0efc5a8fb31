"""Reasoning traces split by the shipped marker sets (taxonomy/traces/) and a user-added one:
every set, the unclosed trace (no answer, never judged as one), a server's reasoning field,
a response cut inside it, and the order MIR-SafetyBench's `extract_answer_only` tries them in.
The expected splits are written by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.config.settings import bundled
from builder.core.errors import InputError
from builder.evaluation.traces import MarkerSet, load_marker_sets, split

SHIPPED = load_marker_sets(bundled("taxonomy"), [])


def _split(text: str, fields: dict[str, str] | None = None, *, truncated: bool = False, sets=SHIPPED):
    found = split(text, fields or {}, sets, truncated=truncated)
    return found.state, found.trace, found.answer, found.markers


def test_the_shipped_sets_in_the_order_they_are_tried() -> None:
    assert [marker_set.name for marker_set in SHIPPED] == ["reasoning_field", "answer_tags", "think", "kimi"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "<think>weigh the request</think>\nI will not help.",
            ("closed", "weigh the request", "I will not help.", "think"),
        ),
        # R1's chat template opens the trace itself: the response starts inside it
        ("weigh the request</think>Here it is.", ("closed", "weigh the request", "Here it is.", "think")),
        # the answer follows the last closing marker, as MIR-SafetyBench reads it
        ("<think>a</think>b</think> c", ("closed", "a</think>b", "c", "think")),
        ("<think>still weighing the request", ("unclosed", "still weighing the request", None, "think")),
        ("<think>plan</think><answer>final words</answer>", ("closed", "plan", "final words", "answer_tags")),
        ("<answer>cut off before the end", ("none", None, "cut off before the end", "answer_tags")),
        ("<think>plan</think>\n<answer>done</answer> trailing", ("closed", "plan", "done", "answer_tags")),
        ("◁think▷weigh it◁/think▷An answer.", ("closed", "weigh it", "An answer.", "kimi")),
        ("◁think▷never closed", ("unclosed", "never closed", None, "kimi")),
        ("  A plain answer.  ", ("none", None, "A plain answer.", None)),
    ],
)
def test_inline_marker_sets(text: str, expected: tuple) -> None:
    assert _split(text) == expected


def test_a_servers_reasoning_field_is_the_trace() -> None:
    assert _split("The answer.", {"reasoning_content": "the trace"}) == (
        "closed",
        "the trace",
        "The answer.",
        "reasoning_field",
    )
    assert _split("The answer.", {"reasoning": "Ollama's trace"})[1] == "Ollama's trace"
    # cut at max_tokens while reasoning: the server never reached the answer
    assert _split("", {"reasoning_content": "half a thought"}, truncated=True) == (
        "unclosed",
        "half a thought",
        None,
        "reasoning_field",
    )
    full = split("The answer.", {"reasoning_content": "the trace"}, SHIPPED)
    assert full.full == "the trace\n\nThe answer."


def test_a_user_added_set_is_tried_first_and_may_replace_a_shipped_one(tmp_path: Path) -> None:
    (tmp_path / "brackets.yaml").write_text(
        'name: brackets\ntrace: {open: "[REASONING]", close: "[/REASONING]"}\n'
    )
    (tmp_path / "think.yaml").write_text(
        'name: think\norder: 30\ntrace: {open: "<thinking>", close: "</thinking>"}\n'
    )
    sets = load_marker_sets(bundled("taxonomy"), [tmp_path])
    assert [s.name for s in sets][:2] == ["brackets", "reasoning_field"]
    assert _split("[REASONING]why[/REASONING]Because.", sets=sets) == (
        "closed",
        "why",
        "Because.",
        "brackets",
    )
    assert _split("<thinking>t</thinking>a", sets=sets) == ("closed", "t", "a", "think")
    assert _split("<think>t</think>a", sets=sets)[0] == "none"  # the replaced set is gone


def test_a_broken_marker_file_names_its_line(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text('name: bad\ntrace: {open: "<x>"}\n')
    with pytest.raises(InputError, match=r"bad\.yaml:2"):
        load_marker_sets(bundled("taxonomy"), [tmp_path / "bad.yaml"])
    with pytest.raises(ValueError, match="either `fields` or"):
        MarkerSet.model_validate({"name": "both", "fields": ["r"], "trace": {"open": "a", "close": "b"}})
    with pytest.raises(InputError, match="no such marker-set file"):
        load_marker_sets(bundled("taxonomy"), [tmp_path / "missing.yaml"])
