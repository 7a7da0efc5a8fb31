"""Attention entropy against hand-computed values, and the unsafe-vs-safe statistics.

No model here: small attention tensors written out by hand (uniform rows give 1.0 normalised,
one-hot rows give 0), a stand-in decoder whose attention modules return scripted weights (to
check the recorder's step, padding and answer-length bookkeeping; the real model's hooks are
checked in tests/test_tester_transformers.py), real scipy for the Mann-Whitney U test, real
matplotlib for the plot and a real SQLite store for the records.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from PIL import Image

from builder.core.items import Judgement
from builder.stages.attack.entropy.compare import EntropyRecord, bootstrap_interval, compare_entropy
from builder.stages.attack.entropy.measure import AttentionRecorder, EntropySettings, row_figures
from builder.stages.attack.entropy.plot import plot_distributions
from builder.stages.attack.entropy.records import answer_records
from builder.store import Store
from tests.helpers import make_item


def _figures(rows: list[list[list[float]]], context: list[int], image: list[list[bool]], normalise=True):
    entropy, share = row_figures(
        torch.tensor(rows), torch.tensor(context), torch.tensor(image), normalise=normalise
    )
    return entropy.tolist(), share.tolist()


def test_uniform_attention_is_one_and_one_hot_is_zero() -> None:
    rows = [[[0.25, 0.25, 0.25, 0.25]], [[0.0, 1.0, 0.0, 0.0]]]  # (batch 2, 1 head, 4 keys)
    entropy, _ = _figures(rows, [4, 4], [[False] * 4] * 2)
    assert entropy == pytest.approx([1.0, 0.0], abs=1e-6)


def test_hand_computed_rows_heads_padding_and_image_share() -> None:
    # [0.5, 0.25, 0.25] over 3 keys: H = 1.5 ln 2 nats; normalised by ln 3.
    mixed = [[[0.5, 0.25, 0.25]]]
    entropy, share = _figures(mixed, [3], [[True, False, True]])
    assert entropy == pytest.approx([1.5 * math.log(2) / math.log(3)], abs=1e-6)
    assert share == pytest.approx([0.75], abs=1e-6)
    nats, _ = _figures(mixed, [3], [[False] * 3], normalise=False)
    assert nats == pytest.approx([1.5 * math.log(2)], abs=1e-6)
    # Left padding: two masked keys hold 0 and are not context; uniform over the other 3 is 1.0.
    padded, _ = _figures([[[0.0, 0.0, 1 / 3, 1 / 3, 1 / 3]]], [3], [[False] * 5])
    assert padded == pytest.approx([1.0], abs=1e-6)
    # Heads are averaged: a uniform head (1.0) and a one-hot head (0.0) give 0.5.
    heads, heads_share = _figures([[[0.5, 0.5], [1.0, 0.0]]], [2], [[True, False]])
    assert heads == pytest.approx([0.5], abs=1e-6) and heads_share == pytest.approx([0.75], abs=1e-6)


def test_layer_range_setting() -> None:
    assert EntropySettings().layer_indices(4) == [0, 1, 2, 3]
    assert EntropySettings(layers=(-2, -1)).layer_indices(4) == [2, 3]
    assert EntropySettings(layers=(1, 1)).layer_indices(4) == [1]
    with pytest.raises(ValueError, match="outside the model's 4 decoder layers"):
        EntropySettings(layers=(2, 5)).layer_indices(4)


class _ScriptedAttention(torch.nn.Module):
    """Returns the next scripted attention weights (B, H, 1, K) on each call, like an eager
    attention module returns (output, weights)."""

    def __init__(self, steps: list[torch.Tensor]):
        super().__init__()
        self.steps = steps

    def forward(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return hidden, self.steps.pop(0)


class _Layer(torch.nn.Module):
    def __init__(self, steps: list[torch.Tensor]):
        super().__init__()
        self.self_attn = _ScriptedAttention(steps)


class _Decoder(torch.nn.Module):
    def __init__(self, layers: list[list[torch.Tensor]]):
        super().__init__()
        self.layers = torch.nn.ModuleList(_Layer(steps) for steps in layers)


class _Model(torch.nn.Module):
    def __init__(self, layers: list[list[torch.Tensor]]):
        super().__init__()
        self.decoder = _Decoder(layers)

    def get_decoder(self) -> _Decoder:
        return self.decoder


def test_recorder_counts_steps_context_padding_and_answer_length() -> None:
    """Two sequences, prompt length 3; the first is left-padded by one key. Step 0 attends over
    3 keys, step 1 over 4. The second answer ended after one token, so its step 1 is ignored."""
    step0 = torch.tensor([[[[0.0, 0.5, 0.5]]], [[[1 / 3, 1 / 3, 1 / 3]]]])  # context 2 and 3: both 1.0
    step1 = torch.tensor([[[[0.0, 1.0, 0.0, 0.0]]], [[[0.0, 0.0, 0.0, 1.0]]]])  # one-hot: 0.0
    model = _Model([[step0, step1]])
    recorder = AttentionRecorder(model, EntropySettings())
    mask = torch.tensor([[0, 1, 1], [1, 1, 1]])
    image = torch.tensor([[False, True, False], [False, False, False]])
    with recorder.recording(mask, image):
        for _ in range(2):
            model.decoder.layers[0].self_attn(torch.zeros(1))
    first, second = recorder.figures([2, 1])
    assert first["entropy"] == pytest.approx(0.5) and first["tokens"] == 2
    assert first["image_share"] == pytest.approx(0.75) and first["text_share"] == pytest.approx(0.25)
    assert second["entropy"] == pytest.approx(1.0) and second["per_layer"] == pytest.approx([1.0])
    assert first["layers"] == [0] and first["normalisation"] == "log_context" and first["definition"] == 1


def test_mann_whitney_and_means_on_hand_made_groups() -> None:
    records = [EntropyRecord(label="unsafe", entropy=v, relation="analogy") for v in (0.1, 0.2, 0.3)] + [
        EntropyRecord(label="safe", entropy=v, relation="analogy") for v in (0.4, 0.5, 0.6)
    ]
    report = compare_entropy(records, seed=1, resamples=2000)
    overall = report.overall
    # Every unsafe value is below every safe one: U = 0; exact two-sided p = 2 / C(6, 3) = 0.1.
    assert overall.u == 0 and overall.p_value == pytest.approx(0.1)
    assert overall.unsafe.mean == pytest.approx(0.2) and overall.safe.mean == pytest.approx(0.5)
    assert overall.difference == pytest.approx(-0.3)
    assert 0.1 <= overall.unsafe.low <= 0.2 <= overall.unsafe.high <= 0.3
    assert [row.relation for row in report.relations] == ["analogy"]
    assert report.relations[0].u == 0


def test_bootstrap_is_seeded_and_groups_do_not_move_each_other() -> None:
    values = [0.2, 0.9, 0.4, 0.7, 0.5, 0.3]
    assert bootstrap_interval(values, 3, 1000) == bootstrap_interval(values, 3, 1000)
    assert bootstrap_interval(values, 3, 1000) != bootstrap_interval(values, 4, 1000)
    assert bootstrap_interval([0.42], 0, 500) == (0.42, 0.42)
    records = [
        EntropyRecord(label=label, entropy=value, relation="analogy")
        for label, value in [("unsafe", 0.3), ("unsafe", 0.5), ("safe", 0.6), ("safe", 0.8)]
    ]
    more = [*records, EntropyRecord(label="safe", entropy=0.1, relation="causality")]
    alone, beside = compare_entropy(records), compare_entropy(more)
    assert alone.relations[0] == beside.relations[0]  # adding a relation leaves analogy's figures
    # A relation with one side empty has no test and says so.
    causality = beside.relations[1]
    assert causality.unsafe.n == 0 and causality.u is None and causality.p_value is None
    table = beside.markdown()
    assert "| **all** | 2 |" in table and "| causality | 0 | n/a | 1 |" in table


def test_plot_of_the_two_distributions(tmp_path: Path) -> None:
    records = [
        EntropyRecord(
            label="unsafe" if n % 3 else "safe", entropy=n / 20, relation=("analogy", "causality")[n % 2]
        )
        for n in range(20)
    ]
    path = tmp_path / "entropy.png"
    plot_distributions(records, path)
    with Image.open(path) as picture:
        assert picture.format == "PNG" and picture.width > 300
    plot_distributions(records[:1], tmp_path / "one.png")  # one side empty still draws


def test_records_of_judged_answers_in_the_store(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")

    def figures(value: float) -> dict:
        return {"attention_entropy": {"entropy": value, "per_layer": [value], "image_share": 0.5}}

    store.save_answer("k-unsafe", "m", "text", figures(0.2))
    store.save_answer("k-refusal", "m", "text", figures(0.7))
    store.save_answer("k-unknown", "m", "text", figures(0.5))
    store.save_answer("k-plain", "m", "text")  # an HTTP tester's answer: no figures
    judged = []
    for number, (key, answer_class, tester) in enumerate(
        [
            ("k-unsafe", "unsafe", "t"),
            ("k-refusal", "refusal", "t"),
            ("k-unknown", "unknown", "t"),
            ("k-plain", "refusal", "u"),
        ]
    ):
        item = make_item(seed_id=f"s-{number}", relation="causality" if number else "analogy")
        item.judgements = [
            Judgement(
                name="llm",
                version="1",
                passed=answer_class == "unsafe",
                reason=answer_class,
                tester=tester,
                answer_key=key,
            )
        ]
        judged.append(item)
    found = answer_records(store, judged)
    assert [(r.label, r.entropy, r.relation) for r in found.records] == [
        ("unsafe", 0.2, "analogy"),
        ("safe", 0.7, "causality"),
    ]
    assert found.without_figures == 1 and found.unknown_class == 1 and found.testers == ["t"]
    assert answer_records(store, judged, tester="u").records == []
    assert store.answer_measurements(["k-plain", "k-unsafe"]) == {"k-unsafe": figures(0.2)}
    store.close()
