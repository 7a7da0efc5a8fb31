"""How the review app is served: uvicorn, with a deadline for each request's headers.

uvicorn closes a kept-alive connection that stays idle, but waits as long as it takes for a
client that opens a connection and sends its headers slowly, or never (a "slowloris": a few
hundred such connections hold every socket a process has). So each connection gets
`review.header_timeout_seconds` from when it opens, or from when the next request on it begins,
until that request's headers are complete; past it, 408 and the connection is closed.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import uvicorn
from uvicorn.protocols.http.auto import AutoHTTPProtocol
from uvicorn.supervisors import Multiprocess

from builder.config.settings import Settings

_TOO_SLOW = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


class ReviewServerConfig(uvicorn.Config):
    """uvicorn's settings plus the header deadline (pickled with them into worker processes)."""

    def __init__(self, app: Any, *, header_timeout: float, **options: Any) -> None:
        super().__init__(app, http=HeaderDeadlineProtocol, **options)
        self.header_timeout = header_timeout


class HeaderDeadlineProtocol(AutoHTTPProtocol):  # type: ignore[misc,valid-type]
    """uvicorn's HTTP protocol (httptools where installed, else h11) with the header deadline."""

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.header_timeout: float = config.header_timeout  # type: ignore[attr-defined]
        self._deadline: asyncio.TimerHandle | None = None
        self._cycle_when_armed: Any = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._deadline is None and (self.cycle is None or self.cycle.response_complete):
            self._arm()  # the first bytes of the next request on a kept-alive connection
        super().data_received(data)
        if self._deadline is not None and self.cycle is not self._cycle_when_armed:
            self._disarm()  # its headers are complete: the request is the app's now

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._cycle_when_armed = self.cycle
        self._deadline = self.loop.call_later(self.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.write(_TOO_SLOW)
            self.transport.close()


def server_config(app: Any, settings: Settings, host: str, port: int, **options: Any) -> ReviewServerConfig:
    return ReviewServerConfig(
        app,
        host=host,
        port=port,
        header_timeout=settings.review.header_timeout_seconds,
        log_level="warning",
        **options,
    )


def serve(settings: Settings, host: str, port: int, workers: int, config_file: str | None) -> None:
    """Serve the review app until stopped: in this process, or in `workers` processes that
    build the app themselves from the environment (needs PostgreSQL)."""
    if workers == 1:
        from builder.review.app import create_app

        uvicorn.Server(server_config(create_app(settings), settings, host, port)).run()
        return
    os.environ["MIRBENCH_ARTIFACTS"] = str(settings.artifacts)
    os.environ["MIRBENCH_DATABASE_URL"] = settings.resolved_database_url
    os.environ["MIRBENCH_TAXONOMY"] = str(settings.taxonomy)
    if config_file is not None:
        os.environ["MIRBENCH_CONFIG"] = config_file
    config = server_config(
        "builder.review.app:app_from_environment", settings, host, port, factory=True, workers=workers
    )
    Multiprocess(config, sockets=[config.bind_socket()]).run()
