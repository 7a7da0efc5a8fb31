"""Tester `openai`: a model behind any OpenAI-compatible vision chat endpoint (vLLM, Ollama,
OpenAI, llama.cpp with a vision projector).

One user turn: every image as an `image_url` data URL, in the item's order, then the prompt.
Requests go through `builder/models/llm.py` (bounded concurrency, retries, Retry-After); its response
cache is the store's answers table, keyed by the tester's model, its server, the prompt and the
images' sha256, so reruns and resumed builds replay answers instead of paying again, and two
servers that serve different models under one name (llama.cpp's `default`, an Ollama alias)
never share them.

The server entered the key after answers had been cached without it. An answer cached under the
older key (the same request, no server) is taken over by the first server that asks for it: it
claims the old key in the store (atomically: one server per answer, whatever runs at once) and
the answer is copied under its own key, so configurations with one server per model name pay
for nothing again. The other servers of that model name ask their own. OpenAI's own endpoint
(no `base_url`) keeps the older key: nothing to take over there.
"""

from __future__ import annotations

import base64
import hashlib
import mimetypes
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, model_validator

from builder.core.items import Item
from builder.models.llm import LLMClient, LLMFailure, LLMSettings, TextRequest
from builder.models.replies import DETAILS_SUFFIX, details_key
from builder.stages.attack import Answer, Failure, Tester, TesterSettings, testers

if TYPE_CHECKING:
    from builder.stages.workspace import Workspace
    from builder.store import Store


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


DEFAULT_SERVER = "https://api.openai.com/v1"  # the openai client's, when no base_url is given


def server_of(base_url: str | None) -> str | None:
    """The server an answer key names: `base_url`'s scheme, host, port, path and query, without
    credentials or a trailing slash; None for OpenAI's own endpoint (given or not)."""
    if not base_url:
        return None
    parts = urlsplit(base_url.strip())
    port = f":{parts.port}" if parts.port else ""
    query = f"?{parts.query}" if parts.query else ""
    server = f"{parts.scheme.lower()}://{(parts.hostname or '').lower()}{port}{parts.path.rstrip('/')}{query}"
    return None if server == DEFAULT_SERVER else server


def claim_key(older: str) -> str:
    """Where the store records which server took over the answer cached under `older`."""
    return hashlib.sha256(f"{older}\x1fclaim".encode()).hexdigest()


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
        store: Store | None = None,
    ):
        self.client, self.artifacts = client, artifacts
        self.label, self.held_out = label, held_out
        self.system_prompt, self.images_last = system_prompt, images_last
        self.model, self.host = client.model, client.host
        self.server = server_of(client.settings.base_url)
        self.store = store  # where answers cached under the older key are taken over; None: never

    @classmethod
    def from_settings(cls, settings: OpenAITesterSettings, workspace: Workspace) -> Self:
        return cls(
            LLMClient(settings, cache=workspace.store.answer_cache),
            workspace.artifacts,
            label=settings.name or settings.model or "",
            held_out=settings.held_out,
            system_prompt=settings.system_prompt,
            images_last=settings.images == "last",
            store=workspace.store,
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
        if self.server is not None:
            identity["server"] = self.server
        return TextRequest(identity=identity, messages=lambda: self.messages(item), keep_details=True)

    def answer_key(self, item: Item) -> str:
        return self.client.text_cache_key(self.request(item))

    def _older_key(self, request: TextRequest) -> str:
        """The key the same request was cached under before the server entered it."""
        identity = {name: value for name, value in request.identity.items() if name != "server"}
        return self.client.text_cache_key(replace(request, identity=identity))

    def take_over_older_answers(self, requests: list[TextRequest]) -> int:
        """Copy the answers cached under the older key of `requests` (none under their own) that
        this server claims first; returns how many it took over."""
        if self.server is None or self.store is None:
            return 0
        keys = {self.client.text_cache_key(request): request for request in requests}
        own = self.store.answers(list(keys))
        older = {key: self._older_key(request) for key, request in keys.items() if key not in own}
        found = self.store.answers([k for old in older.values() for k in (old, details_key(old))])
        older = {key: old for key, old in older.items() if old in found}
        if not older:
            return 0
        me = hashlib.sha256(self.server.encode()).hexdigest()[:32]  # never the URL itself
        holders = self.store.claim_answers({claim_key(old): (self.model, me) for old in older.values()})
        rows = []
        for key, old in older.items():
            if holders.get(claim_key(old)) != me:
                continue  # another server of this model name took it: this one asks its own
            rows.append((key, self.model, found[old]))
            if details_key(old) in found:
                rows.append((details_key(key), self.model + DETAILS_SUFFIX, found[details_key(old)]))
        self.store.save_answers(rows)
        return sum(row[0] in older for row in rows)

    def attack(self, items: list[Item], on_done: Callable[[], None]) -> list[Answer | Failure]:
        requests = [self.request(item) for item in items]
        self.take_over_older_answers(requests)
        answers: list[Answer | Failure] = []
        for request, answer in zip(requests, self.client.run_text(requests, on_done), strict=True):
            if isinstance(answer, LLMFailure):
                answers.append(Failure(reason=answer.kind, detail=str(answer)))
            else:
                answers.append(Answer(key=self.client.text_cache_key(request), cached=answer.cached))
        return answers
