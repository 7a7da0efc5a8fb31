"""Figures on the pictures of a set of items: what a reader of a build or a release is told.

Distinct pictures used, the most reused picture, the mean caption-match score of retrieved
pictures, and the share of slot keywords copied from the question (a keyword is copied when one
of its words, word forms folded, is a content word of the question). The pool's licence and
attribution come with them, and the reason when the build fell back to typographic cards.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from pydantic import BaseModel

from builder.core.items import Item
from builder.core.words import content_stems
from builder.stages.render.pool import twemoji


class PictureFigures(BaseModel):
    slots: int = 0
    distinct_pictures: int = 0
    most_reused: str | None = None  # the picture's source (or content hash)
    most_reused_items: int = 0
    mean_match_score: float | None = None  # None: no retrieved picture
    keywords: int = 0
    keywords_from_question: int = 0
    licenses: dict[str, int] = {}  # licence -> slots
    attribution: list[str] = []
    fallback: str | None = None  # why the images are typographic cards instead of pictures

    @property
    def share_from_question(self) -> float:
        return self.keywords_from_question / self.keywords if self.keywords else 0.0

    def lines(self) -> list[str]:
        score = f"{self.mean_match_score:.2f}" if self.mean_match_score is not None else "n/a (not retrieved)"
        lines = [
            f"distinct pictures used: {self.distinct_pictures} (over {self.slots} images)",
            f"most reused picture: {self.most_reused or 'none'} ({self.most_reused_items} items)",
            f"mean caption-match score: {score}",
            f"keywords copied from the question: {self.keywords_from_question} of {self.keywords} "
            f"({self.share_from_question:.0%})",
        ]
        if self.fallback:
            lines.append(f"images are typographic cards, not pictures: {self.fallback}")
        return lines


def _copied(keyword: str, question: set[str]) -> bool:
    return bool(set(content_stems(keyword)) & question)


def picture_figures(items: Sequence[Item], fallback: str | None = None) -> PictureFigures:
    pictures: Counter[str] = Counter()
    names: dict[str, str] = {}
    scores: list[float] = []
    licenses: Counter[str] = Counter()
    keywords = copied = 0
    for item in items:
        question = set(content_stems(item.original_question))
        for picture in {slot.sha256 or "" for slot in item.slots}:
            pictures[picture] += 1
        for slot in item.slots:
            names.setdefault(slot.sha256 or "", slot.source or (slot.sha256 or "")[:12])
            if slot.match_score is not None:
                scores.append(slot.match_score)
            if slot.license:
                licenses[slot.license] += 1
            keywords += len(slot.keywords)
            copied += sum(_copied(keyword, question) for keyword in slot.keywords)
    top = pictures.most_common(1)
    builtin = any((slot.source or "").startswith(twemoji.NAME) for item in items for slot in item.slots)
    return PictureFigures(
        slots=sum(len(item.slots) for item in items),
        distinct_pictures=len(pictures),
        most_reused=names[top[0][0]] if top else None,
        most_reused_items=top[0][1] if top else 0,
        mean_match_score=round(sum(scores) / len(scores), 4) if scores else None,
        keywords=keywords,
        keywords_from_question=copied,
        licenses=dict(licenses.most_common()),
        attribution=[twemoji.ATTRIBUTION] if builtin else [],
        fallback=fallback,
    )
