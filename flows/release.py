"""The release flow: approved items -> a versioned local release."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task

from builder.config.settings import Settings
from builder.release.create import create_release
from builder.release.export import Layout, ReleaseResult


@task(task_run_name="write-release-{version}")
def write_release(
    settings: Settings, version: str, out: Path, layouts: list[Layout], changelog_from: str | None
) -> ReleaseResult:
    return create_release(settings, version, out, layouts, changelog_from)


@flow(name="mirbench-release")
def release_flow(
    settings: Settings,
    version: str,
    out: Path,
    layouts: list[Layout] | None = None,
    changelog_from: str | None = None,
) -> ReleaseResult:
    return write_release(settings, version, out, layouts or ["hf"], changelog_from)
