"""`mirbench seeds`: check seed files, and curate seeds from public datasets (sources, import,
merge, triage, status, select, and the seed queue under `seeds curate`)."""

from __future__ import annotations

import json
from collections import Counter
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
from builder.cli.display import console, make_table
from builder.config.settings import Settings
from builder.config.taxonomy import Taxonomy
from builder.core.errors import InputError

app = typer.Typer()
seeds_app = typer.Typer(
    help="Seeds: check seed files; import, triage, curate and select seeds from public datasets.",
    no_args_is_help=True,
)
curate_app = typer.Typer(
    help="Human curation of seeds (the seed queue; the review's rules).", no_args_is_help=True
)
app.add_typer(seeds_app, name="seeds")
seeds_app.add_typer(curate_app, name="curate")

SeedIds = Annotated[list[str], typer.Argument(help="Seed ids (sd-...).")]


def _taxonomy(settings: Settings) -> Taxonomy:
    from builder.config.taxonomy import load_taxonomy

    with user_errors():
        return load_taxonomy(settings.taxonomy)


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
    settings = command_settings(config, taxonomy=taxonomy, seeds=paths)
    from builder.config.seeds import load_seeds

    with user_errors():
        loaded = load_seeds(settings.seeds, _taxonomy(settings), settings.limits)
    per_category = Counter(seed.category for seed in loaded)
    console.print(
        f"seeds OK: {len(loaded)} seeds; "
        + ", ".join(f"{name} {count}" for name, count in sorted(per_category.items()))
    )
    unlicensed = sum(1 for seed in loaded if seed.license == "unspecified")
    if unlicensed:
        console.print(f"[yellow]note:[/] {unlicensed} seed(s) have no license field")


@seeds_app.command("sources")
def seeds_sources(config: ConfigOption = None, taxonomy: TaxonomyOption = None) -> None:
    """List the seed sources (taxonomy/sources/*.yaml) with their licences."""
    from builder.curation.sources import load_profile, sources_folder

    settings = command_settings(config, taxonomy=taxonomy)
    categories = set(_taxonomy(settings).categories)
    table = make_table("seed sources", "source", "name", "from", "licence")
    with user_errors():
        for path in sorted(sources_folder(settings.taxonomy).glob("*.yaml")):
            profile = load_profile(path, categories)
            origin = profile.origin
            where = f"{origin.hub}@{origin.revision}" if origin.hub else str(origin.path)
            table.add_row(profile.name, profile.display_name, where, profile.license)
    console.print(table)


@seeds_app.command("import")
def seeds_import(
    source: Annotated[str, typer.Argument(help="A source profile's name (`mirbench seeds sources`).")],
    path: Annotated[
        Path | None, typer.Option("--path", help="Read a local copy instead of the profile's origin.")
    ] = None,
    config: ConfigOption = None,
    artifacts: ArtifactsOption = None,
    database_url: DatabaseOption = None,
    taxonomy: TaxonomyOption = None,
) -> None:
    """Import a source: normalise its rows and store them with their provenance (idempotent)."""
    from builder.curation.importer import import_source, load_source
    from builder.store import Store, open_engine

    settings = command_settings(config, artifacts=artifacts, database_url=database_url, taxonomy=taxonomy)
    categories = set(_taxonomy(settings).categories)
    with user_errors():
        loaded = load_source(settings.taxonomy, source, categories, path)  # every row checked first
        open_engine(settings.resolved_database_url, folder_to_create=settings.artifacts).dispose()
        settings.artifacts.mkdir(parents=True, exist_ok=True)  # every input is checked: now create
        with Store(settings.resolved_database_url) as store:
            report = import_source(store, loaded, settings.limits)
    console.print(
        f"{report.source} ({report.revision}, {report.location}): {report.rows} rows, {report.added} added, "
        f"{report.known} already imported, {report.repeated} repeated within the data",
        markup=False,
    )


@seeds_app.command("merge")
def seeds_merge(
    similarity: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="Cosine for near-duplicates.")
    ] = None,
    config: ConfigOption = None,
    artifacts: ArtifactsOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Merge near-duplicate seeds across sources into aliases (MiniLM vectors, faiss)."""
    from builder.curation.merge import merge_near_duplicates
    from builder.stages.workspace import Workspace

    settings = command_settings(config, artifacts=artifacts, database_url=database_url)
    threshold = similarity if similarity is not None else settings.curation.near_duplicate_similarity
    with existing_store(settings) as store:
        report = merge_near_duplicates(store, Workspace.of(settings).text_vectors, threshold)
    console.print(
        f"merge: {report.seeds} seeds compared, {report.new_aliases} new aliases ({report.aliases} in all)"
    )


@seeds_app.command("triage")
def seeds_triage(
    again: Annotated[bool, typer.Option(help="Triage again every seed people have not decided.")] = False,
    base_url: Annotated[
        str | None, typer.Option(help="Triage model server (curation.triage.base_url).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Triage model (curation.triage.model).")] = None,
    config: ConfigOption = None,
    artifacts: ArtifactsOption = None,
    database_url: DatabaseOption = None,
    taxonomy: TaxonomyOption = None,
) -> None:
    """Sort seeds into the categories: the sources' label mappings, and a model when configured."""
    from builder.config.sections import TriageModelSettings
    from builder.curation.triage import ModelTriage, source_profiles, triage

    settings = command_settings(config, artifacts=artifacts, database_url=database_url, taxonomy=taxonomy)
    if model:  # the command line names the model: the config file's other triage settings stay
        given = {"model": model, **({"base_url": base_url} if base_url else {})}
        configured = settings.curation.triage.model_dump() if settings.curation.triage else {}
        with user_errors():
            settings.curation.triage = TriageModelSettings(**{**configured, **given})
    loaded = _taxonomy(settings)
    with user_errors(), existing_store(settings) as store:
        sources = {row.source for row in store.seed_candidates()}
        profiles = source_profiles(settings.taxonomy, sources, set(loaded.categories))
        opinion = (
            ModelTriage.of(settings.curation, store, loaded, settings.taxonomy)
            if settings.curation.triage
            else None
        )
        report = triage(store, profiles, settings.curation, opinion, again)
    agreement = f"{report.agreement:.0%} of {report.both_opinions}" if report.agreement is not None else "n/a"
    decided = ", ".join(f"{state} {count}" for state, count in sorted(report.decided.items()))
    console.print(
        f"triage: {report.seeds} seeds ({decided}); mapping and model agree on {agreement}; "
        f"model failures {report.llm_failures}"
    )


@seeds_app.command("status")
def seeds_status(
    config: ConfigOption = None, artifacts: ArtifactsOption = None, database_url: DatabaseOption = None
) -> None:
    """Seeds by state, and accepted seeds per category x source."""
    from builder.store import SeedState

    settings = command_settings(config, artifacts=artifacts, database_url=database_url)
    with existing_store(settings) as store:
        counts = store.seed_state_counts()
        accepted = store.seed_candidates([SeedState.ACCEPTED])
    console.print("seeds: " + ", ".join(f"{state} {count}" for state, count in sorted(counts.items())))
    cells = Counter((row.category, row.source) for row in accepted)
    table = make_table("accepted seeds", "category", "source", "seeds", right=("seeds",))
    for (category, source), count in sorted(cells.items()):
        table.add_row(str(category), source, str(count))
    console.print(table)


@seeds_app.command("select")
def seeds_select(
    per_category: Annotated[int, typer.Option(min=1, help="Seeds per category (stratified by source).")],
    out: Annotated[
        Path, typer.Option(help="New (or empty) folder for the seed set: seeds.jsonl + manifest.json.")
    ],
    total: Annotated[
        int | None,
        typer.Option(min=1, help="Fill small categories' shortfall from the others up to this."),
    ] = None,
    version: Annotated[
        str | None,
        typer.Option(help="The set's version: letters, digits, . _ + -. [default: sha-<content hash>]"),
    ] = None,
    max_chars: Annotated[int | None, typer.Option(min=1, help="Leave out seeds longer than this.")] = None,
    source: Annotated[list[str] | None, typer.Option(help="Only seeds of this source (repeatable).")] = None,
    config: ConfigOption = None,
    artifacts: ArtifactsOption = None,
    database_url: DatabaseOption = None,
    taxonomy: TaxonomyOption = None,
) -> None:
    """Write a versioned seed set from the accepted seeds; `mirbench build --seeds OUT` reads it.
    OUT must not exist or be empty: nothing is written over."""
    from builder.core.outputs import check_new_folder
    from builder.curation.select import SET_FOLDER, check_selection, write_seed_set
    from builder.curation.triage import source_profiles

    settings = command_settings(config, artifacts=artifacts, database_url=database_url, taxonomy=taxonomy)
    categories = sorted(_taxonomy(settings).categories)
    with user_errors():  # before the store is opened: a refusal writes nothing
        check_new_folder(out, "--out", SET_FOLDER)
        check_selection(len(categories), per_category, total, version)
    with user_errors(), existing_store(settings) as store:
        sources = {row.source for row in store.seed_candidates()}
        profiles = source_profiles(settings.taxonomy, sources, set(categories))
        chosen = write_seed_set(
            store, profiles, categories, out, per_category, total, version, max_chars, source
        )
    console.print(f"seed set {chosen.version}: {chosen.total} seeds in {chosen.folder}", markup=False)
    for category, by_source in chosen.counts.items():
        short = (
            ""
            if sum(by_source.values()) >= per_category
            else f" (short of {per_category}: the sources hold no more)"
        )
        console.print(
            f"  {category}: "
            + (", ".join(f"{s} {n}" for s, n in sorted(by_source.items())) or "none")
            + short
        )


@curate_app.command("next")
def curate_next(
    reviewer: Annotated[str, typer.Option(help="Who curates.")],
    category: Annotated[str | None, typer.Option(help="Only seeds proposed for this category.")] = None,
    config: ConfigOption = None,
    artifacts: ArtifactsOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Lease the next seed to curate and show it (with both triage opinions)."""
    from builder.review.seed_queue import SeedCuration

    settings = command_settings(config, artifacts=artifacts, database_url=database_url)
    taxonomy = _taxonomy(settings)
    if category is not None:
        with user_errors():
            taxonomy.category(category)  # an unknown one is named, not an empty queue
    with existing_store(settings) as store:
        row = SeedCuration(store, settings.review, taxonomy).next_seed(reviewer, category)
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
) -> None:
    """Accept seeds (optionally changing the category or key phrase)."""
    settings = command_settings(config, artifacts=artifacts, database_url=database_url)
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
) -> None:
    """Reject seeds, with a reason."""
    settings = command_settings(config, artifacts=artifacts, database_url=database_url)
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
        curation = SeedCuration(store, settings.review, _taxonomy(settings))
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
