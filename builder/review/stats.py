"""Numbers about review: who did how much how fast, how well reviewers agree, and how well
each automatic check predicts the people's decisions."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass
from itertools import combinations, pairwise

from builder.review.policy import DecisionKind
from builder.review.service import REVIEW_VERDICT
from builder.store import DecisionRow, ReviewState, Store

_BREAK_SECONDS = 30 * 60  # a longer gap between two decisions is a break, not review time
_LABELS = {"approve": 1, "reject": 0}


@dataclass(frozen=True)
class ReviewerStats:
    name: str
    votes: int
    approved: int
    rejected: int
    median_seconds: float | None  # between consecutive decisions, breaks left out


@dataclass(frozen=True)
class PairAgreement:
    first: str
    second: str
    items: int
    kappa: float | None  # None: undefined (fewer than 2 shared items, or no variation)


@dataclass(frozen=True)
class Calibration:
    verdict: str
    passed_approved: int = 0
    passed_rejected: int = 0
    failed_approved: int = 0
    failed_rejected: int = 0


@dataclass(frozen=True)
class StatsReport:
    reviewers: list[ReviewerStats]
    pairs: list[PairAgreement]
    alpha: float | None
    calibration: list[Calibration]


def review_stats(store: Store) -> StatsReport:
    log = store.decision_log()
    votes = _active_votes(log)
    return StatsReport(_reviewers(log, votes), _pairs(votes), _alpha(votes), _calibration(store))


def _active_votes(log: list[DecisionRow]) -> dict[str, dict[str, str]]:
    """reviewer -> item id -> their standing vote."""
    votes: dict[str, dict[str, str]] = defaultdict(dict)
    for row in log:
        if row.kind == DecisionKind.VOTE and not row.superseded:
            votes[row.reviewer][row.item_id] = row.decision
    return votes


def _reviewers(log: list[DecisionRow], votes: dict[str, dict[str, str]]) -> list[ReviewerStats]:
    times: dict[str, list[float]] = defaultdict(list)
    for row in log:
        times[row.reviewer].append(row.at.timestamp())
    result = []
    for name in sorted(set(votes) | set(times)):
        stamps = sorted(times[name])
        gaps = [b - a for a, b in pairwise(stamps) if b - a <= _BREAK_SECONDS]
        cast = list(votes.get(name, {}).values())
        result.append(
            ReviewerStats(
                name,
                len(cast),
                cast.count("approve"),
                cast.count("reject"),
                statistics.median(gaps) if gaps else None,
            )
        )
    return result


def _pairs(votes: dict[str, dict[str, str]]) -> list[PairAgreement]:
    from sklearn.metrics import cohen_kappa_score

    result = []
    for first, second in combinations(sorted(votes), 2):
        shared = sorted(set(votes[first]) & set(votes[second]))
        if not shared:
            continue
        kappa: float | None = None
        a = [_LABELS[votes[first][item]] for item in shared]
        b = [_LABELS[votes[second][item]] for item in shared]
        if len(shared) >= 2 and len(set(a) | set(b)) > 1:
            value = float(cohen_kappa_score(a, b, labels=[0, 1]))
            kappa = None if math.isnan(value) else value
        result.append(PairAgreement(first, second, len(shared), kappa))
    return result


def _alpha(votes: dict[str, dict[str, str]]) -> float | None:
    """Krippendorff's alpha (nominal) over every item that at least two people voted on."""
    import krippendorff
    import numpy as np

    per_item: dict[str, int] = defaultdict(int)
    for cast in votes.values():
        for item in cast:
            per_item[item] += 1
    items = sorted(item for item, count in per_item.items() if count >= 2)
    if not items:
        return None
    reviewers = sorted(votes)
    data = np.full((len(reviewers), len(items)), np.nan)
    for row, name in enumerate(reviewers):
        for column, item in enumerate(items):
            if item in votes[name]:
                data[row, column] = _LABELS[votes[name][item]]
    if len(np.unique(data[~np.isnan(data)])) < 2:
        return None  # one label only: no expected disagreement, alpha is undefined
    value = float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))
    return None if math.isnan(value) else value


def _calibration(store: Store) -> list[Calibration]:
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for state in (ReviewState.APPROVED, ReviewState.REJECTED):
        human = "approved" if state is ReviewState.APPROVED else "rejected"
        for entry in store.reviews(state):
            for verdict in entry.item.verdicts:
                if verdict.name != REVIEW_VERDICT and not verdict.skipped:
                    counts[verdict.name][f"{'passed' if verdict.passed else 'failed'}_{human}"] += 1
    return [Calibration(name, **cells) for name, cells in sorted(counts.items())]
