"""`mirbench build`, `status` and `serve`: run the pipeline once, summarise the store, serve
scheduled rebuilds."""

from __future__ import annotations

import os
from functools import partial
from typing import Annotated, Any

import typer

from builder.cli.build_options import (
    AllowFailuresOption,
    BaseUrlOption,
    ComposerOption,
    DaskAddressOption,
    JudgeOption,
    LimitOption,
    MaxIterationsOption,
    ModelOption,
    PoolOption,
    RelationOption,
    RelationsPerSeedOption,
    RendererOption,
    RunnerOption,
    SeedsOption,
    TesterBaseUrlOption,
    TesterModelOption,
    TesterOption,
    WorkersOption,
)
from builder.cli.core import (
    ArtifactsOption,
    ConfigOption,
    DatabaseOption,
    JudgeBaseUrlOption,
    JudgeModelOption,
    TaxonomyOption,
    VerboseOption,
    command_settings,
    existing_store,
    fail,
    given,
    show_tracebacks,
    user_errors,
)
from builder.cli.display import (
    LIST_FAILED,
    TOP_REASONS,
    console,
    errors,
    make_table,
    print_attack,
    print_failure_groups,
    progress_bars,
)
from builder.cli.prefect_env import prefect_session
from builder.config.settings import Settings
from builder.core.errors import InputError
from builder.core.items import ItemStatus
from builder.run.failures import failure_groups, summary
from builder.run.prepare import Prepared, prepare
from builder.run.report import BuildReport
from builder.run.scope import exclusive_status_counts
from builder.run.status_reasons import failed_where_off, status_reasons
from builder.store import ReviewState

app = typer.Typer()


def _load_while_prefect_starts(settings: Settings) -> None:
    """What a build loads while Prefect's server starts: the text model, then the flows (and
    Prefect with them)."""
    from builder.run.tasks import warm_up

    warm_up(settings)
    import flows.build  # noqa: F401


def execute_build(prepared: Prepared, verbose: bool) -> BuildReport:
    """`mirbench build` once it is prepared: a rerun with nothing left gets its report without
    Prefect; otherwise the flow runs on a Prefect server that starts while the text model loads."""
    from builder.run.tasks import finish_build, has_work, open_build

    settings = prepared.settings
    if not has_work(prepared):
        with user_errors():
            return finish_build(open_build(prepared))
    with prefect_session(settings, verbose, while_starting=partial(_load_while_prefect_starts, settings)):
        from flows.build import build_prepared

        with user_errors(), progress_bars():
            return build_prepared(prepared)


def _check_model(model: str | None, composer: str | None, renderer: str | None) -> None:
    if model and composer and renderer:
        fail(
            InputError(
                "--model is ambiguous with both --composer and --renderer: set composer.model and "
                "renderer.model in the config file (or MIRBENCH_COMPOSER__MODEL / MIRBENCH_RENDERER__MODEL)"
            )
        )


def _tester(tester: str | None, base_url: str | None, model: str | None) -> list[dict[str, Any]] | None:
    """`attack.testers` from the one tester the command line can name (None: none named)."""
    if not (tester or model):
        return None
    return [given(backend=tester, base_url=base_url, model=model) or {}]


@app.command()
def build(
    config: ConfigOption = None,
    artifacts: ArtifactsOption = None,
    database_url: DatabaseOption = None,
    taxonomy: TaxonomyOption = None,
    seeds: SeedsOption = None,
    relation: RelationOption = None,
    limit: LimitOption = None,
    relations_per_seed: RelationsPerSeedOption = None,
    composer: ComposerOption = None,
    base_url: BaseUrlOption = None,
    renderer: RendererOption = None,
    model: ModelOption = None,
    pool: PoolOption = None,
    max_iterations: MaxIterationsOption = None,
    runner: RunnerOption = None,
    workers: WorkersOption = None,
    dask_address: DaskAddressOption = None,
    tester: TesterOption = None,
    tester_base_url: TesterBaseUrlOption = None,
    tester_model: TesterModelOption = None,
    judge: JudgeOption = None,
    judge_base_url: JudgeBaseUrlOption = None,
    judge_model: JudgeModelOption = None,
    allow_failures: AllowFailuresOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Build benchmark items: seeds x relations -> composed, rendered, checked, queued for review.

    Reruns skip finished work, resume an interrupted build and retry failed items (up to
    max_attempts; `mirbench retry` reopens those that used them up). The funnel counts this
    run's candidates only; the exit code is 1 when any of them failed (see --allow-failures).
    """
    _check_model(model, composer, renderer)
    settings = command_settings(
        config,
        artifacts=artifacts,
        database_url=database_url,
        taxonomy=taxonomy,
        seeds=seeds,
        relations=relation,
        relations_per_seed=relations_per_seed,
        max_iterations=max_iterations,
        composer=given(backend=composer, base_url=base_url, model=model if composer else None),
        renderer=given(backend=renderer, model=model if renderer and not composer else None, pool=pool),
        runner=given(kind=runner, workers=workers, dask_address=dask_address),
        attack=given(
            testers=_tester(tester, tester_base_url, tester_model),
            judge=given(backend=judge, base_url=judge_base_url, model=judge_model),
        ),
    )
    show_tracebacks(verbose)
    # Every input is checked before Prefect starts: a refused build writes nothing.
    with user_errors():
        prepared = prepare(settings, limit)
    for line in prepared.scope:
        console.print(line)
    for note in prepared.notes:
        console.print(f"[yellow]note:[/] {note}")
    report = execute_build(prepared, verbose)
    print_report(report)
    end_of_build(report, allow_failures)


def print_report(report: BuildReport) -> None:
    """The funnel table and the figures under it."""
    table = make_table(f"Build {report.run_id}", "funnel", "items", right=("items",))
    for row in report.funnel:
        table.add_row(("  " * row.indent) + row.label, str(row.count), style="dim" if row.indent else None)
    console.print(table)
    for note in report.notes:
        console.print(f"[yellow]note:[/] {note}")
    stages = "  ".join(f"{name} {stats.seconds:.1f}s" for name, stats in report.stages.items())
    console.print(f"stage time: {stages}")
    console.print(
        f"cells with items queued by this run: {report.cells_queued}/{report.cells_total}  "
        f"stats: {report.stats_file}"
    )
    console.print(
        "store total (every run): " + ", ".join(f"{k} {v}" for k, v in sorted(report.store_total.items()))
    )
    for line in report.pictures.lines() if report.pictures else []:
        console.print(f"pictures: {line}", highlight=False)
    if report.attack is not None:
        print_attack(report.attack)


def end_of_build(report: BuildReport, allow_failures: bool) -> None:
    """The last lines of `mirbench build`: the most common failures of this run in full, the
    command that lists the rest, then the exit code this run earned."""
    if report.exhausted:
        console.print(
            f"[yellow]note:[/] {report.exhausted} failed candidate(s) of this build's pairs used up their "
            f"attempts and are not retried: fix the cause, then `mirbench retry` (see `{LIST_FAILED}`)"
        )
    if not report.failures:
        return
    print_failure_groups(report.failures[:TOP_REASONS], f"Most common failures of run {report.run_id}")
    rest = len(report.failures) - TOP_REASONS
    console.print(
        f"list {'the other ' + str(rest) + ' reason(s) and ' if rest > 0 else ''}every failed item: "
        f"`{LIST_FAILED}`; one item in full: `mirbench items show ID`"
    )
    line = f"{report.failed} of this run's candidate(s) failed ({summary(report.failures)})"
    if allow_failures:
        errors.print(f"warning: {line}; exit 0 (--allow-failures)", highlight=False, soft_wrap=True)
        return
    errors.print(
        f"[bold red]error:[/] {line}; fix the cause and run `mirbench build` again (failed items are "
        "retried), or pass --allow-failures to accept partial failure",
        highlight=False,
        soft_wrap=True,
    )
    raise typer.Exit(code=1)


@app.command()
def status(
    config: ConfigOption = None, artifacts: ArtifactsOption = None, database_url: DatabaseOption = None
) -> None:
    """Summarise the store: items by status (approved apart from queued) and what moves each on,
    the top failure reasons by stage, the review queue, recent runs and releases."""
    settings = command_settings(config, artifacts=artifacts, database_url=database_url)
    with existing_store(settings) as store:
        counts = exclusive_status_counts(store)
        reasons = status_reasons(settings, list(counts))
        table = make_table("Items", "status", "items", "what moves them on", right=("items",))
        for name, count in sorted(counts.items()):
            table.add_row(name, str(count), reasons.get(name, ""))
        console.print(table)
        failed = store.items_with_statuses([ItemStatus.FAILED])
        for why, count in failed_where_off(settings, failed).items():
            console.print(f"{count} failed item(s) kept failed: {why}")
        groups = failure_groups(failed)
        if groups:
            print_failure_groups(groups[: TOP_REASONS * 3], "Failed items: top reasons by stage")
            console.print(f"every failed item: `{LIST_FAILED}`")
        reviews = store.review_counts()
        console.print(
            "review queue: "
            + ", ".join(f"{state.value} {reviews.get(state.value, 0)}" for state in ReviewState)
        )
        for run in store.runs():
            if run.finished_at:
                state = "finished"
            elif run.superseded_by:
                state = f"interrupted; resumed by run {run.superseded_by}"
            else:
                state = "unfinished (rerun `mirbench build` to resume)"
            console.print(f"run {run.id}: {state}")
        for row in store.releases():
            console.print(f"release {row.version}: {row.items} items at {row.location}")


@app.command()
def serve(
    cron: Annotated[str, typer.Option(help="When to rebuild, as a cron expression (UTC).")] = "0 3 * * 1",
    name: Annotated[str, typer.Option(help="Deployment name shown in Prefect.")] = "scheduled",
    config: ConfigOption = None,
    limit: Annotated[
        int | None, typer.Option(help="Use at most N seeds per rebuild.", show_default=False)
    ] = None,
    taxonomy: TaxonomyOption = None,
) -> None:
    """Serve scheduled rebuilds: registers a deployment with Prefect and runs it on `--cron`.

    Needs a Prefect server (PREFECT_API_URL); runs until stopped. Settings come from this
    process's environment, `--config` and `--taxonomy`, read afresh at every run.
    """
    settings = command_settings(config, taxonomy=taxonomy)
    if not os.environ.get("PREFECT_API_URL"):
        fail(InputError("`mirbench serve` needs a Prefect server: set PREFECT_API_URL"))
    with prefect_session(settings, verbose=True):
        from flows.build import scheduled_build

        parameters = {
            "config": str(config.resolve()) if config else None,
            "limit": limit,
            "taxonomy": str(settings.taxonomy.resolve()),
        }
        scheduled_build.serve(name=name, cron=cron, parameters=parameters)
