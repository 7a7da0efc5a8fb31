"""A small client for OpenAI-compatible chat servers that asks for one JSON object per request.

Shared by every stage that talks to a model (the composer now, LLM-judge filters later). It
survives what real servers do: timeouts, dropped connections, 429 (honouring Retry-After),
5xx, truncated output, invalid JSON and schema violations get bounded, jittered exponential
back-off; a refusal is recorded as such and never retried into compliance. Answers are cached
by (model, template version, rendered request), so reruns replay instead of paying again.

The API key is read from the environment variable the settings name, handed to the client and
kept nowhere else: it is not a setting, so it never reaches logs, artifacts or the store.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Literal, Protocol, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, Field

from builder.store.caches import DETAILS_SUFFIX

T = TypeVar("T")
StructuredOutput = Literal["auto", "json_schema", "json_object", "prompt"]
_DOWNGRADE: dict[str, StructuredOutput] = {"json_schema": "json_object", "json_object": "prompt"}


class LLMSettings(BaseModel):
    """How to reach one model on an OpenAI-compatible server (OpenAI, vLLM, Ollama, llama.cpp...)."""

    base_url: str | None = Field(None, description="Server URL ending in /v1; default: OpenAI's.")
    model: str | None = Field(None, description="Model name as the server knows it.")
    api_key_env: str = Field("OPENAI_API_KEY", description="Environment variable holding the API key.")
    temperature: float = Field(0.7, ge=0, le=2)
    max_tokens: int = Field(1024, ge=16)
    concurrency: int = Field(8, ge=1, le=256, description="Requests in flight at once.")
    timeout: float = Field(120.0, gt=0, description="Seconds per request.")
    max_retries: int = Field(4, ge=0, le=20)
    requests_per_minute: float | None = Field(
        None, gt=0, description="Rate limit: requests started per minute, evenly spaced; none: no limit."
    )
    backoff_base: float = Field(1.0, ge=0, description="First back-off in seconds; doubles per retry.")
    backoff_max: float = Field(60.0, ge=0)
    structured_output: StructuredOutput = Field(
        "auto",
        description="json_schema (OpenAI, vLLM), json_object (+schema: llama.cpp), prompt (anything "
        "else), or auto: start with json_schema and step down when the server rejects it.",
    )


class RefusalError(ValueError):
    """The model declined the task. Raised by validators too, for refusals inside valid JSON."""


class LLMFailure(Exception):
    """A request that did not produce a valid answer after its retries."""

    def __init__(self, kind: str, detail: str, attempts: int):
        super().__init__(f"{kind} after {attempts} attempt(s): {detail}")
        self.kind = kind
        self.detail = detail
        self.attempts = attempts


class _Retryable(Exception):
    def __init__(self, kind: str, detail: str, wait: float | None = None):
        super().__init__(detail)
        self.kind, self.detail, self.wait = kind, detail, wait


@dataclass(frozen=True)
class JSONRequest:
    """One chat request whose answer must be a JSON object accepted by `validate`."""

    messages: list[dict[str, str]]
    schema: dict[str, Any]
    validate: Callable[[Any], Any]  # raises ValueError (schema violation) or RefusalError
    template_version: str
    # Whether an answer that is not JSON is the model declining (a refusal, never retried) rather
    # than a format slip: the caller's refusal matcher (builder.stages.judge.refusals).
    refused: Callable[[str], bool] = lambda text: False


@dataclass(frozen=True)
class TextRequest:
    """One request answered in free text (a tester's answer, a classifier's label): nothing is
    parsed, a refusal is an answer like any other, and a truncated answer is kept.

    `messages` go to the chat API (content may be a list of text and `image_url` parts);
    `prompt`, when set instead, goes to the completions API (for models served without a chat
    template). `identity` is what makes two requests the same answer: the cache key is built
    from it, so large parts (images) enter it by hash.
    """

    identity: dict[str, Any]
    # A callable builds the messages when the request is sent (images are read then, not all
    # at once for a whole shard).
    messages: list[dict[str, Any]] | Callable[[], list[dict[str, Any]]] = field(default_factory=list)
    prompt: str | None = None
    # Also cache, under `details_key`, the reply's extra text fields (a reasoning trace a server
    # returns apart: `reasoning_content`, `reasoning`), its token usage and finish reason.
    keep_details: bool = False


@dataclass(frozen=True)
class JSONAnswer:
    value: Any
    raw: str
    cached: bool
    attempts: int


class ResponseCache(Protocol):
    def cached_response(self, key: str) -> str | None: ...

    def cache_response(self, key: str, model: str, text: str) -> None: ...

    def cache_responses(self, rows: list[tuple[str, str, str]]) -> None:
        """Several (key, model, text) at once, in one write."""
        ...


class FormatMemory(Protocol):
    """Where the format a server accepts outlives the process (the store)."""

    def learned_format(self, base_url: str, model: str) -> StructuredOutput | None: ...

    def learn_format(self, base_url: str, model: str, output: StructuredOutput, reason: str) -> None: ...


# (base URL, model) -> the format to start with: a server rejects a format once per process.
_learned: dict[tuple[str, str], StructuredOutput] = {}
_learned_lock = threading.Lock()


def details_key(key: str) -> str:
    """Where the details of the text answer cached under `key` are cached (`keep_details`)."""
    return hashlib.sha256(f"{key}\x1fdetails".encode()).hexdigest()


class _Pace:
    """At most `per_minute` requests started per minute, evenly spaced (None: no limit)."""

    def __init__(self, per_minute: float | None):
        self.gap = 60.0 / per_minute if per_minute else 0.0
        self.next = 0.0
        self.lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.gap:
            return
        async with self.lock:
            now = time.monotonic()
            start = max(now, self.next)
            self.next = start + self.gap
        await asyncio.sleep(start - now)


def _json_in(text: str) -> Any:
    """The JSON object in `text`: the whole text, or the outermost {...} (code fences, chatter)."""
    text = text.strip()
    try:
        return json.loads(text, strict=False)  # llama.cpp strings may hold raw control characters
    except json.JSONDecodeError:
        start, end = text.find("{"), text.rfind("}")
        if start == -1 or end <= start:
            raise
        return json.loads(text[start : end + 1], strict=False)


def _retry_after(headers: Any) -> float | None:
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if not value:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            try:
                moment = parsedate_to_datetime(value)
            except (TypeError, ValueError):
                continue
            from datetime import UTC, datetime

            return max(0.0, (moment - datetime.now(UTC)).total_seconds())
    return None


def _run_sync(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine from sync code, also when the caller already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


class LLMClient:
    def __init__(
        self, settings: LLMSettings, cache: ResponseCache | None = None, formats: FormatMemory | None = None
    ):
        if not settings.model:
            raise ValueError("an LLM backend needs a model name")
        self.settings = settings
        self.cache = cache
        self.formats = formats
        self._mode: StructuredOutput = (
            "json_schema" if settings.structured_output == "auto" else settings.structured_output
        )
        # Until a request in the current format got through, one at a time probes it (see _complete).
        self._negotiated = settings.structured_output != "auto"
        self._mode_lock = threading.Lock()
        self.requests_sent = 0
        self.prompt_tokens = 0  # as the server reports them: what a run cost
        self.completion_tokens = 0

    @property
    def model(self) -> str:
        assert self.settings.model is not None
        return self.settings.model

    @property
    def host(self) -> str:
        """The server's host[:port], as failures and provenance name it (never a credential)."""
        parts = urlsplit(self.settings.base_url or "https://api.openai.com/v1")
        return f"{parts.hostname}{f':{parts.port}' if parts.port else ''}"

    @property
    def _format_key(self) -> tuple[str, str]:
        return (self.settings.base_url or "", self.model)

    def _recall_format(self) -> None:
        """Start from the format this process or the store learned for the server."""
        if self._negotiated:
            return
        with _learned_lock:
            known = _learned.get(self._format_key)
        if known is None and self.formats is not None:
            known = self.formats.learned_format(*self._format_key)
        if known is not None:
            self._mode, self._negotiated = known, True

    def cache_key(self, request: JSONRequest) -> str:
        payload = {
            "model": self.model,
            "template": request.template_version,
            "messages": request.messages,
            "schema": request.schema,
            "temperature": self.settings.temperature,
            "max_tokens": self.settings.max_tokens,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def text_cache_key(self, request: TextRequest) -> str:
        payload = {
            "model": self.model,
            "identity": request.identity,
            "temperature": self.settings.temperature,
            "max_tokens": self.settings.max_tokens,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def run(
        self, requests: list[JSONRequest], on_done: Callable[[], None] | None = None
    ) -> list[JSONAnswer | LLMFailure]:
        """Answer every request (in order), with at most `concurrency` in flight."""
        self._recall_format()
        return _run_sync(lambda: self._run_all(requests, on_done))

    def run_text(
        self, requests: list[TextRequest], on_done: Callable[[], None] | None = None
    ) -> list[JSONAnswer | LLMFailure]:
        """Free-text answers to every request (in order), with at most `concurrency` in flight."""
        return _run_sync(lambda: self._run_all(requests, on_done))

    async def _run_all(
        self, requests: list[JSONRequest] | list[TextRequest], on_done: Callable[[], None] | None
    ) -> list[JSONAnswer | LLMFailure]:
        from openai import AsyncOpenAI

        api_key = os.environ.get(self.settings.api_key_env) or "no-key"
        client = AsyncOpenAI(
            api_key=api_key, base_url=self.settings.base_url, timeout=self.settings.timeout, max_retries=0
        )
        limit = asyncio.Semaphore(self.settings.concurrency)
        self._probe = asyncio.Lock()
        self._pace = _Pace(self.settings.requests_per_minute)

        async def ask(request: JSONRequest | TextRequest) -> JSONAnswer | LLMFailure:
            async with limit:
                if isinstance(request, TextRequest):
                    return await self._answer_text(client, request)
                return await self._answer(client, request)

        # Requests with one cache key are asked once: the others of the batch wait for that answer.
        asked: dict[str, asyncio.Future[JSONAnswer | LLMFailure]] = {}

        async def one(request: JSONRequest | TextRequest) -> JSONAnswer | LLMFailure:
            text = isinstance(request, TextRequest)
            key = self.text_cache_key(request) if text else self.cache_key(request)  # type: ignore[arg-type]
            if key not in asked:
                asked[key] = asyncio.ensure_future(ask(request))
            answer = await asked[key]
            if on_done is not None:
                on_done()
            return answer

        try:
            return await asyncio.gather(*(one(request) for request in requests))
        finally:
            await client.close()

    async def _answer(self, client: Any, request: JSONRequest) -> JSONAnswer | LLMFailure:
        key = self.cache_key(request)
        if self.cache is not None:
            cached = await self._cached(key)
            if cached is not None:
                try:
                    return JSONAnswer(self._accept(cached, request), cached, cached=True, attempts=0)
                except RefusalError as exc:
                    return LLMFailure("refused", str(exc) or cached[:200], 0)
                except (ValueError, _Retryable):
                    pass  # an entry that no longer parses or validates is asked again

        async def attempt() -> tuple[Any, str]:
            text = await self._complete(client, request)
            return self._accept(text, request), text

        return await self._retrying(key, attempt)

    async def _answer_text(self, client: Any, request: TextRequest) -> JSONAnswer | LLMFailure:
        key = self.text_cache_key(request)
        if self.cache is not None:
            cached = await self._cached(key)
            if cached is not None:
                return JSONAnswer(cached, cached, cached=True, attempts=0)

        beside: list[tuple[str, str, str]] = []  # the details, cached in the answer's own write

        async def attempt() -> tuple[Any, str]:
            text, details = await self._complete_text(client, request)
            if request.keep_details:
                beside[:] = [(details_key(key), self.model + DETAILS_SUFFIX, json.dumps(details))]
            return text, text

        return await self._retrying(key, attempt, beside)

    async def _retrying(
        self,
        key: str,
        attempt: Callable[[], Coroutine[Any, Any, tuple[Any, str]]],
        beside: list[tuple[str, str, str]] | None = None,
    ) -> JSONAnswer | LLMFailure:
        """Ask until an answer is accepted (and cached, with the rows `beside` it in one write), the
        model refuses (cached too: never retried into compliance), a final error comes, or the
        retries run out."""
        attempts, last = 0, _Retryable("none", "no attempt made")
        while attempts <= self.settings.max_retries:
            attempts += 1
            try:
                value, text = await attempt()
            except RefusalError as exc:
                refusal = str(exc)
                if self.cache is not None:
                    await self._cache(key, refusal)
                return LLMFailure("refused", refusal[:300], attempts)
            except _Retryable as exc:
                last = exc
            except _Final as exc:
                return LLMFailure(exc.kind, exc.detail, attempts)
            else:
                if self.cache is not None:
                    await self._cache(key, text, beside or [])
                return JSONAnswer(value, text, cached=False, attempts=attempts)
            if attempts <= self.settings.max_retries:
                await asyncio.sleep(self._backoff(attempts, last.wait))
        return LLMFailure(last.kind, last.detail, attempts)

    # The cache is a database: it is read and written off the event loop, so a commit does not hold
    # back the requests in flight.
    async def _cached(self, key: str) -> str | None:
        assert self.cache is not None
        return await asyncio.to_thread(self.cache.cached_response, key)

    async def _cache(self, key: str, text: str, beside: list[tuple[str, str, str]] | None = None) -> None:
        assert self.cache is not None
        await asyncio.to_thread(self.cache.cache_responses, [*(beside or []), (key, self.model, text)])

    def _backoff(self, attempt: int, server_wait: float | None) -> float:
        if server_wait is not None:
            return min(server_wait, self.settings.backoff_max)
        ceiling = min(self.settings.backoff_max, self.settings.backoff_base * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)

    def _accept(self, text: str, request: JSONRequest) -> Any:
        """Parse and validate an answer's text; raise _Retryable or RefusalError."""
        try:
            value = _json_in(text)
        except json.JSONDecodeError as exc:
            if request.refused(text):
                raise RefusalError(text.strip()[:300]) from None
            raise _Retryable("invalid_json", f"{exc.msg} in {text[:120]!r}") from None
        try:
            return request.validate(value)
        except RefusalError:
            raise
        except ValueError as exc:
            raise _Retryable("schema", str(exc)[:300]) from None

    def request_options(self, request: JSONRequest, mode: StructuredOutput) -> dict[str, Any]:
        messages = list(request.messages)
        options: dict[str, Any] = {}
        if mode == "json_schema":
            options["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": request.schema, "strict": False},
            }
        elif mode == "json_object":
            options["response_format"] = {"type": "json_object", "schema": request.schema}
        if mode != "json_schema":  # tell the model the shape when the server cannot enforce it all
            messages[-1] = {
                **messages[-1],
                "content": messages[-1]["content"]
                + "\n\nAnswer with one JSON object only, matching this JSON schema:\n"
                + json.dumps(request.schema),
            }
        return {"messages": messages, **options}

    async def _complete(self, client: Any, request: JSONRequest) -> str:
        completion = None
        if not self._negotiated:
            async with self._probe:  # one request settles the format; the others wait for it
                if not self._negotiated:
                    completion = await self._send(client, request)
                    self._negotiated = True
        if completion is None:
            completion = await self._send(client, request)
        choice = self._choice(completion)
        if getattr(choice.message, "refusal", None):
            raise RefusalError(choice.message.refusal)
        if choice.finish_reason == "length":
            raise _Retryable("truncated", f"output cut at max_tokens={self.settings.max_tokens}")
        return choice.message.content or ""

    async def _send(self, client: Any, request: JSONRequest) -> Any:
        """One completion in the current format, stepping down when the server rejects it."""
        while True:
            mode = self._mode
            await self._pace.wait()
            try:
                self.requests_sent += 1
                return await client.chat.completions.create(
                    model=self.model,
                    temperature=self.settings.temperature,
                    max_tokens=self.settings.max_tokens,
                    **self.request_options(request, mode),
                )
            except Exception as exc:
                if self._rejects_format(exc) and self._step_down(mode, exc):
                    continue  # the server cannot do this structured-output style: try the next
                raise self._classified(exc) from None

    async def _complete_text(self, client: Any, request: TextRequest) -> tuple[str, dict[str, Any]]:
        """The answer's text, and its details: extra text fields, token usage, finish reason."""
        await self._pace.wait()
        self.requests_sent += 1
        try:
            if request.prompt is not None:
                completion = await client.completions.create(
                    model=self.model,
                    prompt=request.prompt,
                    temperature=self.settings.temperature,
                    max_tokens=self.settings.max_tokens,
                )
            else:
                messages = request.messages() if callable(request.messages) else request.messages
                completion = await client.chat.completions.create(
                    model=self.model,
                    messages=messages,
                    temperature=self.settings.temperature,
                    max_tokens=self.settings.max_tokens,
                )
        except Exception as exc:
            raise self._classified(exc) from None
        choice = self._choice(completion)
        details = {"usage": _usage(completion), "finish_reason": getattr(choice, "finish_reason", None)}
        if request.prompt is not None:
            return getattr(choice, "text", None) or "", {**details, "fields": {}}
        extra = getattr(choice.message, "model_extra", None) or {}
        details["fields"] = {name: value for name, value in extra.items() if isinstance(value, str) and value}
        # A model's refusal is its answer here, whichever field carries it.
        return choice.message.content or getattr(choice.message, "refusal", None) or "", details

    def _classified(self, exc: Exception) -> Exception:
        """What a failed call means: worth retrying (_Retryable), or not (_Final)."""
        import openai

        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            if status == 429:
                return _Retryable("rate_limited", "HTTP 429", _retry_after(exc.response.headers))
            if status >= 500 or status == 408:
                return _Retryable("server_error", f"HTTP {status}: {str(exc.message)[:200]}")
            return _Final("bad_request", f"HTTP {status}: {str(exc.message)[:300]}")
        if isinstance(exc, openai.APITimeoutError):
            return _Retryable("timeout", f"no answer within {self.settings.timeout:g}s")
        if isinstance(exc, openai.APIConnectionError):
            return _Retryable("connection", str(exc.__cause__ or exc)[:200])
        if isinstance(exc, openai.APIResponseValidationError | json.JSONDecodeError | ValueError):
            return _Retryable("invalid_response", str(exc)[:200])
        raise exc

    def _choice(self, completion: Any) -> Any:
        usage = getattr(completion, "usage", None)
        if usage is not None:
            self.prompt_tokens += getattr(usage, "prompt_tokens", 0) or 0
            self.completion_tokens += getattr(usage, "completion_tokens", 0) or 0
        choices = getattr(completion, "choices", None)
        if not choices or (getattr(choices[0], "message", None) is None and not hasattr(choices[0], "text")):
            raise _Retryable("invalid_response", f"no choices in the answer: {str(completion)[:120]}")
        return choices[0]

    @staticmethod
    def _rejects_format(exc: Any) -> bool:
        if not hasattr(exc, "status_code"):
            return False
        text = str(getattr(exc, "message", "")) + str(getattr(exc, "body", ""))
        return exc.status_code in (400, 422, 500) and ("response_format" in text or "json_schema" in text)

    def _step_down(self, mode: StructuredOutput, exc: Any) -> bool:
        """Take the next format after the server rejected `mode`, and remember it (in this
        process and, given a FormatMemory, in the store) for this base URL and model."""
        if self.settings.structured_output != "auto" or mode not in _DOWNGRADE:
            return False
        with self._mode_lock:
            if self._mode != mode:
                return True  # another request already stepped down
            learned = self._mode = _DOWNGRADE[mode]
        with _learned_lock:
            _learned[self._format_key] = learned
        if self.formats is not None:
            reason = f"HTTP {getattr(exc, 'status_code', '?')} on {mode}"
            self.formats.learn_format(*self._format_key, learned, reason)
        return True


def _usage(completion: Any) -> dict[str, int]:
    """The token counts a server reported for one completion (none it did not report)."""
    usage = getattr(completion, "usage", None)
    counts = {
        name: getattr(usage, name, None) for name in ("prompt_tokens", "completion_tokens", "total_tokens")
    }
    reasoning = getattr(getattr(usage, "completion_tokens_details", None), "reasoning_tokens", None)
    counts["reasoning_tokens"] = reasoning
    return {name: value for name, value in counts.items() if isinstance(value, int)}


class _Final(Exception):
    def __init__(self, kind: str, detail: str):
        super().__init__(detail)
        self.kind, self.detail = kind, detail
