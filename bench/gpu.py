"""Every GPU check in one call: one summary table, and the figures in one JSON file.

1. Rendering (bench/render_gpu.py's comparison): the same prompts, steps, size and seeds through
   plain per-image diffusers pipeline calls and through mirbench's batched renderer: images/s,
   GPU busy %, peak memory, ratio (goal: batched >= 1.5x per-image, GPU >= 90% busy).
2. The in-process `transformers` tester (builder/stages/attack/transformers.py, through its own
   attack path: store, batching, decoding): responses/s at batch 1, 4 and 16, with and without
   attention entropy, and peak memory.

Models are built from configs with random weights (speed does not depend on them; nothing can be
downloaded): `--config full` is a full-size SDXL (UNet, VAE, both text encoders) and a
Qwen2-VL-2B-sized VLM: a LLaVA whose language model has Qwen2-VL-2B's (Qwen2-1.5B: 1536 wide,
28 layers, 12 heads, 2 key-value heads, 151,936 tokens) and whose vision tower has its ViT's
width and depth (1280 wide, 32 layers, 16 heads, 14 px patches) at 224 px, so each image becomes
257 tokens (Qwen2-VL-2B gives 256 for a 448 px image; its tower sees 4x the patches, which this
one does not). `--config tiny` is the test suite's tiny Stable Diffusion and tiny LLaVA on a CPU
(under 2 minutes): it runs every row of the table, so the full run has been exercised end to end.

    python bench/gpu.py                    # full size, one H100 or H200, about 4 to 6 minutes
    python bench/gpu.py --config tiny      # any CPU
    python bench/gpu.py --out FILE.json    # default: bench/gpu-<config>.json

On the lent GPU machines, whose image has torch, transformers and torchvision but not diffusers,
pydantic, pydantic-settings, SQLAlchemy, Alembic or imagehash, carry those as wheels
(/work/.library/device/README.md says how) and put the repository root on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.items import items as bench_items
from bench.render_gpu import GpuBusy, compare, peak_memory_gib, sdxl_pipeline, tiny_pipeline

SIZES: dict[str, dict[str, Any]] = {
    "full": {
        # batch 8: the diffusers renderer's default (16 SDXL images decode at once near 80 GiB)
        "render": {"images": 48, "batch_size": 8, "size": 1024, "steps": 4},
        "vlm": {"requests": 16, "images": 3, "max_new_tokens": 64},
    },
    "tiny": {
        "render": {"images": 8, "batch_size": 4, "size": 32, "steps": 2},
        "vlm": {"requests": 16, "images": 3, "max_new_tokens": 8},
    },
}
BATCHES = (1, 4, 16)


def qwen2_vl_2b_sized(device: str, dtype: Any) -> tuple[Any, Any]:
    """(model, processor) of the Qwen2-VL-2B-sized LLaVA described above, built on `device`."""
    import torch
    from transformers import LlavaForConditionalGeneration, Qwen2Config

    from tests.tiny_vlm import llava_config, llava_processor, word_tokenizer

    tokenizer = word_tokenizer(151_936 - 5)
    config = llava_config(
        {
            "hidden_size": 1280,
            "intermediate_size": 5120,
            "num_hidden_layers": 32,
            "num_attention_heads": 16,
            "image_size": 224,
            "patch_size": 14,
        },
        Qwen2Config(
            vocab_size=len(tokenizer),
            hidden_size=1536,
            intermediate_size=8960,
            num_hidden_layers=28,
            num_attention_heads=12,
            num_key_value_heads=2,
            max_position_embeddings=32768,
            tie_word_embeddings=True,
            pad_token_id=0,
            bos_token_id=2,
            eos_token_id=3,
        ),
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = LlavaForConditionalGeneration._from_config(config, dtype=dtype).eval()
    return model, llava_processor(tokenizer, 224, 14)


def vlm(config: str, device: str, dtype: Any) -> tuple[Any, Any, str]:
    if config == "tiny":
        from tests.tiny_vlm import tiny_llava

        model, processor = tiny_llava()
        return model.to(device=device, dtype=dtype), processor, "tiny-llava"
    return (*qwen2_vl_2b_sized(device, dtype), "qwen2-vl-2b-sized-llava")


def tester_runs(config: str, device: str, dtype: Any, folder: Path) -> dict[str, Any]:
    """Responses/s of the transformers tester per batch size, entropy off then on."""
    import torch

    from builder.stages.attack.inprocess.loading import LoadedModel
    from builder.stages.attack.transformers import TransformersTester, TransformersTesterSettings
    from builder.store import Store

    sizes = SIZES[config]["vlm"]
    model, processor, name = vlm(config, device, dtype)
    processor.tokenizer.padding_side = "left"
    loaded = LoadedModel(model=model, processor=processor, device=torch.device(device), dtype=dtype)
    items = bench_items(folder, sizes["requests"], sizes["images"])
    figures: dict[str, Any] = {
        "model": name,
        "parameters_b": sum(p.numel() for p in model.parameters()) / 1e9,
        "dtype": str(dtype).removeprefix("torch."),
        **sizes,
        "runs": [],
    }
    for entropy in (False, True):
        model.set_attn_implementation("eager" if entropy else "sdpa")
        for batch in BATCHES:
            settings = TransformersTesterSettings(
                model=folder / name,
                max_new_tokens=sizes["max_new_tokens"],
                batch_size=batch,
                attention_entropy=entropy,
            )
            warm = Store(f"sqlite:///{folder / f'warm-{entropy}-{batch}.db'}")
            warm_up = items[: min(batch, 4)]  # kernels and allocator warmed for this setting
            TransformersTester.from_loaded(loaded, settings, warm, folder).attack(warm_up, lambda: None)
            store = Store(f"sqlite:///{folder / f'run-{entropy}-{batch}.db'}")  # nothing to replay
            tester = TransformersTester.from_loaded(loaded, settings, store, folder)
            if device == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            with GpuBusy() as gpu:
                start = time.perf_counter()
                answers = tester.attack(items, lambda: None)
                if device == "cuda":
                    torch.cuda.synchronize()
                seconds = time.perf_counter() - start
            failed = [answer for answer in answers if not hasattr(answer, "key")]
            if failed:
                raise RuntimeError(f"the tester failed {len(failed)} request(s): {failed[0]}")
            measured = store.answer_measurements([answer.key for answer in answers])
            figures["runs"].append(
                {
                    "batch_size": batch,
                    "attention_entropy": entropy,
                    "responses_per_s": len(items) / seconds,
                    "peak_memory_gib": peak_memory_gib(device),
                    "gpu_busy_percent": gpu.percent,
                    "answers_with_entropy": len(measured),
                }
            )
            warm.close()
            store.close()
    return figures


def _number(value: float | None, form: str, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:{form}}{unit}"


def _render_rows(render: dict[str, Any]) -> list[tuple[str, ...]]:
    check = f"render {render.get('model', '')}"
    if "error" in render:
        return [(check, "failed", render["error"], "", "", "")]
    rows = []
    for key, label in (("per_image", "per-image pipeline calls"), ("batched", "batched renderer")):
        run = render[key]
        rows.append(
            (
                check,
                f"{label}, batch {render['batch_size']}" if key == "batched" else label,
                f"{run['images_per_s']:.3f} images/s",
                _number(run["peak_memory_gib"], ".1f", " GiB"),
                _number(run["gpu_busy_percent"], ".0f", "%"),
                ">= 90% busy" if key == "batched" else "",
            )
        )
    return [*rows, (check, "batched / per-image", f"{render['ratio']:.2f}x", "", "", ">= 1.50x")]


def _tester_rows(figures: dict[str, Any]) -> list[tuple[str, ...]]:
    check = f"tester {figures.get('model', '')}"
    rows = [
        (
            check,
            f"batch {run['batch_size']}, entropy {'on' if run['attention_entropy'] else 'off'}",
            f"{run['responses_per_s']:.2f} responses/s",
            _number(run["peak_memory_gib"], ".1f", " GiB"),
            _number(run["gpu_busy_percent"], ".0f", "%"),
            "",
        )
        for run in figures.get("runs", [])
    ]
    return rows + ([(check, "failed", figures["error"], "", "", "")] if "error" in figures else [])


def table(figures: dict[str, Any]) -> str:
    rows = [("check", "setting", "throughput", "peak memory", "GPU busy", "goal")]
    rows += _render_rows(figures.get("render", {"error": "not run"}))
    rows += _tester_rows(figures.get("vlm", {"error": "not run"}))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def render_part(config: str, device: str, dtype: Any) -> dict[str, Any]:
    render = SIZES[config]["render"]
    name = "sdxl-random" if config == "full" else "tiny-sd-random"
    figures: dict[str, Any] = {"model": name, **render}
    pipeline = (sdxl_pipeline if config == "full" else tiny_pipeline)(device, dtype)
    try:
        figures.update(compare(pipeline, name, device, **render))
    finally:
        del pipeline
        _empty_cache(device)
    return figures


def _empty_cache(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.empty_cache()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", choices=sorted(SIZES), default="full")
    parser.add_argument("--out", type=Path, default=None, help="JSON file (default: bench/gpu-<config>.json)")
    args = parser.parse_args()
    out = args.out or Path(__file__).with_name(f"gpu-{args.config}.json")

    import diffusers
    import torch
    import transformers

    started = time.perf_counter()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    figures: dict[str, Any] = {
        "config": args.config,
        "device": torch.cuda.get_device_name()
        if device == "cuda"
        else f"cpu ({platform.processor() or 'unknown'})",
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "diffusers": diffusers.__version__,
        },
    }
    with tempfile.TemporaryDirectory(prefix="mirbench-gpu-") as folder:
        parts = {
            "render": lambda: render_part(args.config, device, dtype),
            "vlm": lambda: tester_runs(args.config, device, dtype, Path(folder)),
        }
        for part, run in parts.items():
            try:  # one call on a lent machine: a part that fails leaves the other's figures
                figures[part] = run()
            except Exception as error:
                traceback.print_exc()
                figures[part] = {"error": f"{type(error).__name__}: {error}"[:300]}
                _empty_cache(device)
            figures["seconds"] = time.perf_counter() - started
            out.write_text(json.dumps(figures, indent=2) + "\n")  # written as each part ends
            print(f"{part} measured at {figures['seconds']:.0f} s", flush=True)
    print(table(figures))
    print(f"{figures['device']}, {figures['seconds']:.0f} s in all; figures: {out}")
    if any("error" in figures[part] for part in parts):
        sys.exit(1)


if __name__ == "__main__":
    main()
