"""Clients the review app cannot trust, over real HTTP (uvicorn on 127.0.0.1), on SQLite and
PostgreSQL: malformed, nested, NUL-holding and wrongly typed JSON get 400 from every JSON route
and a wrong or non-ASCII CSRF header 403, with nothing stored; bodies over the limit get 413
(without being read); failed logins are throttled per address with 429 and Retry-After; a
client that sends its headers too slowly gets 408 and is cut off; and a hostile corpus (the
cases above against every route the app has, seed pages included) and a seeded fuzz corpus
meet not one 500."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute
from sqlalchemy import select

from builder.config.settings import Settings
from builder.review.service import ReviewService
from builder.store import LeaseRow, ReviewState, SeedState, Store
from tests.conftest import POSTGRES_URL, REPO, reset_postgres
from tests.review_support import ReviewServer, queue_items
from tests.servers import free_port

LIMIT = 4096
ALLOWED_FAILURES = 3
HEADER_TIMEOUT = 1.0


@dataclass
class Served:
    server: ReviewServer
    store: Store
    item_id: str
    seed_id: str
    token: str
    reviewer: httpx.Client  # logged in before any test throttles 127.0.0.1
    admin: httpx.Client


def _pending_seeds(store: Store) -> list[str]:
    """Two seeds waiting for curation, as triage leaves them."""
    rows = [
        {
            "id": f"sd-hostile{n:07d}",
            "source": "team",
            "source_id": str(n),
            "revision": "1",
            "license": "CC-BY-4.0",
            "text": f"How could someone read a neighbour's letters ({n})?",
            "labels": "[]",
            "imported_at": datetime.now(UTC),
            "state": SeedState.PENDING.value,
            "category": "privacy",
            "mapped_category": "privacy",
        }
        for n in range(2)
    ]
    store.add_seeds(rows)
    return [row["id"] for row in rows]


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("hostile")
    if request.param == "sqlite":
        url = f"sqlite:///{folder / 'store.db'}"
    elif POSTGRES_URL:
        reset_postgres(POSTGRES_URL)
        url = POSTGRES_URL
    else:
        pytest.skip("no PostgreSQL server given: set MIRBENCH_TEST_POSTGRES_URL")
    settings = Settings(
        artifacts=folder,
        database_url=url,
        review={
            "max_body_bytes": LIMIT,
            "login_failures_allowed": ALLOWED_FAILURES,
            "login_window_seconds": 60,
            "header_timeout_seconds": HEADER_TIMEOUT,
        },
    )
    store = Store(settings.resolved_database_url)
    (item,) = queue_items(store, folder, 1)
    seed_id, _ = _pending_seeds(store)
    reviews = ReviewService(store, settings.review)
    token, admin_token = reviews.add_reviewer("ada"), reviews.add_reviewer("root", admin=True)
    with ReviewServer(settings) as server:
        yield Served(server, store, item.id, seed_id, token, server.client(token), server.client(admin_token))
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


# --- the hostile corpus, against every route ---------------------------------------------------

JSON_ROUTES = {"/api/decide", "/api/seeds/decide"}
DEEP = b'{"item_id": ' + b"[" * 1500 + b"]" * 1500 + b"}"  # within the body limit, past any recursion
ALSO_DEEP = b'{"seed_id": "x", "category": ' + b"[" * 9 + b"]" * 9 + b"}"  # past the depth limit only
BODIES = {
    "malformed": b"{not json",
    "an array": b"[1, 2]",
    "a number": b"42",
    "not UTF-8": b"\xff\xfe{",
    "nested past recursion": DEEP,
    "nested past the depth limit": ALSO_DEEP,
    "a NUL in a string": b'{"item_id": "a\\u0000b", "seed_id": "a\\u0000b", "decision": "approve"}',
    "wrong types": b'{"item_id": 7, "seed_id": {}, "decision": "approve", "category": [1], "reason": 5}',
    "a list for an id": b'{"item_id": ["x"], "seed_id": ["x"], "decision": "reject", "reason": "r"}',
    "an unknown decision": b'{"item_id": "x", "seed_id": "x", "decision": "maybe"}',
    "an unknown field": b'{"item_id": "x", "seed_id": "x", "decision": "approve", "admin": true}',
    "a form": b"csrf=x&action=approve&category=%ff",
    "a form with a NUL": b"action=reject&reason_text=a%00b",
    "empty": b"",
}
CSRF_HEADERS = {
    "no CSRF header": None,
    "a wrong CSRF header": b"nope",
    "a non-ASCII CSRF header": "caf\u00e9-\u00ff".encode("latin-1"),
}


def app_routes(server: ReviewServer) -> list[tuple[str, str]]:
    """Every (method, path) the app serves, read from the app itself: a new route is in the
    corpus without anyone adding it here."""
    return sorted(
        (method, route.path)
        for route in server.app.routes
        if isinstance(route, APIRoute)
        for method in route.methods
    )


def _path(route: str, served: Served, value: str | None = None) -> str:
    sha = served.store.get_items([served.item_id])[0].slots[0].sha256
    return route.format(item_id=value or served.item_id, seed_id=value or served.seed_id, sha256=value or sha)


def _decisions(served: Served) -> int:
    return len(served.store.decision_log())


def test_the_corpus_covers_the_seed_pages_and_the_json_routes(served: Served) -> None:
    routes = app_routes(served.server)
    paths = {path for _, path in routes}
    assert {"/seeds", "/seeds/{seed_id}", "/api/seeds/next", "/api/seeds/decide"} <= paths
    assert {path for method, path in routes if path.startswith("/api/") and method == "POST"} == JSON_ROUTES
    assert len(routes) >= 20


@pytest.mark.parametrize("body", BODIES, ids=list(BODIES))
def test_every_json_route_answers_a_bad_body_400_and_stores_nothing(served: Served, body: str) -> None:
    client = served.reviewer
    csrf = served.server.csrf(client)
    before = _decisions(served)
    for route in sorted(JSON_ROUTES):
        response = client.post(
            route, content=BODIES[body], headers={"x-csrf-token": csrf, "content-type": "application/json"}
        )
        assert response.status_code == 400, f"{route}: {response.status_code} {response.text}"
        assert len(response.json()["detail"].splitlines()) == 1
    assert _decisions(served) == before
    assert served.store.review_entry(served.item_id).state is ReviewState.PENDING


@pytest.mark.parametrize("header", CSRF_HEADERS, ids=list(CSRF_HEADERS))
def test_every_json_route_answers_a_missing_or_wrong_csrf_header_403(served: Served, header: str) -> None:
    value = CSRF_HEADERS[header]
    headers = {"content-type": "application/json", **({"x-csrf-token": value} if value else {})}
    good = {"item_id": served.item_id, "seed_id": served.seed_id, "decision": "approve"}
    before = _decisions(served)
    for route in sorted(JSON_ROUTES):
        response = served.reviewer.post(route, content=json.dumps(good).encode(), headers=headers)
        assert response.status_code == 403, f"{route}: {response.status_code} {response.text}"
    assert _decisions(served) == before


def test_a_good_seed_decision_through_the_guard_is_stored(served: Served) -> None:
    client = served.admin
    csrf = served.server.csrf(client)
    body = {"seed_id": served.seed_id, "decision": "reject", "reason": "too vague"}
    response = client.post("/api/seeds/decide", json=body, headers={"x-csrf-token": csrf})
    assert response.status_code == 200 and response.json() == {"state": "rejected"}, response.text
    again = client.post(
        "/api/seeds/decide", json={**body, "decision": "approve"}, headers={"x-csrf-token": csrf}
    )
    assert again.status_code == 409  # decided: only an admin's final word changes it


def test_the_hostile_corpus_against_every_route_meets_no_500(served: Served) -> None:
    """Each route (the app's own list) meets every hostile body with every CSRF header, odd path
    values and non-ASCII headers: 4xx, 3xx or 200, never 500."""
    client = served.admin
    csrf = served.server.csrf(client)
    odd_values = [None, "%2e%2e", "x" * 300, "\u00fc", "%00", "sd-" + "f" * 16]
    statuses: dict[int, int] = {}
    for method, route in app_routes(served.server):
        for n, (name, body) in enumerate(BODIES.items()):
            value = odd_values[n % len(odd_values)] if "{" in route else None
            header = list(CSRF_HEADERS.values())[n % len(CSRF_HEADERS)]
            headers = {
                "x-csrf-token": csrf.encode() if n % 2 else (header or b""),
                "accept": "text/html" if n % 3 else "caf\u00e9/\u00ff".encode("latin-1"),
                "x-other": "\u00e9\u00fc".encode("latin-1"),
            }
            path = _path(route, served, value)
            response = client.request(
                method, path, content=body if method == "POST" else b"", headers=headers
            )
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            assert response.status_code < 500, f"{method} {path} ({name}) -> {response.text[:300]}"
    assert {400, 403} <= statuses.keys()


# --- slow clients ------------------------------------------------------------------------------


def _answer(raw: socket.socket) -> bytes:
    received = b""
    while chunk := raw.recv(4096):
        received += chunk
    return received


def test_a_client_that_sends_its_headers_too_slowly_gets_408_and_is_cut_off(served: Served) -> None:
    port = served.server.port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as silent:
        started = time.monotonic()
        assert _answer(silent).startswith(b"HTTP/1.1 408")  # never sent a byte
        assert HEADER_TIMEOUT * 0.9 <= time.monotonic() - started < 10
    with socket.create_connection(("127.0.0.1", port), timeout=10) as slow:
        slow.sendall(b"GET /login HTTP/1.1\r\nHost: x\r\n")  # and the rest never comes
        assert _answer(slow).startswith(b"HTTP/1.1 408")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as kept:
        kept.sendall(b"GET /login HTTP/1.1\r\nHost: x\r\n\r\n")
        assert kept.recv(12) == b"HTTP/1.1 200"
        time.sleep(0.2)
        kept.sendall(b"GET /login HTTP/1.1\r\n")  # a second request, on the kept-alive connection
        assert b"HTTP/1.1 408" in _answer(kept)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as steady:
        steady.sendall(b"GET /login HTTP/1.1\r\n")
        time.sleep(HEADER_TIMEOUT / 2)
        steady.sendall(b"Host: x\r\nConnection: close\r\n\r\n")  # within the deadline: served
        assert _answer(steady).startswith(b"HTTP/1.1 200")


# --- fuzzing ---------------------------------------------------------------------------------

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
    routes = app_routes(served.server)
    statuses: dict[int, int] = {}
    for case in range(FUZZ_CASES):
        method, route = rng.choice(routes)
        path = _path(route, served, rng.choice([None, "%2e%2e", "x" * 300, "ü", "0" * 64]))
        if rng.random() < 0.3:
            path += "?" + rng.choice(
                ["state=%ff", "category=" + "a" * 500, "relation=&by=", "state=approved", "category=%00"]
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


def test_skipping_an_unknown_item_or_seed_is_refused_and_writes_no_lease(served: Served) -> None:
    client = served.reviewer
    csrf = served.server.csrf(client)
    for route in ("/review/{}", "/seeds/{}"):
        for unknown in ("x" * 300, "sd-" + "0" * 16, "mb-nothing"):
            response = client.post(route.format(unknown), data={"csrf": csrf, "action": "skip"})
            assert response.status_code == 409, (
                f"{route} {unknown}: {response.status_code} {response.text[:200]}"
            )
            assert "unknown" in response.text
    with served.store.review_transaction() as tx:
        assert not tx.session.scalars(select(LeaseRow).where(LeaseRow.item_id.like("x%"))).all()


@pytest.mark.slow
@pytest.mark.postgres
def test_review_serve_with_worker_processes_keeps_the_header_deadline(tmp_path: Path) -> None:
    """`mirbench review serve --workers 2`: each worker process (spawned, its settings pickled)
    answers, and cuts off a client that sends no headers."""
    if not POSTGRES_URL:
        pytest.skip("no PostgreSQL server given: set MIRBENCH_TEST_POSTGRES_URL")
    reset_postgres(POSTGRES_URL)
    Store(POSTGRES_URL).close()
    port = free_port()
    env = {**os.environ, "MIRBENCH_REVIEW__HEADER_TIMEOUT_SECONDS": "1"}
    command = [
        sys.executable,
        "-c",
        "from builder.cli import run; run()",
        "review",
        "serve",
        "--workers",
        "2",
    ]
    command += ["--port", str(port)]
    command += ["--database-url", POSTGRES_URL, "--artifacts", str(tmp_path)]
    server = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/login", timeout=2).status_code == 200
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and server.poll() is None, (
                    "the review server did not start"
                )
                time.sleep(0.2)
        for _ in range(4):  # connections spread over both workers
            with socket.create_connection(("127.0.0.1", port), timeout=10) as silent:
                assert _answer(silent).startswith(b"HTTP/1.1 408")
    finally:
        server.terminate()
        server.wait(timeout=30)
