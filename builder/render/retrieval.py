"""Renderer `retrieval`: the best-matching image of a captioned pool, with a cap on reuse."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

import numpy as np
from PIL import Image
from pydantic import Field, model_validator

from builder import twemoji_pool
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

# Why a slot got no picture (SlotFailure.reason): counted in the funnel.
NO_MATCH = "no pool picture matches the slot"
NO_PICTURE_LEFT = "no pool picture left under the reuse cap"

if TYPE_CHECKING:
    from builder.workspace import Workspace


class RetrievalSettings(RendererSettings):
    backend: Literal["retrieval"] = "retrieval"
    pool: Path | None = Field(
        None, description="Image pool folder or saved HF dataset; none: the built-in picture pool."
    )
    pool_image_column: str = "image"
    pool_text_column: str = "text"
    max_reuse: int = Field(3, ge=1, description="Uses allowed per pool image.")
    min_score: float = Field(
        0.45,
        ge=-1.0,
        le=1.0,
        description="Lowest caption-match score (cosine) a slot accepts; below it the slot fails.",
    )
    pool_clip_model: str | None = Field(
        None, description="A CLIP model (folder or hub id) to match images themselves too."
    )
    local_files_only: bool = Field(False, description="CLIP: never download (offline machines).")

    @model_validator(mode="after")
    def _pool_given(self) -> RetrievalSettings:
        missing = twemoji_pool.status().missing
        if self.pool is None and missing:
            raise ValueError(f"{missing}; or give an image pool (--pool or renderer.pool)")
        return self


def _clip(settings: RetrievalSettings) -> ClipEncoder | None:
    if not settings.pool_clip_model:
        return None
    return ClipEncoder(settings.pool_clip_model, settings.local_files_only)


def index_pool(
    settings: RetrievalSettings, artifacts: Path, embedder: TextEmbedder, max_record_chars: int
) -> PoolIndexReport:
    """Build (or rebuild) the index of the pool (captions, and images with CLIP)."""
    return build_index(
        settings.pool,
        index_dir_for(artifacts, settings.pool, embedder.model_name),
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
    """The pool's index, built first (with a progress bar) if missing or made with another CLIP
    model or text model."""
    directory = index_dir_for(artifacts, settings.pool, embedder.model_name)
    meta = directory / "meta.json"
    built = json.loads(meta.read_text()) if meta.is_file() else {}
    if built.get("clip_model", "") != settings.pool_clip_model or built.get("model") != embedder.model_name:
        index_pool(settings, artifacts, embedder, max_record_chars)
    return PoolIndex(directory, settings.pool, settings.pool_image_column, settings.pool_text_column)


def picture_pool(
    settings: RendererSettings, artifacts: Path, embedder: TextEmbedder, max_record_chars: int
) -> PoolIndex | None:
    """The retrieval renderer's pool; with another renderer, the built-in pool where installed
    (the offline composer names things it can show), else None."""
    if isinstance(settings, RetrievalSettings):
        return open_pool(settings, artifacts, embedder, max_record_chars)
    if twemoji_pool.status().installed:
        return open_pool(RetrievalSettings(), artifacts, embedder, max_record_chars)
    return None


def shared_picture_pool(workspace: Workspace) -> PoolIndex | None:
    """`picture_pool` of the build's renderer settings, opened once per build (the renderer and
    the offline composer share it)."""
    settings = workspace.settings
    return workspace.once(
        "picture_pool",
        lambda: picture_pool(
            settings.renderer, workspace.artifacts, workspace.embedder, settings.limits.max_record_chars
        ),
    )


def _label(entry: PoolEntry) -> str:
    """How a retrieved image's origin is recorded (and counted against the reuse cap)."""
    return f"{entry.source} [{entry.id}]"


@renderers.register
class RetrievalRenderer(Renderer):
    """The pool image that best matches the slot, each pool image used at most `max_reuse` times
    (counted across runs, from the render cache). Matching uses caption embeddings and, when the
    index holds CLIP image vectors and a CLIP model is given, the mean of both similarities."""

    name = "retrieval"
    version = "2"
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
        min_score: float = RetrievalSettings.model_fields["min_score"].default,
        clip: ClipEncoder | None = None,
    ):
        self.index, self.embedder = index, embedder
        self.clip = clip if index.image_index is not None else None
        self.size, self.max_reuse, self.min_score = size, max_reuse, min_score
        self._uses: Counter[str] = Counter(cache.render_source_counts(self.signature()))
        self._item_pictures: dict[str, set[str]] = {}  # the slots of one item never share a picture

    @classmethod
    def from_settings(cls, settings: RetrievalSettings, workspace: Workspace) -> Self:
        index = shared_picture_pool(workspace)
        assert index is not None  # a retrieval renderer always has a pool
        return cls(
            index,
            workspace.embedder,
            workspace.store,
            size=settings.size,
            max_reuse=settings.max_reuse,
            min_score=settings.min_score,
            clip=_clip(settings),
        )

    @classmethod
    def preflight(cls, settings: Any) -> list[str]:
        """The configured image pool (none: the built-in one) exists and its captions parse
        (images are screened at indexing)."""
        renderer = settings.renderer
        pool_records(
            renderer.pool,
            renderer.pool_image_column,
            renderer.pool_text_column,
            settings.limits.max_record_chars,
        )
        return []

    def signature(self) -> str:
        clip = f"/clip={self.clip.model_name}" if self.clip else ""
        return (
            f"{self.name}@{self.version}/{self.index.fingerprint}{clip}/{self.size}px/reuse={self.max_reuse}"
            f"/min={self.min_score}"
        )

    def render_key(self, job: SlotJob) -> str:
        return content_key(self, job.slot)

    @staticmethod
    def query(slot: ImageSlot) -> str:
        return f"{slot.description} {', '.join(slot.keywords)}"

    def _rankings(self, queries: list[str]) -> list[list[tuple[int, float]]]:
        """(pool entry index, match score) per query, best first."""
        depth = max(32, 4 * self.max_reuse)
        captions = self.embedder.encode(queries)
        scores, by_caption = self.index.search(captions, k=depth)
        if self.clip is None:
            return [
                [(int(i), float(score)) for i, score in zip(row, row_scores, strict=True) if i >= 0]
                for row, row_scores in zip(by_caption, scores, strict=True)
            ]
        texts = self.clip.encode_texts(queries)
        _, by_image = self.index.search(texts, k=depth, images=True)
        rankings = []
        for caption, text, row_a, row_b in zip(captions, texts, by_caption, by_image, strict=True):
            ids = sorted({int(i) for i in (*row_a, *row_b) if i >= 0})
            score = (
                self.index.similarities(caption, ids) + self.index.similarities(text, ids, images=True)
            ) / 2
            rankings.append([(ids[i], float(score[i])) for i in np.argsort(-score, kind="stable")])
        return rankings

    def render(self, jobs: Sequence[SlotJob]) -> list[Rendered | SlotFailure]:
        pictures: list[Rendered | SlotFailure] = []
        for job, ranking in zip(jobs, self._rankings([self.query(job.slot) for job in jobs]), strict=True):
            in_item = self._item_pictures.setdefault(job.item_id, set())
            where = f"slot {job.index + 1} of item {job.item_id} ({self.query(job.slot)!r})"
            candidates = (
                (self.index.entries[i], score)
                for i, score in ranking
                if _label(self.index.entries[i]) not in in_item
            )
            choice = next(
                ((entry, score) for entry, score in candidates if self._uses[_label(entry)] < self.max_reuse),
                None,
            )
            # a slot with no picture fails its item; the batch's other items go on
            if choice is None:
                pictures.append(
                    SlotFailure(
                        NO_PICTURE_LEFT, f"every match is at the reuse cap ({self.max_reuse}): {where}"
                    )
                )
                continue
            entry, score = choice
            if score < self.min_score:
                pictures.append(
                    SlotFailure(
                        NO_MATCH,
                        f"best caption {entry.caption!r} scores {score:.2f}, "
                        f"under {self.min_score:.2f}: {where}",
                    )
                )
                continue
            self._uses[_label(entry)] += 1
            in_item.add(_label(entry))
            pictures.append(
                Rendered(
                    self._fit(self.index.image(entry)),
                    source=_label(entry),
                    license=entry.license,
                    score=score,
                )
            )
        return pictures

    def _fit(self, image: Image.Image) -> Image.Image:
        """The picture scaled to fit the configured size (small icons scaled up, smoothly)."""
        scale = self.size / max(image.size)
        if scale < 1:
            image.thumbnail((self.size, self.size))
            return image
        return image.resize((round(image.width * scale), round(image.height * scale)), Image.LANCZOS)

    def match_scores(self, slots: Sequence[ImageSlot]) -> list[float | None]:
        """The caption-match score of pictures this renderer chose in an earlier run."""
        by_label = {_label(entry): number for number, entry in enumerate(self.index.entries)}
        known = [(n, by_label[slot.source]) for n, slot in enumerate(slots) if slot.source in by_label]
        scores: list[float | None] = [None] * len(slots)
        if known and self.clip is None:
            queries = self.embedder.encode([self.query(slots[n]) for n, _ in known])
            for (n, entry), query in zip(known, queries, strict=True):
                scores[n] = float(self.index.similarities(query, [entry])[0])
        return scores
