"""`mirbench release` and `publish`: export approved items as a versioned local release, and
publish a recorded release to the Hugging Face Hub."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from builder.cli.core import (
    ArtifactsOption,
    ConfigOption,
    DatabaseOption,
    TaxonomyOption,
    VerboseOption,
    command_settings,
    existing_store,
    fail,
    show_tracebacks,
    user_errors,
)
from builder.cli.display import console, errors, progress_bars
from builder.cli.prefect_env import prefect_session
from builder.core.errors import InputError
from builder.store import ReviewState

app = typer.Typer()


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
    taxonomy: TaxonomyOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Export approved items as a versioned local release (Parquet + manifest + card + changelog).

    A version has one content: rerunning after an interrupted release (same --out) completes or
    verifies it; another --out for a released version is refused. The licence is release.license
    when set, else derived from the items' pictures and seeds; a warning says when it cannot be.
    """
    unknown = sorted(set(layout or []) - {"mir"})
    if unknown:
        fail(InputError(f"unknown --layout {', '.join(unknown)}; known: mir"))
    show_tracebacks(verbose)
    settings = command_settings(config, artifacts=artifacts, database_url=database_url, taxonomy=taxonomy)
    from builder.release.export import check_release

    with existing_store(settings) as store:
        started = {row.version: row.location for row in store.releases()}
        started |= {row.version: row.location for row in store.release_intents()}
        approved = store.review_counts().get(ReviewState.APPROVED.value, 0)
    with user_errors():
        check_release(version, out, started, approved)  # before Prefect starts: a refusal writes nothing
    layouts = ["hf", *sorted(set(layout or []))]
    with prefect_session(settings, verbose):
        from flows.release import release_flow

        with user_errors(), progress_bars():
            result = release_flow(
                settings=settings, version=version, out=out, layouts=layouts, changelog_from=changelog_from
            )
    state = "already released, verified" if result.already_released else "written"
    console.print(
        f"release {result.version} ({state}): {result.items} items -> {result.location} "
        f"(manifest sha256 {result.manifest_sha256[:12]})"
    )
    if result.license is not None:
        console.print(f"  {result.license.line()}", markup=False, highlight=False)
        for warning in result.license.warnings:
            errors.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)


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
            help="Dry-run folder, new or empty. [default: ARTIFACTS/publish/ORG--NAME/vVERSION]",
            show_default=False,
        ),
    ] = None,
    config: ConfigOption = None,
    artifacts: ArtifactsOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Publish a release to the Hugging Face Hub: one commit, tagged vVERSION, private and gated.

    The token comes from HF_TOKEN or `hf auth login`. A tag with other content is refused; the same
    content again is a no-op; a rerun resumes an interrupted upload. Refuses unapproved items,
    images that do not decode and releases without a licence (neither set by release.license
    nor derived from their pictures and seeds).
    """
    from builder.core.outputs import check_new_folder
    from builder.release import publish as hub

    if dry_run_out is not None and not dry_run:
        fail(InputError("--dry-run-out is for --dry-run: add --dry-run, or leave --dry-run-out out"))
    settings = command_settings(config, artifacts=artifacts, database_url=database_url)
    target = dry_run_out or settings.artifacts / "publish" / repo.replace("/", "--") / f"v{version}"
    if dry_run:
        with user_errors():
            check_new_folder(target, "--dry-run-out")
    try:
        with existing_store(settings) as store, user_errors(), progress_bars():
            result = hub.publish_version(store, settings, version, repo, target if dry_run else None)
    except hub.PublishError as error:
        resume = "; rerun to resume" if error.resumable else ""
        errors.print(f"[bold red]error:[/] {escape(str(error))}{resume}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=1) from None
    if result.dry_run_folder is not None:
        console.print(f"dry run: {result.files} file(s) for {repo} tag {result.tag} written to {target}")
        return
    console.print(
        f"{result.action}: {repo} {result.tag} ({result.files} files, commit {result.commit or '-'})"
    )
    if result.gated is None and result.action != "already published":
        errors.print("warning: the Hub did not accept gated access; set it by hand in the repo settings")
