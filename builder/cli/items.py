"""`mirbench items list|show` and `mirbench retry`: every failure findable, and retried on purpose.
Model output and failure messages are shown as text, never read as rich markup."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from builder.cli.core import (
    ArtifactsOption,
    ConfigOption,
    DatabaseOption,
    command_settings,
    existing_store,
    user_errors,
)
from builder.cli.display import LIST_FAILED, console, make_table
from builder.core.errors import InputError
from builder.core.items import Item, ItemStatus
from builder.review.answers import answers_of
from builder.run.failures import attempts, current_failure, exhausted
from builder.run.scope import exclusive_status
from builder.stages import pipeline
from builder.store import Store

items_app = typer.Typer(
    help="Items in the store: list them with their failures, show one.", no_args_is_help=True
)
app = typer.Typer()
app.add_typer(items_app, name="items")
STATUSES = [*(status.value for status in ItemStatus), "approved"]


def _matching(
    store: Store, status: str | None, stage: str | None, reason: str | None, relation: str | None
) -> tuple[list[Item], dict[str, str]]:
    if status is not None and status not in STATUSES:
        raise InputError(f"unknown --status {status!r}; known: {', '.join(STATUSES)}")
    wanted = (
        [ItemStatus.QUEUED] if status == "approved" else [ItemStatus(status)] if status else list(ItemStatus)
    )
    items = store.items_with_statuses(wanted)
    states = store.review_states([item.id for item in items])
    found = []
    for item in items:
        verdict = current_failure(item) or (item.rejection if item.status is not ItemStatus.QUEUED else None)
        if (
            (status is None or exclusive_status(item, states.get(item.id)) == status)
            and (relation is None or item.relation == relation)
            and (stage is None or (verdict is not None and verdict.stage == stage))
            and (reason is None or (verdict is not None and verdict.reason == reason))
        ):
            found.append(item)
    return found, states


StatusOption = Annotated[
    str | None, typer.Option("--status", help=f"Only this status: {', '.join(STATUSES)}.", show_default=False)
]
StageOption = Annotated[
    str | None,
    typer.Option(
        "--stage",
        help="Only items failed or rejected at this stage (compose, attack, ...).",
        show_default=False,
    ),
]
ReasonOption = Annotated[
    str | None,
    typer.Option(
        "--reason",
        help="Only items failed or rejected for this reason (connection, ...).",
        show_default=False,
    ),
]


@items_app.command("list")
def items_list(
    status: StatusOption = None,
    stage: StageOption = None,
    reason: ReasonOption = None,
    relation: Annotated[
        str | None, typer.Option("--relation", "-r", help="Only this relation.", show_default=False)
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most N items.")] = 100,
    config: ConfigOption = None,
    artifacts: ArtifactsOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """List items with their status, attempts and why they failed or were rejected."""
    settings = command_settings(config, artifacts=artifacts, database_url=database_url)
    with existing_store(settings) as store, user_errors():
        found, states = _matching(store, status, stage, reason, relation)
    table = make_table(
        f"Items ({len(found)}{f', first {limit}' if len(found) > limit else ''})",
        "id", "category", "relation", "round", "status", "attempts", "stage: reason", "message",
    )  # fmt: skip
    for item in found[:limit]:
        verdict = (
            item.rejection
            if item.status in (ItemStatus.FAILED, ItemStatus.REJECTED, ItemStatus.REFUSED)
            else None
        )
        state = exclusive_status(item, states.get(item.id))
        if exhausted(item, settings.max_attempts):
            state += " (attempts used up)"
        table.add_row(
            item.id,
            item.category,
            item.relation,
            str(item.iteration),
            state,
            str(item.attempts),
            Text(f"{verdict.name}: {verdict.reason}" if verdict else ""),
            Text(verdict.detail if verdict else ""),
        )
    console.print(table)


@items_app.command("show")
def items_show(
    item_id: Annotated[str, typer.Argument(help="The item's id (as `items list` shows it).")],
    config: ConfigOption = None,
    artifacts: ArtifactsOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Everything about one item: slots, verdicts, every failed attempt (backend, host, message),
    provenance, and the testers' answers with the judge's class and rationale unless purged."""
    settings = command_settings(config, artifacts=artifacts, database_url=database_url)
    with existing_store(settings) as store:
        with user_errors():
            (item,) = store.get_items([item_id])
        state = store.review_states([item.id]).get(item.id)
        runs = store.runs_of([item.id]).get(item.id, [])
        answers = answers_of(store, item)
    print_ = console.print
    print_(
        f"[bold]{item.id}[/]  {item.category} / {item.relation}  round {item.iteration}  seed {item.seed_id}"
    )
    print_(f"status: {exclusive_status(item, state)}" + (f" (review: {state})" if state else ""))
    print_(f"attempts: {item.attempts} of max_attempts {settings.max_attempts}", highlight=False)
    print_(f"prompt: {item.revised_prompt}", markup=False, highlight=False)
    print_(f"original question: {item.original_question}", markup=False, highlight=False)
    slots = make_table("Slots", "#", "role", "description", "keywords", "image sha256")
    for number, slot in enumerate(item.slots, start=1):
        slots.add_row(
            str(number), slot.role, Text(slot.description), Text(", ".join(slot.keywords)), slot.sha256 or ""
        )
    print_(slots)
    verdicts = make_table("Verdicts", "check", "passed", "reason", "detail")
    for verdict in item.verdicts:
        verdicts.add_row(
            verdict.label, "yes" if verdict.passed else "no", verdict.reason, Text(verdict.detail)
        )
    print_(verdicts)
    for number, failure in enumerate(attempts(item), start=1):
        print_(
            f"failed attempt {number}: {failure.stage}: {failure.reason}: {failure.detail}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    if item.feedback:
        print_("feedback this round was written against: " + "; ".join(item.feedback), markup=False)
    models = make_table("Models that touched it", "role", "name", "backend", "model", "host", "held out")
    for use in item.provenance.models:
        held = "" if use.held_out is None else "yes" if use.held_out else "no"
        models.add_row(use.role, use.name, use.backend, use.model or "", use.host or "", held)
    print_(models)
    print_(f"runs: {', '.join(runs) or item.provenance.run_id}  config hash: {item.provenance.config_hash}")
    if item.judgements:
        print_("[yellow]Content warning:[/] tester answers to a harmful request follow.")
        for answer in answers:
            print_(
                f"--- {answer.tester}{' (held out)' if answer.held_out else ''}: "
                f"{answer.answer_class} (judge {answer.judge})",
                markup=False,
            )
            print_(f"judge's rationale: {answer.rationale or '(purged)'}", markup=False, highlight=False)
            print_(
                answer.text if answer.text is not None else "(answer purged)", markup=False, highlight=False
            )


@app.command()
def retry(
    ids: Annotated[list[str] | None, typer.Argument(help="Item ids to reopen.", show_default=False)] = None,
    stage: StageOption = None,
    reason: ReasonOption = None,
    config: ConfigOption = None,
    artifacts: ArtifactsOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Reopen failed items whose attempts are used up, keeping their history.

    All of them, those of --stage/--reason, or the IDS given: the next `mirbench build` of their
    pairs tries each once more.
    """
    settings = command_settings(config, artifacts=artifacts, database_url=database_url)
    stages = pipeline.names()
    with existing_store(settings) as store, user_errors():
        if ids:
            chosen = [item for item in store.get_items(ids) if _still(item, stage, reason)]
            odd = [item.id for item in chosen if not exhausted(item, settings.max_attempts)]
            if odd:
                raise InputError(
                    "not failed with its attempts used up (a build retries it by itself): " + ", ".join(odd)
                )
        else:
            found, _ = _matching(store, ItemStatus.FAILED.value, stage, reason, None)
            chosen = [item for item in found if exhausted(item, settings.max_attempts)]
        if not chosen:
            raise InputError(f"no failed item with its attempts used up matches; see `{LIST_FAILED}`")
        for item in chosen:
            failure = current_failure(item)
            assert failure is not None
            if failure.stage not in stages:
                raise InputError(f"{item.id}: failed at {failure.stage!r}, which no build stage retries")
            item.retry(pipeline.place(settings, failure.stage).takes)
        store.save_items(chosen)
    console.print(
        f"reopened {len(chosen)} item(s), their earlier attempts kept; run `mirbench build` (with "
        "their seeds and relations) to try each once more"
    )


def _still(item: Item, stage: str | None, reason: str | None) -> bool:
    failure = current_failure(item)
    if failure is None:
        return True  # reported as not exhausted
    return (stage is None or failure.stage == stage) and (reason is None or failure.reason == reason)
