"""`mirbench seeds ...`: seed curation from public datasets (import, merge, triage, curate,
select). Bad input raises InputError: the CLI's group prints it on one line and exits 2."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from builder.errors import InputError
from builder.settings import Settings, load_settings

console = Console()

Config = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML config file (also MIRBENCH_CONFIG).")
]
Artifacts = Annotated[Path | None, typer.Option(help="Run outputs folder (also MIRBENCH_ARTIFACTS).")]
Database = Annotated[
    str | None, typer.Option(help="SQLAlchemy URL of the store (also MIRBENCH_DATABASE_URL).")
]
TaxonomyFolder = Annotated[
    Path | None, typer.Option(help="Taxonomy folder (sources/ holds the source profiles).")
]


def _settings(config: Path | None, **overrides: Any) -> Settings:
    return load_settings(config, **{key: value for key, value in overrides.items() if value is not None})


@contextmanager
def _store(settings: Settings, *, must_exist: bool = True) -> Iterator[Any]:
    from builder.curation.seedstore import SeedStore
    from builder.store import Store

    store = Store(settings.resolved_database_url, must_exist=must_exist)
    try:
        yield SeedStore(store)
    finally:
        store.close()


def _categories(settings: Settings) -> list[str]:
    from builder.taxonomy import load_taxonomy

    return sorted(load_taxonomy(settings.taxonomy).categories)


def sources(config: Config = None, taxonomy: TaxonomyFolder = None) -> None:
    """List the seed sources (taxonomy/sources/*.yaml) with their licences."""
    from builder.curation.sources import load_profile, sources_folder

    settings = _settings(config, taxonomy=taxonomy)
    categories = set(_categories(settings))
    table = Table(title="seed sources")
    for column in ("source", "name", "from", "licence"):
        table.add_column(column, overflow="fold")
    for path in sorted(sources_folder(settings.taxonomy).glob("*.yaml")):
        profile = load_profile(path, categories)
        origin = profile.origin
        where = f"{origin.hub}@{origin.revision}" if origin.hub else str(origin.path)
        table.add_row(profile.name, profile.display_name, where, profile.license)
    console.print(table)


def import_(
    source: Annotated[str, typer.Argument(help="A source profile's name (`mirbench seeds sources`).")],
    path: Annotated[
        Path | None, typer.Option("--path", help="Read a local copy instead of the profile's origin.")
    ] = None,
    config: Config = None,
    artifacts: Artifacts = None,
    database_url: Database = None,
    taxonomy: TaxonomyFolder = None,
) -> None:
    """Import a source: normalise its rows and store them with their provenance (idempotent)."""
    from builder.curation.importer import import_source, load_source

    settings = _settings(config, artifacts=artifacts, database_url=database_url, taxonomy=taxonomy)
    loaded = load_source(settings.taxonomy, source, set(_categories(settings)), path)  # checks all first
    from builder.store import open_engine

    open_engine(settings.resolved_database_url, folder_to_create=settings.artifacts).dispose()
    settings.artifacts.mkdir(parents=True, exist_ok=True)
    with _store(settings, must_exist=False) as seeds:
        report = import_source(seeds, loaded, settings.limits)
    console.print(
        f"{report.source} ({report.revision}, {report.location}): {report.rows} rows, {report.added} added, "
        f"{report.known} already imported, {report.repeated} repeated within the data"
    )


def merge(
    similarity: Annotated[float | None, typer.Option(help="Cosine for near-duplicates.")] = None,
    config: Config = None,
    artifacts: Artifacts = None,
    database_url: Database = None,
) -> None:
    """Merge near-duplicate seeds across sources into aliases (MiniLM vectors, faiss)."""
    from builder.curation.merge import merge_near_duplicates
    from builder.workspace import Workspace

    settings = _settings(config, artifacts=artifacts, database_url=database_url)
    threshold = similarity if similarity is not None else settings.curation.near_duplicate_similarity
    with _store(settings) as seeds:
        workspace = Workspace.of(settings)
        report = merge_near_duplicates(seeds, workspace.text_vectors, threshold)
    console.print(
        f"merge: {report.seeds} seeds compared, {report.new_aliases} new aliases ({report.aliases} in all)"
    )


def triage(
    again: Annotated[bool, typer.Option(help="Triage again every seed people have not decided.")] = False,
    base_url: Annotated[
        str | None, typer.Option(help="Triage model server (curation.triage.base_url).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Triage model (curation.triage.model).")] = None,
    config: Config = None,
    artifacts: Artifacts = None,
    database_url: Database = None,
    taxonomy: TaxonomyFolder = None,
) -> None:
    """Sort seeds into the categories: the sources' label mappings, and a model when configured."""
    from builder.curation.config import TriageModelSettings
    from builder.curation.triage import ModelTriage, source_profiles
    from builder.curation.triage import triage as run_triage
    from builder.taxonomy import load_taxonomy

    settings = _settings(config, artifacts=artifacts, database_url=database_url, taxonomy=taxonomy)
    if model:  # the command line names the model: the config file's other triage settings stay
        given = {"model": model, **({"base_url": base_url} if base_url else {})}
        configured = settings.curation.triage.model_dump() if settings.curation.triage else {}
        settings.curation.triage = TriageModelSettings(**{**configured, **given})
    taxonomy = load_taxonomy(settings.taxonomy)
    with _store(settings) as seeds:
        profiles = source_profiles(
            settings.taxonomy, {row.source for row in seeds.seeds()}, set(taxonomy.categories)
        )
        opinion = (
            ModelTriage.of(settings.curation, seeds.store, taxonomy, settings.taxonomy)
            if settings.curation.triage
            else None
        )
        report = run_triage(seeds, profiles, settings.curation, opinion, again)
    agreement = f"{report.agreement:.0%} of {report.both_opinions}" if report.agreement is not None else "n/a"
    decided = ", ".join(f"{state} {count}" for state, count in sorted(report.decided.items()))
    console.print(
        f"triage: {report.seeds} seeds ({decided}); mapping and model agree on {agreement}; "
        f"model failures {report.llm_failures}"
    )


def status(config: Config = None, artifacts: Artifacts = None, database_url: Database = None) -> None:
    """Seeds by state, and accepted seeds per category x source."""
    from builder.curation.tables import SeedState

    settings = _settings(config, artifacts=artifacts, database_url=database_url)
    with _store(settings) as seeds:
        counts = seeds.state_counts()
        accepted = seeds.seeds([SeedState.ACCEPTED])
    console.print("seeds: " + ", ".join(f"{state} {count}" for state, count in sorted(counts.items())))
    cells = Counter((row.category, row.source) for row in accepted)
    table = Table(title="accepted seeds")
    for column in ("category", "source", "seeds"):
        table.add_column(column)
    for (category, source), count in sorted(cells.items()):
        table.add_row(str(category), source, str(count))
    console.print(table)


def select(
    per_category: Annotated[int, typer.Option(min=1, help="Seeds per category (stratified by source).")],
    out: Annotated[Path, typer.Option(help="Folder of the seed set (seeds.jsonl + manifest.json).")],
    total: Annotated[
        int | None, typer.Option(help="Fill small categories' shortfall from the others up to this.")
    ] = None,
    version: Annotated[
        str | None, typer.Option(help="The set's version. [default: sha-<content hash>]")
    ] = None,
    max_chars: Annotated[int | None, typer.Option(min=1, help="Leave out seeds longer than this.")] = None,
    source: Annotated[list[str] | None, typer.Option(help="Only seeds of this source (repeatable).")] = None,
    config: Config = None,
    artifacts: Artifacts = None,
    database_url: Database = None,
    taxonomy: TaxonomyFolder = None,
) -> None:
    """Write a versioned seed set from the accepted seeds; `mirbench build --seeds OUT` reads it."""
    from builder.curation.select import write_seed_set
    from builder.curation.triage import source_profiles

    settings = _settings(config, artifacts=artifacts, database_url=database_url, taxonomy=taxonomy)
    categories = _categories(settings)
    with _store(settings) as seeds:
        profiles = source_profiles(settings.taxonomy, {row.source for row in seeds.seeds()}, set(categories))
        chosen = write_seed_set(
            seeds, profiles, categories, out, per_category, total, version, max_chars, source
        )
    console.print(f"seed set {chosen.version}: {chosen.total} seeds in {chosen.folder}")
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


curate_app = typer.Typer(
    help="Human curation of seeds (the seed queue; the review's rules).", no_args_is_help=True
)


def _curation(settings: Settings, store: Any) -> Any:
    from builder.curation.curate import SeedCuration
    from builder.taxonomy import load_taxonomy

    return SeedCuration(store, settings.review, load_taxonomy(settings.taxonomy))


@curate_app.command("next")
def curate_next(
    reviewer: Annotated[str, typer.Option(help="Who curates.")],
    category: Annotated[str | None, typer.Option(help="Only seeds proposed for this category.")] = None,
    config: Config = None,
    artifacts: Artifacts = None,
    database_url: Database = None,
) -> None:
    """Lease the next seed to curate and show it (with both triage opinions)."""
    settings = _settings(config, artifacts=artifacts, database_url=database_url)
    with _store(settings) as seeds:
        row = _curation(settings, seeds.store).next_seed(reviewer, category)
    if row is None:
        console.print("nothing to curate")
        return
    console.print_json(
        json.dumps(
            {
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
        )
    )


@curate_app.command("accept")
def curate_accept(
    seed_ids: Annotated[list[str], typer.Argument(help="Seed ids (sd-...).")],
    reviewer: Annotated[str, typer.Option(help="Who decides.")],
    category: Annotated[str | None, typer.Option(help="Change the category.")] = None,
    key_phrase: Annotated[str | None, typer.Option(help="Set the key phrase (words of the seed).")] = None,
    override: Annotated[bool, typer.Option(help="An admin's final word (needs --reason).")] = False,
    reason: Annotated[str | None, typer.Option(help="Why (required with --override).")] = None,
    config: Config = None,
    artifacts: Artifacts = None,
    database_url: Database = None,
) -> None:
    """Accept seeds (optionally changing the category or key phrase)."""
    _decide(
        seed_ids, reviewer, "approve", reason, category, key_phrase, override, config, artifacts, database_url
    )


@curate_app.command("reject")
def curate_reject(
    seed_ids: Annotated[list[str], typer.Argument(help="Seed ids (sd-...).")],
    reviewer: Annotated[str, typer.Option(help="Who decides.")],
    reason: Annotated[str, typer.Option(help="Why the seed should not be used.")],
    override: Annotated[bool, typer.Option(help="An admin's final word.")] = False,
    config: Config = None,
    artifacts: Artifacts = None,
    database_url: Database = None,
) -> None:
    """Reject seeds, with a reason."""
    _decide(seed_ids, reviewer, "reject", reason, None, None, override, config, artifacts, database_url)


def _decide(
    seed_ids: list[str],
    reviewer: str,
    decision: str,
    reason: str | None,
    category: str | None,
    key_phrase: str | None,
    override: bool,
    config: Path | None,
    artifacts: Path | None,
    database_url: str | None,
) -> None:
    from builder.curation.curate import SeedEdit
    from builder.review.policy import Decision
    from builder.review.service import ReviewRefused

    settings = _settings(config, artifacts=artifacts, database_url=database_url)
    edit = SeedEdit(category, key_phrase)
    refused = []
    with _store(settings) as seeds:
        curation = _curation(settings, seeds.store)
        for seed_id in seed_ids:
            try:
                if override:
                    state = curation.finalize(seed_id, reviewer, Decision(decision), reason, edit)
                else:
                    state = curation.vote(seed_id, reviewer, Decision(decision), reason, edit)
            except ReviewRefused as error:
                refused.append(str(error))
                continue
            console.print(f"{seed_id}: {state}")
    if refused:
        raise InputError("; ".join(refused))


def add_seed_commands(seeds_app: typer.Typer) -> None:
    """Hook the curation commands into `mirbench seeds`."""
    seeds_app.command("sources")(sources)
    seeds_app.command("import")(import_)
    seeds_app.command("merge")(merge)
    seeds_app.command("triage")(triage)
    seeds_app.command("status")(status)
    seeds_app.command("select")(select)
    seeds_app.add_typer(curate_app, name="curate")
