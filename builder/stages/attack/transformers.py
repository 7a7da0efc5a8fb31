"""Tester `transformers`: an open image-text-to-text model run in-process from a local folder
(Qwen2-VL, LLaVA, InternVL: whatever `AutoModelForImageTextToText` and `AutoProcessor` load),
so no server is needed and its attention can be measured.

- The folder is read with `local_files_only`: nothing is ever downloaded. A missing folder, a
  text-only model, a model that does not fit and every other load error fail this tester's
  items with a reason naming the model and its folder; the build goes on (`attack` leaves the
  items failed, so a later build asks again).
- CUDA when present, else the CPU; bfloat16 on GPUs that have it (`device`, `dtype`).
- Requests of one shape (as many images, of the same sizes) are answered together, up to
  `batch_size` at a time; a batch that runs out of memory is halved, down to one request.
- Greedy decoding by default (as MIR's evaluation does); the generator is seeded before every
  batch, so answers on a CPU are the same run after run.
- `attention_entropy: true` records the attention entropy of every answer (see
  `builder.stages.attack.entropy.measure` for the definition; it needs eager attention, which
  costs memory and time) into the answer's `measurements` in the store.
- Answers are kept in the store's answers table under a key of the model folder, its config
  hash and weight files, the generation settings, the prompt and the images' sha256, so reruns
  replay them; the config hash goes into each item's provenance (`model`: NAME@config:HASH).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self

from pydantic import Field

from builder.core.items import Item
from builder.stages.attack import Answer, Failure, Tester, TesterSettings, testers
from builder.stages.attack.entropy.measure import AttentionUnavailable, EntropySettings
from builder.stages.attack.inprocess.generation import (
    GenerationOptions,
    OutOfMemory,
    Reply,
    Request,
    answer_halving,
)
from builder.stages.attack.inprocess.loading import LoadedModel, ModelFolder, ModelUnavailable, shared

if TYPE_CHECKING:
    from PIL.Image import Image

    from builder.stages.workspace import Workspace
    from builder.store import Store

Shape = tuple[tuple[int, int], ...]  # each image's (width, height), in order


class TransformersTesterSettings(TesterSettings):
    """An image-text-to-text model in a local folder, run in this process."""

    # As an evaluation target: MIR-SafetyBench's 4,096 tokens (its greedy decoding is the default).
    evaluation_decoding: ClassVar[dict[str, Any] | None] = {"max_new_tokens": 4096}

    backend: Literal["transformers"] = "transformers"
    model: Path = Field(
        description="The model's local folder (config.json, weights, a processor with a chat template); "
        "nothing is downloaded."
    )
    device: str = Field(
        "auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$", description="auto: CUDA when present, else cpu."
    )
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto", description="auto: bfloat16 on GPUs that have it (else float16), float32 on a CPU."
    )
    batch_size: int = Field(4, ge=1, description="Requests of one shape answered in one generate call.")
    max_new_tokens: int = Field(512, ge=1, description="Answer length; a longer answer is cut.")
    do_sample: bool = Field(False, description="Sample instead of greedy decoding (MIR decodes greedily).")
    temperature: float = Field(1.0, gt=0, le=2, description="With do_sample only.")
    top_p: float = Field(1.0, gt=0, le=1, description="With do_sample only.")
    seed: int = Field(0, description="Seeds the generator before every batch.")
    attention_entropy: bool = Field(
        False, description="Record each answer's attention entropy (eager attention: more memory)."
    )
    entropy: EntropySettings = Field(default_factory=EntropySettings)

    def generation(self) -> GenerationOptions:
        return GenerationOptions(
            max_new_tokens=self.max_new_tokens,
            do_sample=self.do_sample,
            temperature=self.temperature,
            top_p=self.top_p,
            seed=self.seed,
            entropy=self.entropy if self.attention_entropy else None,
        )


@testers.register
class TransformersTester(Tester):
    name = "transformers"
    Settings = TransformersTesterSettings
    thread_safe = False  # one model, one generate call at a time

    def __init__(
        self,
        settings: TransformersTesterSettings,
        store: Store,
        artifacts: Path,
        *,
        loaded: LoadedModel | None = None,
    ):
        self.settings, self.store, self.artifacts = settings, store, artifacts
        folder = settings.model.expanduser()
        self.folder = ModelFolder(settings.name or folder.name, folder)
        self.label, self.held_out = self.folder.label, settings.held_out
        self.config_hash = self.folder.config_hash()
        self.model = f"{folder.name}@config:{self.config_hash[:16]}" if self.config_hash else folder.name
        self.host = None
        self._loaded, self._unavailable = loaded, None

    @classmethod
    def from_settings(cls, settings: TransformersTesterSettings, workspace: Workspace) -> Self:
        return cls(settings, workspace.store, workspace.artifacts)

    @classmethod
    def from_loaded(
        cls, loaded: LoadedModel, settings: TransformersTesterSettings, store: Store, artifacts: Path
    ) -> Self:
        """A tester over a model already in memory (benchmarks build one from a config)."""
        return cls(settings, store, artifacts, loaded=loaded)

    @classmethod
    def preflight(cls, settings: Any) -> list[str]:
        """A note for each configured model folder that is missing (its items will fail; the
        build goes on with the other testers' answers)."""
        return [
            f"tester {entry.name or entry.model.name}: model folder {entry.model} does not exist; "
            "its items will fail (models are never downloaded)"
            for entry in settings.attack.testers
            if isinstance(entry, TransformersTesterSettings) and not entry.model.expanduser().is_dir()
        ]

    def where(self) -> str:
        return f"tester {self.label} (transformers)"  # each failure's detail names model and folder

    def loaded(self) -> LoadedModel:
        """The model, loaded on first use; a failed load is remembered for this build."""
        if self._loaded is None:
            if self._unavailable is not None:
                raise self._unavailable
            try:
                self._loaded = shared(
                    self.folder,
                    self.settings.device,
                    self.settings.dtype,
                    eager_attention=self.settings.attention_entropy,
                )
            except ModelUnavailable as error:
                self._unavailable = error
                raise
        return self._loaded

    def answer_key(self, item: Item) -> str:
        options = self.settings.generation()
        identity = {
            "backend": self.name,
            "folder": str(self.folder.path.resolve()),
            "config": self.config_hash,
            "weights": self.folder.weights_manifest(),
            "device": self.settings.device,
            "dtype": self.settings.dtype,
            "generation": {
                "max_new_tokens": options.max_new_tokens,
                "sampling": [options.temperature, options.top_p, options.seed] if options.do_sample else None,
            },
            "entropy": options.entropy.model_dump(mode="json") if options.entropy else None,
            "prompt": item.revised_prompt,
            "images": [self._image_sha256(item, index) for index in range(len(item.slots))],
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()

    def _image_path(self, item: Item, index: int) -> Path:
        return self.artifacts / str(item.slots[index].file)

    def _image_sha256(self, item: Item, index: int) -> str:
        slot = item.slots[index]
        if slot.sha256:
            return slot.sha256
        path = self._image_path(item, index)
        return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else f"missing:{slot.file}"

    def attack(self, items: list[Item], on_done: Callable[[], None]) -> list[Answer | Failure]:
        keys = [self.answer_key(item) for item in items]
        stored = self.store.answers(keys)
        results: dict[int, Answer | Failure] = {}
        for number, key in enumerate(keys):
            if key in stored:
                results[number] = Answer(key=key, cached=True)
                on_done()
        pending = [number for number in range(len(items)) if number not in results]
        if pending:
            self._answer_pending(items, keys, pending, results, on_done)
        return [results[number] for number in range(len(items))]

    def _answer_pending(
        self,
        items: list[Item],
        keys: list[str],
        pending: list[int],
        results: dict[int, Answer | Failure],
        on_done: Callable[[], None],
    ) -> None:
        def settle(number: int, result: Answer | Failure) -> None:
            results[number] = result
            on_done()

        try:
            loaded = self.loaded()
        except ModelUnavailable as error:
            for number in pending:
                settle(number, Failure(reason=error.reason, detail=str(error)))
            return
        groups: dict[Shape, list[int]] = {}
        for number in pending:
            shape = self._shape(items[number])
            if isinstance(shape, Failure):
                settle(number, shape)
            else:
                groups.setdefault(shape, []).append(number)
        size = self.settings.batch_size
        for numbers in groups.values():
            for start in range(0, len(numbers), size):
                batch = numbers[start : start + size]
                for number, result in zip(batch, self._answer_batch(loaded, items, keys, batch), strict=True):
                    settle(number, result)

    def _shape(self, item: Item) -> Shape | Failure:
        """The sizes of the item's images, read from their headers (or why they cannot be read)."""
        from PIL import Image

        sizes = []
        for index in range(len(item.slots)):
            path = self._image_path(item, index)
            try:
                with Image.open(path) as picture:
                    sizes.append(picture.size)
            except OSError as error:
                return Failure(reason="unreadable_image", detail=f"{path}: {error}")
        return tuple(sizes)

    def _images(self, item: Item) -> list[Image] | Failure:
        from PIL import Image

        pictures = []
        for index in range(len(item.slots)):
            path = self._image_path(item, index)
            try:
                with Image.open(path) as picture:
                    pictures.append(picture.convert("RGB"))
            except OSError as error:
                return Failure(reason="unreadable_image", detail=f"{path}: {error}")
        return pictures

    def _answer_batch(
        self, loaded: LoadedModel, items: list[Item], keys: list[str], batch: list[int]
    ) -> list[Answer | Failure]:
        """Answers to the items `batch` (of one shape), each saved to the store as it comes."""
        results: dict[int, Answer | Failure] = {}
        asked: list[tuple[int, Request]] = []
        for number in batch:
            pictures = self._images(items[number])
            if isinstance(pictures, Failure):
                results[number] = pictures
            else:
                asked.append((number, Request(images=pictures, prompt=items[number].revised_prompt)))
        replies = self._replies(loaded, [request for _, request in asked])
        for (number, _), reply in zip(asked, replies, strict=True):
            results[number] = self._settle(keys[number], reply, loaded)
        return [results[number] for number in batch]

    def _replies(self, loaded: LoadedModel, requests: list[Request]) -> list[Reply | OutOfMemory | Failure]:
        if not requests:
            return []
        try:
            return list(answer_halving(loaded, requests, self.settings.generation()))
        except Exception as error:  # any model error fails these items, not the build
            reason = "attention_unavailable" if isinstance(error, AttentionUnavailable) else "model_error"
            detail = f"{self.folder.describe()}: {type(error).__name__}: {error}"
            return [Failure(reason=reason, detail=detail)] * len(requests)

    def _settle(
        self, key: str, found: Reply | OutOfMemory | Failure, loaded: LoadedModel
    ) -> Answer | Failure:
        if isinstance(found, Failure):
            return found
        if isinstance(found, OutOfMemory):
            return Failure(
                reason="out_of_memory",
                detail=f"{self.folder.describe()} ran out of {loaded.device} memory answering this item "
                f"alone (lower max_new_tokens, turn attention_entropy off, or use a larger GPU): {found}",
            )
        self.store.save_answer(key, self.model, found.text, found.measurements)
        return Answer(key=key)
