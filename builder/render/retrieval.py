"""Renderer `retrieval`: the best-matching image of a captioned pool, with a cap on reuse."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

import numpy as np
from pydantic import Field, model_validator

from builder.embeddings import ClipEncoder, TextEmbedder
from builder.items import ImageSlot
from builder.pool import PoolEntry, PoolIndex, PoolIndexReport, build_index, index_dir_for, pool_records
from builder.render import (
    RenderCache,
    Rendered,
    Renderer,
    RendererSettings,
    SlotFailure,
    SlotJob,
    content_key,
    renderers,
)

if TYPE_CHECKING:
    from builder.workspace import Workspace


class RetrievalSettings(RendererSettings):
    backend: Literal["retrieval"] = "retrieval"
    pool: Path | None = Field(None, description="Image pool folder or saved HF dataset.")
    pool_image_column: str = "image"
    pool_text_column: str = "text"
    max_reuse: int = Field(3, ge=1, description="Uses allowed per pool image.")
    pool_clip_model: str | None = Field(
        None, description="A CLIP model (folder or hub id) to match images themselves too."
    )
    local_files_only: bool = Field(False, description="CLIP: never download (offline machines).")

    @model_validator(mode="after")
    def _pool_given(self) -> RetrievalSettings:
        if self.pool is None:
            raise ValueError("renderer backend 'retrieval' needs an image pool (--pool or renderer.pool)")
        return self

    @property
    def pool_path(self) -> Path:
        assert self.pool is not None
        return self.pool


def _clip(settings: RetrievalSettings) -> ClipEncoder | None:
    if not settings.pool_clip_model:
        return None
    return ClipEncoder(settings.pool_clip_model, settings.local_files_only)


def index_pool(
    settings: RetrievalSettings, artifacts: Path, embedder: TextEmbedder, max_record_chars: int
) -> PoolIndexReport:
    """Build (or rebuild) the index of the pool (captions, and images with CLIP)."""
    return build_index(
        settings.pool_path,
        index_dir_for(artifacts, settings.pool_path),
        embedder.encode,
        embedder.model_name,
        settings.pool_image_column,
        settings.pool_text_column,
        clip=_clip(settings),
        max_record_chars=max_record_chars,
    )


def open_pool(
    settings: RetrievalSettings, artifacts: Path, embedder: TextEmbedder, max_record_chars: int
) -> PoolIndex:
    """The pool's index, (re)built first if missing or made with another CLIP model."""
    directory = index_dir_for(artifacts, settings.pool_path)
    meta = directory / "meta.json"
    if not meta.is_file() or json.loads(meta.read_text()).get("clip_model") != settings.pool_clip_model:
        index_pool(settings, artifacts, embedder, max_record_chars)
    return PoolIndex(directory, settings.pool_path, settings.pool_image_column, settings.pool_text_column)


def _label(entry: PoolEntry) -> str:
    """How a retrieved image's origin is recorded (and counted against the reuse cap)."""
    return f"{entry.source} [{entry.id}]"


@renderers.register
class RetrievalRenderer(Renderer):
    """The pool image that best matches the slot, each pool image used at most `max_reuse` times
    (counted across runs, from the render cache). Matching uses caption embeddings and, when the
    index holds CLIP image vectors and a CLIP model is given, the mean of both similarities."""

    name = "retrieval"
    version = "1"
    Settings = RetrievalSettings
    thread_safe = False  # the reuse cap is counted in this object
    batch_size = 256

    def __init__(
        self,
        index: PoolIndex,
        embedder: TextEmbedder,
        cache: RenderCache,
        *,
        size: int,
        max_reuse: int,
        clip: ClipEncoder | None = None,
    ):
        self.index, self.embedder = index, embedder
        self.clip = clip if index.image_index is not None else None
        self.size, self.max_reuse = size, max_reuse
        self._uses: Counter[str] = Counter(cache.render_source_counts(self.signature()))

    @classmethod
    def from_settings(cls, settings: RetrievalSettings, workspace: Workspace) -> Self:
        return cls(
            open_pool(
                settings, workspace.artifacts, workspace.embedder, workspace.settings.limits.max_record_chars
            ),
            workspace.embedder,
            workspace.store,
            size=settings.size,
            max_reuse=settings.max_reuse,
            clip=_clip(settings),
        )

    @classmethod
    def preflight(cls, settings: Any) -> list[str]:
        """The configured image pool exists and its captions parse (images are screened at indexing)."""
        renderer = settings.renderer
        pool_records(
            renderer.pool_path,
            renderer.pool_image_column,
            renderer.pool_text_column,
            settings.limits.max_record_chars,
        )
        return []

    def signature(self) -> str:
        clip = f"/clip={self.clip.model_name}" if self.clip else ""
        return (
            f"{self.name}@{self.version}/{self.index.fingerprint}{clip}/{self.size}px/reuse={self.max_reuse}"
        )

    def render_key(self, job: SlotJob) -> str:
        return content_key(self, job.slot)

    @staticmethod
    def query(slot: ImageSlot) -> str:
        return f"{slot.description} {', '.join(slot.keywords)}"

    def _rankings(self, queries: list[str]) -> list[list[int]]:
        """Pool entry indices per query, best first."""
        depth = max(32, 4 * self.max_reuse)
        captions = self.embedder.encode(queries)
        _, by_caption = self.index.search(captions, k=depth)
        if self.clip is None:
            return [[int(i) for i in row if i >= 0] for row in by_caption]
        texts = self.clip.encode_texts(queries)
        _, by_image = self.index.search(texts, k=depth, images=True)
        rankings = []
        for caption, text, row_a, row_b in zip(captions, texts, by_caption, by_image, strict=True):
            ids = sorted({int(i) for i in (*row_a, *row_b) if i >= 0})
            score = (
                self.index.similarities(caption, ids) + self.index.similarities(text, ids, images=True)
            ) / 2
            rankings.append([ids[i] for i in np.argsort(-score, kind="stable")])
        return rankings

    def render(self, jobs: Sequence[SlotJob]) -> list[Rendered | SlotFailure]:
        pictures: list[Rendered | SlotFailure] = []
        for job, ranking in zip(jobs, self._rankings([self.query(job.slot) for job in jobs]), strict=True):
            candidates = (self.index.entries[i] for i in ranking)
            choice = next((entry for entry in candidates if self._uses[_label(entry)] < self.max_reuse), None)
            if choice is None:  # this slot's item fails; the batch's other items go on
                pictures.append(
                    SlotFailure(
                        f"no pool image left under the reuse cap ({self.max_reuse}) for slot "
                        f"{job.index + 1} of item {job.item_id}"
                    )
                )
                continue
            self._uses[_label(choice)] += 1
            image = self.index.image(choice)
            image.thumbnail((self.size, self.size))
            pictures.append(Rendered(image, source=_label(choice), license=choice.license))
        return pictures
