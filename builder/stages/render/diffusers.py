"""Renderer `diffusers`: any text-to-image pipeline diffusers loads, batched, seeded per slot."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Literal, Self

from pydantic import Field, model_validator

from builder.core.items import ImageSlot
from builder.stages.render import Rendered, Renderer, RendererSettings, SlotJob, renderers


class DiffusersSettings(RendererSettings):
    backend: Literal["diffusers"] = "diffusers"
    model: str | None = Field(None, description="Model id or local folder.")
    device: str = Field("auto", description="cuda, cuda:1, cpu, or auto.")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto", description="auto = bfloat16 on a GPU, float32 on the CPU."
    )
    steps: int = Field(4, ge=1, le=200)
    guidance_scale: float = Field(0.0, ge=0)
    negative_prompt: str = ""
    prompt_template: str = Field(
        "{description} ({keywords})", description="Prompt from a slot's {description} and {keywords}."
    )
    batch_size: int = Field(8, ge=1, le=1024, description="Images per pipeline call.")
    local_files_only: bool = Field(False, description="Never download (offline machines).")

    @model_validator(mode="after")
    def _complete(self) -> DiffusersSettings:
        if not self.model:
            raise ValueError("renderer backend 'diffusers' needs a model (--model or renderer.model)")
        try:
            self.prompt_template.format(description="", keywords="")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"prompt_template: use only {{description}} and {{keywords}} ({exc})") from None
        return self


def slot_seed(item_id: str, index: int) -> int:
    """A per-slot seed from the item id and slot index: reruns draw the same picture."""
    return int.from_bytes(hashlib.sha256(f"{item_id}\x1f{index}".encode()).digest()[:4], "big")


@renderers.register
class DiffusionRenderer(Renderer):
    """Any text-to-image pipeline that `diffusers` loads, by model id or local folder.

    The pipeline loads once per renderer (per worker); slots go through it in batches, each with
    its own generator seeded from the item id and slot index.
    """

    name = "diffusers"
    version = "1"
    Settings = DiffusersSettings
    thread_safe = False  # one pipeline per worker; concurrent calls would only contend for it

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
    def from_settings(cls, settings: DiffusersSettings, workspace: Any) -> Self:
        assert settings.model is not None
        return cls(
            settings.model,
            size=settings.size,
            steps=settings.steps,
            guidance_scale=settings.guidance_scale,
            negative_prompt=settings.negative_prompt,
            prompt_template=settings.prompt_template,
            batch_size=settings.batch_size,
            device=settings.device,
            dtype=settings.dtype,
            local_files_only=settings.local_files_only,
        )

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
