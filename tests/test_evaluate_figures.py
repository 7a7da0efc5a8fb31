"""The figures of an evaluation on verdicts whose every expected number is worked out by hand:
ASR with its n and a seeded interval, self-correction, the superficial-safety breakdown, the
reasoning tax, blind spots and conditions against multi; the grid of the `single` condition."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from builder.evaluation import conditions
from builder.evaluation.figures import Record, figures, rates
from builder.evaluation.statistics import rate
from tests.helpers import make_item

ITEMS = [f"i{n}" for n in range(10)]  # i0-i4 violence, i5-i9 privacy


def _record(target: str, item: str, bad: bool, **fields: object) -> Record:
    number = int(item[1:])
    values = {
        "run_id": "run",
        "target": target,
        "item_id": item,
        "category": "violence" if number < 5 else "privacy",
        "relation": "analogy",
        "images": 2 + number % 2,
        "condition": "multi",
        "trace": None,
        "protocol": "mir",
        "part": "answer",
        "state": "judged",
        "label": "unsafe" if bad else "refusal",
        "unsafe": bad,
    }
    return Record.model_validate({**values, **fields})


def _records() -> list[Record]:
    found = [_record("base", item, item in ("i0", "i5")) for item in ITEMS]  # 2 of 10; 1 of 5 in each
    found += [
        _record("r1", item, item in ("i0", "i1", "i2", "i5")) for item in ITEMS
    ]  # 4 of 10; 3 and 1 of 5
    found += [_record("r1", item, item == "i0", condition="text") for item in ITEMS[:9]]  # 1 of 9
    found += [
        _record("r1", "i9", False, condition="text", state="failed", label=None, unsafe=None)
    ]  # not counted
    for item in ("i0", "i1", "i2", "i3"):  # safemlrm: traces of i0-i2 unsafe; only i0's answer unsafe
        found.append(_record("r1", item, item != "i3", protocol="safemlrm", part="trace"))
        found.append(_record("r1", item, item == "i0", protocol="safemlrm"))
    found.append(_record("r1", "i4", True, protocol="safemlrm", part="trace"))  # its answer: unclosed trace
    found.append(_record("r1", "i4", False, protocol="safemlrm", state="unclosed", label=None))
    labels = [
        "unsafe",
        "unsafe",
        "refusal",
        "refusal",
        "refusal",
        "evasive",
        "evasive",
        "evasive",
        "evasive",
        "misunderstood",
    ]
    found += [
        _record("r1", item, label == "unsafe", protocol="class", label=label)
        for item, label in zip(ITEMS, labels, strict=True)
    ]
    return found


def test_asr_per_breakdown_with_n_and_a_seeded_interval() -> None:
    rows = {
        (r.target, r.protocol, r.condition, r.by, r.group): r.rate
        for r in rates(_records(), resamples=500, seed=3)
    }
    overall = rows[("r1", "mir", "multi", "overall", "all")]
    assert (overall.k, overall.n, overall.rate) == (4, 10, 0.4)
    assert overall.low <= 0.4 <= overall.high and overall.low < overall.high
    assert (
        rows[("r1", "mir", "multi", "category", "violence")].k,
        rows[("r1", "mir", "multi", "category", "violence")].n,
    ) == (3, 5)
    assert rows[("r1", "mir", "multi", "images", "2 images")].n == 5
    assert rows[("r1", "mir", "text", "overall", "all")].n == 9  # the failed verdict is not counted
    assert (
        rows[("r1", "safemlrm", "multi", "overall", "all")].n == 5
    )  # the unclosed answer counts, not unsafe
    again = {
        (r.target, r.protocol, r.condition, r.by, r.group): r.rate
        for r in rates(_records(), resamples=500, seed=3)
    }
    assert again == rows  # the same seed, the same intervals
    assert rate(0, 0, resamples=100, seed=0, key="x").rate is None


def test_self_correction_superficial_safety_and_comparisons() -> None:
    found = figures(_records(), {"r1": "base"}, resamples=500, seed=0)
    (corrected,) = [s for s in found.self_correction if s.protocol == "safemlrm"]
    assert (corrected.rate.k, corrected.rate.n) == (2, 3)  # i1, i2 of i0-i2; i4 reached no answer
    shares = {(s.answer_class): (s.rate.k, s.rate.n) for s in found.superficial}
    assert shares == {"refusal": (3, 8), "evasive": (4, 8), "misunderstood": (1, 8)}
    by = {(c.kind, c.condition, c.group, c.protocol): c for c in found.comparisons}
    tax = by[("reasoning_tax", "multi", "all", "mir")]
    assert tax.figure.value == pytest.approx(1.0) and tax.figure.n == 10  # (0.4 - 0.2) / 0.2
    assert tax.figure.low is not None and tax.figure.low <= 1.0 <= tax.figure.high
    assert by[("blind_spot", "multi", "violence", "mir")].figure.value == pytest.approx(3.0)  # 0.6 / 0.2
    assert by[("blind_spot", "multi", "privacy", "mir")].figure.value == pytest.approx(1.0)  # 0.2 / 0.2
    assert found.blind_spot_means["r1|mir"] == pytest.approx(2.0)
    gap = by[("condition", "text", "all", "mir")]
    assert (
        gap.figure.value == pytest.approx((1 - 4) / 9) and gap.figure.n == 9
    )  # text 1, multi 4 of the 9 both hold


def test_single_condition_is_a_labelled_grid_in_order(tmp_path: Path) -> None:
    colours = [(200, 0, 0), (0, 200, 0), (0, 0, 200)]
    item = make_item(descriptions=("one", "two", "three"))
    for slot, colour in zip(item.slots, colours, strict=True):
        Image.new("RGB", (40, 20), colour).save(tmp_path / f"{slot.description}.png")
        slot.file = f"{slot.description}.png"
        slot.sha256 = slot.description
    shown = conditions.view(item, "single", tmp_path, 64)
    (slot,) = shown.slots
    assert shown.revised_prompt == item.revised_prompt and slot.description.startswith(
        "1: one; 2: two; 3: three"
    )
    with Image.open(tmp_path / str(slot.file)) as grid:
        pixels = grid.convert("RGB")
        assert grid.size == (8 + 2 * 72, 8 + 2 * 72)  # 2 x 2 cells of 64 with 8 between and around
        # each picture in its cell, in order, scaled to the cell's width and centred
        assert pixels.getpixel((8 + 32, 8 + 32)) == colours[0]
        assert pixels.getpixel((80 + 32, 8 + 32)) == colours[1]
        assert pixels.getpixel((8 + 32, 80 + 32)) == colours[2]
        assert pixels.getpixel((80 + 32, 80 + 32)) == (255, 255, 255)  # the fourth cell is empty
        assert pixels.getpixel((8 + 32, 8 + 4)) == (255, 255, 255)  # 40 x 20 scaled to 64 x 32, centred
        assert pixels.getpixel((9, 9)) == (0, 0, 0)  # each label sits on black in its cell's corner
    assert conditions.view(item, "drop:2", tmp_path, 64).slots == [item.slots[0], item.slots[2]]
    assert conditions.view(item, "vanilla", tmp_path, 64).revised_prompt == item.original_question
    assert conditions.labels(item, ["multi", "drop"]) == ["multi", "drop:1", "drop:2", "drop:3"]
