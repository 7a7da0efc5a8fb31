"""A dataset's rows as items: the one model every evaluation works on, whatever the source.

Each row becomes a `builder.core.items.Item` (its images as slots, stored once under their
sha256 in the artifacts folder, as the build stores renders), so conditions and targets treat a
release, MIR-SafetyBench's own data and a Hub dataset alike, and the build's own helpers apply
(`Item.without_image`). Categories and relations are the taxonomy's slugs, read from the
published names the rows carry.

`check` reads and verifies everything (filters applied, every kept image decoded) and writes
nothing; `store_images` then writes the images the artifacts folder lacks. Bad input stops
`check`, so a refused dataset leaves no trace.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from builder.config.taxonomy import Taxonomy
from builder.core.errors import InputError
from builder.core.items import ImageSlot, Item, ItemStatus, Provenance
from builder.evaluation.sources import Row, Source
from builder.stages.render import store_bytes


class Selection(BaseModel):
    """Which rows an evaluation takes: categories and relations (slugs; none: all), at most
    `limit` items spread over the (category, relation) cells."""

    categories: list[str] = []
    relations: list[str] = []
    limit: int | None = None


class Loaded(BaseModel):
    """A checked dataset: its items (images not yet stored) and what identifies it."""

    source: dict[str, Any]
    rows: int  # rows in the whole dataset
    content_hash: str  # over the items kept, in order
    items: list[Item]
    row_numbers: list[int]  # each item's row in the source, for `store_images`


def _slugs(taxonomy: Taxonomy) -> tuple[dict[str, str], dict[str, str]]:
    """Every spelling of each category and relation (slug, published name, display name) ->
    its slug."""
    categories = {
        spelling: slug
        for slug, category in taxonomy.categories.items()
        for spelling in (slug, category.published_name, category.display_name)
    }
    relations = {
        spelling: slug
        for slug, relation in taxonomy.relations.items()
        for spelling in (slug, relation.published_name, relation.display_name)
    }
    return categories, relations


def resolve_selection(selection: Selection, taxonomy: Taxonomy) -> Selection:
    """The selection in slugs; an unknown category or relation is an InputError listing the known."""
    categories, relations = _slugs(taxonomy)
    for given, known, kind in (
        (selection.categories, categories, "category"),
        (selection.relations, relations, "relation"),
    ):
        unknown = [name for name in given if name not in known]
        if unknown:
            choices = ", ".join(sorted({value for value in known.values()}))
            raise InputError(f"unknown {kind} {unknown[0]!r}; known: {choices}")
    if selection.limit is not None and selection.limit < 1:
        raise InputError(f"--limit must be at least 1 (got {selection.limit})")
    return Selection(
        categories=[categories[name] for name in selection.categories],
        relations=[relations[name] for name in selection.relations],
        limit=selection.limit,
    )


def _cell(row: Row, taxonomy: Taxonomy) -> tuple[str, str]:
    categories, relations = _slugs(taxonomy)
    category, relation = categories.get(row.category), relations.get(row.relation)
    if category is None:
        raise InputError(
            f"{row.where}: unknown category {row.category!r}; known: {', '.join(taxonomy.categories)}"
        )
    if relation is None:
        raise InputError(
            f"{row.where}: unknown relation {row.relation!r}; known: {', '.join(taxonomy.relations)}"
        )
    return category, relation


def _keys(rows: list[Row]) -> list[str]:
    """Each row's item id: its own id, qualified by its cell where ids repeat across cells (ids
    of MIR-SafetyBench's layout need only be unique within a file)."""
    counts = Counter(row.id for row in rows)
    keys = [row.id if counts[row.id] == 1 else f"{row.category}/{row.relation}/{row.id}" for row in rows]
    repeated = next((key for key, count in Counter(keys).items() if count > 1), None)
    if repeated is not None:
        where = next(row.where for row, key in zip(rows, keys, strict=True) if key == repeated)
        raise InputError(f"{where}: id {repeated!r} appears twice in the same category and relation")
    return keys


def spread(cells: Sequence[tuple[str, str]], limit: int | None) -> list[int]:
    """Indices of at most `limit` rows taken in turn from each (category, relation) cell (cells
    in sorted order, rows in dataset order): a small run covers every cell."""
    order = sorted(set(cells))
    queues = {cell: [n for n, own in enumerate(cells) if own == cell] for cell in order}
    picked: list[int] = []
    while any(queues.values()) and (limit is None or len(picked) < limit):
        for cell in order:
            if queues[cell] and (limit is None or len(picked) < limit):
                picked.append(queues[cell].pop(0))
    return sorted(picked)


def _image_file(data: bytes, where: str, number: int) -> tuple[str, str]:
    """(sha256, suffix) of one image, after checking that it decodes."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as picture:
            kind = (picture.format or "png").lower()
            picture.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{where}: image {number} does not decode: {exc}") from None
    suffix = {"jpeg": ".jpg", "png": ".png", "webp": ".webp", "gif": ".gif"}.get(kind, f".{kind}")
    return hashlib.sha256(data).hexdigest(), suffix


def check(source: Source, taxonomy: Taxonomy, selection: Selection) -> Loaded:
    """Read the dataset, keep the selected rows, check their images; write nothing."""
    selection = resolve_selection(selection, taxonomy)
    rows = source.rows()
    if not rows:
        raise InputError(f"{source.location}: the dataset has no rows")
    cells = [_cell(row, taxonomy) for row in rows]
    keys = _keys(rows)
    wanted = [
        number
        for number, (category, relation) in enumerate(cells)
        if (not selection.categories or category in selection.categories)
        and (not selection.relations or relation in selection.relations)
    ]
    if not wanted:
        raise InputError(f"{source.location}: no row matches the --category/--relation given")
    kept = [wanted[n] for n in spread([cells[n] for n in wanted], selection.limit)]
    files: dict[int, list[tuple[str, str]]] = {}
    for number, images in source.images(kept):
        row = rows[number]
        if len(images) != row.images:
            raise InputError(f"{row.where}: {len(images)} images, but the row says {row.images}")
        files[number] = [_image_file(data, row.where, k) for k, data in enumerate(images, start=1)]
    items = [_item(rows[n], keys[n], cells[n], files[n]) for n in kept]
    digest = hashlib.sha256("".join(content_hash(item) for item in items).encode()).hexdigest()
    return Loaded(
        source=source.description(), rows=len(rows), content_hash=digest, items=items, row_numbers=kept
    )


def _item(row: Row, key: str, cell: tuple[str, str], files: list[tuple[str, str]]) -> Item:
    slots = [
        ImageSlot(
            role=f"image {k}",
            description=description,
            keywords=keywords,
            file=f"images/{sha[:2]}/{sha}{suffix}",
            sha256=sha,
        )
        for k, (description, keywords, (sha, suffix)) in enumerate(
            zip(row.descriptions, row.keywords, files, strict=True), start=1
        )
    ]
    return Item(
        id=key,
        seed_id=row.id,
        original_question=row.original_question,
        guarded_phrase="",
        category=cell[0],
        relation=cell[1],
        iteration=row.iteration,
        revised_prompt=row.revised_prompt,
        slots=slots,
        status=ItemStatus.QUEUED,
        provenance=Provenance(composer="dataset", template="dataset", config_hash="", run_id=""),
    )


def content_hash(item: Item) -> str:
    """What the item asks, hashed: its cell, question, prompt, descriptions and images."""
    parts = [
        item.category,
        item.relation,
        item.original_question,
        item.revised_prompt,
        [slot.description for slot in item.slots],
        [slot.sha256 for slot in item.slots],
    ]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def store_images(source: Source, loaded: Loaded, artifacts: Path) -> int:
    """Write the images of `loaded` that the artifacts folder does not have yet; how many."""
    missing = [
        number
        for number, item in zip(loaded.row_numbers, loaded.items, strict=True)
        if any(not (artifacts / str(slot.file)).is_file() for slot in item.slots)
    ]
    by_row = dict(zip(loaded.row_numbers, loaded.items, strict=True))
    written = 0
    for number, images in source.images(missing):
        for slot, data in zip(by_row[number].slots, images, strict=True):
            assert slot.sha256 is not None and slot.file is not None
            if not (artifacts / slot.file).is_file():
                store_bytes(data, slot.sha256, Path(slot.file).suffix, artifacts)
                written += 1
    return written
