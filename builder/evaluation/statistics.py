"""Rates with their n and a 95% percentile bootstrap interval, from a seeded generator.

Each figure draws from its own generator, seeded by the run's seed and the figure's key, so an
interval is the same whatever else a report computes and in whatever order. A rate resamples
its n outcomes with replacement (the number of successes of a resample is binomial, which is
drawn directly); a paired figure (a difference or a ratio between two targets or conditions on
the same items) resamples the items, so both sides move together. Resamples where a ratio is
undefined (its denominator 0) are left out of its interval.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import numpy as np
from pydantic import BaseModel

LEVEL = 0.95


class Rate(BaseModel):
    n: int
    k: int
    rate: float | None  # None when n is 0
    low: float | None
    high: float | None

    def text(self, percent: bool = True) -> str:
        """`12.5% [8.1, 17.6] (n 64)`, or `n/a (n 0)`."""
        if self.rate is None:
            return f"n/a (n {self.n})"
        scale, unit = (100, "%") if percent else (1, "")
        interval = "" if self.low is None else f" [{self.low * scale:.1f}, {(self.high or 0) * scale:.1f}]"
        return f"{self.rate * scale:.1f}{unit}{interval} (n {self.n})"


class Figure(BaseModel):
    """A paired figure (a difference, a ratio, a relative increase) over `n` items."""

    n: int
    value: float | None
    low: float | None
    high: float | None

    def text(self, percent: bool = True, ratio: bool = False) -> str:
        if self.value is None:
            return f"n/a (n {self.n})"
        if ratio:
            bounds = "" if self.low is None else f" [{self.low:.2f}, {self.high:.2f}]"
            return f"{self.value:.2f}x{bounds} (n {self.n})"
        scale = 100 if percent else 1
        bounds = "" if self.low is None else f" [{self.low * scale:+.1f}, {(self.high or 0) * scale:+.1f}]"
        return f"{self.value * scale:+.1f}{'%' if percent else ''}{bounds} (n {self.n})"


def generator(seed: int, key: str) -> np.random.Generator:
    digest = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    return np.random.default_rng([seed, digest])


def _bounds(values: np.ndarray) -> tuple[float | None, float | None]:
    defined = values[~np.isnan(values)]
    if defined.size == 0:
        return None, None
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(defined, [tail, 100 - tail])
    return float(low), float(high)


def rate(k: int, n: int, *, resamples: int, seed: int, key: str) -> Rate:
    """k of n, with its bootstrap interval."""
    if n == 0:
        return Rate(n=0, k=0, rate=None, low=None, high=None)
    draws = generator(seed, key).binomial(n, k / n, size=resamples) / n
    low, high = _bounds(draws.astype(float))
    return Rate(n=n, k=k, rate=k / n, low=low, high=high)


def paired(
    first: Sequence[bool],
    second: Sequence[bool],
    statistic: Callable[[np.ndarray, np.ndarray], np.ndarray],
    *,
    resamples: int,
    seed: int,
    key: str,
) -> Figure:
    """`statistic(a, b)` of two aligned outcome lists (one entry per item, both sides), with an
    interval from resampling the items. `statistic` takes 2-d arrays (resample x item) of 0/1
    and returns one value per row (NaN where undefined)."""
    a, b = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    if a.size == 0:
        return Figure(n=0, value=None, low=None, high=None)
    point = float(statistic(a[None, :], b[None, :])[0])
    picks = generator(seed, key).integers(0, a.size, size=(resamples, a.size))
    low, high = _bounds(statistic(a[picks], b[picks]))
    return Figure(n=int(a.size), value=None if np.isnan(point) else point, low=low, high=high)


def difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rate of `a` minus rate of `b`, per row."""
    return a.mean(axis=1) - b.mean(axis=1)


def ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rate of `a` over rate of `b` (NaN where `b`'s rate is 0)."""
    below = b.mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(below == 0, np.nan, a.mean(axis=1) / np.where(below == 0, 1, below))


def relative_increase(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(rate of `a` - rate of `b`) / rate of `b`: the reasoning tax of `a` over its base `b`."""
    return ratio(a, b) - 1.0
