"""What a model's answer or a failed call means to the LLM client (builder/models/llm.py): an
answer to parse, a refusal (never retried into compliance; what reads as one is the caller's
matcher, builder/stages/judge/refusals.py), a failure worth retrying with back-off (honouring a
server's Retry-After), or one that is final."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any


class RefusalError(ValueError):
    """The model declined the task. Raised by validators too, for refusals inside valid JSON."""


class LLMFailure(Exception):
    """A request that did not produce a valid answer after its retries."""

    def __init__(self, kind: str, detail: str, attempts: int):
        super().__init__(f"{kind} after {attempts} attempt(s): {detail}")
        self.kind = kind
        self.detail = detail
        self.attempts = attempts


class Retryable(Exception):
    """A failed attempt worth another after back-off (`wait`: what the server asked for)."""

    def __init__(self, kind: str, detail: str, wait: float | None = None):
        super().__init__(detail)
        self.kind, self.detail, self.wait = kind, detail, wait


class Final(Exception):
    """A failed attempt that another would fail alike (a bad request)."""

    def __init__(self, kind: str, detail: str):
        super().__init__(detail)
        self.kind, self.detail = kind, detail


def json_in(text: str) -> Any:
    """The JSON object in `text`: the whole text, or the outermost {...} (code fences, chatter)."""
    text = text.strip()
    try:
        return json.loads(text, strict=False)  # llama.cpp strings may hold raw control characters
    except json.JSONDecodeError:
        start, end = text.find("{"), text.rfind("}")
        if start == -1 or end <= start:
            raise
        return json.loads(text[start : end + 1], strict=False)


def retry_after(headers: Any) -> float | None:
    """The seconds a server asks a client to wait (Retry-After-Ms, Retry-After: seconds or a date)."""
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
            return max(0.0, (moment - datetime.now(UTC)).total_seconds())
    return None


def classified(exc: Exception, timeout: float) -> Exception:
    """What a failed call means: worth retrying (Retryable), or not (Final); anything that is
    not the server's answer is raised as it is."""
    import openai

    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status == 429:
            return Retryable("rate_limited", "HTTP 429", retry_after(exc.response.headers))
        if status >= 500 or status == 408:
            return Retryable("server_error", f"HTTP {status}: {str(exc.message)[:200]}")
        return Final("bad_request", f"HTTP {status}: {str(exc.message)[:300]}")
    if isinstance(exc, openai.APITimeoutError):
        return Retryable("timeout", f"no answer within {timeout:g}s")
    if isinstance(exc, openai.APIConnectionError):
        return Retryable("connection", str(exc.__cause__ or exc)[:200])
    if isinstance(exc, openai.APIResponseValidationError | json.JSONDecodeError | ValueError):
        return Retryable("invalid_response", str(exc)[:200])
    raise exc
