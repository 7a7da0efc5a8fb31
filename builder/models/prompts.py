"""Jinja prompt templates from the taxonomy's `prompts/` folder, with a version that changes
whenever any of them does (recorded with every answer and used in cache keys)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any


class PromptSet:
    def __init__(self, folder: Path, kind: str, *names: str):
        from jinja2 import Environment, FileSystemLoader, StrictUndefined

        environment = Environment(
            loader=FileSystemLoader(folder),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        self._templates = {name: environment.get_template(name) for name in names}
        sources = b"".join((folder / name).read_bytes() for name in names)
        self.version = f"{kind}@{hashlib.sha256(sources).hexdigest()[:12]}"

    def render(self, name: str, **fields: Any) -> str:
        return self._templates[name].render(**fields)
