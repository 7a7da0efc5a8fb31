"""The user's cache folder for mirbench: what any build on this machine may reuse (the built-in
picture pool's index, Prefect's migrated database)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """`MIRBENCH_CACHE_DIR`, else XDG's cache folder, else ~/.cache; with mirbench/ below them."""
    given = os.environ.get("MIRBENCH_CACHE_DIR")
    if given:
        return Path(given)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mirbench"
