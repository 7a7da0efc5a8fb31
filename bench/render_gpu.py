"""Benchmark the diffusers renderer: our batched renderer against a plain per-image pipeline call.

Builds the pipeline from configs with random weights (throughput does not depend on the weights,
and nothing can be downloaded here): `--config sdxl` is a full-size SDXL UNet, VAE and both text
encoders (for a GPU); `--config tiny` is the test suite's tiny Stable Diffusion (runs on a CPU).
Both paths render the same prompts with the same steps, size and per-image seeds, in one run.
Prints images/s, peak GPU memory, GPU busy %, and the ratio batched / per-image (goal >= 1.5).

    python bench/render_gpu.py --config sdxl --images 64 --batch-size 16 --size 1024 --steps 4
    python bench/render_gpu.py --config tiny --images 8 --batch-size 4 --size 32 --steps 2
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from builder.core.items import ImageSlot
from builder.stages.render import SlotJob
from builder.stages.render.diffusers import DiffusionRenderer, slot_seed


def sdxl_pipeline(device: str, dtype):
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    from tests.tiny_models import clip_byte_vocab

    vocab, merges = clip_byte_vocab()
    with torch.device(device):
        unet = UNet2DConditionModel(
            sample_size=128,
            in_channels=4,
            out_channels=4,
            layers_per_block=2,
            block_out_channels=(320, 640, 1280),
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            transformer_layers_per_block=(1, 2, 10),
            attention_head_dim=(5, 10, 20),
            cross_attention_dim=2048,
            use_linear_projection=True,
            addition_embed_type="text_time",
            addition_time_embed_dim=256,
            projection_class_embeddings_input_dim=2816,
        )
        vae = AutoencoderKL(
            block_out_channels=(128, 256, 512, 512),
            layers_per_block=2,
            latent_channels=4,
            sample_size=1024,
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            scaling_factor=0.13025,
        )
        common = {
            "vocab_size": 49408,
            "max_position_embeddings": 77,
            "bos_token_id": vocab["<|startoftext|>"],
            "eos_token_id": vocab["<|endoftext|>"],
            "pad_token_id": vocab["<|endoftext|>"],
        }
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                hidden_size=768,
                intermediate_size=3072,
                num_attention_heads=12,
                num_hidden_layers=12,
                projection_dim=768,
                hidden_act="quick_gelu",
                **common,
            )
        )
        text_encoder_2 = CLIPTextModelWithProjection(
            CLIPTextConfig(
                hidden_size=1280,
                intermediate_size=5120,
                num_attention_heads=20,
                num_hidden_layers=32,
                projection_dim=1280,
                hidden_act="gelu",
                **common,
            )
        )
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)
    pipeline = StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=unet,
        scheduler=EulerDiscreteScheduler(),
    )
    return pipeline.to(device=device, dtype=dtype)


def tiny_pipeline(device: str, dtype):
    from diffusers import AutoPipelineForText2Image

    from tests.tiny_models import save_tiny_pipeline

    folder = Path(tempfile.mkdtemp(prefix="tiny-sd-"))
    save_tiny_pipeline(folder / "model")
    pipeline = AutoPipelineForText2Image.from_pretrained(
        folder / "model", torch_dtype=dtype, local_files_only=True
    )
    shutil.rmtree(folder)
    return pipeline.to(device)


class GpuBusy:
    """Samples nvidia-smi's utilisation every 100 ms while active (None where there is no GPU)."""

    def __init__(self) -> None:
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> GpuBusy:
        if shutil.which("nvidia-smi"):
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
            ).stdout.split()
            if out:
                self.samples.append(int(out[0]))
            time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    @property
    def percent(self) -> float | None:
        return sum(self.samples) / len(self.samples) if self.samples else None

    @property
    def busy(self) -> str:
        return "n/a" if self.percent is None else f"{self.percent:.0f}%"


def peak_memory_gib(device: str) -> float | None:
    """Peak GPU memory allocated since the last reset (None on a CPU)."""
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None


def compare(
    pipeline, name: str, device: str, *, images: int, batch_size: int, size: int, steps: int
) -> dict[str, dict[str, float | None] | float]:
    """The same prompts, steps, size and per-image seeds through plain per-image pipeline calls
    and through the batched renderer: images/s, peak GPU memory and GPU busy % of each, and the
    ratio batched / per-image."""
    import torch

    renderer = DiffusionRenderer.from_pipeline(
        pipeline,
        name,
        size=size,
        steps=steps,
        guidance_scale=0.0,
        negative_prompt="",
        prompt_template="{description}, {keywords}",
        batch_size=batch_size,
        device=device,
    )
    jobs = [
        SlotJob(
            f"bench-{n}",
            0,
            ImageSlot(role="r", description=f"a quiet street corner, view {n}", keywords=["street", "photo"]),
        )
        for n in range(images)
    ]

    def per_image() -> None:
        for job in jobs:
            generator = torch.Generator("cpu").manual_seed(slot_seed(job.item_id, job.index))
            pipeline(
                prompt=renderer.prompt(job.slot),
                num_inference_steps=steps,
                guidance_scale=0.0,
                height=size,
                width=size,
                generator=generator,
            )

    def batched() -> None:
        for start in range(0, len(jobs), batch_size):
            renderer.render(jobs[start : start + batch_size])

    figures: dict[str, dict[str, float | None] | float] = {}
    for key, run in (("per_image", per_image), ("batched", batched)):
        pipeline(prompt="warm up", num_inference_steps=1, guidance_scale=0.0, height=size, width=size)
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        with GpuBusy() as gpu:
            start = time.perf_counter()
            run()
            if device == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start
        figures[key] = {
            "images_per_s": images / seconds,
            "peak_memory_gib": peak_memory_gib(device),
            "gpu_busy_percent": gpu.percent,
        }
    figures["ratio"] = figures["batched"]["images_per_s"] / figures["per_image"]["images_per_s"]  # type: ignore[index]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", choices=["sdxl", "tiny"], default="tiny")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()

    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    started = time.perf_counter()
    pipeline = (sdxl_pipeline if args.config == "sdxl" else tiny_pipeline)(device, dtype)
    print(
        f"{args.config} pipeline on {device} ({dtype}) built in {time.perf_counter() - started:.1f}s; "
        f"unet {sum(p.numel() for p in pipeline.unet.parameters()) / 1e9:.2f}B parameters"
    )
    figures = compare(
        pipeline,
        f"{args.config}-random",
        device,
        images=args.images,
        batch_size=args.batch_size,
        size=args.size,
        steps=args.steps,
    )
    for key, label in (("per_image", "per-image pipeline calls"), ("batched", "mirbench batched renderer")):
        run = figures[key]
        memory = "n/a (CPU)" if run["peak_memory_gib"] is None else f"{run['peak_memory_gib']:.1f} GiB"
        busy = "n/a" if run["gpu_busy_percent"] is None else f"{run['gpu_busy_percent']:.0f}%"
        print(f"{label:<27} {run['images_per_s']:8.3f} images/s  peak GPU memory {memory}  GPU busy {busy}")
    print(
        f"batched / per-image = {figures['ratio']:.2f}x  ({args.images} images, {args.size}px, "
        f"{args.steps} steps, batch {args.batch_size})"
    )


if __name__ == "__main__":
    main()
