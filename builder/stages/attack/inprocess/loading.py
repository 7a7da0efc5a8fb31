"""Loading an image-text-to-text model from a local folder, refusing to download anything.

A folder holds a model `transformers` saved (`save_pretrained`, or a Hub snapshot downloaded
beforehand with `hf download REPO --local-dir DIR`): its `config.json`, weights, and a processor
with a chat template. What can go wrong is named with the model and the folder, as a
`ModelUnavailable` whose `reason` is a structured field: `missing_folder`, `not_a_model`,
`wrong_model_kind` (a text-only model), `no_chat_template`, `device_unavailable`,
`out_of_memory`, `load_error`.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


class ModelUnavailable(Exception):
    """The model could not be opened; the message names it and its folder."""

    def __init__(self, reason: str, message: str):
        self.reason = reason
        super().__init__(message)


@dataclass(frozen=True)
class ModelFolder:
    """A model folder as a tester names it: what it is called, where it is, what it holds."""

    label: str
    path: Path

    def describe(self) -> str:
        return f"model {self.label} (folder {self.path})"

    def config_hash(self) -> str | None:
        """sha256 of `config.json` (canonical JSON): the architecture the answers came from;
        None while the folder or file is missing."""
        try:
            config = json.loads((self.path / "config.json").read_text())
        except (OSError, ValueError):
            return None
        return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()

    def weights_manifest(self) -> str:
        """sha256 of every weight file's name, size and modification time: replacing the weights
        (a fine-tune with the same config) changes it, without reading gigabytes."""
        if not self.path.is_dir():
            return ""
        entries = sorted(
            (entry.name, entry.stat().st_size, entry.stat().st_mtime_ns)
            for entry in self.path.iterdir()
            if entry.suffix in WEIGHT_SUFFIXES
        )
        return hashlib.sha256(json.dumps(entries).encode()).hexdigest()


@dataclass
class LoadedModel:
    """A model, its processor, and where it runs."""

    model: Any
    processor: Any
    device: Any  # torch.device
    dtype: Any  # torch.dtype
    # Held through each generate call: every tester sharing this model takes its turn.
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def image_token_id(self) -> int | None:
        config = self.model.config
        found = getattr(config, "image_token_id", None)
        return found if found is not None else getattr(config, "image_token_index", None)


def choose_device(wanted: str, subject: str) -> Any:
    """`auto`: CUDA when present, else the CPU; or the device named (`cpu`, `cuda`, `cuda:1`).
    `subject` (what asked for it) opens the error message."""
    import torch

    if wanted == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(wanted)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelUnavailable(
            "device_unavailable", f"{subject}: device {wanted} was asked for, but torch sees no CUDA GPU"
        )
    return device


def choose_dtype(wanted: str, device: Any) -> Any:
    """`auto`: bfloat16 on a GPU that has it, float16 on one that does not, float32 on a CPU."""
    import torch

    if wanted != "auto":
        return getattr(torch, wanted)
    if device.type != "cuda":
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def is_out_of_memory(error: BaseException) -> bool:
    """A CUDA out-of-memory error, or the CPU allocator's."""
    import torch

    return isinstance(error, torch.OutOfMemoryError) or (
        isinstance(error, RuntimeError) and "can't allocate memory" in str(error)
    )


def check_folder(folder: ModelFolder) -> Any:
    """The folder's config, once it is known to be an image-text-to-text model's."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    if not folder.path.is_dir():
        raise ModelUnavailable(
            "missing_folder",
            f"{folder.describe()}: no such folder (the transformers tester loads from a local folder "
            "and never downloads: fetch the model first, e.g. `hf download REPO --local-dir DIR`)",
        )
    if not (folder.path / "config.json").is_file():
        raise ModelUnavailable(
            "not_a_model", f"{folder.describe()}: no config.json, not a transformers model"
        )
    try:
        config = AutoConfig.from_pretrained(folder.path, local_files_only=True)
    except (OSError, ValueError, KeyError) as error:
        raise ModelUnavailable(
            "not_a_model", f"{folder.describe()}: unreadable config.json: {error}"
        ) from error
    if config.model_type not in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
        kind = ", ".join(getattr(config, "architectures", None) or [config.model_type])
        raise ModelUnavailable(
            "wrong_model_kind",
            f"{folder.describe()} is a {kind} model, which takes no images: the transformers tester needs an "
            "image-text-to-text model (one AutoModelForImageTextToText loads: LLaVA, Qwen2-VL, InternVL)",
        )
    return config


def load(folder: ModelFolder, device: str, dtype: str, *, eager_attention: bool) -> LoadedModel:
    """Load the model and processor of `folder` onto the device (local files only)."""
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # the attack stage shows its own progress
    check_folder(folder)
    where = choose_device(device, folder.describe())
    kind = choose_dtype(dtype, where)
    try:
        processor = AutoProcessor.from_pretrained(folder.path, local_files_only=True)
        model = AutoModelForImageTextToText.from_pretrained(
            folder.path,
            local_files_only=True,
            dtype=kind,
            device_map=str(where),
            attn_implementation="eager" if eager_attention else None,
        ).eval()
    except Exception as error:  # transformers raises many kinds; each becomes one clear line
        if is_out_of_memory(error):
            raise ModelUnavailable(
                "out_of_memory", f"{folder.describe()} does not fit in {where} memory ({kind}): {error}"
            ) from error
        raise ModelUnavailable(
            "load_error", f"{folder.describe()} failed to load: {type(error).__name__}: {error}"
        ) from error
    if getattr(processor, "chat_template", None) is None:
        raise ModelUnavailable(
            "no_chat_template",
            f"{folder.describe()}: its processor has no chat template (chat_template.jinja)",
        )
    tokenizer = getattr(processor, "tokenizer", None)
    if tokenizer is not None:
        tokenizer.padding_side = "left"  # a batch's answers all start where its prompts end
    return LoadedModel(model=model, processor=processor, device=where, dtype=kind)


_loaded: dict[tuple[str, str, str, bool, str], LoadedModel] = {}
_loaded_lock = threading.Lock()


def shared(folder: ModelFolder, device: str, dtype: str, *, eager_attention: bool) -> LoadedModel:
    """This process's copy of the model: its weights load once, whatever builds use them."""
    key = (str(folder.path.resolve()), device, dtype, eager_attention, folder.weights_manifest())
    with _loaded_lock:
        if key not in _loaded:
            _loaded[key] = load(folder, device, dtype, eager_attention=eager_attention)
        return _loaded[key]
