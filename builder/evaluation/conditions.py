"""The conditions an item is asked under (the papers' comparisons), each a view of the item:

- `multi`: as released, every image then the prompt;
- `single`: the images composed into one picture, a grid in their order with each cell
  labelled 1..n, and the same prompt (MIR-SafetyBench's multi- vs single-image comparison);
- `text`: the revised prompt alone, no image;
- `vanilla`: the original question alone, no image (SafeMLRM's baseline);
- `drop`: each image left out in turn (`drop:1`, `drop:2`, ...: `Item.without_image`, the build's
  ablation helper), which shows whether the item needs every image.

A view keeps the item's id; what a target is asked depends on the view alone, so its answer is
cached by what it was asked.
"""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

from builder.core.items import ImageSlot, Item
from builder.stages.render import store_image

GRID_GAP = 8  # pixels between cells, and around the grid
LABEL_SHARE = 0.12  # the label's height, as a share of the cell


def labels(item: Item, conditions: list[str]) -> list[str]:
    """The condition labels one item is asked under (`drop` expands to one per image)."""
    found = []
    for condition in conditions:
        if condition == "drop":
            found += [f"drop:{number}" for number in range(1, len(item.slots) + 1)]
        else:
            found.append(condition)
    return found


def view(item: Item, label: str, artifacts: Path, cell: int) -> Item:
    """`item` as condition `label` shows it (the `single` grid is stored in `artifacts`)."""
    if label == "multi":
        return item
    if label == "text":
        return item.model_copy(update={"slots": []})
    if label == "vanilla":
        return item.model_copy(update={"slots": [], "revised_prompt": item.original_question})
    if label == "single":
        return item.model_copy(update={"slots": [grid_slot(item, artifacts, cell)]})
    kind, _, number = label.partition(":")
    if kind == "drop" and number.isdigit():
        return item.without_image(int(number))
    raise ValueError(f"unknown condition label {label!r}")


def grid_slot(item: Item, artifacts: Path, cell: int) -> ImageSlot:
    """One slot holding the item's images as a labelled grid (stored under its sha256)."""
    pictures = []
    for slot in item.slots:
        with Image.open(artifacts / str(slot.file)) as picture:
            pictures.append(picture.convert("RGB"))
    stored = store_image(grid(pictures, cell), artifacts)
    return ImageSlot(
        role="grid",
        description="; ".join(f"{number}: {slot.description}" for number, slot in enumerate(item.slots, 1)),
        keywords=[word for slot in item.slots for word in slot.keywords],
        file=stored.file,
        sha256=stored.sha256,
        phash=stored.phash,
    )


def grid(pictures: list[Image.Image], cell: int) -> Image.Image:
    """The pictures in order, left to right and top to bottom, each scaled to fit a square cell
    on white and labelled with its number in the cell's top-left corner."""
    columns = math.ceil(math.sqrt(len(pictures)))
    rows = math.ceil(len(pictures) / columns)
    width, height = (GRID_GAP + (cell + GRID_GAP) * count for count in (columns, rows))
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=max(12, int(cell * LABEL_SHARE)))
    for number, picture in enumerate(pictures):
        fitted = ImageOps.contain(picture, (cell, cell))
        left = GRID_GAP + (number % columns) * (cell + GRID_GAP)
        top = GRID_GAP + (number // columns) * (cell + GRID_GAP)
        canvas.paste(fitted, (left + (cell - fitted.width) // 2, top + (cell - fitted.height) // 2))
        text, pad = str(number + 1), max(2, cell // 64)
        box = draw.textbbox((left + pad, top + pad), text, font=font)
        draw.rectangle((left, top, box[2] + pad, box[3] + pad), fill="black")
        draw.text((left + pad, top + pad), text, fill="white", font=font)
    return canvas
