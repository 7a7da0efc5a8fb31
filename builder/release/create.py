"""The release task: every approved item of the store exported as one versioned release."""

from __future__ import annotations

from pathlib import Path

from builder.config.settings import Settings
from builder.config.taxonomy import load_taxonomy
from builder.core.errors import InputError
from builder.release.export import Layout, ReleaseResult, release_approved
from builder.store import Store


def create_release(
    settings: Settings,
    version: str,
    out: Path,
    layouts: list[Layout] | None = None,
    changelog_from: str | None = None,
) -> ReleaseResult:
    """Export every approved item as release `version` (or complete an interrupted one).

    The changelog compares with the previous local release, or with the latest tag of the Hub
    repo `changelog_from`."""
    taxonomy = load_taxonomy(settings.taxonomy)
    previous = None
    if changelog_from:
        from huggingface_hub import get_token

        from builder.release.publish import PublishError, latest_hub_manifest

        try:
            previous = latest_hub_manifest(changelog_from, get_token(), settings.publish)
        except PublishError as error:
            raise InputError(f"--changelog-from {changelog_from}: {error}") from None
    with Store(settings.resolved_database_url) as store:
        config = settings.model_dump(mode="json", exclude={"database_url"})
        return release_approved(
            store, taxonomy, settings.artifacts, out, version, config, layouts or ["hf"], previous
        )
