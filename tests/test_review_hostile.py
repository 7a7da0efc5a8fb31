"""Clients the review app cannot trust, over real HTTP (uvicorn on 127.0.0.1): malformed and
wrongly typed JSON get 400, bodies over the limit 413 (without being read), failed logins are
throttled per address with 429 and Retry-After, and a seeded fuzz corpus of bodies and headers
against every route meets not one 500."""

from __future__ import annotations

import json
import random
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from builder.config.settings import Settings
from builder.review.service import ReviewService
from builder.store import ReviewState, Store
from tests.review_support import ReviewServer, queue_items

LIMIT = 4096
ALLOWED_FAILURES = 3


@dataclass
class Served:
    server: ReviewServer
    store: Store
    item_id: str
    token: str
    reviewer: httpx.Client  # logged in before any test throttles 127.0.0.1
    admin: httpx.Client


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("hostile")
    settings = Settings(
        artifacts=folder,
        database_url=f"sqlite:///{folder / 'store.db'}",
        review={
            "max_body_bytes": LIMIT,
            "login_failures_allowed": ALLOWED_FAILURES,
            "login_window_seconds": 60,
        },
    )
    store = Store(settings.resolved_database_url)
    (item,) = queue_items(store, folder, 1)
    reviews = ReviewService(store, settings.review)
    token, admin_token = reviews.add_reviewer("ada"), reviews.add_reviewer("root", admin=True)
    with ReviewServer(settings) as server:
        yield Served(server, store, item.id, token, server.client(token), server.client(admin_token))
    store.close()


def _decide(client: httpx.Client, csrf: str, content: bytes) -> httpx.Response:
    return client.post(
        "/api/decide", content=content, headers={"x-csrf-token": csrf, "content-type": "application/json"}
    )


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[1, 2]",
        b'"approve"',
        b"42",
        b"null",
        b"\xff\xfe",
        b'{"item_id": 7, "decision": "approve"}',
    ],
)
def test_malformed_or_wrongly_typed_json_gets_400(served: Served, body: bytes) -> None:
    client = served.reviewer
    response = _decide(client, served.server.csrf(client), body)
    assert response.status_code == 400, response.text
    assert served.store.review_entry(served.item_id).state is ReviewState.PENDING


def test_a_body_over_the_limit_gets_413_declared_or_streamed(served: Served) -> None:
    client = served.reviewer
    csrf = served.server.csrf(client)
    big = json.dumps({"item_id": served.item_id, "decision": "reject", "reason": "x" * LIMIT}).encode()
    assert _decide(client, csrf, big).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the app must count what it reads
        for _ in range(64):
            yield b" " * 1024

    streamed = client.post("/api/decide", content=chunks(), headers={"x-csrf-token": csrf})
    assert streamed.status_code == 413
    # A client that claims 50 MB and sends nothing more is answered at once, not waited for.
    with socket.create_connection(("127.0.0.1", served.server.port), timeout=10) as raw:
        raw.sendall(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 52428800\r\n\r\n")
        assert raw.recv(100).startswith(b"HTTP/1.1 413")
    assert served.store.review_entry(served.item_id).state is ReviewState.PENDING


def test_failed_logins_are_throttled_per_address_with_retry_after(served: Served) -> None:
    client = served.server.client()
    for _ in range(ALLOWED_FAILURES):
        assert client.post("/login", data={"token": "guess"}).status_code == 401
    throttled = client.post("/login", data={"token": "guess"})
    assert throttled.status_code == 429 and 0 < int(throttled.headers["retry-after"]) <= 60
    # Even the right token waits: the throttle is per address, not per guess.
    assert client.post("/login", data={"token": served.token}).status_code == 429


# --- fuzzing ---------------------------------------------------------------------------------

ROUTES = [
    ("GET", "/login"),
    ("POST", "/login"),
    ("POST", "/logout"),
    ("GET", "/"),
    ("GET", "/review"),
    ("POST", "/review/{item}"),
    ("GET", "/items/{item}"),
    ("POST", "/items/{item}/final"),
    ("GET", "/queue"),
    ("GET", "/adjudicate"),
    ("GET", "/stats"),
    ("GET", "/images/{sha}"),
    ("GET", "/api/next"),
    ("POST", "/api/decide"),
    ("GET", "/api/session"),
]
FUZZ_CASES = 400


def _noise(rng: random.Random, size: int) -> bytes:
    kind = rng.randrange(5)
    if kind == 0:
        return rng.randbytes(size)
    if kind == 1:
        return json.dumps(rng.choice([[], {}, None, 1.5, "x", {"item_id": [], "decision": {}}])).encode()
    if kind == 2:
        return b"&".join(
            rng.choice([b"csrf=", b"action=approve", b"token=%ff", b"=", b"%%%"]) for _ in range(9)
        )
    if kind == 3:
        return "".join(chr(rng.randrange(0x20, 0x2FFF)) for _ in range(size)).encode("utf-8", "surrogatepass")
    return b'{"decision": "approve", "item_id": "' + rng.randbytes(8).hex().encode() + b'"}'


def _header_value(rng: random.Random) -> bytes:
    """Printable ASCII and bytes above 0x7f, which a server decodes as Latin-1."""
    alphabet = bytes([*range(0x20, 0x7F), 0xE9, 0xFF, 0xFC])
    return bytes(rng.choice(alphabet) for _ in range(rng.randrange(0, 40))).strip()  # h11 refuses edge spaces


def test_fuzzed_requests_against_every_route_never_get_a_500(served: Served, tmp_path: Path) -> None:
    rng = random.Random(19)
    client = served.admin
    csrf = served.server.csrf(client)
    sha = served.store.get_items([served.item_id])[0].slots[0].sha256
    statuses: dict[int, int] = {}
    for case in range(FUZZ_CASES):
        method, route = rng.choice(ROUTES)
        path = route.format(
            item=rng.choice([served.item_id, "%2e%2e", "x" * 300, "ü"]), sha=rng.choice([sha, "0" * 64])
        )
        if rng.random() < 0.3:
            path += "?" + rng.choice(
                ["state=%ff", "category=" + "a" * 500, "relation=&by=", "state=approved"]
            )
        headers = {
            rng.choice(["x-csrf-token", "content-type", "accept", "cookie", "x-other"]): _header_value(rng)
            for _ in range(rng.randrange(4))
        }
        if rng.random() < 0.5:
            headers["x-csrf-token"] = csrf.encode()
        body = _noise(rng, rng.randrange(0, 2 * LIMIT)) if method == "POST" else b""
        response = client.request(method, path, content=body, headers=headers)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        assert response.status_code < 500, f"case {case}: {method} {path} {headers} -> {response.text[:300]}"
    assert sum(statuses.values()) == FUZZ_CASES
    assert {400, 413} <= statuses.keys()  # the corpus reaches the guards it is meant to test
