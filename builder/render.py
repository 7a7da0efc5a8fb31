"""Stage `render`: give every image slot a picture, stored once under its content hash.

Backends sit behind `Renderer`. A render key (backend, its settings, the slot text) maps to
the file it produced, so an identical slot is never rendered twice, in this run or a later one.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import imagehash
from PIL import Image, ImageDraw, ImageFont

from builder import progress
from builder.items import ImageSlot, Item, ItemStatus
from builder.stats import StageOutput, StageStats


class Renderer(Protocol):
    name: str

    def signature(self) -> str:
        """Everything about the backend that changes its output (model, size, version)."""
        ...

    def render(self, slots: list[ImageSlot]) -> list[Image.Image]:
        """One image per slot, in order. May batch; must be deterministic per slot."""
        ...


class RenderCache(Protocol):
    def cached_renders(self, keys: list[str]) -> dict[str, object]: ...

    def cache_renders(self, rows: list[dict[str, str]]) -> None: ...


@dataclass(frozen=True)
class StoredImage:
    file: str  # relative to the artifacts folder
    sha256: str
    phash: str


def render_key(renderer: Renderer, slot: ImageSlot) -> str:
    text = "\x1f".join([renderer.signature(), slot.description, *slot.keywords])
    return hashlib.sha256(text.encode()).hexdigest()


def store_image(image: Image.Image, artifacts: Path) -> StoredImage:
    """Write `image` as PNG under its sha256 (atomically); return where and its hashes."""
    buffer = io.BytesIO()
    # Level 1: several times faster to write than the default, for slightly larger files.
    image.save(buffer, format="PNG", compress_level=1)
    data = buffer.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    relative = Path("images") / sha[:2] / f"{sha}.png"
    target = artifacts / relative
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=target.parent, suffix=".part")
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, target)
    return StoredImage(file=relative.as_posix(), sha256=sha, phash=str(imagehash.phash(image)))


def render_items(
    items: list[Item], renderer: Renderer, cache: RenderCache, artifacts: Path
) -> StageOutput[Item]:
    """Fill every slot's file and hashes; an item whose slots cannot be rendered fails."""
    stats = StageStats(stage="render", items_in=len(items))
    advance = progress.track("render", len(items))
    with stats.timed():
        keys = {id(slot): render_key(renderer, slot) for item in items for slot in item.slots}
        known = cache.cached_renders(sorted(set(keys.values())))
        fresh: dict[str, StoredImage] = {}
        for item in items:
            missing = [s for s in item.slots if keys[id(s)] not in known and keys[id(s)] not in fresh]
            try:
                images = renderer.render(missing) if missing else []
            except Exception as exc:  # a backend error fails this item, not the run
                item.fail("render", "renderer error", f"{type(exc).__name__}: {exc}")
                stats.count(item.status.value)
                advance(1)
                continue
            for slot, image in zip(missing, images, strict=True):
                fresh[keys[id(slot)]] = store_image(image, artifacts)
            stats.count("images_rendered", len(missing))
            stats.count("images_cached", len(item.slots) - len(missing))
            for slot in item.slots:
                stored = fresh.get(keys[id(slot)]) or known[keys[id(slot)]]
                slot.file, slot.sha256, slot.phash = stored.file, stored.sha256, stored.phash
            item.status = ItemStatus.RENDERED
            stats.count(item.status.value)
            advance(1)
        cache.cache_renders(
            [{"key": key, "file": s.file, "sha256": s.sha256, "phash": s.phash} for key, s in fresh.items()]
        )
    return StageOutput[Item](items=items, stats=stats)


class TypographicRenderer:
    """Offline backend: a legible card per slot (keyword large, description below).

    A block pattern derived from the text sits behind the card so that different slots differ
    in their low frequencies too; perceptual hashes then tell cards of one layout apart.
    """

    name = "typographic"
    version = "1"

    def __init__(self, size: int = 512):
        self.size = size
        self._title_font = ImageFont.load_default(size=max(12, size // 9))
        self._body_font = ImageFont.load_default(size=max(10, size // 22))

    def signature(self) -> str:
        return f"{self.name}@{self.version}/{self.size}"

    def render(self, slots: list[ImageSlot]) -> list[Image.Image]:
        return [self._card(slot) for slot in slots]

    def _card(self, slot: ImageSlot) -> Image.Image:
        size = self.size
        digest = hashlib.sha256(f"{slot.description}\x1f{slot.keywords}".encode()).digest()
        image = Image.new("RGB", (size, size), "white")
        draw = ImageDraw.Draw(image)
        cells = 4
        cell = size / cells
        for index in range(cells * cells):
            shade = 70 + digest[index] % 150
            tint = digest[16 + index % 16]
            colour = (shade, (shade + tint) // 2, max(0, shade - tint // 3))
            row, column = divmod(index, cells)
            draw.rectangle([column * cell, row * cell, (column + 1) * cell, (row + 1) * cell], fill=colour)
        margin = size // 8
        draw.rounded_rectangle(
            [margin, margin, size - margin, size - margin], radius=size // 24, fill="white"
        )
        title = " ".join(slot.keywords) or slot.role
        width = max(8, int((size - 2 * margin) / (self._title_font.size * 0.55)))
        y = margin + size // 16
        for line in textwrap.wrap(title, width=width)[:2]:
            draw.text((margin + size // 24, y), line, fill="black", font=self._title_font)
            y += int(self._title_font.size * 1.2)
        y += size // 32
        body_width = max(12, int((size - 2 * margin) / (self._body_font.size * 0.5)))
        for line in textwrap.wrap(slot.description, width=body_width)[:8]:
            draw.text((margin + size // 24, y), line, fill=(40, 40, 40), font=self._body_font)
            y += int(self._body_font.size * 1.3)
        return image
