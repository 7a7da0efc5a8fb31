"""`mirbench answers list|show|purge|attention`: the testers' answers from the attack loop (kept
in the store, never released) with the judge's class and rationale, for reviewers at a terminal
(the review page shows the same, collapsed), their purge, and the attention entropy of unsafe vs
safe answers (in-process testers with `attention_entropy: true`). Text is printed as is, never
interpreted as markup."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from builder.cli.core import ArtifactsOption, ConfigOption, DatabaseOption, open_store, user_errors
from builder.cli.display import console, make_table
from builder.core.items import ItemStatus
from builder.core.outputs import check_new_file, new_file, write_new_file
from builder.review.answers import answers_of, purge
from builder.stages.attack.entropy.compare import compare_entropy
from builder.stages.attack.entropy.plot import plot_distributions
from builder.stages.attack.entropy.records import answer_records

answers_app = typer.Typer(
    help="Testers' answers from the attack loop (kept in the store, never released).", no_args_is_help=True
)
app = typer.Typer()
app.add_typer(answers_app, name="answers")
WARNING = "[yellow]Content warning:[/] answers of tester models to harmful requests follow."
EXCERPT = 120


@answers_app.command("list")
def answers_list(
    relation: Annotated[
        str | None, typer.Option("--relation", "-r", help="Only this relation.", show_default=False)
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most N items.")] = 50,
    config: ConfigOption = None,
    artifacts: ArtifactsOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Judged items: each tester's class, the judge's rationale and the start of the answer."""
    with open_store(config, artifacts, database_url) as store:
        items = [
            item
            for item in store.items_with_statuses(list(ItemStatus))
            if item.judgements and (relation is None or item.relation == relation)
        ][:limit]
        shown = [(item, answers_of(store, item)) for item in items]
    console.print(WARNING)
    table = make_table("Answers", "item", "tester", "class", "judge's rationale", "answer (start)")
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


@answers_app.command("show")
def answers_show(
    item_id: Annotated[str, typer.Argument(help="The item's id.")],
    config: ConfigOption = None,
    artifacts: ArtifactsOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """One item's prompt and every tester's full answer, with the judge's class and rationale."""
    with open_store(config, artifacts, database_url) as store, user_errors():
        (item,) = store.get_items([item_id])
        answers = answers_of(store, item)
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


@answers_app.command("purge")
def answers_purge(
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    config: ConfigOption = None,
    artifacts: ArtifactsOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Delete every stored tester answer and every judge's rationale (which may quote one), the
    responses and verdict rationales of evaluation runs included. Each judgement keeps its class,
    so reports and cards keep their numbers; a later build asks the testers again where it needs
    answers."""
    if not yes and not typer.confirm("Delete every stored tester answer and judge rationale?"):
        raise typer.Exit(code=1)
    with open_store(config, artifacts, database_url) as store:
        purged = purge(store)
    console.print(
        f"deleted {purged.answers} answer(s); cleared {purged.rationales} judge rationale(s) (classes "
        f"kept) and {purged.judge_responses} cached judge response(s)"
    )


@answers_app.command("attention")
def answers_attention(
    tester: Annotated[
        str | None, typer.Option(help="Only this tester's answers (its name).", show_default=False)
    ] = None,
    plot: Annotated[
        Path | None, typer.Option(help="Write the two distributions to this PNG file.", show_default=False)
    ] = None,
    json_file: Annotated[
        Path | None,
        typer.Option(
            "--json", help="Write the figures and the records to this JSON file.", show_default=False
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap intervals.")] = 0,
    resamples: Annotated[int, typer.Option(min=100, help="Bootstrap resamples.")] = 10_000,
    config: ConfigOption = None,
    artifacts: ArtifactsOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Attention entropy of unsafe vs safe answers (judged answers of in-process testers with
    attention_entropy: true): means with bootstrap 95% intervals and a Mann-Whitney U test,
    over all answers and per relation. The definition: README, section "Attention entropy"."""
    with user_errors():  # before any work: a refused target writes nothing (exit 2)
        for path, option in ((plot, "--plot"), (json_file, "--json")):
            if path is not None:
                check_new_file(path, option)
    with open_store(config, artifacts, database_url) as store:
        found = answer_records(store, store.items_with_statuses(list(ItemStatus)), tester=tester)
    console.print(
        f"{len(found.records)} judged answer(s) with attention figures"
        + (f" from {', '.join(found.testers)}" if found.testers else "")
        + f"; left out: {found.without_figures} without figures, {found.unknown_class} of class unknown"
    )
    if not found.records:
        console.print(
            "[red]nothing to compare:[/] attack with a `transformers` tester with attention_entropy: true, "
            "then judge its answers (answers purged with `mirbench answers purge` lose their figures)"
        )
        raise typer.Exit(code=1)
    report = compare_entropy(found.records, seed=seed, resamples=resamples)
    console.print(report.markdown(), markup=False, highlight=False)
    with user_errors():
        if plot is not None:
            with new_file(plot, "--plot") as drawn:
                plot_distributions(
                    found.records, drawn, title=f"Attention entropy ({', '.join(found.testers)})"
                )
            console.print(f"plot: {plot}", markup=False)
        if json_file is not None:
            payload = {**report.model_dump(mode="json"), "records": [r.model_dump() for r in found.records]}
            write_new_file(json_file, json.dumps(payload, indent=2) + "\n", "--json")
            console.print(f"figures: {json_file}", markup=False)
