"""Stage `release`: export approved items as a versioned, self-describing local release.

Layout (what `datasets.load_dataset(DIR)` and the MIR-SafetyBench tools read):
    DIR/data/train-vX.Y.Z-<digest>-0000K-of-0000N.parquet   rows with the published field names
    DIR/README.md            dataset card (YAML metadata, content warning, how it was built)
    DIR/CHANGELOG.md         what changed since the previous release
    DIR/items_per_cell.png   a plot of items per (category, relation) cell
    DIR/manifest.json        checksums, the selection and the (portable) config behind it
    DIR/mir/<Category>/...   with `--layout mir`: MIR-SafetyBench's own on-disk layout

What the release says about itself (the manifest less its file list, from which the card and
the changelog are written) is `builder/release/description.py`; its licence,
`builder/release/licence.py`.

Decisions a user of a release relies on:
- Released ids are `mb-` + the store's item id: they never parse as an integer, so
  MIR-SafetyBench's `extract_data.py` (which applies `int(id)` when it can) keeps every id a
  string, leading zeros included.
- Data file names carry the version and a digest of the rows, and so does the card's
  `data_files` pattern: `datasets` caches a local folder by its name and that pattern, so two
  releases in folders of the same name never serve each other's rows.
- No release file holds an absolute path: paths in the config are reduced to their last part.
- A version has one content. The manifest's hash is recorded in the store as an intent before
  the folder is moved into place, so a release killed at any point is completed (or verified)
  by a rerun with the same `--out`, and no `--out` can give the same version other content.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from builder.config.taxonomy import Taxonomy
from builder.core import progress
from builder.core.errors import InputError, InputErrors
from builder.core.items import Item
from builder.core.outputs import check_new_folder, move_into_place, remove_abandoned, staging_for, writing
from builder.core.stats import StageStats
from builder.release.description import StoreFacts, describe, store_facts
from builder.release.licence import ReleaseLicense
from builder.release.rows import published_row, sha256_file, write_mir_layout, write_parquet
from builder.run.scope import build_configs
from builder.store import Store

VERSION_PATTERN = re.compile(r"^\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?$")
ROWS_PER_SHARD = 500
Layout = Literal["hf", "mir"]


class ReleaseResult(BaseModel):
    version: str
    location: Path
    items: int
    manifest_sha256: str
    stats: StageStats
    already_released: bool = False
    license: ReleaseLicense | None = None  # None: an earlier run wrote it (it was told then)


def version_key(version: str) -> tuple[int, int, int, str]:
    major, minor, patch = re.match(r"(\d+)\.(\d+)\.(\d+)", version).groups()  # type: ignore[union-attr]
    return int(major), int(minor), int(patch), version


def verify_release(folder: Path, manifest_sha256: str) -> dict[str, Any]:
    """The release's manifest, once `folder` holds exactly the files it lists, unchanged."""
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        raise InputError("not a release folder: manifest.json is missing", path=folder)
    if sha256_file(manifest_path) != manifest_sha256:
        raise InputError("manifest.json differs from the one recorded for this release", path=folder)
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    listed = {entry["path"]: entry["sha256"] for entry in manifest["files"]}
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {"manifest.json"}
    if present != set(listed):
        odd = sorted(present ^ set(listed))[:5]
        raise InputError(f"files differ from the manifest (e.g. {', '.join(odd)})", path=folder)
    for path, expected in listed.items():
        if sha256_file(folder / path) != expected:
            raise InputError("file changed since release (checksum differs)", path=folder / path)
    return manifest


def check_release(version: str, out: Path, started: dict[str, str], approved: int) -> None:
    """Every reason release `version` into `out` cannot be written, found before anything is.
    `started` maps each version released or begun to its folder: the same version into the same
    folder is a rerun, which completes or verifies it."""
    problems = []
    out = Path(out)
    if not VERSION_PATTERN.match(version):
        problems.append(InputError(f"version '{version}' is not X.Y.Z (semantic versioning)"))
    elif version in started:
        if Path(started[version]) != out.resolve():
            problems.append(
                InputError(
                    f"release {version} already exists at {started[version]}; versions are immutable "
                    "(rerun with that --out to complete or verify it)"
                )
            )
        if len(problems) == 1:
            raise problems[0]
        return
    try:
        check_new_folder(out, "--out", "release folder")
    except InputError as problem:
        problems.append(problem)
    if not approved:
        problems.append(
            InputError("no approved items to release; approve some with `mirbench review approve`")
        )
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise InputErrors(problems)


def write_release(
    items: list[Item],
    taxonomy: Taxonomy,
    artifacts: Path,
    staging: Path,
    version: str,
    config: dict[str, Any],
    facts: StoreFacts,
    layouts: list[Layout],
    previous: dict[str, Any] | None,
    stats: StageStats,
) -> bytes:
    """Write the whole release into `staging` (a fresh folder); returns the manifest's bytes."""
    from datasets.utils.logging import disable_progress_bar

    from builder.release.card import render_card
    from builder.release.cells import plot_cells
    from builder.release.changelog import changelog

    disable_progress_bar()  # our own bar covers the export
    shards = (len(items) + ROWS_PER_SHARD - 1) // ROWS_PER_SHARD
    advance = progress.track("release", len(items) * (2 if "mir" in layouts else 1))
    (staging / "data").mkdir(parents=True, exist_ok=True)

    def rows() -> Iterable[list[dict[str, Any]]]:
        for shard in range(shards):
            chunk = items[shard * ROWS_PER_SHARD : (shard + 1) * ROWS_PER_SHARD]
            yield [published_row(item, taxonomy, artifacts) for item in chunk]
            advance(len(chunk))

    data_files = write_parquet(rows(), staging / "data", version, shards)
    if "mir" in layouts:
        write_mir_layout(items, taxonomy, artifacts, staging / "mir")
        advance(len(items))
    previous_version = previous["version"] if previous else None
    description = describe(items, taxonomy, version, config, facts, layouts, data_files, previous_version)
    changes = changelog(description, previous)
    (staging / "CHANGELOG.md").write_text(changes.markdown, encoding="utf-8")
    plot_cells(description, staging / "items_per_cell.png")
    (staging / "README.md").write_text(render_card(description, changes), encoding="utf-8")
    description["files"] = [
        {"path": p.relative_to(staging).as_posix(), "bytes": p.stat().st_size, "sha256": sha256_file(p)}
        for p in sorted(staging.rglob("*"))
        if p.is_file()
    ]
    manifest_bytes = json.dumps(description, indent=2, sort_keys=True).encode()
    (staging / "manifest.json").write_bytes(manifest_bytes)
    stats.count("release", "released", len(items))
    return manifest_bytes


def previous_manifest(store: Store, version: str) -> dict[str, Any] | None:
    """The manifest of the highest recorded release below `version`, if its folder still has one."""
    earlier = [row for row in store.releases() if version_key(row.version) < version_key(version)]
    if not earlier:
        return None
    latest = max(earlier, key=lambda row: version_key(row.version))
    path = Path(latest.location) / "manifest.json"
    if not path.is_file():
        raise InputError(
            f"previous release {latest.version} has no manifest.json any more (the changelog compares "
            "with it): put its folder back, or compare with the Hub's latest tag (--changelog-from ORG/NAME)",
            path=path,
        )
    return json.loads(path.read_text(encoding="utf-8"))


def _completed(version: str, out: Path, items: int, manifest_sha256: str, stats: StageStats) -> ReleaseResult:
    return ReleaseResult(
        version=version,
        location=out,
        items=items,
        manifest_sha256=manifest_sha256,
        stats=stats,
        already_released=True,
    )


def release_approved(
    store: Store,
    taxonomy: Taxonomy,
    artifacts: Path,
    out: Path,
    version: str,
    config: dict[str, Any],
    layouts: list[Layout],
    previous: dict[str, Any] | None = None,
) -> ReleaseResult:
    """Release every approved item as `version` into `out`, or complete/verify an earlier attempt.

    `previous` is the manifest to write the changelog against; default: the previous local release.
    `config` is the release command's settings: only their `release` section is recorded.
    """
    if not VERSION_PATTERN.match(version):
        raise InputError(f"version '{version}' is not X.Y.Z (semantic versioning)")
    out = Path(out).resolve()
    stats = StageStats(stage="release")
    recorded = store.release(version)
    if recorded is not None:
        if Path(recorded.location) != out:
            raise InputError(
                f"release {version} already exists at {recorded.location}; versions are immutable"
            )
        verify_release(out, recorded.manifest_sha256)
        return _completed(version, out, recorded.items, recorded.manifest_sha256, stats)
    intent = store.release_intent(version)
    staging = staging_for(out)
    remove_abandoned(out.parent, [staging_for(Path(row.location)) for row in store.release_intents()])
    if intent is not None:
        if Path(intent.location) != out:
            raise InputError(
                f"release {version} was started at {intent.location} and not finished; rerun with "
                f"--out {intent.location} to complete it (a version has one content)"
            )
        for candidate in (out, staging):
            if (candidate / "manifest.json").is_file():
                verify_release(candidate, intent.manifest_sha256)
                if candidate == staging:
                    move_into_place(staging, out)
                store.record_release(version, str(out), intent.items, intent.manifest_sha256)
                return _completed(version, out, intent.items, intent.manifest_sha256, stats)
        # Neither folder holds it: it never became visible, so writing it anew is safe.
    check_new_folder(out, "--out", "release folder")
    items = store.approved_items()
    if not items:
        raise InputError("no approved items to release; approve some with `mirbench review approve`")
    stats.items_in = len(items)
    if previous is None:  # the Hub's manifest, when asked for, wins over the local one
        previous = previous_manifest(store, version)
    # What made the items: each build run's settings, never this release command's (only its
    # `release` section, which the card's metadata and publishing read).
    facts = store_facts(store, items, config.get("calibration"))
    config = {"release": config.get("release", {}), "build_runs": build_configs(store, items)}
    with writing(staging, "the release"), stats.timed():
        manifest = write_release(
            items,
            taxonomy,
            artifacts,
            staging,
            version,
            config,
            facts,
            layouts,
            previous,
            stats,
        )
        digest = hashlib.sha256(manifest).hexdigest()
        _sync(staging)
        store.record_release_intent(version, str(out), len(items), digest)
        move_into_place(staging, out)
    store.record_release(version, str(out), len(items), digest)
    license = ReleaseLicense.model_validate(json.loads(manifest)["license"])
    return ReleaseResult(
        version=version, location=out, items=len(items), manifest_sha256=digest, stats=stats, license=license
    )


def _sync(folder: Path) -> None:
    """Flush the staged files to disk before the store points at them."""
    for path in folder.rglob("*"):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
