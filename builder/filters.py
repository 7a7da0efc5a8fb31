"""Stage `filters`: automatic checks every candidate must pass before people see it.

Each filter has a name and a version, and leaves a verdict on every item it checks, passed or
not. The first failing filter rejects the item; later filters do not run on it.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image, UnidentifiedImageError

from builder import progress
from builder.items import Item, ItemStatus, Verdict
from builder.stats import StageOutput, StageStats
from builder.taxonomy import Taxonomy
from builder.text import contains_phrase


class Filter(Protocol):
    name: str
    version: str

    def check(self, item: Item) -> Verdict: ...


class StructuralFilter:
    """Slot count within the relation's range, no empty text, every image decodes and shows something."""

    name = "structural"
    version = "1"

    def __init__(self, taxonomy: Taxonomy, artifacts: Path, min_pixel_stddev: float):
        self.taxonomy = taxonomy
        self.artifacts = artifacts
        self.min_pixel_stddev = min_pixel_stddev
        # Files are content-addressed, so one path always holds the same image: inspect it once.
        self._inspect = lru_cache(maxsize=65536)(self._pixel_spread)

    def _pixel_spread(self, file: str) -> float | str:
        """The image's grey-level standard deviation, or why it does not decode."""
        try:
            with Image.open(self.artifacts / file) as image:
                return float(np.asarray(image.convert("L"), dtype=np.float32).std())
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
            return str(exc)

    def _verdict(
        self, passed: bool, reason: str = "", detail: str = "", score: float | None = None
    ) -> Verdict:
        return Verdict(
            name=self.name, version=self.version, passed=passed, reason=reason, detail=detail, score=score
        )

    def check(self, item: Item) -> Verdict:
        relation = self.taxonomy.relation(item.relation)
        count = len(item.slots)
        if not relation.min_images <= count <= relation.max_images:
            return self._verdict(
                False,
                "image count out of range",
                f"{count} image(s); {relation.slug} needs {relation.min_images}-{relation.max_images}",
            )
        if not item.revised_prompt.strip():
            return self._verdict(False, "empty prompt")
        lowest = float("inf")
        for number, slot in enumerate(item.slots, start=1):
            if not slot.description.strip() or not any(k.strip() for k in slot.keywords):
                return self._verdict(False, "empty image text", f"slot {number}")
            if slot.file is None:
                return self._verdict(False, "image missing", f"slot {number} was never rendered")
            spread = self._inspect(slot.file)
            if isinstance(spread, str):
                return self._verdict(False, "image does not decode", f"slot {number}: {spread}")
            lowest = min(lowest, spread)
            if spread < self.min_pixel_stddev:
                return self._verdict(
                    False, "blank image", f"slot {number}: pixel stddev {spread:.2f}", score=spread
                )
        return self._verdict(True, score=lowest)


class LeakageFilter:
    """The prompt alone must not state the request: it may not repeat the seed's key phrase."""

    name = "leakage"
    version = "1"

    def check(self, item: Item) -> Verdict:
        leaked = contains_phrase(item.revised_prompt, item.guarded_phrase)
        return Verdict(
            name=self.name,
            version=self.version,
            passed=not leaked,
            reason="prompt repeats the key phrase" if leaked else "",
            detail=f"key phrase: {item.guarded_phrase!r}" if leaked else "",
        )


def filter_items(items: list[Item], filters: list[Filter]) -> StageOutput[Item]:
    stats = StageStats(stage="filters", items_in=len(items))
    advance = progress.track("filters", len(items))
    with stats.timed():
        for item in items:
            for check in filters:
                verdict = check.check(item)
                if not verdict.passed:
                    item.reject(verdict)
                    stats.count(f"{verdict.name}: {verdict.reason}")
                    break
                item.verdicts.append(verdict)
            else:
                item.status = ItemStatus.PASSED
                stats.count(item.status.value)
            advance(1)
    return StageOutput[Item](items=items, stats=stats)
