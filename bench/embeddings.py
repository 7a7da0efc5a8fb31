"""Benchmark the text vectors: the bundled MiniLM through torch in float32, through torch under
bfloat16 autocast (what dedup and retrieval use where the CPU computes bfloat16 natively), and,
where `onnx` and `onnxruntime` are installed (no longer dependencies), through ONNX Runtime in
fp32 (exported here into a temporary folder) and with dynamically quantised int8 weights. That
measure removed the ONNX path from the project.

The paths run interleaved, `--repeats` rounds of each, so a busy machine slows all of them
alike; each figure is the median round. Prints vectors/s per path, the ratio of each path to
torch float32 against the 1.5x goal that keeps a faster path, and the lowest cosine to float32
(>= 0.99 needed).

    python bench/embeddings.py [--texts 1000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

GOAL_RATIO = 1.5
GOAL_COSINE = 0.99


def _texts(count: int) -> list[str]:
    words = ("a ladder", "a window", "a market stall", "a kitchen shelf", "a parked bicycle")
    return [
        f"A plain, neutral picture of {words[n % len(words)]} number {n}: the domain the example "
        f"is mapped onto, described in {1 + n % 4} short sentence(s)." + " More detail." * (n % 6)
        for n in range(count)
    ]


def _export(model: Any, folder: Path) -> Path:
    """The transformer + mean pooling + L2 normalisation as one ONNX graph."""
    import torch

    class Pooled(torch.nn.Module):
        def __init__(self, transformer: Any):
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.transformer(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, dim=1)

    sample = model.tokenizer(["a sample sentence", "another"], padding=True, return_tensors="pt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Pooled(model[0].auto_model).eval(),
            (sample["input_ids"], sample["attention_mask"]),
            str(folder / "model.onnx"),
            input_names=["input_ids", "attention_mask"],
            output_names=["embedding"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "tokens"},
                "attention_mask": {0: "batch", 1: "tokens"},
            },
            opset_version=17,
            dynamo=False,
        )
    return folder / "model.onnx"


def _onnx_encoder(path: Path, tokenizer: Any, max_length: int) -> Callable[[list[str]], np.ndarray]:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def encode(texts: list[str], batch_size: int = 16) -> np.ndarray:
        # Small batches of like lengths: little padding, and attention cost grows with the longest.
        order = np.argsort([-len(text) for text in texts], kind="stable")
        out = np.zeros((len(texts), 0), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            tokens = tokenizer(
                [texts[i] for i in rows],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="np",
            )
            feed = {name: tokens[name].astype(np.int64) for name in ("input_ids", "attention_mask")}
            (vectors,) = session.run(None, feed)
            if out.shape[1] == 0:
                out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
            out[rows] = vectors
        return out

    return encode


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from builder.models.embeddings import TextEmbedder, native_bfloat16

    texts = _texts(args.texts)
    float32, bfloat16 = TextEmbedder(bfloat16=False), TextEmbedder(bfloat16=True)
    paths: dict[str, Callable[[list[str]], np.ndarray]] = {
        "torch": float32.encode,
        "torch bf16": bfloat16.encode,
    }
    for encode in paths.values():
        encode(texts[:8])
    print(f"bfloat16 native on this CPU (used by default): {native_bfloat16()}")
    with tempfile.TemporaryDirectory() as cache:
        try:
            from onnxruntime.quantization import QuantType, quantize_dynamic
        except ImportError:
            print("onnx paths skipped: pip install onnx onnxruntime")
        else:
            model = float32._model
            fp32 = _export(model, Path(cache))
            int8 = Path(cache) / "model-int8.onnx"
            quantize_dynamic(fp32, int8, weight_type=QuantType.QInt8)
            paths["onnx fp32"] = _onnx_encoder(fp32, model.tokenizer, model.max_seq_length)
            paths["onnx int8"] = _onnx_encoder(int8, model.tokenizer, model.max_seq_length)
        rates: dict[str, list[float]] = {name: [] for name in paths}
        vectors: dict[str, np.ndarray] = {}
        for _ in range(args.repeats):
            for name, encode in paths.items():
                start = time.perf_counter()
                vectors[name] = encode(texts)
                rates[name].append(len(texts) / (time.perf_counter() - start))
    load = os.getloadavg()[0]
    print(f"text vectors: {len(texts)} texts x {args.repeats} interleaved rounds, load average {load:.1f}")
    base = statistics.median(rates["torch"])
    for name, rounds in rates.items():
        rate = statistics.median(rounds)
        cosine = float((vectors[name] * vectors["torch"]).sum(axis=1).min())
        spread = ", ".join(f"{r:.0f}" for r in rounds)
        ratios = ", ".join(f"{r / t:.2f}" for r, t in zip(rounds, rates["torch"], strict=True))
        print(
            f"  {name:10s} {rate:6.0f}/s  ratio to torch float32 {rate / base:.2f}x "
            f"(goal {GOAL_RATIO}x: {rate / base / GOAL_RATIO:.2f} of it)  lowest cosine {cosine:.5f}"
        )
        print(f"            rounds {spread}/s; per-round ratio {ratios}")


if __name__ == "__main__":
    main()
