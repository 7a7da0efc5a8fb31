"""Filter `alignment`: each image shows what its slot describes (CLIP score).

With a CLIP model configured (a folder or hub id the user has), every picture and its
description are embedded by CLIP and their cosine similarity is the slot's score; the item's
score is its lowest slot's, and an item with a slot below `min_score` is rejected. Off when no
model is configured (the funnel says so).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal, Self

import numpy as np
from PIL import Image
from pydantic import Field

from builder.core.items import Item, Verdict
from builder.models.embeddings import ClipEncoder
from builder.stages.filters import Filter, FilterSettings, filters

if TYPE_CHECKING:
    from builder.stages.workspace import Workspace


class AlignmentSettings(FilterSettings):
    name: Literal["alignment"] = "alignment"
    clip_model: str | None = Field(None, description="CLIP model folder or hub id; none: the check is off.")
    min_score: float = Field(
        0.2, ge=-1, le=1, description="Lowest cosine between an image and its description."
    )
    local_files_only: bool = Field(False, description="Never download (offline machines).")


@filters.register
class AlignmentFilter(Filter):
    name = "alignment"
    version = "1"
    Settings = AlignmentSettings
    thread_safe = False  # one CLIP model per worker

    def __init__(self, clip: ClipEncoder | None, artifacts: Path, min_score: float):
        self.clip, self.artifacts, self.min_score = clip, artifacts, min_score

    @classmethod
    def from_settings(cls, settings: AlignmentSettings, workspace: Workspace) -> Self:
        clip = ClipEncoder(settings.clip_model, settings.local_files_only) if settings.clip_model else None
        return cls(clip, workspace.artifacts, settings.min_score)

    @property
    def off_reason(self) -> str | None:
        return None if self.clip is not None else "no CLIP model configured (filters: alignment.clip_model)"

    def scores(self, item: Item) -> np.ndarray:
        """The cosine between each slot's picture and its description."""
        assert self.clip is not None
        pictures = []
        for slot in item.slots:
            with Image.open(self.artifacts / str(slot.file)) as image:
                pictures.append(image.convert("RGB"))
        images = self.clip.encode_images(pictures)
        texts = self.clip.encode_texts([slot.description for slot in item.slots])
        return (images * texts).sum(axis=1)

    def check(self, item: Item) -> Verdict:
        scores = self.scores(item)
        worst = int(scores.argmin())
        score = round(float(scores[worst]), 4)
        if scores[worst] < self.min_score:
            return self.verdict(
                False,
                "image does not show its description",
                f"slot {worst + 1}: CLIP cosine {score:.3f} < {self.min_score}",
                score,
            )
        return self.verdict(True, score=score)
