"""Depictable things for image slots: the captions of a picture pool, searched by meaning.

The offline composer names, for each image, a thing the pool can show: one of the captions
nearest to the question's concepts (MiniLM vectors in the pool's faiss index). It never names a
word of the question itself (the key phrase included, word forms folded by the stemmer), and
never a thing that is not benign on its own (weapons, drugs, death) or a flag.

Captions name pictures, and pools hold pictures that look alike under different captions (an
emoji's gendered or newer variants, medals of three places): two captions whose pictures'
perceptual hashes are within dedup's `picture_max_distance` are one picture here. A question
gets things that are different pictures, and `picture` tells a plan which uses of a picture
add up (dedup would reject an item showing one picture twice, or a picture too often).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from builder.core.words import content_stems, stem
from builder.stages.dedup.hashindex import pairs_within
from builder.stages.render.pool import PoolIndex

# Pictures that are not benign on their own, by the stem of a caption word.
NOT_BENIGN_ALONE = frozenset(
    stem(word)
    for word in """axe blood bomb coffin cigarette dagger gun hocho knife pill pistol razor skull
    smoking sword swords syringe urn middle""".split()  # noqa: SIM905
)
LEFT_OUT = frozenset({stem("flag")})  # flags: nationality is not a thing to hint at
SEARCH_DEPTH = 200


class Vocabulary:
    def __init__(
        self,
        index: PoolIndex,
        encode: Callable[[Sequence[str]], np.ndarray],
        same_picture_bits: int = 0,
    ):
        self.index, self.encode = index, encode
        hashes = index.phashes
        self._groups = (
            picture_groups(hashes, same_picture_bits) if hashes is not None else np.arange(len(index.entries))
        )
        self._entry_of = {}
        for number, entry in enumerate(index.entries):
            self._entry_of.setdefault(entry.caption, number)

    def picture(self, caption: str) -> int:
        """The picture a caption names: captions of pictures that look alike give the same number."""
        return int(self._groups[self._entry_of[caption]])

    @staticmethod
    def usable(caption: str, banned: set[str]) -> bool:
        stems = set(content_stems(caption))
        return bool(stems) and not stems & banned and not stems & (NOT_BENIGN_ALONE | LEFT_OUT)

    def things(
        self,
        questions: Sequence[str],
        phrases: Sequence[str],
        limit: int,
        keep: Sequence[Callable[[str], bool]] | None = None,
    ) -> list[list[str]]:
        """Per question, up to `limit` captions nearest to it, best first, none sharing a word
        stem with the question or with its key phrase; `keep`, per question, says which other
        captions it may show (the protected-group rule)."""
        if not questions:
            return []
        _, rows = self.index.search(self.encode(list(questions)), k=SEARCH_DEPTH)
        found = []
        keeps = keep or [lambda _caption: True] * len(questions)
        for question, phrase, row, kept in zip(questions, phrases, rows, keeps, strict=True):
            banned = set(content_stems(question)) | set(content_stems(phrase))
            captions: list[str] = []
            pictures: set[int] = set()
            for number in (int(n) for n in row if n >= 0):
                caption = self.index.entries[number].caption
                picture = self.picture(caption)
                if picture not in pictures and self.usable(caption, banned) and kept(caption):
                    captions.append(caption)
                    pictures.add(picture)
                if len(captions) == limit:
                    break
            found.append(captions)
        return found


def picture_groups(hashes: np.ndarray, bits: int) -> np.ndarray:
    """Per picture, the first picture (by position) within `bits` of its perceptual hash, found
    greedily: each picture not yet grouped names the group of every later one near it. The
    pairs come from the multi-index search dedup uses, so a large pool is no quadratic scan."""
    groups = np.arange(len(hashes))
    if len(hashes) < 2:
        return groups
    for first, later in pairs_within(hashes, bits):  # sorted by `first`, then `later`
        if groups[first] == first and groups[later] == later:
            groups[later] = first
    return groups
