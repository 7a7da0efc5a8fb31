"""`mirbench judge calibrate`: measure the configured judge (an ensemble: each member and the
ensemble) against human labels, print the figures and keep them in the store."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from builder.cli.core import (
    ArtifactsOption,
    ConfigOption,
    DatabaseOption,
    JudgeBaseUrlOption,
    JudgeModelOption,
)
from builder.cli.display import console
from builder.config.settings import load_settings
from builder.core.errors import InputError
from builder.core.outputs import check_new_file, write_new_file
from builder.stages.judge import judges
from builder.stages.judge.calibration.labels import load_label_set, resolve
from builder.stages.judge.calibration.metrics import RESAMPLES, SEED, Figures
from builder.stages.judge.calibration.records import record_calibration
from builder.stages.judge.calibration.run import JudgeCalibration, calibrate, judges_to_run
from builder.stages.workspace import Workspace

app = typer.Typer()
judge_app = typer.Typer(help="Judges: calibrate against human labels.", no_args_is_help=True)
app.add_typer(judge_app, name="judge")


def _interval(figures: Figures, name: str) -> str:
    value = getattr(figures, name)
    interval = figures.intervals[name]
    if value is None:
        return "n/a"
    if interval.low is None or interval.high is None:
        return f"{value:.3f}"
    return f"{value:.3f} [{interval.low:.3f}, {interval.high:.3f}]"


def _figures_table(title: str, rows: list[tuple[str, Figures]]) -> Table:
    table = Table(title=title)
    for column in ("judge", "n", "accuracy", "precision", "recall", "F1", "kappa"):
        table.add_column(column, overflow="fold", justify="left" if column == "judge" else "right")
    for label, figures in rows:
        table.add_row(
            escape(label),
            str(figures.n),
            *(_interval(figures, name) for name in ("accuracy", "precision", "recall", "f1", "kappa")),
        )
    return table


def _show(calibration: JudgeCalibration, shown: int) -> None:
    figures = calibration.figures
    positive = calibration.task
    classes = ", ".join(f"{name} {count}" for name, count in calibration.classes.items()) or "none"
    console.print(
        f"\n[bold]{escape(calibration.judge)}[/] "
        f"(`{escape(calibration.name)}@{escape(calibration.version)}`, config {calibration.config_hash}): "
        f"{calibration.rows} labelled answers, {calibration.failed} failed; classes: {classes}"
    )
    if figures is None:
        console.print("[bold red]no figures:[/] the judge failed on every answer")
        return
    console.print(
        _figures_table(
            f"{escape(calibration.judge)} vs people, on '{positive}' (95% bootstrap intervals)",
            [(calibration.judge, figures)],
        )
    )
    matrix = Table(title="confusion matrix")
    for column in ("", f"people: {positive}", f"people: not {positive}"):
        matrix.add_column(column, justify="right")
    c = figures.confusion
    matrix.add_row(f"judge: {positive}", str(c.tp), str(c.fp))
    matrix.add_row(f"judge: not {positive}", str(c.fn), str(c.tn))
    console.print(matrix)
    if calibration.categories:
        console.print(_figures_table("per category", list(calibration.categories.items())))
    if calibration.members is not None:
        members = calibration.members
        console.print(
            f"members disagree on {members.disagree_on_positive} of {members.answers} answers "
            f"({members.rate:.1%}) on '{positive}', on {members.disagree_on_class} on the class"
        )
    if calibration.disagreements:
        table = Table(title=f"disagreements ({len(calibration.disagreements)}; false positives first)")
        for column in ("kind", "line", "id", "category", "judge", "behaviour", "rationale"):
            table.add_column(column, overflow="fold")
        for d in calibration.disagreements[:shown]:
            cells = (
                d.kind,
                str(d.line or ""),
                d.id,
                d.category or "",
                d.judge_class,
                d.behavior,
                d.rationale,
            )
            table.add_row(*map(escape, cells))
        console.print(table)
        if len(calibration.disagreements) > shown:
            console.print(f"... {len(calibration.disagreements) - shown} more (--show N, or --json FILE)")


@judge_app.command("calibrate")
def calibrate_command(
    labels: Annotated[
        str,
        typer.Option(
            "--labels",
            help="A bundled label-set profile (taxonomy/labels/NAME.yaml), a profile file, or a labelled "
            ".csv/.jsonl/.json/.parquet file with columns behavior, response, label (prompt, category, id).",
            show_default=False,
        ),
    ],
    path: Annotated[
        Path | None,
        typer.Option(
            help="A local copy of a profile's data, read through its column map.", show_default=False
        ),
    ] = None,
    task: Annotated[
        str, typer.Option(help="For a plain labelled file: what its labels mark, unsafe or refusal.")
    ] = "unsafe",
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N labelled answers.")] = None,
    judge: Annotated[
        str | None,
        typer.Option(help=f"Judge backend: {judges.describe()}. [default: attack.judge]", show_default=False),
    ] = None,
    judge_base_url: JudgeBaseUrlOption = None,
    judge_model: JudgeModelOption = None,
    show: Annotated[int, typer.Option(min=0, help="Disagreements listed per judge.")] = 20,
    resamples: Annotated[int, typer.Option(min=100, help="Bootstrap resamples.")] = RESAMPLES,
    seed: Annotated[int, typer.Option(help="Bootstrap seed (same seed, same intervals).")] = SEED,
    json_out: Annotated[
        Path | None,
        typer.Option(
            "--json", help="Write the full report (every figure) to this new file.", show_default=False
        ),
    ] = None,
    config: ConfigOption = None,
    artifacts: ArtifactsOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Judge a human-labelled set with the configured judge and report agreement: accuracy,
    precision/recall/F1, Cohen's kappa, confusion matrix, per category, 95% bootstrap intervals,
    disagreements (false positives first). The figures are kept in the store under the judge's
    config hash; release cards and build reports quote them next to every attack success rate."""
    if task not in ("unsafe", "refusal"):
        raise InputError(f"--task must be unsafe or refusal, not {task!r}")
    if json_out is not None:  # before anything is judged or stored: a refusal writes nothing
        check_new_file(json_out, "--json")
    judge_given = {
        k: v for k, v in {"backend": judge, "base_url": judge_base_url, "model": judge_model}.items() if v
    }
    overrides: dict[str, Any] = {"artifacts": artifacts, "database_url": database_url}
    if judge_given:
        overrides["attack"] = {"judge": judge_given}
    settings = load_settings(config, **overrides)
    profile, base = resolve(labels, settings.taxonomy / "labels", task)  # type: ignore[arg-type]
    label_set = load_label_set(
        profile, base=base, local=path, limit=limit, max_record_chars=settings.limits.max_record_chars
    )
    if settings.database_url is None:
        settings.artifacts.mkdir(parents=True, exist_ok=True)
    workspace = Workspace(settings)
    try:
        chosen = judges.create(settings.attack.judge, workspace)
        console.print(
            f"label set [bold]{escape(label_set.name)}[/] ({escape(label_set.source)}, "
            f"{len(label_set.rows)} answers, task '{profile.task}', licence {escape(profile.licence)}, "
            f"hash {label_set.content_hash})"
        )
        total = len(label_set.rows) * len(judges_to_run(chosen))
        with Progress(
            TextColumn("{task.description:>9}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=not sys.stdout.isatty(),
        ) as bar:
            progress = bar.add_task("judging", total=total)
            results = calibrate(
                chosen, label_set, lambda: bar.advance(progress), resamples=resamples, seed=seed
            )
        for calibration in results:
            _show(calibration, show)
            if calibration.figures is not None:
                record_calibration(workspace.store, calibration)
        if json_out is not None:
            report = "[\n" + ",\n".join(c.model_dump_json(indent=2) for c in results) + "\n]\n"
            write_new_file(json_out, report, "--json")
        recorded = sum(c.figures is not None for c in results)
        console.print(f"\n{recorded} calibration(s) recorded in the store.")
    finally:
        workspace.close()
