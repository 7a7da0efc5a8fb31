"""`mirbench seeds`: check seed files, and curate seeds from public datasets (sources, import,
merge, triage, status, list, show, select; the seed queue is `seeds curate`, in `seed_curate`)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from builder.cli.core import (
    ArtifactsOption,
    ConfigOption,
    DatabaseOption,
    TaxonomyOption,
    command_settings,
    existing_store,
    user_errors,
)
from builder.cli.display import console, make_table
from builder.cli.seed_curate import SourcesOption, curate_app, profiles_folder, taxonomy_of

if TYPE_CHECKING:
    from builder.curation.select import SeedSet

app = typer.Typer()
seeds_app = typer.Typer(
    help="Seeds: check seed files; import, triage, curate and select seeds from public datasets.",
    no_args_is_help=True,
)
app.add_typer(seeds_app, name="seeds")
seeds_app.add_typer(curate_app, name="curate")


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
        loaded = load_seeds(settings.seeds, taxonomy_of(settings), settings.limits)
    per_category = Counter(seed.category for seed in loaded)
    console.print(
        f"seeds OK: {len(loaded)} seeds; "
        + ", ".join(f"{name} {count}" for name, count in sorted(per_category.items()))
    )
    unlicensed = sum(1 for seed in loaded if seed.license == "unspecified")
    if unlicensed:
        console.print(f"[yellow]note:[/] {unlicensed} seed(s) have no license field")


@seeds_app.command("sources")
def seeds_sources(
    config: ConfigOption = None, taxonomy: TaxonomyOption = None, sources: SourcesOption = None
) -> None:
    """List the seed sources (their profiles: taxonomy/sources/*.yaml, or --sources DIR)."""
    from builder.curation.sources import load_profile

    settings = command_settings(config, taxonomy=taxonomy, sources=sources)
    categories = set(taxonomy_of(settings).categories)
    folder = profiles_folder(settings)
    table = make_table(f"seed sources ({folder})", "source", "name", "from", "licence", "priority")
    with user_errors():
        for path in sorted(folder.glob("*.yaml")):
            profile = load_profile(path, categories)
            origin = profile.origin
            where = f"{origin.hub}@{origin.revision}" if origin.hub else ", ".join(origin.paths)
            table.add_row(profile.name, profile.display_name, where, profile.license, str(profile.priority))
    console.print(table)


@seeds_app.command("import")
def seeds_import(
    source: Annotated[str, typer.Argument(help="A source profile's name (`mirbench seeds sources`).")],
    path: Annotated[
        Path | None,
        typer.Option(
            "--path", help="Read a local copy (a file, or a folder of data files) instead of the origin."
        ),
    ] = None,
    config: ConfigOption = None,
    artifacts: ArtifactsOption = None,
    database_url: DatabaseOption = None,
    taxonomy: TaxonomyOption = None,
    sources: SourcesOption = None,
) -> None:
    """Import a source: normalise its rows and store them with their provenance (idempotent)."""
    from builder.curation.importer import import_source, load_source
    from builder.store import Store, open_engine

    settings = command_settings(
        config, artifacts=artifacts, database_url=database_url, taxonomy=taxonomy, sources=sources
    )
    categories = set(taxonomy_of(settings).categories)
    with user_errors():
        loaded = load_source(profiles_folder(settings), source, categories, path)  # every row checked first
        open_engine(settings.resolved_database_url, folder_to_create=settings.artifacts).dispose()
        settings.artifacts.mkdir(parents=True, exist_ok=True)  # every input is checked: now create
        with Store(settings.resolved_database_url) as store:
            report = import_source(store, loaded, settings.limits)
    for note in report.notes:
        console.print(f"note: {note}", markup=False)
    files = f"{report.files} files, " if report.files > 1 else ""
    blank = f", {report.blank_lines} blank lines skipped" if report.blank_lines else ""
    console.print(
        f"{report.source} ({report.revision}, {report.location}): {files}{report.rows} rows, "
        f"{report.added} added, {report.known} already imported, {report.repeated} repeated within "
        f"the data{blank}",
        markup=False,
    )


@seeds_app.command("merge")
def seeds_merge(
    similarity: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="Cosine for near-duplicates.")
    ] = None,
    behaviour_similarity: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Cosine from which, below --similarity, a pair merges only when its words ask for "
            "the same thing (default: curation.same_behaviour_similarity, 0.8).",
        ),
    ] = None,
    config: ConfigOption = None,
    artifacts: ArtifactsOption = None,
    database_url: DatabaseOption = None,
    taxonomy: TaxonomyOption = None,
    sources: SourcesOption = None,
) -> None:
    """Merge near-duplicate seeds across sources into aliases (MiniLM vectors, faiss); the copy
    kept is the higher-priority source's, whatever the import order."""
    from builder.curation.merge import merge_near_duplicates
    from builder.curation.sources import source_profiles
    from builder.stages.workspace import Workspace

    settings = command_settings(
        config, artifacts=artifacts, database_url=database_url, taxonomy=taxonomy, sources=sources
    )
    threshold = similarity if similarity is not None else settings.curation.near_duplicate_similarity
    floor = behaviour_similarity or settings.curation.same_behaviour_similarity
    categories = set(taxonomy_of(settings).categories)
    with user_errors(), existing_store(settings) as store:
        names = {row.source for row in store.seed_candidates()}
        profiles = source_profiles(profiles_folder(settings), names, categories)
        priorities = {name: profile.priority for name, profile in profiles.items()}
        vectors = Workspace.of(settings).text_vectors
        report = merge_near_duplicates(store, vectors, threshold, priorities, floor)
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    restored = f", {report.restored} aliases restored" if report.restored else ""
    worded = f" ({report.by_behaviour} below {threshold} by their words)" if report.by_behaviour else ""
    console.print(
        f"merge: {report.seeds} seeds compared, {report.new_aliases} new aliases{worded}{restored} "
        f"({report.aliases} in all)"
    )


@seeds_app.command("triage")
def seeds_triage(
    again: Annotated[bool, typer.Option(help="Triage again every seed people have not decided.")] = False,
    evaluate: Annotated[
        Path | None,
        typer.Option(
            help="Measure the mapping on a labelled sample (JSONL) instead: accuracy, precision and "
            "recall per category, the confusion matrix. Needs no store.",
        ),
    ] = None,
    base_url: Annotated[
        str | None, typer.Option(help="Triage model server (curation.triage.base_url).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Triage model (curation.triage.model).")] = None,
    config: ConfigOption = None,
    artifacts: ArtifactsOption = None,
    database_url: DatabaseOption = None,
    taxonomy: TaxonomyOption = None,
    sources: SourcesOption = None,
) -> None:
    """Sort seeds into the categories: the sources' label mappings, and a model when configured."""
    from builder.config.sections import TriageModelSettings
    from builder.curation.sources import source_profiles
    from builder.curation.triage import ModelTriage, triage

    settings = command_settings(
        config, artifacts=artifacts, database_url=database_url, taxonomy=taxonomy, sources=sources
    )
    if evaluate is not None:
        from builder.cli.seed_report import print_mapping_accuracy

        print_mapping_accuracy(settings, evaluate)
        return
    if model:  # the command line names the model: the config file's other triage settings stay
        given = {"model": model, **({"base_url": base_url} if base_url else {})}
        configured = settings.curation.triage.model_dump() if settings.curation.triage else {}
        with user_errors():
            settings.curation.triage = TriageModelSettings(**{**configured, **given})
    loaded = taxonomy_of(settings)
    with user_errors(), existing_store(settings) as store:
        names = {row.source for row in store.seed_candidates()}
        profiles = source_profiles(profiles_folder(settings), names, set(loaded.categories))
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


@seeds_app.command("list")
def seeds_list(
    state: Annotated[str | None, typer.Option(help="Only seeds in this state (e.g. out_of_scope).")] = None,
    category: Annotated[
        str | None, typer.Option(help="Only seeds of (or proposed for) this category.")
    ] = None,
    source: Annotated[str | None, typer.Option(help="Only seeds of this source.")] = None,
    reason: Annotated[
        str | None,
        typer.Option(
            help="Only seeds triage left for this reason: rule, agreed, no_rule, disagreed, "
            "low_confidence, model_failed."
        ),
    ] = None,
    config: ConfigOption = None,
    artifacts: ArtifactsOption = None,
    database_url: DatabaseOption = None,
    taxonomy: TaxonomyOption = None,
) -> None:
    """Seeds with their state, category, and the rule (or model answer) that decided them."""
    from builder.cli.seed_report import list_seeds

    settings = command_settings(config, artifacts=artifacts, database_url=database_url, taxonomy=taxonomy)
    with user_errors():
        list_seeds(settings, state, category, source, reason)


@seeds_app.command("show")
def seeds_show(
    seed_id: Annotated[str, typer.Argument(help="A seed id (sd-...).")],
    config: ConfigOption = None,
    artifacts: ArtifactsOption = None,
    database_url: DatabaseOption = None,
    taxonomy: TaxonomyOption = None,
    sources: SourcesOption = None,
) -> None:
    """One seed: provenance, both triage opinions with the rule that matched, aliases, decisions."""
    from builder.cli.seed_report import show_seed

    settings = command_settings(
        config, artifacts=artifacts, database_url=database_url, taxonomy=taxonomy, sources=sources
    )
    with user_errors():
        show_seed(settings, seed_id)


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
    fill_max_chars: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="With --max-chars: a category that would fall short of --per-category takes its "
            "shortest longer seeds, up to this many characters, as many as it lacks.",
        ),
    ] = None,
    source: Annotated[list[str] | None, typer.Option(help="Only seeds of this source (repeatable).")] = None,
    checked: Annotated[
        Path | None,
        typer.Option(
            help="A labelled sample (JSONL): seeds whose category it confirms say they were checked by hand."
        ),
    ] = None,
    config: ConfigOption = None,
    artifacts: ArtifactsOption = None,
    database_url: DatabaseOption = None,
    taxonomy: TaxonomyOption = None,
    sources: SourcesOption = None,
) -> None:
    """Write a versioned seed set from the accepted seeds; `mirbench build --seeds OUT` reads it.
    OUT must not exist or be empty: nothing is written over."""
    from builder.core.outputs import check_new_folder
    from builder.curation.mapping_check import read_sample
    from builder.curation.select import SET_FOLDER, check_selection, write_seed_set
    from builder.curation.sources import source_profiles

    settings = command_settings(
        config, artifacts=artifacts, database_url=database_url, taxonomy=taxonomy, sources=sources
    )
    categories = sorted(taxonomy_of(settings).categories)
    with user_errors():  # before the store is opened: a refusal writes nothing
        check_new_folder(out, "--out", SET_FOLDER)
        check_selection(len(categories), per_category, total, version, max_chars, fill_max_chars)
    with user_errors(), existing_store(settings) as store:
        names = {row.source for row in store.seed_candidates()}
        profiles = source_profiles(profiles_folder(settings), names, set(categories))
        sample = read_sample(checked, set(categories)) if checked else []
        hand = {(seed.source, seed.source_id): seed.category for seed in sample}
        chosen = write_seed_set(
            store,
            profiles,
            categories,
            out,
            per_category,
            total,
            version,
            max_chars=max_chars,
            fill_max_chars=fill_max_chars,
            sources=source,
            checked=hand,
        )
    _print_seed_set(chosen, per_category, max_chars)


def _print_seed_set(chosen: SeedSet, per_category: int, max_chars: int | None) -> None:
    """The set's counts per category x source, and which categories fell short or were filled."""
    console.print(f"seed set {chosen.version}: {chosen.total} seeds in {chosen.folder}", markup=False)
    for category, by_source in chosen.counts.items():
        notes = ""
        if sum(by_source.values()) < per_category:
            notes += f" (short of {per_category}: the sources hold no more)"
        if chosen.filled.get(category):
            notes += f" ({chosen.filled[category]} of them over --max-chars {max_chars}: --fill-max-chars)"
        listed = ", ".join(f"{s} {n}" for s, n in sorted(by_source.items())) or "none"
        console.print(f"  {category}: {listed}{notes}", markup=False)
