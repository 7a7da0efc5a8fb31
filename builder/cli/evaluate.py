"""`mirbench evaluate`: evaluate models on a benchmark the way MIR-SafetyBench and SafeMLRM do.

`mirbench evaluate DATASET` (the `run` command) asks every target, judges every protocol and
writes the report; `runs`, `failed`, `retry`, `report` and `compare` work on stored runs. Every
input is checked before anything is written (exit 2 on bad input); the exit code is 1 when some
request failed (`--allow-failures`: 0), and `mirbench evaluate retry RUN` asks those again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from rich.text import Text
from typer.core import TyperGroup

from builder.cli.core import (
    ArtifactsOption,
    ConfigOption,
    DatabaseOption,
    TaxonomyOption,
    VerboseOption,
    command_settings,
    existing_store,
    given,
    show_tracebacks,
    user_errors,
)
from builder.cli.display import console, errors, make_table, progress_bars
from builder.cli.evaluation_tables import print_results
from builder.cli.prefect_env import prefect_session
from builder.config.evaluation import CONDITIONS, PROTOCOLS
from builder.config.settings import Settings
from builder.core.errors import InputError
from builder.evaluation.loading import Selection
from builder.evaluation.plan import EvaluationRequest, EvaluationSpec, check_request, open_evaluation
from builder.evaluation.report import Results
from builder.store import open_engine


class _RunByDefault(TyperGroup):
    """`mirbench evaluate DATASET ...` is `mirbench evaluate run DATASET ...`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


evaluate_app = typer.Typer(
    cls=_RunByDefault,
    help="Evaluate models on a benchmark (MIR-SafetyBench's and SafeMLRM's protocols): "
    "`mirbench evaluate DATASET` runs one; the commands below work on stored runs.",
    no_args_is_help=True,
)
app = typer.Typer()
app.add_typer(evaluate_app, name="evaluate")

Repeat = Annotated[list[str] | None, typer.Option(show_default=False)]
DatasetArgument = Annotated[
    Path | None,
    typer.Argument(
        help="A mirbench release folder or MIR-SafetyBench's layout (<Category>/<Relation>_final.json).",
        show_default=False,
    ),
]
HubOption = Annotated[
    str | None, typer.Option(help="A Hub dataset repo (ORG/NAME) instead of a folder.", show_default=False)
]
RevisionOption = Annotated[
    str | None, typer.Option(help="The Hub dataset's revision (tag, branch, commit).", show_default=False)
]
CategoryOption = Annotated[
    list[str] | None, typer.Option("--category", help="Only this category; repeat.", show_default=False)
]
RelationOption = Annotated[
    list[str] | None, typer.Option("--relation", "-r", help="Only this relation; repeat.", show_default=False)
]
LimitOption = Annotated[
    int | None, typer.Option(help="At most N items, spread over the cells.", show_default=False)
]
TargetOption = Annotated[
    list[str] | None,
    typer.Option("--target", help="Only this configured target; repeat.", show_default=False),
]
TargetModelOption = Annotated[
    str | None, typer.Option(help="One target of its own: its model name.", show_default=False)
]
TargetUrlOption = Annotated[
    str | None,
    typer.Option(help="That target's OpenAI-compatible server, ending in /v1.", show_default=False),
]
ConditionOption = Annotated[
    list[str] | None,
    typer.Option(
        "--condition", help=f"{', '.join(CONDITIONS)}; repeat. [default: multi]", show_default=False
    ),
]
ProtocolOption = Annotated[
    list[str] | None,
    typer.Option(
        "--protocol",
        help=f"{', '.join(PROTOCOLS)}; repeat. [default: every one with a judge]",
        show_default=False,
    ),
]
JudgeUrlOption = Annotated[
    str | None,
    typer.Option(help="The judge's server (of the one --protocol, mir by default).", show_default=False),
]
JudgeModelOption = Annotated[str | None, typer.Option(help="The judge's model name.", show_default=False)]
NoJudgeOption = Annotated[bool, typer.Option("--no-judge", help="Collect the responses only.")]
OutOption = Annotated[
    Path | None, typer.Option(help="Report folder. [default: ARTIFACTS/evaluations/RUN]", show_default=False)
]
WorkersOption = Annotated[
    int | None, typer.Option(help="Threads, or local Dask worker processes.", show_default=False)
]
RunnerOption = Annotated[
    str | None, typer.Option(help="thread or dask (needs PostgreSQL).", show_default=False)
]
AllowFailuresOption = Annotated[
    bool, typer.Option("--allow-failures", help="Exit 0 even when some requests failed.")
]
RunArgument = Annotated[str, typer.Argument(help="An evaluation run id (`mirbench evaluate runs`).")]


def _known(values: list[str] | None, choices: tuple[str, ...], kind: str) -> list[str] | None:
    for value in values or []:
        if value not in choices:
            raise InputError(f"unknown {kind} {value!r}; {kind}s: {', '.join(choices)}")
    return values


def evaluation_settings(config: Path | None, options: dict[str, Any]) -> Settings:
    """The settings a run command gives, its choices checked first (one line each, exit 2)."""
    with user_errors():
        conditions = _known(options.pop("conditions"), CONDITIONS, "condition")
        protocols = _known(options.pop("protocols"), PROTOCOLS, "protocol")
        model, url, judge_url, judge_model = (
            options.pop(key) for key in ("target_model", "target_base_url", "judge_base_url", "judge_model")
        )
        chosen = options.pop("targets")
        if model and chosen:
            raise InputError(
                "--target picks configured targets; --target-model gives one of its own: use one"
            )
        if (judge_url or judge_model) and protocols and len(protocols) > 1:
            raise InputError(
                "--judge-base-url/--judge-model set the judge of one --protocol; several are given"
            )
        judge_for = (protocols or ["mir"])[0]
    evaluate = given(
        conditions=conditions,
        protocols=protocols,
        targets=[given(base_url=url, model=model)] if model else None,
        judges={judge_for: given(base_url=judge_url, model=judge_model)}
        if judge_url or judge_model
        else None,
    )
    return command_settings(config, evaluate=evaluate, **options)


def execute(settings: Settings, request: EvaluationRequest, verbose: bool) -> tuple[EvaluationSpec, Results]:
    """Check, open and run an evaluation; its results."""
    with user_errors():
        checked = check_request(settings, request)
        open_engine(settings.resolved_database_url, folder_to_create=settings.artifacts).dispose()
        spec = open_evaluation(settings, request, checked)
    protocols = ", ".join(spec.protocols) or "none (--no-judge)"
    console.print(
        f"{'resuming' if spec.resumed else 'evaluation'} run {spec.run_id}: {len(checked.loaded.items)} "
        f"items of {checked.loaded.rows}, targets {', '.join(spec.targets)}, conditions "
        f"{', '.join(settings.evaluate.conditions)}, protocols {protocols}"
    )
    with prefect_session(settings, verbose):
        from flows.evaluate import evaluate as run_flow

        with user_errors(), progress_bars(eta=True):
            return spec, run_flow(spec)


def end(results: Results, spec: EvaluationSpec, allow_failures: bool) -> None:
    print_results(results, str(spec.out))
    failed = results.failed_responses + results.failed_judgements
    if not failed:
        return
    line = (
        f"{results.failed_responses} request(s) to targets and {results.failed_judgements} judgement(s) "
        f"failed; `mirbench evaluate failed {spec.run_id}` lists them, `mirbench evaluate retry "
        f"{spec.run_id}` asks again"
    )
    if allow_failures:
        errors.print(f"warning: {line}; exit 0 (--allow-failures)", highlight=False, soft_wrap=True)
        return
    errors.print(f"[bold red]error:[/] {line}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=1)


@evaluate_app.command("run")
def run(
    dataset: DatasetArgument = None,
    hub: HubOption = None,
    revision: RevisionOption = None,
    category: CategoryOption = None,
    relation: RelationOption = None,
    limit: LimitOption = None,
    target: TargetOption = None,
    target_model: TargetModelOption = None,
    target_base_url: TargetUrlOption = None,
    condition: ConditionOption = None,
    protocol: ProtocolOption = None,
    judge_base_url: JudgeUrlOption = None,
    judge_model: JudgeModelOption = None,
    no_judge: NoJudgeOption = False,
    out: OutOption = None,
    runner: RunnerOption = None,
    workers: WorkersOption = None,
    allow_failures: AllowFailuresOption = False,
    config: ConfigOption = None,
    artifacts: ArtifactsOption = None,
    database_url: DatabaseOption = None,
    taxonomy: TaxonomyOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Ask every target about every item under every condition, judge the responses by each
    protocol, and write the report (report.md, results.json, verdicts.parquet, heat maps).

    Answers are cached by target, decoding and request: a rerun, an added condition or an added
    target pays only for what is new, and a killed run resumes without asking anything twice.
    """
    show_tracebacks(verbose)
    settings = evaluation_settings(
        config,
        {
            "conditions": condition,
            "protocols": protocol,
            "target_model": target_model,
            "target_base_url": target_base_url,
            "judge_base_url": judge_base_url,
            "judge_model": judge_model,
            "targets": target,
            "artifacts": artifacts,
            "database_url": database_url,
            "taxonomy": taxonomy,
            "runner": given(kind=runner, workers=workers),
        },
    )
    request = EvaluationRequest(
        dataset=dataset,
        hub=hub,
        revision=revision,
        targets=target or [],
        judge=not no_judge,
        out=out,
        selection=Selection(categories=category or [], relations=relation or [], limit=limit),
    )
    spec, results = execute(settings, request, verbose)
    end(results, spec, allow_failures)


def _stored_request(settings: Settings, run_id: str) -> EvaluationRequest:
    with existing_store(settings) as store:
        run = store.evaluation_run(run_id)
    if run is None:
        raise InputError(f"no evaluation run {run_id!r}; `mirbench evaluate runs` lists them")
    stored = json.loads(run.dataset).get("request", {})
    return EvaluationRequest.model_validate({**stored, "resume": run_id})


@evaluate_app.command("retry")
def retry(
    run_id: RunArgument,
    allow_failures: AllowFailuresOption = False,
    config: ConfigOption = None,
    artifacts: ArtifactsOption = None,
    database_url: DatabaseOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Go on with a run: ask its failed and unanswered requests again, judge what is not judged,
    rewrite its report. Its configuration must give the same plan (targets, judges, items)."""
    show_tracebacks(verbose)
    settings = command_settings(config, artifacts=artifacts, database_url=database_url)
    with user_errors():
        request = _stored_request(settings, run_id)
    spec, results = execute(settings, request, verbose)
    end(results, spec, allow_failures)


@evaluate_app.command("report")
def report(
    run_id: RunArgument,
    out: OutOption = None,
    config: ConfigOption = None,
    artifacts: ArtifactsOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Print a run's figures and write its report files again (nothing is asked or judged)."""
    from builder.evaluation.tasks import finish

    settings = command_settings(config, artifacts=artifacts, database_url=database_url)
    with user_errors():
        request = _stored_request(settings, run_id).model_copy(update={"out": out})
        spec = open_evaluation(settings, request, check_request(settings, request))
        results = finish(spec)
    print_results(results, str(spec.out))


@evaluate_app.command("runs")
def runs(
    config: ConfigOption = None, artifacts: ArtifactsOption = None, database_url: DatabaseOption = None
) -> None:
    """Evaluation runs in the store, with their dataset, targets and failures."""
    settings = command_settings(config, artifacts=artifacts, database_url=database_url)
    with existing_store(settings) as store:
        found = store.evaluation_runs()
    table = make_table(
        "Evaluation runs", "run", "started", "finished", "dataset", "items", "targets", "failed"
    )
    for row in found:
        dataset, summary = json.loads(row.dataset), json.loads(row.summary or "{}")
        failed = summary.get("failed_responses", 0) + summary.get("failed_judgements", 0)
        table.add_row(
            row.id,
            f"{row.started_at:%Y-%m-%d %H:%M}",
            "yes" if row.finished_at else "no (retry resumes)",
            Text(f"{dataset.get('kind')} {dataset.get('location')}"),
            str(dataset.get("items")),
            ", ".join(summary.get("targets", [])),
            str(failed),
        )
    console.print(table)


@evaluate_app.command("failed")
def failed(
    run_id: RunArgument,
    config: ConfigOption = None,
    artifacts: ArtifactsOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """A run's failed requests (target, item, condition, why) and failed judgements."""
    settings = command_settings(config, artifacts=artifacts, database_url=database_url)
    with existing_store(settings) as store:
        responses = {row.id: row for row in store.responses(run_id)}
        verdicts = [v for v in store.verdicts(run_id) if v.state == "failed"]
    table = make_table(
        f"Failed requests of run {run_id}", "target", "item", "condition", "attempts", "reason", "message"
    )
    for row in (r for r in responses.values() if r.state == "failed"):
        table.add_row(
            row.target,
            row.item_id,
            row.condition,
            str(row.attempts),
            row.failure_reason or "",
            Text(row.failure_detail or ""),
        )
    console.print(table)
    judged = make_table("Failed judgements", "protocol", "part", "target", "item", "condition", "message")
    for verdict in verdicts:
        response = responses[verdict.response_id]
        judged.add_row(
            verdict.protocol,
            verdict.part,
            response.target,
            response.item_id,
            response.condition,
            Text(verdict.failure_detail or ""),
        )
    console.print(judged)
    console.print(f"ask them again: `mirbench evaluate retry {run_id}`")


@evaluate_app.command("compare")
def compare(
    run_ids: Annotated[list[str], typer.Argument(help="Two or more evaluation runs.")],
    base: Annotated[
        list[str] | None,
        typer.Option(
            "--base",
            help="TARGET=BASE: reasoning tax and blind spots of TARGET over BASE; repeat.",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Also write compare.md and compare.json here.", show_default=False)
    ] = None,
    config: ConfigOption = None,
    artifacts: ArtifactsOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Targets of several runs side by side (reasoning tax, blind spots, conditions), and the same
    target on two datasets (two releases: what a rebuild changed)."""
    from builder.cli.evaluation_tables import print_compared
    from builder.evaluation.compare import compare as compare_runs

    settings = command_settings(config, artifacts=artifacts, database_url=database_url)
    with user_errors():
        pairs = [entry.partition("=") for entry in base or []]
        if any(not sep or not left or not right for left, sep, right in pairs):
            raise InputError("--base takes TARGET=BASE")
        with existing_store(settings) as store:
            found = compare_runs(
                store,
                run_ids,
                {left: right for left, _, right in pairs},
                resamples=settings.evaluate.resamples,
                seed=settings.evaluate.seed,
            )
    print_compared(found, out)


@evaluate_app.command("statics")
def statics(
    folder: Annotated[
        Path,
        typer.Argument(
            help="One model's MIR-SafetyBench judge results: "
            "<output>/harmbench/<model> (<Category>/<Relation>.json)."
        ),
    ],
) -> None:
    """MIR-SafetyBench's `statics.py` on its own judge results, with an n and a 95% interval
    beside every ASR: unsafe / total per relation file, summed over the categories."""
    from builder.evaluation.figures import rates
    from builder.evaluation.mir_results import read_judge_results

    settings = command_settings(None)
    with user_errors():
        found = read_judge_results(folder)
    evaluate = settings.evaluate
    rows = rates(found, resamples=evaluate.resamples, seed=evaluate.seed, by=("relation", "overall"))
    table = make_table(
        f"ASR per relation: {folder}",
        "relation",
        "unsafe",
        "total",
        "ASR [95% CI]",
        right=("unsafe", "total", "ASR [95% CI]"),
    )
    for row in sorted(rows, key=lambda found: (found.by == "overall", found.group)):
        table.add_row(
            "Total" if row.by == "overall" else row.group, str(row.rate.k), str(row.rate.n), row.rate.text()
        )
    console.print(table)
