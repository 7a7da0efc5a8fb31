"""Renderer `typographic`: a legible card per slot (Pillow); offline, needs no model."""

from __future__ import annotations

import hashlib
import textwrap
from collections.abc import Sequence
from typing import Any, Literal, Self

from PIL import Image, ImageDraw, ImageFont
from pydantic import Field

from builder.core.items import ImageSlot
from builder.stages.render import Rendered, Renderer, RendererSettings, SlotJob, content_key, renderers


class TypographicSettings(RendererSettings):
    backend: Literal["typographic"] = "typographic"
    fallback: str | None = Field(
        None, description="Why the build fell back to cards: the picture pool could not be used."
    )


@renderers.register
class TypographicRenderer(Renderer):
    """Offline backend: a legible card per slot (keyword large, description below).

    A block pattern derived from the text sits behind the card so that different slots differ
    in their low frequencies too; perceptual hashes then tell cards of one layout apart.
    """

    name = "typographic"
    version = "1"
    Settings = TypographicSettings
    batch_size = 64
    draws_words = True

    @classmethod
    def stands_in_for_pictures(cls, settings: RendererSettings) -> str | None:
        return settings.fallback if isinstance(settings, TypographicSettings) else None

    def __init__(self, size: int = 512):
        self.size = size
        self._title_font = ImageFont.load_default(size=max(12, size // 9))
        self._body_font = ImageFont.load_default(size=max(10, size // 22))

    @classmethod
    def from_settings(cls, settings: TypographicSettings, workspace: Any) -> Self:
        return cls(size=settings.size)

    def signature(self) -> str:
        return f"{self.name}@{self.version}/{self.size}"

    def render_key(self, job: SlotJob) -> str:
        return content_key(self, job.slot)

    def render(self, jobs: Sequence[SlotJob]) -> list[Rendered]:
        return [Rendered(self._card(job.slot)) for job in jobs]

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
        title, body = self._lines(slot)
        y = margin + size // 16
        for line in title:
            draw.text((margin + size // 24, y), line, fill="black", font=self._title_font)
            y += int(self._title_font.size * 1.2)
        y += size // 32
        for line in body:
            draw.text((margin + size // 24, y), line, fill=(40, 40, 40), font=self._body_font)
            y += int(self._body_font.size * 1.3)
        return image

    def _lines(self, slot: ImageSlot) -> tuple[list[str], list[str]]:
        """The title lines (keywords) and body lines (description) that fit on the card."""
        inner = self.size - 2 * (self.size // 8)
        title_width = max(8, int(inner / (self._title_font.size * 0.55)))
        body_width = max(12, int(inner / (self._body_font.size * 0.5)))
        title = textwrap.wrap(" ".join(slot.keywords) or slot.role, width=title_width)[:2]
        return title, textwrap.wrap(slot.description, width=body_width)[:8]

    def drawn_text(self, slot: ImageSlot) -> str:
        title, body = self._lines(slot)
        return "\n".join([*title, *body])
