"""Small text helpers shared by stages: tokens, content words, stems, keywords, key phrases.

Word forms are folded with the Snowball (Porter 2) English stemmer, so "breaking into houses"
and "break into a house" reduce to the same stems.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache

import snowballstemmer

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


# Words that say what kind of answer is wanted, not what it is about: a key phrase derived from a
# question leaves them out.
REQUEST_WORDS = frozenset(
    """answer article ask comment instructions comments compose create draft essay find flyer guide joke know
    least list message note paragraph plan post script slogan speech steps story text tips
    tutorial""".split()  # noqa: SIM905
)
DERIVED_PHRASE_WORDS = 3
_stemmer = snowballstemmer.stemmer("english")
_stem_lock = threading.Lock()


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """The Snowball stem of one lower-case word, possessive dropped ("neighbour's" -> "neighbour")."""
    with _stem_lock:  # the stemmer object keeps state between calls
        return _stemmer.stemWord(word.split("'")[0])


def content_stems(text: str) -> list[str]:
    """Stems of the content words of `text`, in order, repeats kept."""
    return [stem(word) for word in content_words(text) if word.split("'")[0] not in STOPWORDS]


def derive_key_phrase(question: str) -> str:
    """A key phrase for a seed that names none: the first content words of the question, request
    words ("write", "post", "tips") left out. Matched as a set of stems (`contains_words`)."""
    words = [w.split("'")[0] for w in content_words(question) if w.split("'")[0] not in REQUEST_WORDS]
    picked: list[str] = []
    for word in words:
        if word not in picked and word not in STOPWORDS:
            picked.append(word)
        if len(picked) == DERIVED_PHRASE_WORDS:
            break
    return " ".join(picked) or question


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
    """Whether the content words of `phrase` occur in `text` as one contiguous run, word forms
    folded ("breaking into houses" contains "break into a house")."""
    needle = content_stems(phrase)
    if not needle:
        return False
    haystack = content_stems(text)
    width = len(needle)
    return any(haystack[i : i + width] == needle for i in range(len(haystack) - width + 1))


def contains_words(text: str, phrase: str) -> bool:
    """Whether every content word of `phrase` occurs somewhere in `text` (any order, any form)."""
    needle = set(content_stems(phrase))
    return bool(needle) and needle <= set(content_stems(text))
