"""Agreement of a judge with people on one binary question (is the answer unsafe? a refusal?).

Conventions, as in scikit-learn: precision, recall and F1 are 0 when their denominator is 0.
Cohen's kappa is undefined (None) when chance agreement is 1, i.e. when the judge and the people
each used one and the same class throughout. Intervals are percentile bootstrap intervals over
the labelled answers, from a seeded generator, so a rerun gives the same figures.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel

RESAMPLES = 1000
SEED = 0
LEVEL = 0.95
METRICS = ("accuracy", "precision", "recall", "f1", "kappa")


class Confusion(BaseModel):
    """Counts of (judge, people) pairs: tp both positive, fp judge only, fn people only."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.fn + self.tn


class Interval(BaseModel):
    low: float | None
    high: float | None


class Figures(BaseModel):
    n: int
    confusion: Confusion
    accuracy: float
    precision: float
    recall: float
    f1: float
    kappa: float | None
    intervals: dict[str, Interval]  # metric name -> 95% bootstrap interval


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    safe = np.where(denominator == 0, 1, denominator)
    return np.where(denominator == 0, 0.0, numerator / safe)


def _scores(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, tn: np.ndarray) -> dict[str, np.ndarray]:
    """Every metric for arrays of confusion counts (one entry per resample)."""
    n = tp + fp + fn + tn
    observed = (tp + tn) / n
    chance = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / (n * n)
    undefined = np.isclose(chance, 1.0)
    kappa = np.where(undefined, np.nan, (observed - chance) / np.where(undefined, 0.5, 1 - chance))
    return {
        "accuracy": observed,
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "kappa": kappa,
    }


def confusion(predicted: Sequence[bool], truth: Sequence[bool]) -> Confusion:
    pairs = list(zip(predicted, truth, strict=True))
    return Confusion(
        tp=sum(p and t for p, t in pairs),
        fp=sum(p and not t for p, t in pairs),
        fn=sum(t and not p for p, t in pairs),
        tn=sum(not p and not t for p, t in pairs),
    )


def figures(
    predicted: Sequence[bool], truth: Sequence[bool], *, resamples: int = RESAMPLES, seed: int = SEED
) -> Figures:
    """The judge's figures against the people's labels (`True`: the positive class)."""
    if not predicted:
        raise ValueError("no judged answers to compute figures on")
    counts = confusion(predicted, truth)
    point = _scores(
        *(np.array([value], dtype=float) for value in (counts.tp, counts.fp, counts.fn, counts.tn))
    )
    return Figures(
        n=counts.n,
        confusion=counts,
        **{name: _value(values[0]) for name, values in point.items()},  # type: ignore[arg-type]
        intervals=bootstrap(predicted, truth, resamples=resamples, seed=seed),
    )


def bootstrap(
    predicted: Sequence[bool], truth: Sequence[bool], *, resamples: int = RESAMPLES, seed: int = SEED
) -> dict[str, Interval]:
    """Percentile bootstrap intervals (95%) of every metric; resamples where a metric is
    undefined are left out of its interval."""
    judge, people = np.asarray(predicted, dtype=bool), np.asarray(truth, dtype=bool)
    picks = np.random.default_rng(seed).integers(0, len(judge), size=(resamples, len(judge)))
    j, p = judge[picks], people[picks]
    scores = _scores(
        (j & p).sum(1).astype(float),
        (j & ~p).sum(1).astype(float),
        (~j & p).sum(1).astype(float),
        (~j & ~p).sum(1).astype(float),
    )
    tail = (1 - LEVEL) / 2 * 100
    intervals = {}
    for name, values in scores.items():
        defined = values[~np.isnan(values)]
        if defined.size == 0:
            intervals[name] = Interval(low=None, high=None)
            continue
        low, high = np.percentile(defined, [tail, 100 - tail])
        intervals[name] = Interval(low=float(low), high=float(high))
    return intervals


def _value(value: float) -> float | None:
    return None if np.isnan(value) else float(value)
