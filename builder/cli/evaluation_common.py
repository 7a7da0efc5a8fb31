"""What the `mirbench evaluate` commands share: their options, their settings, running a
checked evaluation (Prefect, progress bars with the time left) and the exit it earns."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from builder.cli.core import command_settings, existing_store, given, user_errors
from builder.cli.display import console, errors, progress_bars
from builder.cli.evaluation_tables import print_results
from builder.cli.prefect_env import prefect_session
from builder.config.evaluation import CONDITIONS, PROTOCOLS
from builder.config.settings import Settings
from builder.core.errors import InputError
from builder.evaluation.plan import EvaluationRequest, EvaluationSpec, check_request, open_evaluation
from builder.evaluation.report import Results
from builder.store import open_engine

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


def stored_request(settings: Settings, run_id: str) -> EvaluationRequest:
    with existing_store(settings) as store:
        run = store.evaluation_run(run_id)
    if run is None:
        raise InputError(f"no evaluation run {run_id!r}; `mirbench evaluate runs` lists them")
    stored = json.loads(run.dataset).get("request", {})
    return EvaluationRequest.model_validate({**stored, "resume": run_id})
