"""What `mirbench evaluate` prints: targets with their cost, ASR per protocol and condition with
the judge's calibration, the rows of MIR-SafetyBench's `statics.py`, trace against answer,
self-correction, the superficial-safety breakdown and the comparisons. Counts and classes only.
"""

from __future__ import annotations

from pathlib import Path

from builder.cli.display import console, make_table
from builder.core.outputs import new_folder
from builder.evaluation.compare import Compared, compared_markdown
from builder.evaluation.outputs import entropy_cells
from builder.evaluation.report import Results
from builder.stages.attack.entropy.compare import COLUMNS


def _judge_line(results: Results, protocol: str) -> None:
    judge = results.judge_of(protocol)
    if judge is not None:
        style = None if judge.calibration else "bold"
        console.print(
            f"{protocol}: {judge.sentence(bold=('', ''))}", markup=False, highlight=False, style=style
        )


def print_targets(results: Results) -> None:
    table = make_table(
        f"Evaluation {results.run_id}: targets",
        "target",
        "model",
        "responses",
        "failed",
        "tokens in",
        "tokens out",
        "cost",
        right=("responses", "failed", "tokens in", "tokens out", "cost"),
    )
    for target in results.targets:
        table.add_row(
            target.name,
            target.model or "",
            str(target.responses),
            str(target.failed),
            str(target.tokens.get("prompt_tokens", 0)),
            str(target.tokens.get("completion_tokens", 0)),
            f"{target.cost:.4f}",
        )
    console.print(table)


def print_rates(results: Results) -> None:
    rows = [row for row in results.figures.rates if row.by == "overall" and row.part == "answer"]
    if rows:
        table = make_table(
            "ASR (answers)",
            "protocol",
            "target",
            "condition",
            "ASR [95% CI] (n)",
            right=("ASR [95% CI] (n)",),
        )
        for row in rows:
            table.add_row(row.protocol, row.target, row.condition, row.rate.text())
        console.print(table)
    for judge in results.judges:
        _judge_line(results, judge.protocol)
    if results.judges:
        _relations(results, results.judges[0].protocol)


def _relations(results: Results, protocol: str) -> None:
    rows = [
        r
        for r in results.figures.rates
        if r.by == "relation" and r.part == "answer" and r.protocol == protocol and r.condition == "multi"
    ]
    if not rows:
        return
    table = make_table(
        f"Per relation ({protocol}, multi)",
        "relation",
        "target",
        "unsafe",
        "total",
        "ASR",
        right=("unsafe", "total", "ASR"),
    )
    for row in rows:
        table.add_row(
            results.names.get(row.group, row.group),
            row.target,
            str(row.rate.k),
            str(row.rate.n),
            row.rate.text(),
        )
    console.print(table)


def print_traces(results: Results) -> None:
    parts = {
        (r.target, r.condition, r.part): r.rate
        for r in results.figures.rates
        if r.by == "overall" and r.protocol == "safemlrm"
    }
    corrected = {
        (s.target, s.condition): s.rate for s in results.figures.self_correction if s.protocol == "safemlrm"
    }
    if parts:
        table = make_table(
            "Trace, answer, full (safemlrm)",
            "target",
            "condition",
            "trace",
            "answer",
            "full",
            "self-correction",
        )
        for target, condition in sorted({(t, c) for t, c, _ in parts}):
            cells = [
                parts[(target, condition, p)].text() if (target, condition, p) in parts else ""
                for p in ("trace", "answer", "full")
            ]
            found = corrected.get((target, condition))
            table.add_row(target, condition, *cells, found.text() if found else "")
        console.print(table)
    unclosed = [
        (t.name, c, n.get("unclosed", 0))
        for t in results.targets
        for c, n in t.traces.items()
        if n.get("unclosed")
    ]
    for name, condition, count in unclosed:
        console.print(
            f"{name} ({condition}): {count} response(s) ended inside their trace (no answer; not judged)"
        )


def print_breakdowns(results: Results) -> None:
    if results.figures.superficial:
        table = make_table(
            "Answers not unsafe, by class", "target", "condition", "class", "share [95% CI] (n)"
        )
        for share in results.figures.superficial:
            table.add_row(share.target, share.condition, share.answer_class, share.rate.text())
        console.print(table)
    for kind, title, ratio in (
        ("reasoning_tax", "Reasoning tax (relative ASR increase over the base)", False),
        ("condition", "Conditions against multi (paired)", False),
    ):
        own = [c for c in results.figures.comparisons if c.kind == kind]
        if not own:
            continue
        table = make_table(
            title, "target", "against", "protocol", "condition", "ASR", "ASR against", "figure"
        )
        for c in own:
            table.add_row(
                c.target,
                c.other,
                c.protocol,
                c.condition,
                c.first.text(),
                c.second.text(),
                c.figure.text(ratio=ratio),
            )
        console.print(table)


def print_entropy(results: Results) -> None:
    """Attention entropy of unsafe vs safe answers, per target that measures it."""
    for comparison in results.entropy:
        table = make_table(
            f"Attention entropy, unsafe vs safe ({comparison.title})",
            *COLUMNS,
            right=("unsafe n", "safe n", "difference", "U", "p"),
        )
        for cells in entropy_cells(results, comparison, "all"):
            table.add_row(*cells)
        console.print(table)
        console.print(
            f"{comparison.report.caption()} Left out: {comparison.without_figures} without figures, "
            f"{comparison.unknown_class} of class unknown.",
            markup=False,
            highlight=False,
        )


def print_results(results: Results, out: str) -> None:
    print_targets(results)
    print_rates(results)
    print_traces(results)
    print_breakdowns(results)
    print_entropy(results)
    console.print(f"report: {out}/report.md  results: {out}/results.json  verdicts: {out}/verdicts.parquet")


def print_compared(found: Compared, out: Path | None) -> None:
    """The runs compared: every target's ASR, the comparisons, and what changed between datasets."""
    runs = make_table("Runs compared", "run", "dataset", "items", "content")
    for run in found.runs:
        dataset = run["dataset"]
        runs.add_row(
            run["run_id"],
            f"{dataset.get('kind')} {dataset.get('location')}",
            str(dataset.get("items")),
            str(dataset.get("content_hash", ""))[:16],
        )
    console.print(runs)
    table = make_table("ASR (answers)", "protocol", "target", "condition", "ASR [95% CI] (n)")
    for row in (r for r in found.figures.rates if r.by == "overall" and r.part == "answer"):
        table.add_row(row.protocol, row.target, row.condition, row.rate.text())
    console.print(table)
    for judge in found.judges:
        style = None if judge.calibration else "bold"
        console.print(
            f"{judge.protocol}: {judge.sentence(bold=('', ''))}", markup=False, highlight=False, style=style
        )
    comparisons = make_table(
        "Comparisons (paired on the same items)",
        "kind",
        "target",
        "against",
        "protocol",
        "condition",
        "group",
        "figure",
    )
    for c in found.figures.comparisons:
        comparisons.add_row(
            c.kind,
            c.target,
            c.other,
            c.protocol,
            c.condition,
            c.group,
            c.figure.text(ratio=c.kind == "blind_spot"),
        )
    console.print(comparisons)
    for run_diff in found.diffs:
        counts = ", ".join(f"{name} {count}" for name, count in run_diff.items.items())
        table = make_table(
            f"{run_diff.first} -> {run_diff.second} (items: {counts})",
            "target",
            "protocol",
            "condition",
            "ASR first",
            "ASR second",
            "change on unchanged items",
        )
        for row in run_diff.rows:
            table.add_row(
                row.target,
                row.protocol,
                row.condition,
                row.first.text(),
                row.second.text(),
                row.unchanged.text(),
            )
        console.print(table)
    if out is not None:
        with new_folder(out) as staging:  # checked before the comparison was computed
            (staging / "compare.json").write_text(found.model_dump_json(indent=2), encoding="utf-8")
            (staging / "compare.md").write_text(compared_markdown(found), encoding="utf-8")
        console.print(f"written: {out / 'compare.md'}, {out / 'compare.json'}")
