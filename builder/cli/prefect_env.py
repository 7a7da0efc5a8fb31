"""Prefect for one command: its settings and, unless PREFECT_API_URL names a server, a private
server that lives as long as the command."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from builder.cli.core import user_errors
from builder.config.settings import Settings
from builder.core.errors import InputError


@contextmanager
def prefect_session(
    settings: Settings, verbose: bool, while_starting: Callable[[], object] | None = None
) -> Iterator[None]:
    """Prefect for one command: its settings (read at import, so set before the flows are
    imported) and, unless PREFECT_API_URL names a server, a private server that dies with this
    process; `while_starting` runs while that server starts (it takes seconds). Prefect's own
    logs (and its tracebacks) show only with --verbose."""
    settings.artifacts.mkdir(parents=True, exist_ok=True)
    home = (settings.artifacts / ".prefect").resolve()
    os.environ.setdefault("PREFECT_HOME", str(home))
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO" if verbose else "CRITICAL")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if os.environ.get("PREFECT_API_URL"):
        if while_starting is not None:
            while_starting()
        yield
        return
    from builder.run.prefect_server import PrivatePrefectServer, ServerDidNotStart

    server = PrivatePrefectServer(Path(os.environ["PREFECT_HOME"]))
    with user_errors():
        server.launch()
        # Its address is known from the launch: Prefect, imported meanwhile, reads it then.
        os.environ["PREFECT_API_URL"] = server.url
        try:
            if while_starting is not None:
                while_starting()
            server.wait_ready()
        except ServerDidNotStart as exc:  # wait_ready stopped it
            os.environ.pop("PREFECT_API_URL", None)
            raise InputError(f"{exc} (PREFECT_HOME {os.environ['PREFECT_HOME']})") from None
        except BaseException:
            os.environ.pop("PREFECT_API_URL", None)
            server.stop()
            raise
    try:
        yield
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        server.stop()
