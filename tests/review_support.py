"""Review test support: queued items with real rendered images, and the review app served by
a real uvicorn server on 127.0.0.1 (in a thread of the test process)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import uvicorn

from builder.config.settings import Settings
from builder.core.items import Item, ItemStatus, Verdict
from builder.review.app import create_app
from builder.review.serving import server_config
from builder.stages.render import render_items
from builder.stages.render.typographic import TypographicRenderer
from builder.store import Store
from tests.helpers import make_item
from tests.servers import free_port


def queue_items(
    store: Store,
    artifacts: Path,
    count: int,
    prompts: list[str] | None = None,
    first: int = 0,
    iteration: int = 1,
    size: int = 96,
) -> list[Item]:
    """`count` items of distinct pairs, rendered by the real typographic renderer (images in
    `artifacts`, render records in the store), passed by a filter and queued for review."""
    items = []
    for n in range(first, first + count):
        item = make_item(
            seed_id=f"s-{n}",
            iteration=iteration,
            prompt=prompts[n % len(prompts)]
            if prompts
            else f"Apply picture one's logic to picture two ({n}).",
            descriptions=(f"a ladder against wall {n}", f"a locked window {n}", f"a quiet street {n}"),
        )
        items.append(item)
    render_items(items, TypographicRenderer(size=size), store, artifacts)
    for item in items:
        item.verdicts.append(Verdict(name="structural", version="1", passed=True, score=1.0))
        item.status = ItemStatus.PASSED
    store.save_items(items)
    store.enqueue(items)
    return items


class ReviewServer:
    """The review app under a real uvicorn server on 127.0.0.1."""

    def __init__(self, settings: Settings) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(settings)
        config = server_config(self.app, settings, "127.0.0.1", self.port, access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ReviewServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("review server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def client(self, token: str | None = None) -> httpx.Client:
        """An HTTP client, logged in with `token` when given."""
        client = httpx.Client(base_url=self.url, timeout=30, follow_redirects=False)
        if token is not None:
            response = client.post("/login", data={"token": token})
            assert response.status_code == 303, response.text
        return client

    @staticmethod
    def csrf(client: httpx.Client) -> str:
        return client.get("/api/session").json()["csrf"]
