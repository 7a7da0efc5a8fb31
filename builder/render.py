"""Stage `render`: give every image slot a picture, stored once under its content hash.

Backends sit behind `Renderer` and render batches of slots (across items):
- `typographic`: a legible card per slot (Pillow), offline;
- `diffusers`: any text-to-image pipeline diffusers loads, batched, seeded per slot;
- `retrieval`: the best-matching image of a captioned pool, with a cap on reuse.
Each backend names a render key per slot; the key maps to the file it produced, so a slot whose
key was seen before (in this run or an earlier one) is never rendered again.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import textwrap
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import imagehash
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from builder import progress
from builder.embeddings import ClipEncoder, TextEmbedder
from builder.items import ImageSlot, Item, ItemStatus
from builder.pool import PoolEntry, PoolIndex
from builder.stats import StageOutput, StageStats


@dataclass(frozen=True)
class SlotJob:
    """One slot to render, with the item it belongs to (diffusion seeds derive from both)."""

    item_id: str
    index: int
    slot: ImageSlot


@dataclass
class Rendered:
    image: Image.Image
    source: str | None = None  # where a retrieved image came from
    license: str | None = None
    prompt: str | None = None  # what a generative model was asked for


class Renderer(Protocol):
    name: str
    batch_size: int

    def signature(self) -> str:
        """Everything about the backend that changes its output (model, size, version)."""
        ...

    def render_key(self, job: SlotJob) -> str:
        """Same key, same picture: the render cache's key for this slot."""
        ...

    def render(self, jobs: Sequence[SlotJob]) -> list[Rendered]:
        """One picture per job, in order; deterministic per job."""
        ...


class RenderCache(Protocol):
    def cached_renders(self, keys: list[str]) -> dict[str, Any]: ...

    def cache_renders(self, rows: list[dict[str, str | None]]) -> None: ...

    def render_source_counts(self, renderer: str) -> dict[str, int]: ...


@dataclass(frozen=True)
class StoredImage:
    file: str  # relative to the artifacts folder
    sha256: str
    phash: str
    source: str | None = None
    license: str | None = None
    prompt: str | None = None


def content_key(renderer: Renderer, slot: ImageSlot, *extra: str) -> str:
    text = "\x1f".join([renderer.signature(), slot.description, *slot.keywords, *extra])
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
    """Fill every slot's file and hashes. Slots are rendered in batches across items; an item
    whose batch fails is marked failed with the reason, and the run goes on."""
    stats = StageStats(stage="render", items_in=len(items))
    with stats.timed():
        jobs = [SlotJob(item.id, index, slot) for item in items for index, slot in enumerate(item.slots)]
        keys = [renderer.render_key(job) for job in jobs]
        known: dict[str, Any] = cache.cached_renders(sorted(set(keys)))
        todo: dict[str, SlotJob] = {}
        for job, key in zip(jobs, keys, strict=True):
            if key not in known:
                todo.setdefault(key, job)
        advance = progress.track("render", len(todo))
        fresh: dict[str, StoredImage] = {}
        failed: dict[str, str] = {}  # item id -> why
        pending = list(todo.items())
        for start in range(0, len(pending), renderer.batch_size):
            batch = pending[start : start + renderer.batch_size]
            try:
                pictures = renderer.render([job for _, job in batch])
            except Exception as exc:  # a backend error fails the items of this batch, not the run
                for _, job in batch:
                    failed.setdefault(job.item_id, f"{type(exc).__name__}: {exc}")
                advance(len(batch))
                continue
            for (key, _), picture in zip(batch, pictures, strict=True):
                fresh[key] = replace(
                    store_image(picture.image, artifacts),
                    source=picture.source,
                    license=picture.license,
                    prompt=picture.prompt,
                )
            advance(len(batch))
        stats.count("images_rendered", len(fresh))
        stats.count("images_cached", sum(1 for key in keys if key in known))
        slot_keys = iter(keys)
        for item in items:
            item_keys = [next(slot_keys) for _ in item.slots]
            if item.id in failed or any(key not in fresh and key not in known for key in item_keys):
                item.fail(
                    "render", "renderer error", failed.get(item.id, "a slot of this item was not rendered")
                )
            else:
                for slot, key in zip(item.slots, item_keys, strict=True):
                    stored = fresh.get(key) or known[key]
                    slot.file, slot.sha256, slot.phash = stored.file, stored.sha256, stored.phash
                    slot.source, slot.license, slot.render_prompt = (
                        stored.source,
                        stored.license,
                        stored.prompt,
                    )
                item.status = ItemStatus.RENDERED
            stats.count(item.status.value)
        signature = renderer.signature()
        cache.cache_renders(
            [
                {
                    "key": key,
                    "renderer": signature,
                    "file": s.file,
                    "sha256": s.sha256,
                    "phash": s.phash,
                    "source": s.source,
                    "license": s.license,
                    "prompt": s.prompt,
                }
                for key, s in fresh.items()
            ]
        )
    return StageOutput[Item](items=items, stats=stats)


class TypographicRenderer:
    """Offline backend: a legible card per slot (keyword large, description below).

    A block pattern derived from the text sits behind the card so that different slots differ
    in their low frequencies too; perceptual hashes then tell cards of one layout apart.
    """

    name = "typographic"
    version = "1"
    batch_size = 64

    def __init__(self, size: int = 512):
        self.size = size
        self._title_font = ImageFont.load_default(size=max(12, size // 9))
        self._body_font = ImageFont.load_default(size=max(10, size // 22))

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


def slot_seed(item_id: str, index: int) -> int:
    """A per-slot seed from the item id and slot index: reruns draw the same picture."""
    return int.from_bytes(hashlib.sha256(f"{item_id}\x1f{index}".encode()).digest()[:4], "big")


class DiffusionRenderer:
    """Any text-to-image pipeline that `diffusers` loads, by model id or local folder.

    The pipeline loads once per renderer (per worker); slots go through it in batches, each with
    its own generator seeded from the item id and slot index.
    """

    name = "diffusers"
    version = "1"

    def __init__(
        self,
        model: str,
        *,
        size: int,
        steps: int,
        guidance_scale: float,
        negative_prompt: str,
        prompt_template: str,
        batch_size: int,
        device: str = "auto",
        dtype: str = "auto",
        local_files_only: bool = False,
    ):
        self.model = model
        self.size, self.steps, self.guidance_scale = size, steps, guidance_scale
        self.negative_prompt, self.prompt_template = negative_prompt, prompt_template
        self.batch_size = batch_size
        self._device, self._dtype, self._local_only = device, dtype, local_files_only

    @classmethod
    def from_pipeline(cls, pipeline: Any, name: str, **options: Any) -> DiffusionRenderer:
        """Wrap a pipeline already in memory (benchmarks, notebooks); `name` stands for its model id."""
        renderer = cls(name, **options)
        pipeline.set_progress_bar_config(disable=True)
        renderer._pipeline = pipeline
        renderer._scheduler = type(pipeline.scheduler).__name__
        return renderer

    @property
    def device(self) -> str:
        import torch

        if self._device != "auto":
            return self._device
        return "cuda" if torch.cuda.is_available() else "cpu"

    @property
    def pipeline(self) -> Any:
        if not hasattr(self, "_pipeline"):
            import torch
            from diffusers import AutoPipelineForText2Image
            from diffusers.utils import logging as diffusers_logging
            from transformers.utils import logging as transformers_logging

            diffusers_logging.disable_progress_bar()
            transformers_logging.disable_progress_bar()
            dtypes = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
            dtype = dtypes.get(self._dtype) or (
                torch.bfloat16 if self.device.startswith("cuda") else torch.float32
            )
            pipeline = AutoPipelineForText2Image.from_pretrained(
                self.model, torch_dtype=dtype, local_files_only=self._local_only
            )
            if hasattr(pipeline, "safety_checker"):
                pipeline.safety_checker = None  # benign-by-design prompts; its weights are often absent
            pipeline.set_progress_bar_config(disable=True)
            self._pipeline = pipeline.to(self.device)
        return self._pipeline

    def prompt(self, slot: ImageSlot) -> str:
        return self.prompt_template.format(description=slot.description, keywords=", ".join(slot.keywords))

    @property
    def scheduler(self) -> str:
        """The scheduler's class, read from the model's index (no weights are loaded)."""
        if not hasattr(self, "_scheduler"):
            from diffusers import DiffusionPipeline

            config = DiffusionPipeline.load_config(self.model, local_files_only=self._local_only)
            self._scheduler = str((config.get("scheduler") or [None, "unknown"])[1])
        return self._scheduler

    def signature(self) -> str:
        scheduler = self.scheduler
        return (
            f"{self.name}@{self.version}/{self.model}/{scheduler}/steps={self.steps}/"
            f"{self.size}px/cfg={self.guidance_scale:g}/neg={self.negative_prompt}/tpl={self.prompt_template}"
        )

    def render_key(self, job: SlotJob) -> str:
        text = "\x1f".join([self.signature(), self.prompt(job.slot), str(slot_seed(job.item_id, job.index))])
        return hashlib.sha256(text.encode()).hexdigest()

    def render(self, jobs: Sequence[SlotJob]) -> list[Rendered]:
        import torch

        prompts = [self.prompt(job.slot) for job in jobs]
        generators = [
            torch.Generator(device="cpu").manual_seed(slot_seed(job.item_id, job.index)) for job in jobs
        ]
        options: dict[str, Any] = {
            "num_inference_steps": self.steps,
            "guidance_scale": self.guidance_scale,
            "height": self.size,
            "width": self.size,
            "generator": generators,
        }
        if self.negative_prompt:
            options["negative_prompt"] = [self.negative_prompt] * len(jobs)
        with torch.inference_mode():
            images = self.pipeline(prompt=prompts, **options).images
        return [
            Rendered(image.convert("RGB"), prompt=prompt)
            for image, prompt in zip(images, prompts, strict=True)
        ]


def _label(entry: PoolEntry) -> str:
    """How a retrieved image's origin is recorded (and counted against the reuse cap)."""
    return f"{entry.source} [{entry.id}]"


class RetrievalRenderer:
    """The pool image that best matches the slot, each pool image used at most `max_reuse` times
    (counted across runs, from the render cache). Matching uses caption embeddings and, when the
    index holds CLIP image vectors and a CLIP model is given, the mean of both similarities."""

    name = "retrieval"
    version = "1"
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

    def render(self, jobs: Sequence[SlotJob]) -> list[Rendered]:
        pictures = []
        for job, ranking in zip(jobs, self._rankings([self.query(job.slot) for job in jobs]), strict=True):
            candidates = (self.index.entries[i] for i in ranking)
            choice = next((entry for entry in candidates if self._uses[_label(entry)] < self.max_reuse), None)
            if choice is None:
                raise RuntimeError(
                    f"no pool image left under the reuse cap ({self.max_reuse}) for slot "
                    f"{job.index + 1} of item {job.item_id}"
                )
            self._uses[_label(choice)] += 1
            image = self.index.image(choice)
            image.thumbnail((self.size, self.size))
            pictures.append(Rendered(image, source=_label(choice), license=choice.license))
        return pictures
