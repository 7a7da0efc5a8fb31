"""A release's licence: the one set (`release.license`), else the licences of what it contains.

A release holds two kinds of third-party content: its pictures (each slot records the licence
of a retrieved picture: the built-in pool's are CC-BY-4.0) and its seed questions (each item's
seed records its source's licence: the bundled set's are MIT). Typographic cards are drawn by
mirbench from the item's own words and carry no third-party licence. A picture with no licence
(a generated one, a pool without a licence column) or a seed with none leaves the licence
unknown, unless `release.license` is set: the release command warns, and publishing refuses.

The card's metadata names Hub licence ids (lowercase SPDX, `cc-by-4.0`, `mit`); several when the
parts differ, each part's licence spelled out in the card's text.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel

from builder.core.items import Item

# Licence ids the Hub's metadata accepts (https://hf.co/docs/hub/repositories-licenses), the
# ones a dataset's parts are likely to carry; any other licence is written as `other`.
HUB_LICENSES = frozenset(
    {
        "apache-2.0",
        "mit",
        "bsd-2-clause",
        "bsd-3-clause",
        "isc",
        "unlicense",
        "cc0-1.0",
        "pddl",
        "odc-by",
        "odbl",
        "cc-by-2.0",
        "cc-by-3.0",
        "cc-by-4.0",
        "cc-by-sa-3.0",
        "cc-by-sa-4.0",
        "cc-by-nc-2.0",
        "cc-by-nc-3.0",
        "cc-by-nc-4.0",
        "cc-by-nd-4.0",
        "cc-by-nc-sa-3.0",
        "cc-by-nc-sa-4.0",
        "cc-by-nc-nd-4.0",
        "cdla-permissive-2.0",
        "gpl-3.0",
        "lgpl-3.0",
        "agpl-3.0",
        "mpl-2.0",
        "ofl-1.1",
        "openrail",
    }
)
UNSPECIFIED = frozenset({"", "unknown", "unspecified", "none"})
DRAWN = "drawn by mirbench (typographic card)"


def hub_id(license: str) -> str:
    """The Hub's id for a licence as sources spell it (`CC-BY-4.0` -> `cc-by-4.0`), else `other`."""
    spelled = license.strip().lower().replace(" ", "-")
    return spelled if spelled in HUB_LICENSES else "other"


class ReleaseLicense(BaseModel):
    """What a release says of its licence, and how it knows."""

    source: Literal["set", "derived", "unknown"]
    ids: list[str]  # Hub ids for the card's metadata (`unknown` when it cannot tell)
    pictures: dict[str, int] = {}  # the pictures' licences (and DRAWN) -> images
    seeds: dict[str, int] = {}  # the seeds' licences -> items
    unlicensed_images: int = 0
    unlicensed_seeds: int = 0
    warnings: list[str] = []

    @property
    def metadata(self) -> str | list[str]:
        return self.ids[0] if len(self.ids) == 1 else self.ids

    def line(self) -> str:
        """One sentence for the command's output and the card."""
        named = ", ".join(self.ids)
        if self.source == "set":
            return f"licence {named} (set by release.license)"
        if self.source == "derived":
            return f"licence {named} (derived from its pictures and seeds; set release.license to choose)"
        return "licence unknown (set release.license: publishing refuses a release without one)"

    def parts(self) -> list[str]:
        """The licence of each kind of content, for the card's text."""
        lines = []
        if self.pictures:
            counted = ", ".join(f"{name} ({n} images)" for name, n in self.pictures.items())
            lines.append(f"pictures: {counted}")
        if self.seeds:
            lines.append(
                "seed questions: " + ", ".join(f"{name} ({n} items)" for name, n in self.seeds.items())
            )
        return lines


def release_license(items: Iterable[Item], chosen: str | None) -> ReleaseLicense:
    """The licence of a release of `items`; `chosen` is `release.license` (None: derive it)."""
    pictures: Counter[str] = Counter()
    seeds: Counter[str] = Counter()
    unlicensed_images = unlicensed_seeds = 0
    generated: Counter[str] = Counter()
    for item in items:
        origin = item.provenance.seed
        if origin is None or origin.license.strip().lower() in UNSPECIFIED:
            unlicensed_seeds += 1
        else:
            seeds[origin.license] += 1
        for slot in item.slots:
            if slot.license and slot.license.strip().lower() not in UNSPECIFIED:
                pictures[slot.license] += 1
            elif slot.drawn_text is not None:
                pictures[DRAWN] += 1
            else:
                unlicensed_images += 1
                generated[item.provenance.renderer or "unrecorded renderer"] += 1
    derived = sorted({hub_id(name) for name in [*pictures, *seeds] if name != DRAWN})
    figures = {
        "pictures": dict(pictures.most_common()),
        "seeds": dict(seeds.most_common()),
        "unlicensed_images": unlicensed_images,
        "unlicensed_seeds": unlicensed_seeds,
    }
    gaps = _gaps(unlicensed_images, unlicensed_seeds, generated)
    if chosen:
        differ = [name for name in derived if name != chosen.strip().lower()]
        contents = ", ".join(differ)
        warnings = [f"release.license is {chosen}; its contents are {contents}: make sure it honours them"]
        return ReleaseLicense(source="set", ids=[chosen], warnings=warnings if differ else [], **figures)
    if gaps or not derived:
        reasons = "; ".join(gaps) or "no picture or seed names a licence"
        warning = (
            f"the release's licence cannot be derived ({reasons}): its card says `license: unknown` and "
            "publishing refuses it; set release.license (e.g. cc-by-nc-4.0) and release a new version"
        )
        return ReleaseLicense(source="unknown", ids=["unknown"], warnings=[warning], **figures)
    return ReleaseLicense(source="derived", ids=derived, **figures)


def _gaps(images: int, seeds: int, generated: Counter[str]) -> list[str]:
    gaps = []
    if images:
        renderers = ", ".join(f"`{name}`" for name in generated)
        gaps.append(f"{images} image(s) have no licence (renderer {renderers})")
    if seeds:
        gaps.append(f"{seeds} item(s) have a seed with no licence")
    return gaps
