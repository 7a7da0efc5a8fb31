"""Benchmark work shared by the tester benchmarks: items of distinct 256x256 pictures."""

from __future__ import annotations

import hashlib
from pathlib import Path

from PIL import Image, ImageDraw

from builder.core.items import ImageSlot, Item, Provenance, item_id


def items(folder: Path, count: int, images: int) -> list[Item]:
    """`count` items of `images` pictures each, saved in `folder` (all of one shape)."""
    made = []
    for number in range(count):
        slots = []
        for index in range(images):
            picture = Image.new("RGB", (256, 256), ((number * 37) % 256, (index * 91) % 256, 128))
            ImageDraw.Draw(picture).text(
                (10, 10 + 20 * index), f"item {number} image {index}", fill=(0, 0, 0)
            )
            path = folder / f"{number}-{index}.png"
            picture.save(path)
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            slots.append(
                ImageSlot(role=f"r{index}", description="d", keywords=["k"], file=path.name, sha256=digest)
            )
        made.append(
            Item(
                id=item_id(f"s{number}", "analogy", 1),
                seed_id=f"s{number}",
                original_question="q",
                guarded_phrase="q",
                category="violence",
                relation="analogy",
                iteration=1,
                revised_prompt=f"w{number % 50} w{(number * 7) % 50} w3 w4 w5",
                slots=slots,
                provenance=Provenance(composer="bench", template="t", config_hash="c", run_id="r"),
            )
        )
    return made
