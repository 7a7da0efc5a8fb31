"""Stage `render`: give every image slot a picture, stored once under its content hash.

Backends are registered by name, one module each in this package (`typographic`, `diffusers`,
`retrieval`), and render batches of slots across items. Each backend names a render key per
slot; the key maps to the file it produced, so a slot whose key was seen before (in this run or
an earlier one) is never rendered again.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from abc import abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self

import imagehash
from PIL import Image
from pydantic import Field

from builder.core.errors import SystemFault, disk_full
from builder.core.items import ImageSlot, Item, ItemStatus, ModelUse
from builder.core.registry import Backend, BackendSettings, Registry
from builder.core.stats import StageOutput, StageStats
from builder.stages.base import FunnelGroup, Place, Stage
from builder.stages.render.pixels import grey_spread, png_bytes, spreads

if TYPE_CHECKING:
    from builder.config.settings import Settings
    from builder.stages.base import BackendChoices
    from builder.stages.workspace import Workspace


@dataclass(frozen=True)
class SlotJob:
    """One slot to render, with the item it belongs to (diffusion seeds derive from both)."""

    item_id: str
    index: int
    slot: ImageSlot
    earlier: tuple[ImageSlot, ...] = ()  # the item's slots before this one (retrieval: distinct pictures)


@dataclass
class Rendered:
    # the picture, or what draws it: a backend that names its `picture` is asked to draw
    # only the first time the build meets that name
    image: Image.Image | Callable[[], Image.Image]
    source: str | None = None  # where a retrieved image came from
    license: str | None = None
    prompt: str | None = None  # what a generative model was asked for
    score: float | None = None  # how well a retrieved picture's caption matches the slot
    picture: str | None = None  # names the pixels: one name, one image (encoded and stored once)

    def pixels(self) -> Image.Image:
        return self.image() if callable(self.image) else self.image


@dataclass(frozen=True)
class SlotFailure:
    """Why one slot got no picture (its item fails; the rest of the batch goes on): a reason
    that can be counted, and the specifics."""

    reason: str
    detail: str = ""


RENDERER_ERROR = "renderer error"


class RendererSettings(BackendSettings):
    backend: str
    size: int = Field(512, ge=32, le=4096, description="Square image side in pixels.")


class Renderer(Backend):
    Settings: ClassVar[type[RendererSettings]]
    batch_size: int = 64
    # Its images print the slot's words instead of showing a picture (typographic cards): a
    # reader of the funnel and the release card is told, as the words may be the question's.
    draws_words: ClassVar[bool] = False

    @classmethod
    def stands_in_for_pictures(cls, settings: RendererSettings) -> str | None:
        """Why this renderer was chosen in place of pictures (the pool is not installed), when
        it was; the funnel and the release card say so."""
        return None

    @abstractmethod
    def signature(self) -> str:
        """Everything about the backend that changes its output (model, size, version)."""

    @abstractmethod
    def render_key(self, job: SlotJob) -> str:
        """Same key, same picture: the render cache's key for this slot."""

    @abstractmethod
    def render(self, jobs: Sequence[SlotJob]) -> list[Rendered | SlotFailure]:
        """One picture (or the reason there is none) per job, in order; deterministic per job."""

    def drawn_text(self, slot: ImageSlot) -> str | None:
        """The text this backend writes onto the slot's picture, if it writes any (the leakage
        filter reads it: text on one image must not carry the key phrase)."""
        return None

    def match_scores(self, slots: Sequence[ImageSlot]) -> list[float | None]:
        """How well each slot's picture (rendered in an earlier run) matches it, where the
        backend measures that (retrieval: the caption match)."""
        return [None] * len(slots)


renderers: Registry[Renderer] = Registry(
    "renderer", __name__, group="mirbench.renderers", default="retrieval"
)


def draws_words(signature: str) -> bool:
    """Whether the renderer that signed `signature` (`name@version/...`, as items' provenance
    records it) draws words instead of pictures; a renderer no longer installed does not."""
    try:
        return renderers.get(signature.partition("@")[0]).draws_words
    except KeyError:
        return False


def fallback_reason(settings: RendererSettings) -> str | None:
    """Why the configured renderer draws in place of pictures, if it does."""
    return renderers.get(settings.backend).stands_in_for_pictures(settings)


def default_settings() -> RendererSettings:
    """Retrieval from the built-in picture pool; typographic cards where that pool is not
    installed, saying so (the funnel and the release card read `fallback`)."""
    from builder.stages.render.pool import twemoji

    missing = twemoji.status().missing
    if missing is None:
        return renderers.parse({})
    return renderers.parse({"backend": "typographic", "fallback": missing})


class RenderCache(Protocol):
    def cached_renders(self, keys: list[str]) -> dict[str, Any]: ...

    def cache_renders(self, rows: list[dict[str, str | None]]) -> None: ...


@dataclass(frozen=True)
class StoredImage:
    file: str  # relative to the artifacts folder
    sha256: str
    phash: str
    source: str | None = None
    license: str | None = None
    prompt: str | None = None
    score: float | None = None


def content_key(renderer: Renderer, slot: ImageSlot, *extra: str) -> str:
    text = "\x1f".join([renderer.signature(), slot.description, *slot.keywords, *extra])
    return hashlib.sha256(text.encode()).hexdigest()


def store_image(image: Image.Image, artifacts: Path) -> StoredImage:
    """Write `image` as PNG under its sha256 (atomically); return where and its hashes. Its
    grey spread is remembered for the structural check, which then need not decode it."""
    data = png_bytes(image)
    sha = hashlib.sha256(data).hexdigest()
    relative = store_bytes(data, sha, ".png", artifacts)
    grey = image.convert("L")
    spreads.remember(relative.as_posix(), grey_spread(grey))
    return StoredImage(file=relative.as_posix(), sha256=sha, phash=str(imagehash.phash(grey)))


def store_bytes(data: bytes, sha: str, suffix: str, artifacts: Path) -> Path:
    """Write an image file's bytes under their sha256 (atomically, once); its path relative to
    the artifacts folder. A full disk is a SystemFault: nothing half-written stays."""
    relative = Path("images") / sha[:2] / f"{sha}{suffix}"
    target = artifacts / relative
    if not target.exists():
        temporary = None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=target.parent, suffix=".part")
            with os.fdopen(handle, "wb") as out:
                out.write(data)
        except OSError as error:
            if temporary is not None:
                Path(temporary).unlink(missing_ok=True)
            if disk_full(error):
                raise SystemFault(
                    f"{target.parent}: no space left on the device while rendering; the items of this "
                    "shard stay unrendered: free some space and rerun"
                ) from None
            raise
        os.replace(temporary, target)
    return relative


class RenderStage(Stage):
    """Fill every slot's file and hashes. Slots are rendered in batches across items; an item
    whose batch fails is marked failed with the reason, and the run goes on."""

    name = "render"
    gives = ItemStatus.RENDERED
    funnel_group = FunnelGroup.MADE
    funnel_label = "rendered"

    def __init__(
        self,
        renderer: Renderer,
        cache: RenderCache,
        artifacts: Path,
        stored: dict[str, StoredImage] | None = None,
    ):
        self.renderer, self.backends = renderer, (renderer,)
        self.cache, self.artifacts = cache, artifacts
        # named pictures already written (Rendered.picture -> file and hashes), shared by the
        # build's shards in this process: a pool picture shown by many slots is encoded once
        self.stored = {} if stored is None else stored
        self.encoded = 0  # pictures this shard drew and encoded (the rest were named and known)

    @classmethod
    def backend_choices(cls, settings: Settings) -> BackendChoices:
        return [(renderers, [settings.renderer])]

    @classmethod
    def open(cls, workspace: Workspace, place: Place) -> Self:
        renderer = workspace.backend(renderers, workspace.settings.renderer)
        stored = workspace.once("stored_pictures", dict)
        return cls(renderer, workspace.store, workspace.artifacts, stored)

    def _store(self, picture: Rendered) -> StoredImage:
        known = self.stored.get(picture.picture) if picture.picture else None
        if known is not None and (self.artifacts / known.file).is_file():
            return known
        stored = store_image(picture.pixels(), self.artifacts)
        self.encoded += 1
        if picture.picture:
            self.stored[picture.picture] = stored
        return stored

    def process(self, items: list[Item], stats: StageStats, advance: Callable[[int], None]) -> None:
        jobs = [
            SlotJob(item.id, index, slot, tuple(item.slots[:index]))
            for item in items
            for index, slot in enumerate(item.slots)
        ]
        keys = [self.renderer.render_key(job) for job in jobs]
        known: dict[str, Any] = self.cache.cached_renders(sorted(set(keys)))
        todo: dict[str, SlotJob] = {}
        for job, key in zip(jobs, keys, strict=True):
            if key not in known:
                todo.setdefault(key, job)
        self.encoded = 0
        fresh, failed = self._render(todo)
        stats.count("images", "rendered", len(fresh))
        stats.count("images", "encoded", self.encoded)
        stats.count("images", "cached", sum(1 for key in keys if key in known))
        slot_keys = iter(keys)
        from_cache: list[ImageSlot] = []
        for item in items:
            item_keys = [next(slot_keys) for _ in item.slots]
            from_cache += self._fill(item, item_keys, fresh, known, failed)
        if from_cache:
            for slot, score in zip(from_cache, self.renderer.match_scores(from_cache), strict=True):
                slot.match_score = score
        self.cache.cache_renders([_cache_row(key, self.renderer.signature(), s) for key, s in fresh.items()])

    def _render(self, todo: dict[str, SlotJob]) -> tuple[dict[str, StoredImage], dict[str, SlotFailure]]:
        """Render the slots not in the cache, a backend batch at a time: the stored image of
        each render key, and why each key that failed got none (every slot with that key)."""
        fresh: dict[str, StoredImage] = {}
        failed: dict[str, SlotFailure] = {}
        pending = list(todo.items())
        size = self.renderer.batch_size
        for start in range(0, len(pending), size):
            batch = pending[start : start + size]
            try:
                pictures = self.renderer.render([job for _, job in batch])
            except Exception as exc:  # a backend error fails the items of this batch, not the run
                for key, _ in batch:
                    failed[key] = SlotFailure(RENDERER_ERROR, f"{type(exc).__name__}: {exc}")
                continue
            for (key, _), picture in zip(batch, pictures, strict=True):
                if isinstance(picture, SlotFailure):
                    failed[key] = picture
                    continue
                fresh[key] = replace(
                    self._store(picture),
                    source=picture.source,
                    license=picture.license,
                    prompt=picture.prompt,
                    score=picture.score,
                )
        return fresh, failed

    def _fill(
        self,
        item: Item,
        keys: list[str],
        fresh: dict[str, StoredImage],
        known: dict[str, Any],
        failed: dict[str, SlotFailure],
    ) -> list[ImageSlot]:
        """Give `item`'s slots their pictures (or fail it, with the first slot's reason); the
        slots whose picture came from the cache, to score."""
        if any(key not in fresh and key not in known for key in keys):
            failure = next(
                (failed[key] for key in keys if key in failed),
                SlotFailure(RENDERER_ERROR, "a slot of this item was not rendered"),
            )
            item.fail(self.name, failure.reason, failure.detail)
            return []
        from_cache = []
        for slot, key in zip(item.slots, keys, strict=True):
            stored = fresh.get(key) or known[key]
            slot.file, slot.sha256, slot.phash = stored.file, stored.sha256, stored.phash
            slot.source, slot.license, slot.render_prompt = stored.source, stored.license, stored.prompt
            slot.drawn_text = self.renderer.drawn_text(slot)
            slot.match_score = fresh[key].score if key in fresh else None
            if key not in fresh:
                from_cache.append(slot)
        signature = self.renderer.signature()
        item.provenance.renderer = signature
        item.provenance.used(
            ModelUse(role="renderer", name=self.renderer.name, backend=self.renderer.name, model=signature)
        )
        item.status = self.gives
        return from_cache


def _cache_row(key: str, signature: str, stored: StoredImage) -> dict[str, str | None]:
    return {
        "key": key,
        "renderer": signature,
        "file": stored.file,
        "sha256": stored.sha256,
        "phash": stored.phash,
        "source": stored.source,
        "license": stored.license,
        "prompt": stored.prompt,
    }


def render_items(
    items: list[Item], renderer: Renderer, cache: RenderCache, artifacts: Path
) -> StageOutput[Item]:
    """Render items outside a build (tests, notebooks, benchmarks)."""
    return RenderStage(renderer, cache, artifacts).run(items)
