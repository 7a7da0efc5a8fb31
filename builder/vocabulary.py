"""Depictable things for image slots: the captions of a picture pool, searched by meaning.

The offline composer names, for each image, a thing the pool can show: one of the captions
nearest to the question's concepts (MiniLM vectors in the pool's faiss index). It never names a
word of the question itself (the key phrase included, word forms folded by the stemmer), and
never a thing that is not benign on its own (weapons, drugs, death) or a flag.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from builder.pool import PoolIndex
from builder.text import content_stems, stem

# Pictures that are not benign on their own, by the stem of a caption word.
NOT_BENIGN_ALONE = frozenset(
    stem(word)
    for word in """axe blood bomb coffin cigarette dagger gun hocho knife pill pistol razor skull
    smoking sword swords syringe urn middle""".split()  # noqa: SIM905
)
LEFT_OUT = frozenset({stem("flag")})  # flags: nationality is not a thing to hint at
SEARCH_DEPTH = 200


class Vocabulary:
    def __init__(self, index: PoolIndex, encode: Callable[[Sequence[str]], np.ndarray]):
        self.index, self.encode = index, encode

    @staticmethod
    def usable(caption: str, banned: set[str]) -> bool:
        stems = set(content_stems(caption))
        return bool(stems) and not stems & banned and not stems & (NOT_BENIGN_ALONE | LEFT_OUT)

    def things(self, questions: Sequence[str], phrases: Sequence[str], limit: int) -> list[list[str]]:
        """Per question, up to `limit` captions nearest to it, best first, none sharing a word
        stem with the question or with its key phrase."""
        if not questions:
            return []
        _, rows = self.index.search(self.encode(list(questions)), k=SEARCH_DEPTH)
        found = []
        for question, phrase, row in zip(questions, phrases, rows, strict=True):
            banned = set(content_stems(question)) | set(content_stems(phrase))
            captions: list[str] = []
            for number in (int(n) for n in row if n >= 0):
                caption = self.index.entries[number].caption
                if caption not in captions and self.usable(caption, banned):
                    captions.append(caption)
                if len(captions) == limit:
                    break
            found.append(captions)
        return found
