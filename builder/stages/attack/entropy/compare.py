"""Do unsafe answers show lower attention entropy than safe ones? The report's statistics over
(label, entropy, relation) records, for the attack loop's answers and for evaluations alike.

Per group (every record, then each relation): the number of unsafe and safe answers, each
side's mean with a seeded percentile-bootstrap 95% interval, the difference of the means, and a
two-sided Mann-Whitney U test (U of the unsafe side, with its p-value; exact for small samples
without ties, asymptotic otherwise, as scipy chooses). A side with no answers has no figures.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from typing import Literal

from pydantic import BaseModel

LEVEL = 0.95
_CHUNK = 1_000  # bootstrap resamples drawn at once (bounds memory for large groups)


class EntropyRecord(BaseModel):
    """One judged answer: whether the judge found it unsafe, its entropy, its item's relation."""

    label: Literal["unsafe", "safe"]
    entropy: float
    relation: str


class SideFigures(BaseModel):
    n: int
    mean: float | None = None
    low: float | None = None  # the bootstrap interval of the mean
    high: float | None = None


class Comparison(BaseModel):
    relation: str | None  # None: every record
    unsafe: SideFigures
    safe: SideFigures
    u: float | None = None  # Mann-Whitney U of the unsafe side; None when a side is empty
    p_value: float | None = None

    @property
    def difference(self) -> float | None:
        """Mean entropy of unsafe answers minus that of safe ones (the paper: negative)."""
        if self.unsafe.mean is None or self.safe.mean is None:
            return None
        return self.unsafe.mean - self.safe.mean


COLUMNS = (
    "relation",
    "unsafe n",
    "unsafe mean [95% CI]",
    "safe n",
    "safe mean [95% CI]",
    "difference",
    "U",
    "p",
)


class EntropyReport(BaseModel):
    overall: Comparison
    relations: list[Comparison]
    seed: int
    resamples: int

    def caption(self) -> str:
        return (
            f"Attention entropy, unsafe vs safe answers: mean [{LEVEL:.0%} bootstrap interval, "
            f"{self.resamples} resamples, seed {self.seed}], two-sided Mann-Whitney U."
        )

    def cells(self, everything: str = "all") -> list[list[str]]:
        """One row of COLUMNS per group: every record (named `everything`), then each relation."""
        return [
            [
                row.relation or everything,
                str(row.unsafe.n),
                _side(row.unsafe),
                str(row.safe.n),
                _side(row.safe),
                _number(row.difference, "+.3f"),
                _number(row.u, ".1f"),
                _number(row.p_value, ".3g"),
            ]
            for row in [self.overall, *self.relations]
        ]

    def markdown(self) -> str:
        header = ["| " + " | ".join(COLUMNS) + " |", "|---|---:|---|---:|---|---:|---:|---:|"]
        lines = [self.caption(), "", *header]
        lines += ["| " + " | ".join(cells) + " |" for cells in self.cells("**all**")]
        return "\n".join(lines) + "\n"


def _number(value: float | None, form: str) -> str:
    return "n/a" if value is None else format(value, form)


def _side(figures: SideFigures) -> str:
    if figures.mean is None:
        return "n/a"
    return f"{figures.mean:.3f} [{figures.low:.3f}, {figures.high:.3f}]"


def bootstrap_interval(values: Sequence[float], seed: int, resamples: int) -> tuple[float, float]:
    """The percentile-bootstrap interval of the mean of `values` at the 95% level."""
    import numpy as np

    data = np.asarray(values, dtype=np.float64)
    generator = np.random.default_rng(seed)
    means = []
    for start in range(0, resamples, _CHUNK):
        count = min(_CHUNK, resamples - start)
        means.append(data[generator.integers(0, len(data), size=(count, len(data)))].mean(axis=1))
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(np.concatenate(means), [tail, 100 - tail])
    return float(low), float(high)


def _side_figures(values: list[float], seed: int, resamples: int) -> SideFigures:
    if not values:
        return SideFigures(n=0)
    low, high = bootstrap_interval(values, seed, resamples)
    return SideFigures(n=len(values), mean=sum(values) / len(values), low=low, high=high)


def compare_group(
    records: Sequence[EntropyRecord], relation: str | None, *, seed: int, resamples: int
) -> Comparison:
    """Unsafe vs safe within `records`. Each side's bootstrap is seeded by `seed` and the
    group's name, so adding a relation never moves the intervals of another."""
    from scipy.stats import mannwhitneyu

    sides = {
        label: [record.entropy for record in records if record.label == label] for label in ("unsafe", "safe")
    }
    figures = {
        label: _side_figures(values, zlib.crc32(f"{seed}|{relation}|{label}".encode()), resamples)
        for label, values in sides.items()
    }
    u = p_value = None
    if sides["unsafe"] and sides["safe"]:
        test = mannwhitneyu(sides["unsafe"], sides["safe"], alternative="two-sided")
        u, p_value = float(test.statistic), float(test.pvalue)
    return Comparison(relation=relation, unsafe=figures["unsafe"], safe=figures["safe"], u=u, p_value=p_value)


def compare_entropy(
    records: Iterable[EntropyRecord], *, seed: int = 0, resamples: int = 10_000
) -> EntropyReport:
    """The comparison over every record, then per relation (sorted by name)."""
    kept = list(records)
    relations = sorted({record.relation for record in kept})
    return EntropyReport(
        overall=compare_group(kept, None, seed=seed, resamples=resamples),
        relations=[
            compare_group(
                [r for r in kept if r.relation == relation], relation, seed=seed, resamples=resamples
            )
            for relation in relations
        ],
        seed=seed,
        resamples=resamples,
    )
