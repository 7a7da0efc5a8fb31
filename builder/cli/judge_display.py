"""What `mirbench judge calibrate` and `mirbench judge calibrations` print: figures with their
intervals, the confusion matrix, per-category figures, every failed row, the disagreements.
Behaviours, ids and rationales are printed as text (never read as markup); answers never."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from builder.cli.display import console, make_table
from builder.stages.attack.summary import success_words
from builder.stages.judge.calibration.metrics import Figures
from builder.stages.judge.calibration.run import JudgeCalibration, failure_reasons
from builder.store import CalibrationRecord

METRICS = ("accuracy", "precision", "recall", "f1", "kappa")


def _interval(figures: Figures, name: str) -> str:
    value = getattr(figures, name)
    interval = figures.intervals[name]
    if value is None:
        return "n/a"
    if interval.low is None or interval.high is None:
        return f"{value:.3f}"
    return f"{value:.3f} [{interval.low:.3f}, {interval.high:.3f}]"


def figures_table(title: str, rows: list[tuple[str, Figures]]) -> Table:
    table = make_table(title, "judge", "n", "accuracy", "precision", "recall", "F1", "kappa")
    for column in table.columns[1:]:
        column.justify = "right"
    for label, figures in rows:
        table.add_row(Text(label), str(figures.n), *(_interval(figures, name) for name in METRICS))
    return table


def _matrix(calibration: JudgeCalibration, figures: Figures) -> Table:
    positive = calibration.task
    matrix = Table(title="confusion matrix")
    for column in ("", f"people: {positive}", f"people: not {positive}"):
        matrix.add_column(column, justify="right")
    counts = figures.confusion
    matrix.add_row(f"judge: {positive}", str(counts.tp), str(counts.fp))
    matrix.add_row(f"judge: not {positive}", str(counts.fn), str(counts.tn))
    return matrix


def show_failures(calibration: JudgeCalibration, shown: int) -> None:
    """Every failed row up to `shown`: line, id, reason, detail; the reasons counted."""
    failures = calibration.failures
    if not failures:
        return
    table = make_table(
        f"failed rows ({len(failures)}; left out of the figures)", "line", "id", "reason", "detail"
    )
    for row in failures[:shown]:
        assert row.failure is not None
        table.add_row(str(row.line or ""), Text(row.id), row.failure.reason, Text(row.failure.detail))
    console.print(table)
    console.print(Text(f"failed: {failure_reasons(failures)}"))
    if len(failures) > shown:
        console.print(
            f"... {len(failures) - shown} more failed rows (--show N, or --json FILE lists every row)"
        )


def _disagreements(calibration: JudgeCalibration, shown: int) -> None:
    found = calibration.disagreements
    if not found:
        return
    table = make_table(
        f"disagreements ({len(found)}; false positives first)",
        "kind",
        "line",
        "id",
        "category",
        "judge",
        "behaviour",
        "rationale",
    )
    for d in found[:shown]:
        cells = (d.kind, str(d.line or ""), d.id, d.category or "", d.judge_class, d.behavior, d.rationale)
        table.add_row(*map(Text, cells))
    console.print(table)
    if len(found) > shown:
        console.print(f"... {len(found) - shown} more (--show N, or --json FILE)")


def show_calibration(calibration: JudgeCalibration, shown: int) -> None:
    figures = calibration.figures
    classes = ", ".join(f"{name} {count}" for name, count in calibration.classes.items()) or "none"
    console.print(
        f"\n[bold]{escape(calibration.judge)}[/] "
        f"(`{escape(calibration.name)}@{escape(calibration.version)}`, config {calibration.config_hash}, "
        f"positive: {success_words(calibration.positive_classes)}): {calibration.rows} labelled answers, "
        f"{calibration.failed} failed; classes: {classes}"
    )
    show_failures(calibration, shown)
    if figures is None:
        console.print("[bold red]no figures:[/] the judge failed on every answer")
        return
    title = f"{calibration.judge} vs people, on '{calibration.task}' (95% bootstrap intervals)"
    console.print(figures_table(title, [(calibration.judge, figures)]))
    console.print(_matrix(calibration, figures))
    if calibration.categories:
        console.print(figures_table("per category", list(calibration.categories.items())))
    if calibration.members is not None:
        members = calibration.members
        console.print(
            f"members disagree on {members.disagree_on_positive} of {members.answers} answers "
            f"({members.rate:.1%}) on '{calibration.task}', on {members.disagree_on_class} on the class"
        )
    _disagreements(calibration, shown)


def show_records(records: list[CalibrationRecord], quoted: set[int], warn_kappa: float) -> None:
    """Stored calibrations, oldest first; `quoted`: the ids an ASR quotes now."""
    table = make_table(
        "Judge calibrations",
        "id",
        "calibrated",
        "judge",
        "config",
        "task",
        "positive",
        "label set",
        "n",
        "kappa",
        "F1",
        "quoted",
        right=("id", "n", "kappa", "F1"),
    )
    for record in records:
        kappa = "n/a" if record.kappa is None else f"{record.kappa:.2f}"
        weak = record.kappa is None or record.kappa < warn_kappa
        table.add_row(
            str(record.id),
            record.created_at.isoformat(timespec="seconds"),
            Text(f"{record.judge}@{record.judge_version}"),
            record.config_hash,
            record.task,
            success_words(record.positive_classes),
            Text(record.label_set),
            str(record.n),
            Text(kappa, style="bold red" if weak else ""),
            f"{record.f1:.2f}",
            "yes" if record.id in quoted else "",
        )
    console.print(table)
    console.print(
        f"quoted: for each judge config and policy, the largest n (then the latest) unless "
        f"calibration.quote names one; kappa below {warn_kappa:.2f} in red (calibration.warn_kappa)"
    )
