"""A private PostgreSQL 15 cluster for the fault tests: its own data folder and port on
127.0.0.1, so that a test may restart or stop it without touching the shared server other
tests (and other people) use."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

BIN = Path("/usr/lib/postgresql/15/bin")
OWNER = "postgres"


def missing_reason() -> str | None:
    """Why no private cluster can run here, or None."""
    if not (BIN / "initdb").is_file():
        return f"PostgreSQL 15 binaries not found in {BIN}"
    try:
        pwd.getpwnam(OWNER)
    except KeyError:
        return f"no '{OWNER}' user to own a private cluster"
    if os.geteuid() != 0:
        return "a private cluster is started as user postgres, which needs root"
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrivatePostgres:
    """initdb into a temporary folder, then start/stop/restart with pg_ctl as user postgres."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="mirbench-pg-"))
        self.data = self.folder / "data"
        self.port = _free_port()
        self.url = f"postgresql+psycopg://{OWNER}@127.0.0.1:{self.port}/mirbench"
        shutil.chown(self.folder, OWNER)
        self._as_owner(BIN / "initdb", "-D", self.data, "-A", "trust", "-U", OWNER, "--no-sync")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.folder}'\nfsync = off\nmax_connections = 200\n"
            )

    def _as_owner(self, *command: object, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["runuser", "-u", OWNER, "--", *map(str, command)],
            check=check,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def _pg_ctl(self, action: str, *extra: str) -> None:
        log = self.folder / "server.log"
        self._as_owner(BIN / "pg_ctl", action, "-D", self.data, "-l", log, "-w", "-t", "60", *extra)

    def start(self) -> None:
        self._pg_ctl("start")

    def stop(self) -> None:
        self._pg_ctl("stop", "-m", "fast")

    def restart(self) -> float:
        """`pg_ctl restart -m fast`: every session is cut; returns the seconds it took."""
        started = time.monotonic()
        self._pg_ctl("restart", "-m", "fast")
        return time.monotonic() - started

    def create_database(self, name: str) -> str:
        """A fresh database `name` (dropped first if there); returns its URL."""
        psql = [BIN / "psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", OWNER, "-d", "postgres", "-c"]
        self._as_owner(*psql, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        self._as_owner(*psql, f"CREATE DATABASE {name}")
        return f"postgresql+psycopg://{OWNER}@127.0.0.1:{self.port}/{name}"

    def remove(self) -> None:
        self._as_owner(BIN / "pg_ctl", "stop", "-D", self.data, "-m", "immediate", check=False)
        shutil.rmtree(self.folder, ignore_errors=True)
