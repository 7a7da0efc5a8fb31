"""`mirbench evaluate`: evaluate models on a benchmark the way MIR-SafetyBench and SafeMLRM do.

`mirbench evaluate DATASET` (the `run` command) asks every target, judges every protocol and
writes the report; `runs`, `failed`, `retry`, `report` and `compare` work on stored runs. Every
input is checked before anything is written (exit 2 on bad input); the exit code is 1 when some
request failed (`--allow-failures`: 0), and `mirbench evaluate retry RUN` asks those again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

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
from builder.cli.display import console, make_table
from builder.cli.evaluation_common import (
    AllowFailuresOption,
    CategoryOption,
    ConditionOption,
    DatasetArgument,
    HubOption,
    JudgeModelOption,
    JudgeUrlOption,
    LimitOption,
    NoJudgeOption,
    OutOption,
    ProtocolOption,
    RelationOption,
    RevisionOption,
    RunArgument,
    RunnerOption,
    TargetModelOption,
    TargetOption,
    TargetUrlOption,
    WorkersOption,
    end,
    evaluation_settings,
    execute,
    stored_request,
)
from builder.cli.evaluation_tables import print_results
from builder.core.errors import InputError
from builder.core.outputs import check_new_folder
from builder.evaluation.loading import Selection
from builder.evaluation.plan import EvaluationRequest, check_request, open_evaluation


class _RunByDefault(TyperGroup):
    """`mirbench evaluate DATASET ...` is `mirbench evaluate run DATASET ...`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


evaluate_app = typer.Typer(
    cls=_RunByDefault,
    help="Evaluate models on a benchmark (MIR-SafetyBench's and SafeMLRM's protocols): "
    "`mirbench evaluate DATASET [OPTIONS]` runs one (its options: `mirbench evaluate run --help`); "
    "the other commands below work on stored runs.",
    no_args_is_help=True,
)
app = typer.Typer()
app.add_typer(evaluate_app, name="evaluate")


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

    Answers are cached by target (its model and server, or its model folder), decoding and
    request: a rerun, an added condition or an added target pays only for what is new, and a
    killed run resumes without asking anything twice. A `transformers` target with
    attention_entropy: true also gets its unsafe-vs-safe attention entropy report.
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


@evaluate_app.command("retry")
def retry(
    run_id: RunArgument,
    allow_failures: AllowFailuresOption = False,
    config: ConfigOption = None,
    artifacts: ArtifactsOption = None,
    database_url: DatabaseOption = None,
    taxonomy: TaxonomyOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Go on with a run: ask its failed and unanswered requests again, judge what is not judged,
    rewrite its report. Its configuration must give the same plan (targets, judges, items)."""
    show_tracebacks(verbose)
    settings = command_settings(config, artifacts=artifacts, database_url=database_url, taxonomy=taxonomy)
    with user_errors():
        request = stored_request(settings, run_id)
    spec, results = execute(settings, request, verbose)
    end(results, spec, allow_failures)


@evaluate_app.command("report")
def report(
    run_id: RunArgument,
    out: OutOption = None,
    config: ConfigOption = None,
    artifacts: ArtifactsOption = None,
    database_url: DatabaseOption = None,
    taxonomy: TaxonomyOption = None,
) -> None:
    """Print a run's figures and write its report files again (nothing is asked or judged)."""
    from builder.evaluation.tasks import finish

    settings = command_settings(config, artifacts=artifacts, database_url=database_url, taxonomy=taxonomy)
    with user_errors():
        request = stored_request(settings, run_id).model_copy(update={"out": out})
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
        if out is not None:
            check_new_folder(out)
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
                calibration=settings.calibration,
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
