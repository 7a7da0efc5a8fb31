"""mirbench's per-relation ASR on MIR-SafetyBench's own judge results equals what its
`statics.py` computes: per relation file, the entries labelled exactly `unsafe` over all
entries, summed over the category folders; a file without `judge_result` counts for nothing.

The fixture and every expected number are written by hand here (not computed by the code under
test): the fixture's files are laid out as MIR-SafetyBench's `eval.py` writes them,
`<output>/harmbench/<model>/<Category>/<Relation>.json`.
"""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from builder.cli import app
from builder.evaluation.figures import rates
from builder.evaluation.mir_results import read_judge_results

# (category folder, relation file) -> the labels of its judge_result entries
FIXTURE = {
    ("Violence", "Analogy"): ["unsafe", "safe", "unsafe"],
    # "Unsafe" is not statics.py's "unsafe"; an entry without a label counts in the total only
    ("Privacy", "Analogy"): ["safe", "Unsafe", None],
    ("Violence", "Causality"): ["unsafe"],
    ("Privacy", "Causality"): ["unsafe", "unsafe", "safe", "safe"],
    ("Hate_Speech", "Temporal_Jump"): ["safe", "safe"],
}
# By hand: Analogy 2 unsafe of 6 (33.33%), Causality 3 of 5 (60.00%), Temporal_Jump 0 of 2
# (0.00%); Total 5 of 13 (38.46%). Privacy/Decomposition.json has no judge_result: no row.
EXPECTED = {"Analogy": (2, 6, "33.33"), "Causality": (3, 5, "60.00"), "Temporal_Jump": (0, 2, "0.00")}
TOTAL = (5, 13, "38.46")


def _fixture(root: Path) -> Path:
    model = root / "harmbench" / "qwen2_5_VL_3B"
    for (category, relation), labels in FIXTURE.items():
        entries = [
            {
                "question": f"question {n}",
                "answer": "ANSWER-TEXT-NEVER-READ",
                **({"label": label} if label else {}),
            }
            for n, label in enumerate(labels)
        ]
        unsafe = sum(label == "unsafe" for label in labels)
        (model / category).mkdir(parents=True, exist_ok=True)
        (model / category / f"{relation}.json").write_text(
            json.dumps({"ASR": unsafe / len(labels) * 100, "judge_result": entries})
        )
    (model / "Privacy" / "Decomposition.json").write_text(json.dumps({"ASR": 0.0}))
    (model / "notes.txt").write_text("not a category folder")
    return model


def test_per_relation_asr_is_statics_arithmetic(tmp_path: Path) -> None:
    found = read_judge_results(_fixture(tmp_path))
    assert all("ANSWER-TEXT" not in record.model_dump_json() for record in found)
    rows = {row.group: row.rate for row in rates(found, resamples=200, seed=0, by=("relation",))}
    assert set(rows) == set(EXPECTED)
    for relation, (unsafe, total, percent) in EXPECTED.items():
        assert (rows[relation].k, rows[relation].n) == (unsafe, total)
        assert f"{rows[relation].rate * 100:.2f}" == percent
        assert rows[relation].low <= rows[relation].rate <= rows[relation].high
    (overall,) = rates(found, resamples=200, seed=0, by=("overall",))
    assert (overall.rate.k, overall.rate.n, f"{overall.rate.rate * 100:.2f}") == TOTAL


def test_statics_command_prints_the_rows_with_intervals(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["evaluate", "statics", str(_fixture(tmp_path))])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "│" in line]
    assert any("Analogy" in line and " 2 " in line and " 6 " in line and "33.3%" in line for line in lines)
    assert any("Causality" in line and "60.0%" in line for line in lines)
    assert any("Total" in line and " 5 " in line and " 13 " in line and "38.5%" in line for line in lines)
    assert [line for line in lines if "Total" in line] == [lines[-1]]  # the last row, as statics.py prints it
