"""`mirbench build`, `status` and `serve`: run the pipeline once, summarise the store, serve
scheduled rebuilds."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer

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
from builder.core.registry import BackendSettings, Registry
from builder.run.failures import failure_groups, summary
from builder.run.report import BuildReport
from builder.run.scope import exclusive_status_counts
from builder.run.status_reasons import failed_where_off, status_reasons
from builder.stages.attack import testers
from builder.stages.compose import composers
from builder.stages.filters import filters
from builder.stages.judge import judges
from builder.stages.render import renderers
from builder.store import ReviewState, open_engine

app = typer.Typer()


def preflight(settings: Settings) -> list[str]:
    """Every configured backend's own checks (`Backend.preflight`), each backend class once;
    the notes they return."""
    chosen: list[tuple[Registry[Any], BackendSettings]] = [
        (composers, settings.composer),
        (renderers, settings.renderer),
        *((filters, entry) for entry in settings.filters),
    ]
    if settings.attack.enabled:
        chosen += [(testers, entry) for entry in settings.attack.testers]
        chosen.append((judges, settings.attack.judge))
    backends = {registry.get(getattr(entry, registry.key)): None for registry, entry in chosen}
    return [note for backend in backends for note in backend.preflight(settings)]


def _prepare(settings: Settings) -> None:
    """What a build loads while Prefect's server starts: the text model, then the flows (and
    Prefect with them)."""
    from builder.run.tasks import warm_up

    warm_up(settings)
    import flows.build  # noqa: F401


def execute_build(settings: Settings, limit: int | None, verbose: bool) -> BuildReport:
    """`mirbench build` once its inputs are checked: a rerun with nothing left gets its report
    without Prefect; otherwise the flow runs on a Prefect server that starts while the text
    model loads."""
    from builder.run.tasks import finish_build, has_work, open_build

    if not has_work(settings, limit):
        with user_errors():
            return finish_build(open_build(settings, limit))
    with prefect_session(settings, verbose, while_starting=partial(_prepare, settings)):
        from flows.build import build as run_build

        with user_errors(), progress_bars():
            return run_build(settings=settings, limit=limit)


@app.command()
def build(
    config: ConfigOption = None,
    artifacts: ArtifactsOption = None,
    database_url: DatabaseOption = None,
    taxonomy: TaxonomyOption = None,
    seeds: Annotated[
        list[Path] | None,
        typer.Option(
            "--seeds",
            help="Seed file or folder; repeat for several. [default: the bundled seeds]",
            show_default=False,
        ),
    ] = None,
    relation: Annotated[
        list[str] | None,
        typer.Option(
            "--relation",
            "-r",
            help="Build only this relation (slug); repeat for several.",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            help="Use at most N seeds, spread over the categories (smoke runs).", show_default=False
        ),
    ] = None,
    relations_per_seed: Annotated[
        int | None,
        typer.Option(
            help="Build each seed against N relations, dealt in turn within its category (every "
            "category spreads over all relations). [default: every relation]",
            show_default=False,
        ),
    ] = None,
    composer: Annotated[
        str | None,
        typer.Option(
            help=f"Composer backend: {composers.describe()}. [default: offline]", show_default=False
        ),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            help="OpenAI-compatible server URL, ending in /v1 (openai composer).", show_default=False
        ),
    ] = None,
    renderer: Annotated[
        str | None,
        typer.Option(
            help=f"Renderer backend: {renderers.describe()}. "
            "[default: retrieval; typographic without the picture pool]",
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="Model for the backend chosen with --composer (server model name) or --renderer "
            "(diffusers model id or local folder).",
            show_default=False,
        ),
    ] = None,
    pool: Annotated[
        Path | None,
        typer.Option(help="Image pool folder or saved dataset (retrieval renderer).", show_default=False),
    ] = None,
    max_iterations: Annotated[
        int | None,
        typer.Option(
            help="Rounds per (seed, relation) pair before giving up. [default: 3]", show_default=False
        ),
    ] = None,
    runner: Annotated[
        str | None,
        typer.Option(
            help="Where shards run: thread (this process) or dask (worker processes; needs "
            "PostgreSQL). [default: thread]",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Threads or local Dask worker processes. [default: 2]", show_default=False),
    ] = None,
    dask_address: Annotated[
        str | None,
        typer.Option(
            help="An existing Dask scheduler, tcp://HOST:8786 (instead of a local cluster).",
            show_default=False,
        ),
    ] = None,
    tester: Annotated[
        str | None,
        typer.Option(
            help=f"Attack every candidate with a tester model: {testers.describe()} (more testers, "
            "held-out ones: attack.testers in the config file). [default: none, the loop is off]",
            show_default=False,
        ),
    ] = None,
    tester_base_url: Annotated[
        str | None,
        typer.Option(
            help="The tester's OpenAI-compatible vision chat server, ending in /v1.", show_default=False
        ),
    ] = None,
    tester_model: Annotated[
        str | None, typer.Option(help="The tester's model name, as its server knows it.", show_default=False)
    ] = None,
    judge: Annotated[
        str | None,
        typer.Option(
            help=f"Judge of the testers' answers: {judges.describe()}. [default: rules]", show_default=False
        ),
    ] = None,
    judge_base_url: JudgeBaseUrlOption = None,
    judge_model: JudgeModelOption = None,
    allow_failures: Annotated[
        bool,
        typer.Option(
            "--allow-failures",
            help="Exit 0 even when some of this run's candidates failed (schedules that accept "
            "partial failure); the failures are still listed.",
        ),
    ] = False,
    verbose: VerboseOption = False,
) -> None:
    """Build benchmark items: seeds x relations -> composed, rendered, checked, queued for review.

    Reruns skip finished work, resume an interrupted build and retry failed items (up to
    max_attempts; `mirbench retry` reopens those that used them up). The funnel counts this
    run's candidates only; the exit code is 1 when any of them failed (see --allow-failures).
    """
    if model and composer and renderer:
        fail(
            InputError(
                "--model is ambiguous with both --composer and --renderer: set composer.model and "
                "renderer.model in the config file (or MIRBENCH_COMPOSER__MODEL / MIRBENCH_RENDERER__MODEL)"
            )
        )
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
            testers=[given(backend=tester, base_url=tester_base_url, model=tester_model)]
            if tester or tester_model
            else None,
            judge=given(backend=judge, base_url=judge_base_url, model=judge_model),
        ),
    )
    show_tracebacks(verbose)
    from builder.run.tasks import load_inputs

    # Every input is checked before Prefect starts: a refused build writes nothing.
    with user_errors():
        _, sample, relations = load_inputs(settings, limit)
        if limit is not None:  # a demo or smoke run: say it is a sample of the seed set
            total = len(load_inputs(settings, None)[1])
            console.print(f"building {len(sample)} of {total} seeds (--limit), spread over the categories")
        if settings.relations_per_seed is not None:
            dealt = min(settings.relations_per_seed, len(relations))
            console.print(
                f"each seed against {dealt} of {len(relations)} relations (--relations-per-seed), "
                "dealt in turn within its category"
            )
        for note in preflight(settings):
            console.print(f"[yellow]note:[/] {note}")
        open_engine(settings.resolved_database_url, folder_to_create=settings.artifacts).dispose()
    report = execute_build(settings, limit, verbose)
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
    end_of_build(report, allow_failures)


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
) -> None:
    """Serve scheduled rebuilds: registers a deployment with Prefect and runs it on `--cron`.

    Needs a Prefect server (PREFECT_API_URL); runs until stopped. Settings come from this
    process's environment and `--config`, read afresh at every run.
    """
    settings = command_settings(config)
    if not os.environ.get("PREFECT_API_URL"):
        fail(InputError("`mirbench serve` needs a Prefect server: set PREFECT_API_URL"))
    with prefect_session(settings, verbose=True):
        from flows.build import scheduled_build

        parameters = {"config": str(config.resolve()) if config else None, "limit": limit}
        scheduled_build.serve(name=name, cron=cron, parameters=parameters)
