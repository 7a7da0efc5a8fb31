"""`review serve` while PostgreSQL restarts (`pg_ctl restart -m fast`) under 8 reviewers working
over HTTP (uvicorn on 127.0.0.1, a private cluster): requests in flight get 503 with a
Retry-After hint and never a 500; each reviewer retries after the hint; no decision is lost or
counted twice; the app recovers by itself."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from builder.config.settings import Settings
from builder.review.service import ReviewService
from builder.store import Store
from tests.private_postgres import PrivatePostgres
from tests.review_support import ReviewServer, queue_items

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
ITEMS = 80
REVIEWERS = 8


class Reviewer(threading.Thread):
    """Takes and approves items until none is left; on 503 waits Retry-After and asks again."""

    def __init__(self, server: ReviewServer, token: str) -> None:
        super().__init__()
        self.server, self.token = server, token
        self.accepted: list[str] = []
        self.statuses: Counter[int] = Counter()
        self.retry_after: set[str] = set()

    def _request(self, client: httpx.Client, method: str, path: str, **kwargs: object) -> httpx.Response:
        while True:
            response = client.request(method, path, **kwargs)  # type: ignore[arg-type]
            self.statuses[response.status_code] += 1
            if response.status_code != 503:
                return response
            self.retry_after.add(response.headers.get("retry-after", ""))
            time.sleep(min(float(response.headers.get("retry-after", "1")), 0.5))  # a test: short

    def run(self) -> None:
        client = self.server.client(self.token)
        csrf = self.server.csrf(client)
        while True:
            item_id = self._request(client, "GET", "/api/next").json()["item_id"]
            if item_id is None:
                return
            body = {"item_id": item_id, "decision": "approve"}
            decided = self._request(client, "POST", "/api/decide", json=body, headers={"x-csrf-token": csrf})
            if decided.status_code == 200:
                self.accepted.append(item_id)


def test_a_restart_under_eight_reviewers_loses_and_doubles_nothing(
    private_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    url = private_postgres.create_database("restart_review")
    settings = Settings(artifacts=tmp_path / "artifacts", database_url=url)
    store = Store(url)
    items = queue_items(store, settings.artifacts, ITEMS, size=32)
    reviews = ReviewService(store, settings.review)
    tokens = [reviews.add_reviewer(f"r{n}") for n in range(REVIEWERS)]

    with ReviewServer(settings) as server:
        reviewers = [Reviewer(server, token) for token in tokens]
        for reviewer in reviewers:
            reviewer.start()
        while sum(len(r.accepted) for r in reviewers) < ITEMS // 4:
            time.sleep(0.01)
        private_postgres.restart()
        for reviewer in reviewers:
            reviewer.join(timeout=180)
        assert not any(reviewer.is_alive() for reviewer in reviewers)
        after = server.client(tokens[0]).get("/api/next")  # recovered by itself
        assert after.status_code == 200 and after.json() == {"item_id": None}

    statuses = sum((r.statuses for r in reviewers), Counter())
    assert statuses[503] > 0, statuses  # the restart met requests in flight
    assert set(statuses) <= {200, 409, 503}, statuses  # never a 500
    assert set().union(*(r.retry_after for r in reviewers)) == {"2"}
    accepted = Counter(item_id for r in reviewers for item_id in r.accepted)
    stored = Counter(row.item_id for row in store.decision_log() if not row.superseded)
    lost = sum(1 for item in items if stored[item.id] == 0)
    doubled = sum(count - 1 for count in stored.values() if count > 1)
    assert (lost, doubled) == (0, 0)
    assert set(accepted) <= set(stored) and len(store.approved_items()) == ITEMS
    store.close()
