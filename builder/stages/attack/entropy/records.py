"""The (label, entropy, relation) records of a store's judged answers (the attack loop's).

An answer is `unsafe` when its judge's class is `unsafe`, `safe` for every other class the judge
gave (refusal, misunderstood, evasive, safe_other), and left out when the judge could not tell
(`unknown`). Answers without attention figures (another tester's, entropy off, or purged with
`mirbench answers purge`) are counted, not compared.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from builder.core.items import Item
from builder.stages.attack.entropy.compare import EntropyRecord
from builder.stages.attack.entropy.measure import MEASUREMENT

if TYPE_CHECKING:
    from builder.store import Store


class AnswerRecords(BaseModel):
    records: list[EntropyRecord] = Field(default_factory=list)
    testers: list[str] = Field(default_factory=list)  # whose answers the records are
    without_figures: int = 0  # judged answers with no attention figures kept
    unknown_class: int = 0  # judged `unknown`: on neither side


def label_of(answer_class: str) -> Literal["unsafe", "safe"] | None:
    if answer_class == "unknown":
        return None
    return "unsafe" if answer_class == "unsafe" else "safe"


def answer_records(store: Store, items: Iterable[Item], *, tester: str | None = None) -> AnswerRecords:
    """The records of every judged answer of `items` (of one `tester`, or of all)."""
    judged = [
        (item, judgement)
        for item in items
        for judgement in item.judgements
        if judgement.answer_key and (tester is None or judgement.tester == tester)
    ]
    found = store.answer_measurements([judgement.answer_key or "" for _, judgement in judged])
    result = AnswerRecords()
    testers = set()
    for item, judgement in judged:
        figures = found.get(judgement.answer_key or "", {}).get(MEASUREMENT)
        if not figures or figures.get("entropy") is None:
            result.without_figures += 1
            continue
        label = label_of(judgement.reason)
        if label is None:
            result.unknown_class += 1
            continue
        testers.add(judgement.tester)
        result.records.append(
            EntropyRecord(label=label, entropy=float(figures["entropy"]), relation=item.relation)
        )
    result.testers = sorted(testers)
    return result
