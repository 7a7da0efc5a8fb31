"""Renderer `retrieval`: the best-matching image of a captioned pool, with a cap on reuse."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

import numpy as np
from PIL import Image
from pydantic import Field, model_validator

from builder.core.items import ImageSlot
from builder.models.embeddings import ClipEncoder, TextEmbedder
from builder.stages.render import (
    Rendered,
    Renderer,
    RendererSettings,
    SlotFailure,
    SlotJob,
    content_key,
    renderers,
)
from builder.stages.render.pool import (
    PoolEntry,
    PoolIndex,
    PoolIndexReport,
    build_index,
    index_dir_for,
    twemoji,
)
from builder.stages.render.pool.screen import screen_pool

# Why a slot got no picture (SlotFailure.reason): counted in the funnel.
NO_MATCH = "no pool picture matches the slot"
# Candidates looked at per slot: enough for the best match outside an item's other pictures.
RANKING_DEPTH = 32

if TYPE_CHECKING:
    from builder.stages.workspace import Workspace


class RetrievalSettings(RendererSettings):
    backend: Literal["retrieval"] = "retrieval"
    pool: Path | None = Field(
        None, description="Image pool folder or saved HF dataset; none: the built-in picture pool."
    )
    pool_image_column: str = "image"
    pool_text_column: str = "text"
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
        missing = twemoji.status().missing
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
    if twemoji.status().installed:
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
    """How a retrieved image's origin is recorded on its slot."""
    return f"{entry.source} [{entry.id}]"


def _first_free(ranking: list[tuple[int, float]], taken: set[int]) -> tuple[int, float] | None:
    """The best-ranked (entry, score) not taken by an earlier slot of the item."""
    return next(((entry, score) for entry, score in ranking if entry not in taken), None)


@renderers.register
class RetrievalRenderer(Renderer):
    """The pool image that best matches the slot and is not already the picture of an earlier
    slot of its item. A slot whose keywords name a caption exactly takes that picture (score
    1.0) without a search. Other slots are matched by caption embeddings and, when the index
    holds CLIP image vectors and a CLIP model is given, the mean of both similarities.

    A slot's picture depends on its own text and its item's earlier slots only (both are in its
    render key), never on other items or on the order shards run in, so a resumed build draws
    what an uninterrupted one does. How many items may show one picture is capped by dedup's
    reuse cap over the whole round, kept items and releases (a later round draws other things
    for the items it rejects)."""

    name = "retrieval"
    version = "4"
    Settings = RetrievalSettings
    batch_size = 256

    def __init__(
        self,
        index: PoolIndex,
        embedder: TextEmbedder,
        *,
        size: int,
        min_score: float = RetrievalSettings.model_fields["min_score"].default,
        clip: ClipEncoder | None = None,
    ):
        self.index, self.embedder = index, embedder
        self.clip = clip if index.image_index is not None else None
        self.size, self.min_score = size, min_score
        self._by_caption: dict[str, int] = {}
        for number, entry in enumerate(index.entries):
            self._by_caption.setdefault(entry.caption.casefold(), number)

    @classmethod
    def from_settings(cls, settings: RetrievalSettings, workspace: Workspace) -> Self:
        index = shared_picture_pool(workspace)
        assert index is not None  # a retrieval renderer always has a pool
        return cls(
            index,
            workspace.embedder,
            size=settings.size,
            min_score=settings.min_score,
            clip=_clip(settings),
        )

    @classmethod
    def preflight(cls, settings: Any) -> list[str]:
        """The configured image pool (none: the built-in one) exists, its captions parse and it
        holds a picture that decodes (a sample; all of it when the sample has none): a pool of
        broken pictures is refused before a run is recorded. Indexing screens every picture."""
        renderer = settings.renderer
        screened = screen_pool(
            renderer.pool,
            renderer.pool_image_column,
            renderer.pool_text_column,
            settings.limits.max_record_chars,
        )
        return [screened.note] if screened.note else []

    def signature(self) -> str:
        clip = f"/clip={self.clip.model_name}" if self.clip else ""
        return f"{self.name}@{self.version}/{self.index.fingerprint}{clip}/{self.size}px/min={self.min_score}"

    def render_key(self, job: SlotJob) -> str:
        return content_key(self, job.slot, *(self.query(slot) for slot in job.earlier))

    @staticmethod
    def query(slot: ImageSlot) -> str:
        return f"{slot.description} {', '.join(slot.keywords)}"

    def _rankings(self, queries: list[str]) -> list[list[tuple[int, float]]]:
        """(pool entry index, match score) per query, best first."""
        depth = RANKING_DEPTH
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

    def exact(self, slot: ImageSlot) -> int | None:
        """The pool entry whose caption is one of the slot's keywords (the first such keyword):
        the thing the slot names, so the best match by definition, without a search."""
        return next(
            (self._by_caption[k.casefold()] for k in slot.keywords if k.casefold() in self._by_caption), None
        )

    def render(self, jobs: Sequence[SlotJob]) -> list[Rendered | SlotFailure]:
        # A slot that names a caption exactly takes that picture (score 1.0); only the others,
        # and one whose named picture an earlier slot of its item took, are searched.
        searched = []
        for job in jobs:
            named: set[int | None] = set()
            for slot in (*job.earlier, job.slot):
                exact = self.exact(slot)
                if exact is None or exact in named:
                    searched.append(self.query(slot))
                named.add(exact)
        queries = list(dict.fromkeys(searched))
        rankings = dict(zip(queries, self._rankings(queries), strict=True)) if queries else {}

        def ranking(slot: ImageSlot) -> list[tuple[int, float]]:
            exact = self.exact(slot)
            return [*([(exact, 1.0)] if exact is not None else []), *rankings.get(self.query(slot), [])]

        pictures: list[Rendered | SlotFailure] = []
        for job in jobs:
            # the earlier slots' pictures, chosen as their own jobs choose them
            taken: set[int] = set()
            for slot in job.earlier:
                earlier = _first_free(ranking(slot), taken)
                if earlier is not None:
                    taken.add(earlier[0])
            query = self.query(job.slot)
            choice = _first_free(ranking(job.slot), taken)
            where = f"slot {job.index + 1} of item {job.item_id} ({query!r})"
            # a slot with no picture fails its item; the batch's other items go on
            if choice is None or choice[1] < self.min_score:
                best = (
                    f"best caption {self.index.entries[choice[0]].caption!r} scores {choice[1]:.2f}"
                    if choice
                    else "no caption left"
                )
                pictures.append(SlotFailure(NO_MATCH, f"{best}, under {self.min_score:.2f}: {where}"))
                continue
            entry = self.index.entries[choice[0]]
            pictures.append(
                Rendered(
                    lambda entry=entry: self._fit(self.index.image(entry)),
                    source=_label(entry),
                    license=entry.license,
                    score=choice[1],
                    picture=f"{self.name}@{self.version}/{self.index.fingerprint}/{self.size}px/{entry.id}",
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
        scores: list[float | None] = [None] * len(slots)
        known = []
        for n, slot in enumerate(slots):
            entry = by_label.get(slot.source or "")
            if entry is not None and entry == self.exact(slot):
                scores[n] = 1.0
            elif entry is not None:
                known.append((n, entry))
        if known and self.clip is None:
            queries = self.embedder.encode([self.query(slots[n]) for n, _ in known])
            for (n, entry), query in zip(known, queries, strict=True):
                scores[n] = float(self.index.similarities(query, [entry])[0])
        return scores
