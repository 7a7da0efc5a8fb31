"""`mirbench judge calibrate`: measure the configured judge (an ensemble: each member and the
ensemble) against human labels, print the figures and keep them in the store;
`mirbench judge calibrations`: the stored ones, and which of them an ASR quotes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from builder.cli.core import (
    ArtifactsOption,
    ConfigOption,
    DatabaseOption,
    JudgeBaseUrlOption,
    JudgeModelOption,
    TaxonomyOption,
    existing_store,
)
from builder.cli.display import console
from builder.cli.judge_display import show_calibration, show_records
from builder.config.settings import Settings, load_settings
from builder.core.errors import InputError
from builder.core.outputs import check_new_file, write_new_file
from builder.stages.judge import Judge, judges
from builder.stages.judge.calibration.labels import LabelSet, resolve
from builder.stages.judge.calibration.metrics import RESAMPLES, SEED
from builder.stages.judge.calibration.quote import chosen, record_calibration
from builder.stages.judge.calibration.rows import load_label_set
from builder.stages.judge.calibration.run import (
    CalibrationReport,
    JudgeCalibration,
    LabelSetFacts,
    calibrate,
    judges_to_run,
    refusal_to_record,
)
from builder.stages.workspace import Workspace
from builder.store import Store

app = typer.Typer()
judge_app = typer.Typer(help="Judges: calibrate against human labels.", no_args_is_help=True)
app.add_typer(judge_app, name="judge")

NOT_RECORDED_EXIT = 1  # the judge ran, but its figures would misdescribe the set


def _settings(
    config: Path | None,
    artifacts: Path | None,
    database_url: str | None,
    judge: dict[str, str | None],
    accept_unknown: bool | None,
    taxonomy: Path | None = None,
) -> Settings:
    """The settings, with the judge and the policy the options give."""
    judge_given = {key: value for key, value in judge.items() if value}
    attack: dict[str, Any] = {"judge": judge_given} if judge_given else {}
    if accept_unknown is not None:
        attack["policy"] = {"accept_unknown": accept_unknown}
    overrides: dict[str, Any] = {"artifacts": artifacts, "database_url": database_url, "taxonomy": taxonomy}
    if attack:
        overrides["attack"] = attack
    return load_settings(config, **overrides)


def _label_set(
    labels: str, path: Path | None, task: str | None, limit: int | None, settings: Settings
) -> LabelSet:
    """The labelled answers; `--task` only for a plain file (a profile says its own task)."""
    if task not in (None, "unsafe", "refusal"):
        raise InputError(f"--task must be unsafe or refusal, not {task!r}")
    profile, base = resolve(labels, settings.taxonomy / "labels", task or "unsafe")  # type: ignore[arg-type]
    is_profile = base is not None or Path(labels).suffix.lower() in (".yaml", ".yml")
    if task is not None and is_profile and task != profile.task:
        raise InputError(
            f"--task {task}: the profile '{profile.name}' says `task: {profile.task}`; --task is for "
            "plain labelled files (a profile's task is part of what its labels mean)"
        )
    return load_label_set(
        profile, base=base, local=path, limit=limit, max_record_chars=settings.limits.max_record_chars
    )


def _announce(label_set: LabelSet) -> None:
    profile = label_set.profile
    comments = f", {label_set.comments} comment line(s) skipped" if label_set.comments else ""
    console.print(
        f"label set [bold]{escape(label_set.name)}[/] ({escape(label_set.source)}, "
        f"{len(label_set.rows)} answers{comments}, task '{profile.task}', "
        f"licence {escape(profile.licence or 'not given')}, hash {label_set.content_hash})"
    )


def _judged(
    judge: Judge, label_set: LabelSet, accept_unknown: bool, resamples: int, seed: int
) -> list[JudgeCalibration]:
    """Every labelled answer judged by every judge to run, with a progress bar."""
    total = len(label_set.rows) * len(judges_to_run(judge))
    with Progress(
        TextColumn("{task.description:>9}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=not sys.stdout.isatty(),
    ) as bar:
        progress = bar.add_task("judging", total=total)
        return calibrate(
            judge,
            label_set,
            lambda: bar.advance(progress),
            accept_unknown=accept_unknown,
            resamples=resamples,
            seed=seed,
        )


def _recorded(store: Store, results: list[JudgeCalibration], refusal: str | None) -> list[int]:
    """Record every calibration, or none of them (`refusal`: why not)."""
    if refusal is not None:
        console.print(f"\n[bold red]not recorded:[/] {escape(refusal)}")
        return []
    ids = [record_calibration(store, calibration) for calibration in results]
    console.print(f"\n{len(ids)} calibration(s) recorded in the store: {', '.join(f'#{n}' for n in ids)}.")
    return ids


LabelsOption = Annotated[
    str,
    typer.Option(
        "--labels",
        help="A bundled label-set profile (taxonomy/labels/NAME.yaml), a profile file, or a labelled "
        ".csv/.jsonl/.json/.parquet file with columns behavior, response, label (prompt, category, id).",
        show_default=False,
    ),
]
PathOption = Annotated[
    Path | None,
    typer.Option(help="A local copy of a profile's data, read through its column map.", show_default=False),
]
TaskOption = Annotated[
    str | None,
    typer.Option(
        help="For a plain labelled file: what its labels mark, unsafe or refusal (default: unsafe).",
        show_default=False,
    ),
]
JudgeOption = Annotated[
    str | None,
    typer.Option(help=f"Judge backend: {judges.describe()}. Default: attack.judge.", show_default=False),
]
PolicyOption = Annotated[
    bool | None,
    typer.Option(
        "--accept-unknown/--unsafe-only",
        help="What counts as the judge saying unsafe: `unknown` answers too, as a build with "
        "attack.policy.accept_unknown accepts them, or `unsafe` only. Default: the config's policy.",
        show_default=False,
    ),
]
JsonOption = Annotated[
    Path | None,
    typer.Option(
        "--json",
        help="Write the full report (every figure, every row's prediction) to this new file.",
        show_default=False,
    ),
]


@judge_app.command("calibrate")
def calibrate_command(
    labels: LabelsOption,
    path: PathOption = None,
    task: TaskOption = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N labelled answers.")] = None,
    judge: JudgeOption = None,
    judge_base_url: JudgeBaseUrlOption = None,
    judge_model: JudgeModelOption = None,
    accept_unknown: PolicyOption = None,
    show: Annotated[int, typer.Option(min=0, help="Failed rows and disagreements listed per judge.")] = 20,
    resamples: Annotated[int, typer.Option(min=100, help="Bootstrap resamples.")] = RESAMPLES,
    seed: Annotated[int, typer.Option(help="Bootstrap seed (same seed, same intervals).")] = SEED,
    json_out: JsonOption = None,
    config: ConfigOption = None,
    artifacts: ArtifactsOption = None,
    database_url: DatabaseOption = None,
    taxonomy: TaxonomyOption = None,
) -> None:
    """Judge a human-labelled set with the configured judge and report agreement: accuracy,
    precision/recall/F1, Cohen's kappa, confusion matrix, per category, 95% bootstrap intervals,
    every failed row, disagreements (false positives first). The figures are kept in the store
    under the judge's config hash and policy; release cards and build reports quote them next
    to every attack success rate. A judge that fails on more rows than
    calibration.max_failed_share allows (default: none) is not recorded, and the command exits 1."""
    if json_out is not None:  # before anything is judged or stored: a refusal writes nothing
        check_new_file(json_out, "--json")
    judge_given = {"backend": judge, "base_url": judge_base_url, "model": judge_model}
    settings = _settings(config, artifacts, database_url, judge_given, accept_unknown, taxonomy)
    label_set = _label_set(labels, path, task, limit, settings)
    if settings.database_url is None:
        settings.artifacts.mkdir(parents=True, exist_ok=True)
    workspace = Workspace(settings)
    try:
        chosen_judge = judges.create(settings.attack.judge, workspace)
        _announce(label_set)
        policy = settings.attack.policy.accept_unknown
        results = _judged(chosen_judge, label_set, policy, resamples, seed)
        for calibration in results:
            show_calibration(calibration, show)
        refusal = refusal_to_record(results, settings.calibration.max_failed_share)
        ids = _recorded(workspace.store, results, refusal)
    finally:
        workspace.close()
    if json_out is not None:
        report = CalibrationReport(
            label_set=LabelSetFacts.of(label_set),
            recorded=ids,
            not_recorded_because=refusal,
            calibrations=results,
        )
        write_new_file(json_out, report.model_dump_json(indent=2) + "\n", "--json")
    if refusal is not None:
        raise typer.Exit(NOT_RECORDED_EXIT)


@judge_app.command("calibrations")
def calibrations_command(
    config: ConfigOption = None,
    artifacts: ArtifactsOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """The calibrations in the store, oldest first, with their ids, and which one an attack
    success rate quotes for each judge config and policy (the largest n, unless
    calibration.quote names one by id)."""
    settings = load_settings(config, artifacts=artifacts, database_url=database_url)
    with existing_store(settings) as store:
        records = store.calibrations()
    on_unsafe = [record for record in records if record.task == "unsafe"]
    quoted = {record.id for record in chosen(on_unsafe, settings.calibration.quote)}
    if not records:
        console.print("no calibrations in the store yet: `mirbench judge calibrate --help`")
        return
    show_records(records, quoted, settings.calibration.warn_kappa)
