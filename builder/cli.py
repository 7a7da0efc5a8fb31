"""`mirbench`: build, review and release multi-image safety benchmarks."""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import partial
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from typer.core import TyperGroup

from builder import __version__, progress
from builder.attack import testers
from builder.attack.summary import AttackSummary
from builder.compose import composers
from builder.errors import InputError
from builder.judge import judges
from builder.render import renderers
from builder.settings import Settings, load_settings
from builder.store import BULK_APPROVAL_REASON, ReviewState, Store, open_engine

# Set by -v/--verbose (global or a command's) for the one command line being run.
_tracebacks: ContextVar[bool] = ContextVar("mirbench_tracebacks", default=False)


class _CleanErrors(TyperGroup):
    """Bad input ends as `error: ...` and exit 2; any other failure as one line and exit 1.
    Tracebacks only with -v/--verbose, for bug reports."""

    def invoke(self, ctx: typer.Context) -> Any:
        token = _tracebacks.set(False)
        try:
            return super().invoke(ctx)
        except InputError as error:
            _fail(error)
        except (typer.TyperException, typer.Exit, typer.Abort):
            raise
        except Exception as error:
            if _tracebacks.get():
                raise
            summary = next(iter(str(error).strip().splitlines()), "") or "(no message)"
            errors.print(
                f"[bold red]error:[/] unexpected {type(error).__name__}: {summary} "
                "(run with -v for the traceback)",
                highlight=False,
                markup=True,
                soft_wrap=True,
            )
            raise typer.Exit(code=1) from None
        finally:
            _tracebacks.reset(token)


def _show_tracebacks(verbose: bool) -> None:
    if verbose:
        _tracebacks.set(True)


app = typer.Typer(
    cls=_CleanErrors,
    help=__doc__,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
taxonomy_app = typer.Typer(
    help="Inspect and check the taxonomy (categories, relations).", no_args_is_help=True
)
seeds_app = typer.Typer(help="Check seed files.", no_args_is_help=True)
pool_app = typer.Typer(help="Image pools for the retrieval renderer.", no_args_is_help=True)
db_app = typer.Typer(help="The store's schema.", no_args_is_help=True)
answers_app = typer.Typer(
    help="Testers' answers from the attack loop (kept in the store, never released).", no_args_is_help=True
)
review_app = typer.Typer(
    help="Human review: list, approve, reject, the web app, reviewers, stats, Label Studio.",
    no_args_is_help=True,
)
app.add_typer(taxonomy_app, name="taxonomy")
app.add_typer(seeds_app, name="seeds")
app.add_typer(review_app, name="review")
app.add_typer(pool_app, name="pool")
app.add_typer(db_app, name="db")
app.add_typer(answers_app, name="answers")

# In a terminal rich fits tables to its width; piped into a log, wide lines read better than
# lines folded at rich's default of 80 columns.
_LOG_WIDTH = None if sys.stdout.isatty() else 200
console = Console(width=_LOG_WIDTH)
errors = Console(stderr=True, width=_LOG_WIDTH)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML config file (also MIRBENCH_CONFIG).", show_default=False),
]
ArtifactsOption = Annotated[
    Path | None,
    typer.Option(
        help="Run outputs folder (also MIRBENCH_ARTIFACTS). [default: artifacts]", show_default=False
    ),
]
DatabaseOption = Annotated[
    str | None,
    typer.Option(
        help="SQLAlchemy URL of the store (also MIRBENCH_DATABASE_URL), e.g. "
        "postgresql+psycopg://user:pass@host/db. [default: SQLite in the artifacts folder]",
        show_default=False,
    ),
]
TaxonomyOption = Annotated[
    Path | None,
    typer.Option(
        help="Taxonomy folder (categories.yaml + relations/). [default: the bundled one]", show_default=False
    ),
]


def _table(title: str, *columns: str, right: tuple[str, ...] = ()) -> Table:
    """A table whose long cells wrap instead of being cut off in narrow terminals."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold", justify="right" if column in right else "left")
    return table


def _fail(error: InputError) -> NoReturn:
    errors.print(f"[bold red]error:[/] {error}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(code=2)


@contextmanager
def _user_errors() -> Iterator[None]:
    try:
        yield
    except InputError as error:
        _fail(error)


def _given(**values: Any) -> dict[str, Any] | None:
    """The options the user actually gave, as a nested-settings override (None if none)."""
    given = {key: value for key, value in values.items() if value is not None}
    return given or None


def _settings(config: Path | None, **overrides: Any) -> Settings:
    with _user_errors():
        return load_settings(config, **overrides)


@contextmanager
def _prefect(settings: Settings, verbose: bool) -> Iterator[None]:
    """Prefect for one command: its settings (read at import, so set before the flows are
    imported) and, unless PREFECT_API_URL names a server, a private server that dies with this
    process. Prefect's own logs (and its tracebacks) show only with --verbose."""
    settings.artifacts.mkdir(parents=True, exist_ok=True)
    home = (settings.artifacts / ".prefect").resolve()
    os.environ.setdefault("PREFECT_HOME", str(home))
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO" if verbose else "CRITICAL")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if os.environ.get("PREFECT_API_URL"):
        yield
        return
    from builder.prefect_server import PrivatePrefectServer

    server = PrivatePrefectServer(Path(os.environ["PREFECT_HOME"]))
    with _user_errors():
        try:
            os.environ["PREFECT_API_URL"] = server.start()
        except RuntimeError as exc:
            raise InputError(f"{exc} (PREFECT_HOME {os.environ['PREFECT_HOME']})") from None
    try:
        yield
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        server.stop()


class _RichReporter:
    """One bar per stage; shards of the same stage add to its bar."""

    def __init__(self, display: Progress):
        self.display = display
        self.tasks: dict[str, Any] = {}

    def start(self, stage: str, total: int) -> Callable[[int], None]:
        if stage in self.tasks:
            task = self.tasks[stage]
            self.display.update(task, total=self.display.tasks[task].total + total)
        else:
            task = self.tasks[stage] = self.display.add_task(stage, total=total)
        return lambda n=1: self.display.advance(task, n)


@contextmanager
def _progress_bars() -> Iterator[None]:
    display = Progress(
        TextColumn("{task.description:>9}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    with display, progress.use_reporter(_RichReporter(display)):
        yield


@app.callback(invoke_without_command=True)
def main(
    version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Print a traceback when a command fails unexpectedly.")
    ] = False,
) -> None:
    _show_tracebacks(verbose)
    if version:
        console.print(f"mirbench {__version__}")
        raise typer.Exit()


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
    judge_base_url: Annotated[
        str | None,
        typer.Option(help="The judge's OpenAI-compatible server, ending in /v1.", show_default=False),
    ] = None,
    judge_model: Annotated[
        str | None, typer.Option(help="The judge's model name, as its server knows it.", show_default=False)
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show Prefect's logs, and a traceback on a crash.")
    ] = False,
) -> None:
    """Build benchmark items: seeds x relations -> composed, rendered, checked, queued for review.

    Reruns skip finished work, resume an interrupted build and retry failed items (up to
    max_attempts).
    """
    if model and composer and renderer:
        _fail(
            InputError(
                "--model is ambiguous with both --composer and --renderer: set composer.model and "
                "renderer.model in the config file (or MIRBENCH_COMPOSER__MODEL / MIRBENCH_RENDERER__MODEL)"
            )
        )
    settings = _settings(
        config,
        artifacts=artifacts,
        database_url=database_url,
        taxonomy=taxonomy,
        seeds=seeds,
        relations=relation,
        max_iterations=max_iterations,
        composer=_given(backend=composer, base_url=base_url, model=model if composer else None),
        renderer=_given(backend=renderer, model=model if renderer and not composer else None, pool=pool),
        runner=_given(kind=runner, workers=workers, dask_address=dask_address),
        attack=_given(
            testers=[_given(backend=tester, base_url=tester_base_url, model=tester_model)]
            if tester or tester_model
            else None,
            judge=_given(backend=judge, base_url=judge_base_url, model=judge_model),
        ),
    )
    _show_tracebacks(verbose)
    attack = settings.attack
    if attack.enabled and attack.judge.backend == "rules" and not attack.policy.accept_unknown:
        console.print(
            "[yellow]note:[/] the `rules` judge only recognises refusals, so the attack loop will accept "
            "nothing: choose --judge llm or harmbench, or set attack.policy.accept_unknown: true"
        )
    from builder.tasks import load_inputs

    # Every input is checked before Prefect starts: a refused build writes nothing.
    with _user_errors():
        load_inputs(settings, limit)
        if settings.renderer.backend == "retrieval":
            _check_pool(settings)
        open_engine(settings.resolved_database_url, folder_to_create=settings.artifacts).dispose()
    with _prefect(settings, verbose):
        from flows.build import build as run_build

        with _user_errors(), _progress_bars():
            report = run_build(settings=settings, limit=limit)
    table = _table(f"Build {report.run_id}", "funnel", "items", right=("items",))
    for row in report.funnel:
        table.add_row(("  " * row.indent) + row.label, str(row.count), style="dim" if row.indent else None)
    console.print(table)
    stages = "  ".join(f"{name} {stats.seconds:.1f}s" for name, stats in report.stages.items())
    console.print(f"stage time: {stages}")
    console.print(
        f"cells with queued items: {report.cells_queued}/{report.cells_total}  stats: {report.stats_file}"
    )
    for line in report.pictures.lines() if report.pictures else []:
        console.print(f"pictures: {line}", highlight=False)
    if report.attack is not None:
        _print_attack(report.attack)

    counts = {row.label: row.count for row in report.funnel if not row.indent}
    if counts["queued for review"] == 0 and counts["failed"] > 0:
        errors.print(
            f"[bold red]error:[/] nothing was queued and {counts['failed']} candidate(s) failed; "
            "see the reasons above, fix the backend and run `mirbench build` again (failed items "
            "are retried)",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(code=1)


def _print_attack(summary: AttackSummary) -> None:
    """Attack success per tester, acceptance and held-out testers apart, then per cell."""
    for held_out, title in ((False, "acceptance testers"), (True, "held-out testers")):
        rates = summary.table(held_out)
        if not rates:
            continue
        table = _table(
            f"Attack success, {title}",
            "tester",
            "attacked",
            "unsafe",
            "ASR",
            right=("attacked", "unsafe", "ASR"),
        )
        for rate in rates:
            table.add_row(rate.tester, str(rate.attacked), str(rate.unsafe), f"{rate.asr:.1%}")
        console.print(table)
        cells = _table(
            f"ASR by category x relation, {title}", "category", "relation", "tester", "ASR", right=("ASR",)
        )
        for rate in (rate for rate in summary.cells if rate.held_out is held_out):
            cells.add_row(
                str(rate.category), str(rate.relation), rate.tester, f"{rate.unsafe}/{rate.attacked}"
            )
        console.print(cells)
    rounds = summary.mean_rounds_to_acceptance
    console.print(
        f"accepted by the attack policy: {summary.accepted} of {summary.items_judged} judged"
        + (f"; mean rounds to acceptance {rounds:.2f}" if rounds is not None else "")
    )


@app.command()
def status(
    config: ConfigOption = None, artifacts: ArtifactsOption = None, database_url: DatabaseOption = None
) -> None:
    """Summarise the store: items by status, the review queue, recent runs and releases."""
    store = _open_store(config, artifacts, database_url)
    try:
        table = _table("Items", "status", "items", right=("items",))
        for name, count in sorted(store.status_counts().items()):
            table.add_row(name, str(count))
        console.print(table)
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
    finally:
        store.close()


@taxonomy_app.command("list")
def taxonomy_list(config: ConfigOption = None, taxonomy: TaxonomyOption = None) -> None:
    """List categories and relations."""
    settings = _settings(config, taxonomy=taxonomy)
    from builder.taxonomy import load_taxonomy

    with _user_errors():
        loaded = load_taxonomy(settings.taxonomy)
    categories = _table("Categories", "slug", "name", "published as")
    for category in loaded.categories.values():
        categories.add_row(category.slug, category.display_name, category.published_name)
    console.print(categories)
    relations = _table("Relations", "group", "slug", "name", "published as", "images", "templates")
    for relation in sorted(loaded.relations.values(), key=lambda r: (r.group, r.slug)):
        relations.add_row(
            relation.group,
            relation.slug,
            relation.display_name,
            relation.published_name,
            f"{relation.min_images}-{relation.max_images}",
            str(len(relation.offline.templates)),
        )
    console.print(relations)


@taxonomy_app.command("validate")
def taxonomy_validate(config: ConfigOption = None, taxonomy: TaxonomyOption = None) -> None:
    """Check every taxonomy file; report all problems with file:line."""
    settings = _settings(config, taxonomy=taxonomy)
    from builder.taxonomy import load_taxonomy

    with _user_errors():
        loaded = load_taxonomy(settings.taxonomy)
    console.print(
        f"taxonomy OK: {len(loaded.categories)} categories, {len(loaded.relations)} "
        f"relations ({settings.taxonomy})"
    )


@seeds_app.command("validate")
def seeds_validate(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Seed files or folders. [default: the configured seeds]", show_default=False),
    ] = None,
    config: ConfigOption = None,
    taxonomy: TaxonomyOption = None,
) -> None:
    """Check seed files (JSONL or CSV); report all problems with file:line."""
    settings = _settings(config, taxonomy=taxonomy, seeds=paths)
    from builder.seeds import load_seeds
    from builder.taxonomy import load_taxonomy

    with _user_errors():
        loaded = load_seeds(settings.seeds, load_taxonomy(settings.taxonomy), settings.limits)
    per_category: dict[str, int] = {}
    for seed in loaded:
        per_category[seed.category] = per_category.get(seed.category, 0) + 1
    console.print(
        f"seeds OK: {len(loaded)} seeds; "
        + ", ".join(f"{name} {count}" for name, count in sorted(per_category.items()))
    )
    unlicensed = sum(1 for seed in loaded if seed.license == "unspecified")
    if unlicensed:
        console.print(f"[yellow]note:[/] {unlicensed} seed(s) have no license field")


def _open_store(
    config: Path | None, artifacts: Path | None, database_url: str | None, *, migrate: bool = True
) -> Store:
    return _existing_store(_settings(config, artifacts=artifacts, database_url=database_url), migrate=migrate)


def _existing_store(settings: Settings, *, migrate: bool = True) -> Store:
    """The store as it is: reading commands never create one (nor its folder)."""
    with _user_errors():
        return Store(settings.resolved_database_url, must_exist=True, migrate=migrate)


def _check_pool(settings: Settings) -> None:
    """The configured image pool (none: the built-in one) exists and its captions parse (images
    are screened at indexing)."""
    from builder.pool import pool_records

    renderer = settings.renderer
    pool_records(
        renderer.pool, renderer.pool_image_column, renderer.pool_text_column, settings.limits.max_record_chars
    )


@review_app.command("list")
def review_list(
    state: Annotated[
        ReviewState | None, typer.Option(help="Only this state. [default: pending]", show_default=False)
    ] = ReviewState.PENDING,
    limit: Annotated[int, typer.Option(help="Show at most N items.")] = 50,
    config: ConfigOption = None,
    artifacts: ArtifactsOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """List items in the review queue with their prompts."""
    store = _open_store(config, artifacts, database_url)
    try:
        entries = store.reviews(state, limit)
    finally:
        store.close()
    table = _table(
        f"Review queue ({state.value if state else 'all'})",
        "id",
        "category",
        "relation",
        "round",
        "images",
        "prompt",
        "state",
    )
    for entry in entries:
        item = entry.item
        table.add_row(
            item.id,
            item.category,
            item.relation,
            str(item.iteration),
            str(len(item.slots)),
            item.revised_prompt,
            entry.state.value,
        )
    console.print(table)


ReviewerOption = Annotated[
    str | None, typer.Option(help="Who decides. [default: your user name]", show_default=False)
]
OverrideOption = Annotated[
    bool,
    typer.Option(
        "--override", help="Decide as an admin: settles disputed items and changes decided ones (--reason)."
    ),
]


def _decide(
    ids: list[str],
    select_all: bool,
    decision: str,
    reviewer: str | None,
    reason: str | None,
    override: bool,
    config: Path | None,
    artifacts: Path | None,
    database_url: str | None,
) -> None:
    """Decisions go through the same rules as the web app's (builder.review.service)."""
    if bool(ids) == select_all:
        _fail(InputError("give item ids or --all (not both)"))
    settings = _settings(config, artifacts=artifacts, database_url=database_url)
    from builder.review.policy import Decision
    from builder.review.service import BulkResult, ReviewService

    store = _existing_store(settings)
    service = ReviewService(store, settings.review)
    who = reviewer or getpass.getuser()
    result = BulkResult()
    try:
        with _user_errors():
            targets = store.pending_ids() if select_all else ids
            if select_all and decision == "approve":
                reason = BULK_APPROVAL_REASON  # release cards must say nobody looked at these
            if override:
                for item_id in targets:
                    result.record(
                        item_id, partial(service.finalize, item_id, who, Decision(decision), reason)
                    )
            else:
                result = service.vote_many(targets, who, Decision(decision), reason)
    finally:
        store.close()
    console.print(f"{decision}: {len(result.applied)} vote(s) recorded")
    if result.refused:
        for _, why in result.refused[:20]:
            errors.print(f"refused: {why}", highlight=False, markup=False, soft_wrap=True)
        if len(result.refused) > 20:
            errors.print(f"... and {len(result.refused) - 20} more refused", highlight=False)
        raise typer.Exit(code=1)


@review_app.command("approve")
def review_approve(
    ids: Annotated[list[str] | None, typer.Argument(help="Item ids to approve.", show_default=False)] = None,
    select_all: Annotated[bool, typer.Option("--all", help="Approve every pending item.")] = False,
    reviewer: ReviewerOption = None,
    reason: Annotated[str | None, typer.Option(help="Why (needed with --override).")] = None,
    override: OverrideOption = False,
    config: ConfigOption = None,
    artifacts: ArtifactsOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Vote to approve queued items; with `review.votes_required` votes they are approved.

    An item is approved only if no other round of its (seed, relation) pair is approved or
    newer. Exit code 1 lists what was refused.
    """
    _decide(ids or [], select_all, "approve", reviewer, reason, override, config, artifacts, database_url)


@review_app.command("reject")
def review_reject(
    ids: Annotated[list[str], typer.Argument(help="Item ids to reject.")],
    reason: Annotated[str, typer.Option(help="Why; fed back to the composer in the next round.")],
    reviewer: ReviewerOption = None,
    override: OverrideOption = False,
    config: ConfigOption = None,
    artifacts: ArtifactsOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Vote to reject queued items; a rejected item is refined by the next `mirbench build`."""
    _decide(ids, False, "reject", reviewer, reason, override, config, artifacts, database_url)


@review_app.command("add-reviewer")
def review_add_reviewer(
    name: Annotated[str, typer.Argument(help="The reviewer's name, as shown in decisions.")],
    admin: Annotated[bool, typer.Option("--admin", help="May adjudicate and override decisions.")] = False,
    config: ConfigOption = None,
    artifacts: ArtifactsOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Register a reviewer and print their login token (shown once; only its hash is stored)."""
    settings = _settings(config, artifacts=artifacts, database_url=database_url)
    from builder.review.service import ReviewService

    store = Store(settings.resolved_database_url)
    try:
        with _user_errors():
            token = ReviewService(store, settings.review).add_reviewer(name, admin)
    finally:
        store.close()
    console.print(f"reviewer {name}{' (admin)' if admin else ''} added; login token (shown once):")
    print(token)


@review_app.command("serve")
def review_serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8765,
    workers: Annotated[int, typer.Option(help="Server processes (use the cores; needs PostgreSQL).")] = 1,
    config: ConfigOption = None,
    artifacts: ArtifactsOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Serve the review web app (log in with a token from `mirbench review add-reviewer`)."""
    settings = _settings(config, artifacts=artifacts, database_url=database_url)
    import uvicorn

    console.print(f"review app on http://{host}:{port}/ (store: {settings.artifacts})")
    if workers == 1:
        from builder.review.app import create_app

        uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")
        return
    # worker processes build the app themselves, from the environment
    os.environ["MIRBENCH_ARTIFACTS"] = str(settings.artifacts)
    os.environ["MIRBENCH_DATABASE_URL"] = settings.resolved_database_url
    if config is not None:
        os.environ["MIRBENCH_CONFIG"] = str(config.resolve())
    uvicorn.run(
        "builder.review.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
    )


@review_app.command("stats")
def review_stats(
    config: ConfigOption = None, artifacts: ArtifactsOption = None, database_url: DatabaseOption = None
) -> None:
    """Per-reviewer counts and speed, agreement (Cohen's kappa, Krippendorff's alpha), calibration."""
    settings = _settings(config, artifacts=artifacts, database_url=database_url)
    from builder.review.stats import review_stats as compute

    store = _existing_store(settings)
    try:
        report = compute(store)
    finally:
        store.close()
    table = _table(
        "Reviewers", "reviewer", "votes", "approved", "rejected", "median s/item", right=("votes",)
    )
    for row in report.reviewers:
        speed = f"{row.median_seconds:.1f}" if row.median_seconds is not None else "-"
        table.add_row(row.name, str(row.votes), str(row.approved), str(row.rejected), speed)
    console.print(table)
    pairs = _table("Agreement (Cohen's kappa)", "reviewers", "shared items", "kappa")
    for pair in report.pairs:
        pairs.add_row(f"{pair.first} / {pair.second}", str(pair.items), _figure(pair.kappa))
    console.print(pairs)
    console.print(f"Krippendorff's alpha (nominal, all reviewers): {_figure(report.alpha)}")
    calibration = _table(
        "Calibration: automatic verdicts vs people",
        "verdict",
        "passed+approved",
        "passed+rejected",
        "failed+approved",
        "failed+rejected",
    )
    for row in report.calibration:
        calibration.add_row(
            row.verdict,
            str(row.passed_approved),
            str(row.passed_rejected),
            str(row.failed_approved),
            str(row.failed_rejected),
        )
    console.print(calibration)


def _figure(value: float | None) -> str:
    return f"{value:.3f}" if value is not None else "n/a (too few shared votes)"


@review_app.command("export")
def review_export(
    out: Annotated[Path, typer.Option(help="Folder to write tasks.json and the labeling config into.")],
    format: Annotated[str, typer.Option(help="Export format: label-studio.")] = "label-studio",
    config: ConfigOption = None,
    artifacts: ArtifactsOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Export pending items as Label Studio tasks plus its labeling config."""
    if format != "label-studio":
        _fail(InputError(f"unknown export format {format!r}: use label-studio"))
    settings = _settings(config, artifacts=artifacts, database_url=database_url)
    from builder.review.labelstudio import export_tasks

    store = _existing_store(settings)
    try:
        with _user_errors():
            written = export_tasks(store, settings, out)
    finally:
        store.close()
    console.print(
        f"wrote {written.tasks} task(s) to {written.tasks_file} and the config to {written.config_file}"
    )


@review_app.command("import")
def review_import(
    file: Annotated[Path, typer.Argument(help="A Label Studio JSON export.")],
    config: ConfigOption = None,
    artifacts: ArtifactsOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Read a Label Studio JSON export back as votes by the named annotators, under the same rules."""
    settings = _settings(config, artifacts=artifacts, database_url=database_url)
    from builder.review.labelstudio import import_annotations
    from builder.review.service import ReviewService

    store = _existing_store(settings)
    try:
        with _user_errors():
            result = import_annotations(file, ReviewService(store, settings.review))
    finally:
        store.close()
    console.print(f"imported {len(result.applied)} vote(s)")
    for item_id, why in result.refused[:20]:
        errors.print(f"refused {item_id}: {why}", highlight=False, markup=False, soft_wrap=True)
    if result.refused:
        raise typer.Exit(code=1)


@pool_app.command("index")
def pool_index(
    pool: Annotated[
        Path | None,
        typer.Argument(
            help="Image pool: a folder with captions.jsonl/.csv, or a saved dataset. "
            "[default: the built-in picture pool]",
            show_default=False,
        ),
    ] = None,
    text_column: Annotated[str, typer.Option(help="Caption column (datasets).")] = "text",
    image_column: Annotated[str, typer.Option(help="Image column (datasets).")] = "image",
    config: ConfigOption = None,
    artifacts: ArtifactsOption = None,
) -> None:
    """Index an image pool for the retrieval renderer (caption embeddings in faiss). A build
    indexes its pool by itself when needed; the built-in pool is indexed once per machine.

    Unreadable files, unsupported modes, huge images and decompression bombs are skipped and listed.
    """
    settings = _settings(
        config,
        artifacts=artifacts,
        renderer={
            "backend": "retrieval",
            "pool": pool,
            "pool_text_column": text_column,
            "pool_image_column": image_column,
        },
    )
    from builder.embeddings import TextEmbedder
    from builder.render.retrieval import index_pool

    with _user_errors():
        _check_pool(settings)
    with _user_errors(), _progress_bars():
        report = index_pool(
            settings.renderer,
            settings.artifacts,
            TextEmbedder(
                settings.dedup.text_model, settings.dedup.text_backend, settings.artifacts / "models"
            ),
            settings.limits.max_record_chars,
        )
    console.print(f"indexed {report.indexed} image(s) of {report.pool} into {report.index_dir}")
    if report.skipped:
        table = _table(f"Skipped ({len(report.skipped)})", "image", "reason")
        for skipped in report.skipped:
            table.add_row(skipped.id, skipped.reason)
        console.print(table)


@db_app.command("upgrade")
def db_upgrade(
    config: ConfigOption = None, artifacts: ArtifactsOption = None, database_url: DatabaseOption = None
) -> None:
    """Upgrade the store's schema to this version of mirbench (every command also does it on
    first use)."""
    from builder import migrations

    store = _open_store(config, artifacts, database_url, migrate=False)
    try:
        before, head = migrations.revisions(store.engine)
        changed = migrations.upgrade(store.engine)
    finally:
        store.close()
    console.print(
        f"store upgraded from {before or 'an unversioned schema'} to {head}"
        if changed
        else f"store is at {head}: nothing to do"
    )


@answers_app.command("purge")
def answers_purge(
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    config: ConfigOption = None,
    artifacts: ArtifactsOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Delete every stored tester answer. Judgements (classes, scores) stay on the items, so
    reports keep their numbers; a later build asks the testers again where it needs answers."""
    if not yes and not typer.confirm("Delete every stored tester answer?"):
        raise typer.Exit(code=1)
    store = _open_store(config, artifacts, database_url)
    try:
        deleted = store.purge_answers()
    finally:
        store.close()
    console.print(f"deleted {deleted} answer(s)")


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
    settings = _settings(config)
    if not os.environ.get("PREFECT_API_URL"):
        _fail(InputError("`mirbench serve` needs a Prefect server: set PREFECT_API_URL"))
    with _prefect(settings, verbose=True):
        from flows.build import scheduled_build

        parameters = {"config": str(config.resolve()) if config else None, "limit": limit}
        scheduled_build.serve(name=name, cron=cron, parameters=parameters)


@app.command()
def release(
    version: Annotated[str, typer.Option(help="Release version, X.Y.Z.")],
    out: Annotated[Path, typer.Option(help="Folder to write; must not exist or be empty.")],
    layout: Annotated[
        list[str] | None,
        typer.Option(
            help="Also write another layout: `mir` = MIR-SafetyBench's folders "
            "(<Category>/<Relation>_final.json + images) under OUT/mir. Repeatable.",
            show_default=False,
        ),
    ] = None,
    changelog_from: Annotated[
        str | None,
        typer.Option(
            help="Write the changelog against the latest vX.Y.Z tag of this Hub repo (ORG/NAME). "
            "[default: the previous local release]",
            show_default=False,
        ),
    ] = None,
    config: ConfigOption = None,
    artifacts: ArtifactsOption = None,
    database_url: DatabaseOption = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show Prefect's logs, and a traceback on a crash.")
    ] = False,
) -> None:
    """Export approved items as a versioned local release (Parquet + manifest + card + changelog).

    A version has one content: rerunning after an interrupted release (same --out) completes or
    verifies it; another --out for a released version is refused.
    """
    unknown = sorted(set(layout or []) - {"mir"})
    if unknown:
        _fail(InputError(f"unknown --layout {', '.join(unknown)}; known: mir"))
    _show_tracebacks(verbose)
    settings = _settings(config, artifacts=artifacts, database_url=database_url)
    from builder.release import check_release

    store = _existing_store(settings)
    try:
        started = {row.version: row.location for row in store.releases()}
        started |= {row.version: row.location for row in store.release_intents()}
        approved = store.review_counts().get(ReviewState.APPROVED.value, 0)
    finally:
        store.close()
    with _user_errors():
        check_release(version, out, started, approved)  # before Prefect starts: a refusal writes nothing
    layouts = ["hf", *sorted(set(layout or []))]
    with _prefect(settings, verbose):
        from flows.release import release_flow

        with _user_errors(), _progress_bars():
            result = release_flow(
                settings=settings, version=version, out=out, layouts=layouts, changelog_from=changelog_from
            )
    state = "already released, verified" if result.already_released else "written"
    console.print(
        f"release {result.version} ({state}): {result.items} items -> {result.location} "
        f"(manifest sha256 {result.manifest_sha256[:12]})"
    )


@app.command()
def publish(
    version: Annotated[str, typer.Argument(help="A recorded release version, X.Y.Z.")],
    repo: Annotated[str, typer.Option(help="Hub dataset repo, ORG/NAME.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Write what would be uploaded to --dry-run-out; upload nothing.")
    ] = False,
    dry_run_out: Annotated[
        Path | None,
        typer.Option(
            help="Dry-run folder. [default: ARTIFACTS/publish/ORG--NAME/vVERSION]", show_default=False
        ),
    ] = None,
    config: ConfigOption = None,
    artifacts: ArtifactsOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Publish a release to the Hugging Face Hub: one commit, tagged vVERSION, private and gated.

    The token comes from HF_TOKEN or `hf auth login`. A tag with other content is refused; the same
    content again is a no-op; a rerun resumes an interrupted upload. Refuses unapproved items,
    images that do not decode and releases without release.license.
    """
    from builder import publish as hub

    settings = _settings(config, artifacts=artifacts, database_url=database_url)
    target = dry_run_out or settings.artifacts / "publish" / repo.replace("/", "--") / f"v{version}"
    store = _existing_store(settings)
    try:
        with _user_errors(), _progress_bars():
            result = hub.publish_version(store, settings, version, repo, target if dry_run else None)
    except hub.PublishError as error:
        errors.print(f"[bold red]error:[/] {error}; rerun to resume", highlight=False, soft_wrap=True)
        raise typer.Exit(code=1) from None
    finally:
        store.close()
    if result.dry_run_folder is not None:
        console.print(f"dry run: {result.files} file(s) for {repo} tag {result.tag} written to {target}")
        return
    console.print(
        f"{result.action}: {repo} {result.tag} ({result.files} files, commit {result.commit or '-'})"
    )
    if result.gated is None and result.action != "already published":
        errors.print("warning: the Hub did not accept gated access; set it by hand in the repo settings")


def run() -> None:
    """Console-script entry point."""
    sys.exit(app())
