"""Small, dependency-free text helpers shared by stages: tokens, content words, keywords."""

from __future__ import annotations

import re

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")

# Function words and question scaffolding: they carry no topic, so they never become keywords
# and never count when comparing a prompt with a seed's key phrase.
STOPWORDS = frozenset(
    """a about after all also an and any are as at be been before being but by can could
    describe did do does doing done each explain for from get give has have how i if in into
    is it its itself just make me more most my myself no not of on one or other our out over
    own people person please provide s same should so some someone something such suggest t
    than that the their them themselves then there these they this those through to too
    under until up very was way ways we were what when where which while who whom why will
    with without would write you your""".split()  # noqa: SIM905
)


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens; apostrophes stay inside words ("neighbour's")."""
    return _TOKEN.findall(text.lower().replace("\u2019", "'"))


def content_words(text: str) -> list[str]:
    """Tokens that are not stopwords, in order, repeats kept."""
    return [token for token in tokens(text) if token not in STOPWORDS and len(token) > 1]


def keywords(text: str, limit: int = 4) -> list[str]:
    """The first `limit` distinct content words, in order of appearance."""
    seen: list[str] = []
    for word in content_words(text):
        stem = word.split("'")[0]
        if stem not in seen:
            seen.append(stem)
        if len(seen) == limit:
            break
    return seen


def contains_phrase(text: str, phrase: str) -> bool:
    """Whether the content words of `phrase` occur in `text` as one contiguous run."""
    needle = content_words(phrase)
    if not needle:
        return False
    haystack = content_words(text)
    width = len(needle)
    return any(haystack[i : i + width] == needle for i in range(len(haystack) - width + 1))
