"""A private Prefect API server for one command, as a child process that dies with it.

Without PREFECT_API_URL, Prefect starts a temporary server of its own; if the command is
killed (the OOM killer, `kill -9`), that server lives on as an orphan. This starts the same
server (Prefect's app under uvicorn, UI off) with Linux's parent-death signal set, so it gets
SIGTERM whenever this process ends, however it ends, and stops it cleanly on a normal exit.

A server in a new PREFECT_HOME first migrates a new SQLite database: 10 s of its 15 s start
on 2 cores. The first such database on a machine is copied, right after its migration and
before anything runs on it, to the user's cache (one per Prefect version); a later new home
starts from that copy, and Prefect's migration on start then finds nothing to do.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.metadata
import importlib.util
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from contextlib import closing
from pathlib import Path

from builder.config.user_cache import cache_dir

_PR_SET_PDEATHSIG = 1


class ServerDidNotStart(RuntimeError):
    pass


def _die_with_parent() -> None:
    """Runs in the child before it starts: ask the kernel for SIGTERM when the parent dies."""
    # Not Linux: no such call, and the child outlives a killed parent.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrivatePrefectServer:
    def __init__(self, home: Path, startup_timeout: float = 120.0):
        self.home, self.startup_timeout = home, startup_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.launched = 0.0
        self._new_database: Path | None = None  # a database this start migrates from nothing

    def start(self) -> str:
        """Start the server, wait until it answers, and return its API URL."""
        self.launch()
        return self.wait_ready()

    def launch(self) -> None:
        """Start the server without waiting for it (`wait_ready` waits): the caller can prepare
        meanwhile. Prefect itself is not imported here: it reads its settings once, at import,
        and PREFECT_API_URL is not set yet."""
        spec = importlib.util.find_spec("prefect")
        assert spec is not None and spec.origin is not None
        self._new_database = self._start_from_template()
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}/api"
        env = {
            **os.environ,
            "PREFECT_HOME": str(self.home),
            "PREFECT_UI_ENABLED": "0",
            "PREFECT__SERVER_EPHEMERAL": "1",
            "PREFECT__SERVER_FINAL": "1",
        }
        env.pop("PREFECT_API_URL", None)
        command = [sys.executable, "-m", "uvicorn", "--app-dir", str(Path(spec.origin).parent.parent)]
        command += ["--factory", "prefect.server.api.server:create_app", "--host", "127.0.0.1"]
        command += ["--port", str(port), "--log-level", "error", "--lifespan", "on"]
        self.process = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        self.launched = time.monotonic()

    def wait_ready(self) -> str:
        """Wait until the launched server answers (at most `startup_timeout` from its launch);
        its API URL."""
        assert self.process is not None, "launch() first"
        deadline = self.launched + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerDidNotStart(f"Prefect's server exited at start (code {self.process.returncode})")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        self._keep_template()
                        return self.url
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise ServerDidNotStart(f"Prefect's server did not answer within {self.startup_timeout:g}s")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _database(self) -> Path | None:
        """The server's SQLite file, when it is Prefect's default one in the home."""
        named = ("PREFECT_API_DATABASE_CONNECTION_URL", "PREFECT_SERVER_DATABASE_CONNECTION_URL")
        return None if any(os.environ.get(name) for name in named) else self.home / "prefect.db"

    def _start_from_template(self) -> Path | None:
        """Copy the cached, migrated database into a home that has none; the path of a database
        this start will migrate from nothing (no template yet), else None."""
        database = self._database()
        if database is None or database.exists():
            return None
        template = migrated_template()
        part = database.with_name(f"{database.name}.{os.getpid()}.part")
        try:
            if template.is_file():
                database.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(template, part)
                os.replace(part, database)  # a copy cut short never becomes the home's database
                return None
        except OSError:  # a cache that cannot be read only costs the migration
            part.unlink(missing_ok=True)
        return database

    def _keep_template(self) -> None:
        """Copy the database this start just migrated, before anything ran on it, to the cache."""
        if self._new_database is None:
            return
        database, self._new_database = self._new_database, None
        template = migrated_template()
        part = template.with_name(f"{template.name}.{os.getpid()}.part")
        try:
            template.parent.mkdir(parents=True, exist_ok=True)
            # SQLite's backup API: a consistent copy while the server has the database open
            with closing(sqlite3.connect(database)) as source, closing(sqlite3.connect(part)) as copy:
                source.backup(copy)
            os.replace(part, template)
        except (OSError, sqlite3.Error):  # no template: the next new home migrates again
            part.unlink(missing_ok=True)


def migrated_template() -> Path:
    """Where the cache keeps the migrated database of this Prefect version."""
    return cache_dir() / f"prefect-{importlib.metadata.version('prefect')}.db"
