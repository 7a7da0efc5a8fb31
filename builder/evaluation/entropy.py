"""Attention entropy of unsafe against safe answers in an evaluation (MIR-SafetyBench's white-box
finding: unsafe generations show lower attention entropy than safe ones).

A target that measures it (the in-process `transformers` tester with `attention_entropy: true`)
leaves each response's figures in the response's `measurements`; each verdict's record carries
the response's entropy. Per target, protocol and condition, the judged answers (part `answer`,
as the ASR tables count them) are split by their verdict: `unsafe`, or safe for every other
class; `unknown` and unclosed traces are on neither side. The statistics and the plot are the
attack loop's (`builder.stages.attack.entropy`): each side's mean with a seeded bootstrap 95%
interval and a two-sided Mann-Whitney U test, over every answer and per relation.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel

from builder.evaluation.figures import Record
from builder.stages.attack.entropy.compare import EntropyRecord, EntropyReport, compare_entropy
from builder.stages.attack.entropy.plot import plot_distributions
from builder.stages.attack.entropy.records import label_of

PART = "answer"


class EntropyComparison(BaseModel):
    """Unsafe vs safe answers of one target, judged by one protocol, under one condition."""

    target: str
    protocol: str
    condition: str
    part: str = PART
    report: EntropyReport
    without_figures: int = 0  # judged answers whose response has no attention figures
    unknown_class: int = 0  # judged `unknown`: on neither side

    @property
    def title(self) -> str:
        return f"{self.target}, protocol {self.protocol}, condition {self.condition}"


Group = tuple[str, str, str]  # target, protocol, condition


def _grouped(found: Iterable[Record]) -> dict[Group, list[Record]]:
    groups: dict[Group, list[Record]] = defaultdict(list)
    for record in found:
        if record.part == PART and record.state == "judged":
            groups[(record.target, record.protocol, record.condition)].append(record)
    return groups


def entropy_records(own: Iterable[Record]) -> tuple[list[EntropyRecord], int, int]:
    """The (label, entropy, relation) records of judged answers, and how many were left out for
    want of figures and for an `unknown` class."""
    records, without, unknown = [], 0, 0
    for record in own:
        label = label_of(record.label or "unknown")
        if record.entropy is None:
            without += 1
        elif label is None:
            unknown += 1
        else:
            records.append(EntropyRecord(label=label, entropy=record.entropy, relation=record.relation))
    return records, without, unknown


def entropy_comparisons(found: Iterable[Record], *, resamples: int, seed: int) -> list[EntropyComparison]:
    """One comparison per (target, protocol, condition) whose answers have attention figures."""
    comparisons = []
    for (target, protocol, condition), own in sorted(_grouped(found).items()):
        records, without, unknown = entropy_records(own)
        if not records:  # a target that measures nothing has no comparison
            continue
        comparisons.append(
            EntropyComparison(
                target=target,
                protocol=protocol,
                condition=condition,
                report=compare_entropy(records, seed=seed, resamples=resamples),
                without_figures=without,
                unknown_class=unknown,
            )
        )
    return comparisons


def plot_comparison(found: Iterable[Record], comparison: EntropyComparison, path: Path) -> None:
    """The PNG of the two distributions behind `comparison`."""
    own = _grouped(found).get((comparison.target, comparison.protocol, comparison.condition), [])
    records, _, _ = entropy_records(own)
    plot_distributions(records, path, title=f"Attention entropy: {comparison.title}")
