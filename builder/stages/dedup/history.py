"""Earlier releases as dedup sees them: an entry per released item, read from the release's
manifest (picture hashes) and Parquet rows (texts)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

from builder.stages.dedup.index import Entry

if TYPE_CHECKING:
    from builder.stages.workspace import Workspace


def release_entries(folder: Path) -> tuple[str, list[Entry]]:
    """What dedup needs of an earlier release: (its name, one entry per item). Picture hashes
    come from the manifest when it carries them, else from the images in its Parquet files;
    texts come from its Parquet rows."""
    import io

    import imagehash
    import pyarrow.parquet as pq
    from PIL import Image

    from builder.core.errors import InputError

    manifest_path = Path(folder) / "manifest.json"
    if not manifest_path.is_file():
        raise InputError("not a mirbench release (no manifest.json)", path=folder)
    raw = manifest_path.read_bytes()
    manifest = json.loads(raw)
    hashes = {row["id"]: row.get("images") for row in manifest.get("selection", [])}
    version = str(manifest.get("version", Path(folder).name))
    entries = []
    for shard in sorted((Path(folder) / "data").glob("*.parquet")):
        columns = ["id", "revised_prompt", "image_descriptions"]
        known = all(
            hashes.get(row_id) for row_id in pq.read_table(shard, columns=["id"]).column("id").to_pylist()
        )
        table = pq.read_table(shard, columns=columns if known else [*columns, "images"])
        for row in table.to_pylist():
            images = hashes.get(row["id"]) or [
                {
                    "sha256": hashlib.sha256(image["bytes"]).hexdigest(),
                    "phash": str(imagehash.phash(Image.open(io.BytesIO(image["bytes"])))),
                }
                for image in row["images"]
            ]
            entries.append(
                Entry(
                    f"{version}/{row['id']}",
                    tuple(image["sha256"] for image in images),
                    tuple(image["phash"] for image in images),
                    (row["revised_prompt"], *row["image_descriptions"]),
                )
            )
    return f"release {version} ({hashlib.sha256(raw).hexdigest()[:12]})", entries


def release_history(workspace: Workspace) -> list[tuple[str, list[Entry]]]:
    """Every earlier release a build compares with: those the settings name and those its
    store recorded (when their folder is still there)."""
    folders = [Path(path) for path in workspace.settings.stages.dedup.history]
    folders += [Path(row.location) for row in workspace.store.releases() if Path(row.location).is_dir()]
    unique = list(dict.fromkeys(folder.resolve() for folder in folders))
    return [release_entries(folder) for folder in unique]
