"""`mirbench review`: the review queue from the command line (list, approve, reject), the web
app, reviewers, agreement statistics and the Label Studio round trip."""

from __future__ import annotations

import getpass
from functools import partial
from pathlib import Path
from typing import Annotated

import typer

from builder.cli.core import (
    ArtifactsOption,
    ConfigOption,
    DatabaseOption,
    TaxonomyOption,
    command_settings,
    existing_store,
    fail,
    open_store,
    user_errors,
)
from builder.cli.display import console, errors, make_table
from builder.core.errors import InputError
from builder.store import BULK_APPROVAL_REASON, ReviewState, Store

review_app = typer.Typer(
    help="Human review: list, approve, reject, the web app, reviewers, stats, Label Studio.",
    no_args_is_help=True,
)
app = typer.Typer()
app.add_typer(review_app, name="review")


@review_app.command("list")
def review_list(
    state: Annotated[
        ReviewState | None, typer.Option(help="Only this state. [default: pending]", show_default=False)
    ] = ReviewState.PENDING,
    limit: Annotated[int, typer.Option(min=1, help="Show at most N items.")] = 50,
    config: ConfigOption = None,
    artifacts: ArtifactsOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """List items in the review queue with their prompts."""
    with open_store(config, artifacts, database_url) as store:
        entries = store.reviews(state, limit)
    table = make_table(
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
        fail(InputError("give item ids or --all (not both)"))
    settings = command_settings(config, artifacts=artifacts, database_url=database_url)
    from builder.review.policy import Decision
    from builder.review.service import BulkResult, ReviewService

    who = reviewer or getpass.getuser()
    result = BulkResult()
    with existing_store(settings) as store, user_errors():
        service = ReviewService(store, settings.review)
        targets = store.pending_ids() if select_all else ids
        if select_all and decision == "approve":
            reason = BULK_APPROVAL_REASON  # release cards must say nobody looked at these
        if override:
            for item_id in targets:
                result.record(item_id, partial(service.finalize, item_id, who, Decision(decision), reason))
        else:
            result = service.vote_many(targets, who, Decision(decision), reason)
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
    settings = command_settings(config, artifacts=artifacts, database_url=database_url)
    from builder.review.service import ReviewService

    with Store(settings.resolved_database_url) as store, user_errors():
        token = ReviewService(store, settings.review).add_reviewer(name, admin)
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
    taxonomy: TaxonomyOption = None,
) -> None:
    """Serve the review web app (log in with a token from `mirbench review add-reviewer`)."""
    if not 0 < port < 65536:
        fail(InputError(f"--port must be between 1 and 65535 (got {port})"))
    if workers < 1:
        fail(InputError(f"--workers must be at least 1 (got {workers})"))
    settings = command_settings(config, artifacts=artifacts, database_url=database_url, taxonomy=taxonomy)
    if workers > 1 and settings.resolved_database_url.startswith("sqlite"):
        fail(InputError("--workers above 1 needs PostgreSQL (--database-url postgresql+psycopg://...)"))
    from builder.review.serving import serve

    console.print(f"review app on http://{host}:{port}/ (store: {settings.artifacts})")
    serve(settings, host, port, workers, str(config.resolve()) if config is not None else None)


@review_app.command("stats")
def review_stats(
    config: ConfigOption = None, artifacts: ArtifactsOption = None, database_url: DatabaseOption = None
) -> None:
    """Per-reviewer counts and speed, agreement (Cohen's kappa, Krippendorff's alpha), calibration."""
    settings = command_settings(config, artifacts=artifacts, database_url=database_url)
    from builder.review.stats import review_stats as compute

    with existing_store(settings) as store:
        report = compute(store)
    table = make_table(
        "Reviewers", "reviewer", "votes", "approved", "rejected", "median s/item", right=("votes",)
    )
    for row in report.reviewers:
        speed = f"{row.median_seconds:.1f}" if row.median_seconds is not None else "-"
        table.add_row(row.name, str(row.votes), str(row.approved), str(row.rejected), speed)
    console.print(table)
    pairs = make_table("Agreement (Cohen's kappa)", "reviewers", "shared items", "kappa")
    for pair in report.pairs:
        pairs.add_row(f"{pair.first} / {pair.second}", str(pair.items), _figure(pair.kappa))
    console.print(pairs)
    console.print(f"Krippendorff's alpha (nominal, all reviewers): {_figure(report.alpha)}")
    calibration = make_table(
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
    out: Annotated[
        Path,
        typer.Option(help="New folder for tasks.json and the labeling config (must not exist or be empty)."),
    ],
    format: Annotated[str, typer.Option(help="Export format: label-studio.")] = "label-studio",
    config: ConfigOption = None,
    artifacts: ArtifactsOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Export pending items as Label Studio tasks plus its labeling config."""
    if format != "label-studio":
        fail(InputError(f"unknown export format {format!r}: use label-studio"))
    settings = command_settings(config, artifacts=artifacts, database_url=database_url)
    from builder.core.outputs import check_new_folder
    from builder.review.labelstudio import export_tasks

    with user_errors():
        check_new_folder(out)
    with existing_store(settings) as store, user_errors():
        written = export_tasks(store, settings, out)
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
    settings = command_settings(config, artifacts=artifacts, database_url=database_url)
    from builder.review.labelstudio import import_annotations
    from builder.review.service import ReviewService

    with existing_store(settings) as store, user_errors():
        result = import_annotations(file, ReviewService(store, settings.review))
    console.print(f"imported {len(result.applied)} vote(s)")
    for item_id, why in result.refused[:20]:
        errors.print(f"refused {item_id}: {why}", highlight=False, markup=False, soft_wrap=True)
    if result.refused:
        raise typer.Exit(code=1)
