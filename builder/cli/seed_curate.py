"""`mirbench seeds curate`: the seed queue in the terminal (the review's reviewers, votes,
leases and decision log), and what every seeds command shares (the taxonomy, where the source
profiles are)."""

from __future__ import annotations

import json
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
    user_errors,
)
from builder.cli.display import console
from builder.config.settings import Settings
from builder.config.taxonomy import Taxonomy
from builder.core.errors import InputError

curate_app = typer.Typer(
    help="Human curation of seeds (the seed queue; the review's rules).", no_args_is_help=True
)

SeedIds = Annotated[list[str], typer.Argument(help="Seed ids (sd-...).")]
SourcesOption = Annotated[
    Path | None,
    typer.Option(
        help="Folder of seed source profiles (also MIRBENCH_SOURCES). [default: the taxonomy's "
        "sources/, else the bundled one]",
        show_default=False,
    ),
]


def taxonomy_of(settings: Settings) -> Taxonomy:
    from builder.config.taxonomy import load_taxonomy

    with user_errors():
        return load_taxonomy(settings.taxonomy)


def profiles_folder(settings: Settings) -> Path:
    from builder.curation.sources import sources_folder

    return sources_folder(settings.sources, settings.taxonomy)


@curate_app.command("next")
def curate_next(
    reviewer: Annotated[str, typer.Option(help="Who curates.")],
    category: Annotated[str | None, typer.Option(help="Only seeds proposed for this category.")] = None,
    config: ConfigOption = None,
    artifacts: ArtifactsOption = None,
    database_url: DatabaseOption = None,
    taxonomy: TaxonomyOption = None,
) -> None:
    """Lease the next seed to curate and show it (with both triage opinions)."""
    from builder.review.seed_queue import SeedCuration

    settings = command_settings(config, artifacts=artifacts, database_url=database_url, taxonomy=taxonomy)
    loaded = taxonomy_of(settings)
    if category is not None:
        with user_errors():
            loaded.category(category)  # an unknown one is named, not an empty queue
    with existing_store(settings) as store:
        row = SeedCuration(store, settings.review, loaded).next_seed(reviewer, category)
    if row is None:
        console.print("nothing to curate")
        return
    shown = {
        "id": row.id,
        "text": row.text,
        "source": row.source,
        "labels": json.loads(row.labels),
        "mapped": row.mapped_category,
        "model": row.llm_category,
        "confidence": row.llm_confidence,
        "reason": row.llm_reason,
        "proposed": row.category,
        "key_phrase": row.key_phrase,
    }
    console.print_json(json.dumps(shown))


@curate_app.command("accept")
def curate_accept(
    seed_ids: SeedIds,
    reviewer: Annotated[str, typer.Option(help="Who decides.")],
    category: Annotated[str | None, typer.Option(help="Change the category.")] = None,
    key_phrase: Annotated[str | None, typer.Option(help="Set the key phrase (words of the seed).")] = None,
    override: Annotated[bool, typer.Option(help="An admin's final word (needs --reason).")] = False,
    reason: Annotated[str | None, typer.Option(help="Why (required with --override).")] = None,
    config: ConfigOption = None,
    artifacts: ArtifactsOption = None,
    database_url: DatabaseOption = None,
    taxonomy: TaxonomyOption = None,
) -> None:
    """Accept seeds (optionally changing the category or key phrase)."""
    settings = command_settings(config, artifacts=artifacts, database_url=database_url, taxonomy=taxonomy)
    _decide(settings, seed_ids, reviewer, "approve", reason, override, category, key_phrase)


@curate_app.command("reject")
def curate_reject(
    seed_ids: SeedIds,
    reviewer: Annotated[str, typer.Option(help="Who decides.")],
    reason: Annotated[str, typer.Option(help="Why the seed should not be used.")],
    override: Annotated[bool, typer.Option(help="An admin's final word.")] = False,
    config: ConfigOption = None,
    artifacts: ArtifactsOption = None,
    database_url: DatabaseOption = None,
    taxonomy: TaxonomyOption = None,
) -> None:
    """Reject seeds, with a reason."""
    settings = command_settings(config, artifacts=artifacts, database_url=database_url, taxonomy=taxonomy)
    _decide(settings, seed_ids, reviewer, "reject", reason, override)


def _decide(
    settings: Settings,
    seed_ids: list[str],
    reviewer: str,
    decision: str,
    reason: str | None,
    override: bool,
    category: str | None = None,
    key_phrase: str | None = None,
) -> None:
    """Each seed's vote (or, with `override`, an admin's final word); refusals are reported
    together after the others are decided."""
    from builder.review.policy import Decision
    from builder.review.seed_queue import SeedCuration, SeedEdit
    from builder.review.service import ReviewRefused

    edit = SeedEdit(category, key_phrase)
    refused = []
    with existing_store(settings) as store:
        curation = SeedCuration(store, settings.review, taxonomy_of(settings))
        decide = curation.finalize if override else curation.vote
        for seed_id in seed_ids:
            try:
                state = decide(seed_id, reviewer, Decision(decision), reason, edit)
            except ReviewRefused as error:
                refused.append(str(error))
                continue
            console.print(f"{seed_id}: {state}", markup=False)
    if refused:
        fail(InputError("; ".join(refused)))
