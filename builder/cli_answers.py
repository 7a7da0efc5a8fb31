"""`mirbench answers list|show`: the testers' answers with the judge's class and rationale, for
reviewers at a terminal (the review page shows the same, collapsed). Text is printed as is,
never interpreted as markup."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from builder.answers import answers_of
from builder.cli import (
    ArtifactsOption,
    ConfigOption,
    DatabaseOption,
    _open_store,
    _table,
    _user_errors,
    console,
)
from builder.items import ItemStatus

WARNING = "[yellow]Content warning:[/] answers of tester models to harmful requests follow."
EXCERPT = 120


def answers_list(
    relation: Annotated[
        str | None, typer.Option("--relation", "-r", help="Only this relation.", show_default=False)
    ] = None,
    limit: Annotated[int, typer.Option(help="Show at most N items.")] = 50,
    config: ConfigOption = None,
    artifacts: ArtifactsOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Judged items: each tester's class, the judge's rationale and the start of the answer."""
    store = _open_store(config, artifacts, database_url)
    try:
        items = [
            item
            for item in store.items_with_statuses(list(ItemStatus))
            if item.judgements and (relation is None or item.relation == relation)
        ][:limit]
        shown = [(item, answers_of(store, item)) for item in items]
    finally:
        store.close()
    console.print(WARNING)
    table = _table("Answers", "item", "tester", "class", "judge's rationale", "answer (start)")
    for item, answers in shown:
        for answer in answers:
            text = "(purged)" if answer.text is None else answer.text[:EXCERPT]
            tester = answer.tester + (" (held out)" if answer.held_out else "")
            # Text(): model output is shown as is, never read as rich markup
            table.add_row(
                item.id, tester, answer.answer_class, Text(answer.rationale or "(purged)"), Text(text)
            )
    console.print(table)
    console.print("one item in full: `mirbench answers show ID`")


def answers_show(
    item_id: Annotated[str, typer.Argument(help="The item's id.")],
    config: ConfigOption = None,
    artifacts: ArtifactsOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """One item's prompt and every tester's full answer, with the judge's class and rationale."""
    store = _open_store(config, artifacts, database_url)
    try:
        with _user_errors():
            (item,) = store.get_items([item_id])
            answers = answers_of(store, item)
    finally:
        store.close()
    console.print(WARNING)
    console.print(f"{item.id} ({item.category} / {item.relation}, round {item.iteration})", markup=False)
    console.print(f"prompt: {item.revised_prompt}", markup=False, highlight=False)
    if not answers:
        console.print("no judged answers on this item")
    for answer in answers:
        console.print(
            f"--- {answer.tester}{' (held out)' if answer.held_out else ''}: {answer.answer_class} "
            f"(judge {answer.judge}): {answer.rationale or '(rationale purged)'}",
            markup=False,
            highlight=False,
        )
        console.print(
            "(answer purged)" if answer.text is None else answer.text, markup=False, highlight=False
        )
