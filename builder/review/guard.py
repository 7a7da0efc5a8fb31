"""What the review app puts between itself and a client it cannot trust, and the database it
runs on: a cap on request bodies, URLs without NUL bytes, a throttle on failed logins per client
address, one guard every JSON route reads its request through (CSRF header, parse, depth, NUL,
field types), strict decoding of forms, and 503 with a retry hint while the database is away.

Each answers with a 4xx or 503 and a one-line reason; none reads more than the configured
body limit, and none lets a bad request become a 500.
"""

from __future__ import annotations

import json
import math
import secrets
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, TypeVar
from urllib.parse import parse_qs

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy.exc import InterfaceError, OperationalError

from builder.core.errors import SystemFault

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
DATABASE_RETRY_SECONDS = 2
JSON_DEPTH = 8  # a request body is one object of plain fields: deeper is a hostile client


class RequestLimits:
    """ASGI middleware: a request body over `limit` bytes gets 413, whether it says its size up
    front (Content-Length) or streams it, and the body is never read past the limit; a URL with
    a NUL byte gets 400 (no database stores one: PostgreSQL refuses it in any text)."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope.get("path", "") or b"%00" in scope.get("query_string", b""):
            await _plain(send, 400, "a NUL byte in the URL")
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared and (not declared.isdigit() or int(declared) > self.limit):
            status = 413 if declared.isdigit() else 400
            await _plain(
                send,
                status,
                f"request body over {self.limit} bytes" if status == 413 else "bad Content-Length",
            )
            return
        received = 0

        async def capped() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise HTTPException(413, f"request body over {self.limit} bytes")
            return message

        await self.app(scope, capped, send)


async def _plain(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class LoginThrottle:
    """Failed logins per client address: after `allowed` failures within `window` seconds, that
    address gets 429 with Retry-After until the oldest failure leaves the window. Per process
    (each uvicorn worker counts its own)."""

    def __init__(self, allowed: int, window: float, clock: Callable[[], float] = time.monotonic):
        self.allowed, self.window, self.clock = allowed, window, clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, address: str) -> deque[float]:
        failures = self._failures.setdefault(address, deque())
        while failures and failures[0] <= self.clock() - self.window:
            failures.popleft()
        return failures

    def check(self, address: str) -> None:
        """Raise 429 if `address` has used up its failures."""
        with self._lock:
            failures = self._recent(address)
            if len(failures) >= self.allowed:
                wait = max(1, math.ceil(failures[0] + self.window - self.clock()))
                raise HTTPException(
                    429,
                    "too many failed logins from this address; try again later",
                    {"Retry-After": str(wait)},
                )

    def failed(self, address: str) -> None:
        with self._lock:
            self._recent(address).append(self.clock())
            if len(self._failures) > 100_000:  # a flood of addresses must not grow memory forever
                self._failures = {a: f for a, f in self._failures.items() if f}

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._failures.pop(address, None)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def form_fields(request: Request) -> dict[str, str]:
    """An urlencoded form's fields (last value wins); 400 if it is not UTF-8 or holds a NUL."""
    try:
        body = (await request.body()).decode()
    except UnicodeDecodeError:
        raise HTTPException(400, "form body is not UTF-8") from None
    fields = {key: values[-1] for key, values in parse_qs(body, keep_blank_values=True).items()}
    if any("\x00" in text for pair in fields.items() for text in pair):
        raise HTTPException(400, "a NUL byte in the form")
    return fields


class JsonBody(BaseModel):
    """A JSON route's body: its fields and their types, nothing else (strict: no coercion)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


Body = TypeVar("Body", bound=JsonBody)


async def json_request(request: Request, csrf: str, model: type[Body]) -> Body:
    """The one way a JSON route reads its request: the X-CSRF-Token header compared with
    `csrf` (403), then the body (413 over the limit, by `RequestLimits`) parsed as one JSON
    object no deeper than JSON_DEPTH and without NUL bytes, and its fields checked against
    `model` (400 naming the first wrong field)."""
    if not same_token(request.headers.get("x-csrf-token", ""), csrf):
        raise HTTPException(403, "missing or wrong X-CSRF-Token header")
    body = await json_object(request)
    try:
        return model.model_validate(body)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "body"
        raise HTTPException(400, f"field '{field}': {first['msg']}") from None


async def json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object; 400 for anything else (malformed, an array, a number, nested
    deeper than JSON_DEPTH, a NUL byte in a string)."""
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise HTTPException(400, "body is not valid JSON (or nested too deeply)") from None
    if not isinstance(body, dict):
        raise HTTPException(400, f"body must be a JSON object, not {type(body).__name__}")
    _check_values(body)
    return body


def _check_values(body: dict[str, Any]) -> None:
    """No value deeper than JSON_DEPTH and no NUL in a key or a string, walked without recursion."""
    pending: list[tuple[Any, int]] = [(body, 1)]
    while pending:
        value, depth = pending.pop()
        if depth > JSON_DEPTH:
            raise HTTPException(400, f"body is nested deeper than {JSON_DEPTH} levels")
        if isinstance(value, dict):
            if any("\x00" in key for key in value):
                raise HTTPException(400, "a NUL byte in the body")
            pending.extend((child, depth + 1) for child in value.values())
        elif isinstance(value, list):
            pending.extend((child, depth + 1) for child in value)
        elif isinstance(value, str) and "\x00" in value:
            raise HTTPException(400, "a NUL byte in the body")


def same_token(given: str, expected: str) -> bool:
    """Constant-time comparison that also takes non-ASCII input (a header may hold any byte)."""
    return secrets.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode())


def database_away(_request: Request, _error: Exception) -> Response:
    """The database dropped the connection or is restarting: 503 and when to try again; the
    request's transaction was rolled back, so the retry does it once."""
    return JSONResponse(
        {"detail": "the database is not answering (restarting?); retry shortly"},
        status_code=503,
        headers={"Retry-After": str(DATABASE_RETRY_SECONDS)},
    )


# What a request meets while the database restarts: a cut connection, a refused one.
DATABASE_FAULTS: tuple[type[Exception], ...] = (OperationalError, InterfaceError, SystemFault)
