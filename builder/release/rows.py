"""The published row format: MIR-SafetyBench's field names, ids, image bytes, Parquet shards and
its own on-disk layout. Releases write it; MIR-SafetyBench's `extract_data.py` and `eval.py` read
it unchanged, so nothing here changes without a test against those readers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from builder.config.taxonomy import Taxonomy
from builder.core.errors import InputError
from builder.core.items import Item

ID_PREFIX = "mb-"
PUBLISHED_FIELDS = (
    "id",
    "category",
    "relationship_type",
    "original_question",
    "revised_prompt",
    "image_descriptions",
    "image_keywords",
    "images",
    "num_images",
    "iteration",
)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def published_id(item_id: str) -> str:
    """The id a release row carries: never an integer under `int()`, so consumers keep it as is."""
    return f"{ID_PREFIX}{item_id}"


def features() -> Any:
    from datasets import Features, Image, List, Value

    return Features(
        {
            "id": Value("string"),
            "category": Value("string"),
            "relationship_type": Value("string"),
            "original_question": Value("string"),
            "revised_prompt": Value("string"),
            "image_descriptions": List(Value("string")),
            "image_keywords": List(Value("string")),
            "images": List(Image()),
            "num_images": Value("int32"),
            "iteration": Value("int32"),
        }
    )


def image_bytes(item: Item, artifacts: Path) -> list[bytes]:
    images = []
    for number, slot in enumerate(item.slots, start=1):
        if slot.file is None:
            raise InputError(f"item {item.id}: slot {number} has no rendered image")
        path = artifacts / slot.file
        try:
            images.append(path.read_bytes())
        except OSError as exc:
            raise InputError(
                f"item {item.id}: image of slot {number} is missing: {exc.strerror}", path=path
            ) from exc
    return images


def published_row(item: Item, taxonomy: Taxonomy, artifacts: Path) -> dict[str, Any]:
    """An item in the published MIR-SafetyBench row shape, image bytes embedded."""
    row_id = published_id(item.id)
    return {
        "id": row_id,
        "category": taxonomy.category(item.category).published_name,
        "relationship_type": taxonomy.relation(item.relation).published_name,
        "original_question": item.original_question,
        "revised_prompt": item.revised_prompt,
        "image_descriptions": [slot.description for slot in item.slots],
        "image_keywords": [", ".join(slot.keywords) for slot in item.slots],
        "images": [
            {"bytes": data, "path": f"{row_id}_{k}.png"}
            for k, data in enumerate(image_bytes(item, artifacts))
        ],
        "num_images": len(item.slots),
        "iteration": item.iteration,
    }


def write_parquet(rows_of: Iterable[list[dict[str, Any]]], data_dir: Path, version: str, shards: int) -> str:
    """Write shards, then name them after the version and a digest of their bytes; returns the glob."""
    from datasets import Dataset

    schema = features()
    digest = hashlib.sha256()
    written = []
    for shard, rows in enumerate(rows_of):
        path = data_dir / f"part-{shard:05d}.parquet"
        Dataset.from_list(rows, features=schema).to_parquet(str(path))
        digest.update(sha256_file(path).encode())
        written.append(path)
    stem = f"train-v{version}-{digest.hexdigest()[:12]}"
    for shard, path in enumerate(written):
        path.rename(data_dir / f"{stem}-{shard:05d}-of-{shards:05d}.parquet")
    return f"data/{stem}-*.parquet"


def write_mir_layout(items: list[Item], taxonomy: Taxonomy, artifacts: Path, root: Path) -> None:
    """MIR-SafetyBench's layout, as its `extract_data.py` writes it and its `eval.py` reads it:
    `<Category>/<Relation>_final.json` + `<Category>/images/<Relation>/<Relation>_<id>_<k>.png`."""
    cells: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for item in items:
        category = taxonomy.category(item.category).published_name
        relation = taxonomy.relation(item.relation).published_name
        row_id = published_id(item.id)
        image_dir = root / category / "images" / relation
        image_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        for k, data in enumerate(image_bytes(item, artifacts)):
            name = f"{relation}_{row_id}_{k}.png"
            (image_dir / name).write_bytes(data)  # rendered images are stored as PNG already
            paths.append(f"images/{relation}/{name}")
        cells.setdefault((category, relation), []).append(
            {
                "id": row_id,
                "original_question": item.original_question,
                "relationship_type": relation,
                "revised_prompt": item.revised_prompt,
                "image_descriptions": [slot.description for slot in item.slots],
                "image_keywords": [", ".join(slot.keywords) for slot in item.slots],
                "images": paths,
                "iteration": item.iteration,
            }
        )
    for (category, relation), entries in cells.items():
        text = json.dumps(entries, ensure_ascii=False, indent=2)
        (root / category / f"{relation}_final.json").write_text(text, encoding="utf-8")
