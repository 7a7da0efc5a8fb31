"""Tester `openai`: a model behind any OpenAI-compatible vision chat endpoint (vLLM, Ollama,
OpenAI, llama.cpp with a vision projector).

One user turn: every image as an `image_url` data URL, in the item's order, then the prompt.
Requests go through `builder/models/llm.py` (bounded concurrency, retries, Retry-After); its response
cache is the store's answers table, keyed by the tester's model, the prompt and the images'
sha256, so reruns and resumed builds replay answers instead of paying again.
"""

from __future__ import annotations

import base64
import hashlib
import mimetypes
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

from pydantic import Field, model_validator

from builder.core.items import Item
from builder.models.llm import LLMClient, LLMFailure, LLMSettings, TextRequest
from builder.stages.attack import Answer, Failure, Tester, TesterSettings, testers

if TYPE_CHECKING:
    from builder.stages.workspace import Workspace


class OpenAITesterSettings(TesterSettings, LLMSettings):
    """Any OpenAI-compatible vision chat server (see LLMSettings); the API key stays in the
    environment."""

    backend: Literal["openai"] = "openai"
    temperature: float = Field(0.0, ge=0, le=2)
    max_tokens: int = Field(512, ge=16, description="Answer length; a longer answer is cut, not retried.")
    system_prompt: str | None = Field(
        None, description="A system turn before the user's; none by default (MIR-SafetyBench sends none)."
    )
    images: Literal["first", "last"] = Field(
        "first", description="The images before the text in the user turn (MIR-SafetyBench), or after it."
    )

    @model_validator(mode="after")
    def _model_named(self) -> OpenAITesterSettings:
        if not self.model:
            raise ValueError("tester backend 'openai' needs a model name (--tester-model or attack.testers)")
        return self


def data_url(path: Path) -> str:
    mime = mimetypes.guess_type(path.name)[0] or "image/png"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


@testers.register
class OpenAITester(Tester):
    name = "openai"
    Settings = OpenAITesterSettings

    def __init__(
        self,
        client: LLMClient,
        artifacts: Path,
        *,
        label: str,
        held_out: bool = False,
        system_prompt: str | None = None,
        images_last: bool = False,
    ):
        self.client, self.artifacts = client, artifacts
        self.label, self.held_out = label, held_out
        self.system_prompt, self.images_last = system_prompt, images_last
        self.model, self.host = client.model, client.host

    @classmethod
    def from_settings(cls, settings: OpenAITesterSettings, workspace: Workspace) -> Self:
        return cls(
            LLMClient(settings, cache=workspace.store.answer_cache),
            workspace.artifacts,
            label=settings.name or settings.model or "",
            held_out=settings.held_out,
            system_prompt=settings.system_prompt,
            images_last=settings.images == "last",
        )

    def _image_sha256(self, item: Item) -> list[str]:
        return [
            slot.sha256 or hashlib.sha256((self.artifacts / str(slot.file)).read_bytes()).hexdigest()
            for slot in item.slots
        ]

    def messages(self, item: Item) -> list[dict[str, Any]]:
        images = [
            {"type": "image_url", "image_url": {"url": data_url(self.artifacts / str(slot.file))}}
            for slot in item.slots
        ]
        text = [{"type": "text", "text": item.revised_prompt}]
        system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return [
            *system,
            {"role": "user", "content": [*text, *images] if self.images_last else [*images, *text]},
        ]

    def request(self, item: Item) -> TextRequest:
        identity: dict[str, Any] = {"prompt": item.revised_prompt, "images": self._image_sha256(item)}
        if self.system_prompt:  # only what differs from the defaults, so earlier answers keep their keys
            identity["system"] = self.system_prompt
        if self.images_last:
            identity["images_last"] = True
        return TextRequest(identity=identity, messages=lambda: self.messages(item), keep_details=True)

    def answer_key(self, item: Item) -> str:
        return self.client.text_cache_key(self.request(item))

    def attack(self, items: list[Item], on_done: Callable[[], None]) -> list[Answer | Failure]:
        requests = [self.request(item) for item in items]
        answers: list[Answer | Failure] = []
        for request, answer in zip(requests, self.client.run_text(requests, on_done), strict=True):
            if isinstance(answer, LLMFailure):
                answers.append(Failure(reason=answer.kind, detail=str(answer)))
            else:
                answers.append(Answer(key=self.client.text_cache_key(request), cached=answer.cached))
        return answers
