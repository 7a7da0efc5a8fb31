"""The data commands: `mirbench taxonomy` (check the taxonomy), `pool` (index an image pool) and
`db` (the store's schema). `seeds` and `answers` are modules of their own."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from builder.cli.core import (
    ArtifactsOption,
    ConfigOption,
    DatabaseOption,
    TaxonomyOption,
    command_settings,
    open_store,
    user_errors,
)
from builder.cli.display import console, make_table, progress_bars

taxonomy_app = typer.Typer(
    help="Inspect and check the taxonomy (categories, relations).", no_args_is_help=True
)
pool_app = typer.Typer(help="Image pools for the retrieval renderer.", no_args_is_help=True)
db_app = typer.Typer(help="The store's schema.", no_args_is_help=True)
app = typer.Typer()
app.add_typer(taxonomy_app, name="taxonomy")
app.add_typer(pool_app, name="pool")
app.add_typer(db_app, name="db")


@taxonomy_app.command("list")
def taxonomy_list(config: ConfigOption = None, taxonomy: TaxonomyOption = None) -> None:
    """List categories and relations."""
    settings = command_settings(config, taxonomy=taxonomy)
    from builder.config.taxonomy import load_taxonomy

    with user_errors():
        loaded = load_taxonomy(settings.taxonomy)
    categories = make_table("Categories", "slug", "name", "published as")
    for category in loaded.categories.values():
        categories.add_row(category.slug, category.display_name, category.published_name)
    console.print(categories)
    relations = make_table("Relations", "group", "slug", "name", "published as", "images", "templates")
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
    settings = command_settings(config, taxonomy=taxonomy)
    from builder.config.protected import load_protected
    from builder.config.taxonomy import load_taxonomy

    with user_errors():
        loaded = load_taxonomy(settings.taxonomy)
        protected = load_protected(settings.taxonomy, sorted(loaded.categories))
    console.print(
        f"taxonomy OK: {len(loaded.categories)} categories, {len(loaded.relations)} "
        f"relations, {len(protected.groups)} protected groups ({settings.taxonomy})"
    )


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
    settings = command_settings(
        config,
        artifacts=artifacts,
        renderer={
            "backend": "retrieval",
            "pool": pool,
            "pool_text_column": text_column,
            "pool_image_column": image_column,
        },
    )
    from builder.models.embeddings import TextEmbedder
    from builder.stages.render.retrieval import RetrievalRenderer, index_pool

    with user_errors():
        RetrievalRenderer.preflight(settings)
    with user_errors(), progress_bars():
        report = index_pool(
            settings.renderer,
            settings.artifacts,
            TextEmbedder(settings.dedup.text_model, settings.dedup.text_bfloat16),
            settings.limits.max_record_chars,
        )
    console.print(f"indexed {report.indexed} image(s) of {report.pool} into {report.index_dir}")
    if report.skipped:
        table = make_table(f"Skipped ({len(report.skipped)})", "image", "reason")
        for skipped in report.skipped:
            table.add_row(skipped.id, skipped.reason)
        console.print(table)


@db_app.command("upgrade")
def db_upgrade(
    config: ConfigOption = None, artifacts: ArtifactsOption = None, database_url: DatabaseOption = None
) -> None:
    """Upgrade the store's schema to this version of mirbench (every command also does it on
    first use)."""
    from builder.store import migrations

    with open_store(config, artifacts, database_url, migrate=False) as store:
        before, head = migrations.revisions(store.engine)
        changed = migrations.upgrade(store.engine)
    console.print(
        f"store upgraded from {before or 'an unversioned schema'} to {head}"
        if changed
        else f"store is at {head}: nothing to do"
    )
