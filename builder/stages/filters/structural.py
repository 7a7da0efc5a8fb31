"""Filter `structural`: image count within the relation's range, no empty text, every image
decodes and shows something."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Self

from PIL import Image, UnidentifiedImageError
from pydantic import Field

from builder.config.taxonomy import Taxonomy
from builder.core.items import Item, Verdict
from builder.stages.filters import Filter, FilterSettings, filters
from builder.stages.render.pixels import grey_spread, spreads

if TYPE_CHECKING:
    from builder.stages.workspace import Workspace


class StructuralSettings(FilterSettings):
    name: Literal["structural"] = "structural"
    min_pixel_stddev: float = Field(4.0, ge=0, description="Images with less pixel variation are 'blank'.")


@filters.register
class StructuralFilter(Filter):
    name = "structural"
    version = "1"
    Settings = StructuralSettings

    def __init__(self, taxonomy: Taxonomy, artifacts: Path, min_pixel_stddev: float):
        self.taxonomy = taxonomy
        self.artifacts = artifacts
        self.min_pixel_stddev = min_pixel_stddev
        # Files are content-addressed, so one path always holds the same image: inspect it once.
        self._inspect = lru_cache(maxsize=65536)(self._pixel_spread)

    @classmethod
    def from_settings(cls, settings: StructuralSettings, workspace: Workspace) -> Self:
        return cls(workspace.taxonomy, workspace.artifacts, settings.min_pixel_stddev)

    def _pixel_spread(self, file: str) -> float | str:
        """The image's grey-level standard deviation, or why it does not decode (a picture this
        process rendered was measured then, and is not decoded again)."""
        known = spreads.recall(file)
        if known is not None:
            return known
        try:
            with Image.open(self.artifacts / file) as image:
                return grey_spread(image.convert("L"))
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
            return str(exc)

    def check(self, item: Item) -> Verdict:
        relation = self.taxonomy.relation(item.relation)
        count = len(item.slots)
        if not relation.min_images <= count <= relation.max_images:
            return self.verdict(
                False,
                "image count out of range",
                f"{count} image(s); {relation.slug} needs {relation.min_images}-{relation.max_images}",
            )
        if not item.revised_prompt.strip():
            return self.verdict(False, "empty prompt")
        lowest = float("inf")
        for number, slot in enumerate(item.slots, start=1):
            if not slot.description.strip() or not any(k.strip() for k in slot.keywords):
                return self.verdict(False, "empty image text", f"slot {number}")
            if slot.file is None:
                return self.verdict(False, "image missing", f"slot {number} was never rendered")
            spread = self._inspect(slot.file)
            if isinstance(spread, str):
                return self.verdict(False, "image does not decode", f"slot {number}: {spread}")
            lowest = min(lowest, spread)
            if spread < self.min_pixel_stddev:
                return self.verdict(False, "blank image", f"slot {number}: pixel stddev {spread:.2f}", spread)
        return self.verdict(True, score=lowest)
