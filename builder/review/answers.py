"""Testers' answers as reviewers see them, and their purge.

An answer lives in the store's answers table only (never on an item, in a log or a release); a
judgement on the item points at it (`answer_key`) and carries the judge's class and rationale.
A rationale may quote the answer, so `purge` removes the answers *and* every rationale: it
keeps each judgement's class (reports and release cards keep their numbers), clears the
rationale on the items and in the advice and feedback that quoted it, and deletes the judge's
cached responses (which hold the rationales). Evaluation runs (`mirbench evaluate`) keep their
responses in the same answers table: purge deletes them too and clears their verdicts'
rationales; their verdicts keep class and score, so their reports keep their numbers.
"""

from __future__ import annotations

from pydantic import BaseModel

from builder.core.items import Item, ItemStatus
from builder.store import Store

RATIONALE_IN_ADVICE = ". Judge: "  # the attack policy ends its advice with the rationale after this


class ShownAnswer(BaseModel):
    tester: str
    held_out: bool
    answer_class: str
    judge: str
    rationale: str  # "" once purged
    text: str | None  # None once purged


class Purged(BaseModel):
    answers: int
    rationales: int  # judgements whose rationale was cleared
    judge_responses: int


def answers_of(store: Store, item: Item) -> list[ShownAnswer]:
    """Each tester's answer to `item` with the judge's class and rationale, in panel order."""
    texts = store.answers([j.answer_key for j in item.judgements if j.answer_key])
    return [
        ShownAnswer(
            tester=j.tester,
            held_out=j.held_out,
            answer_class=j.reason,
            judge=j.label,
            rationale=j.detail,
            text=texts.get(j.answer_key) if j.answer_key else None,
        )
        for j in item.judgements
    ]


def purge(store: Store) -> Purged:
    answers = store.purge_answers()
    items = store.items_with_statuses(list(ItemStatus))
    quoted = {j.detail for item in items for j in item.judgements if j.detail}
    judge_models = {use.model for item in items for use in item.provenance.models if use.role == "judge"}
    changed, cleared = [], 0
    for item in items:
        before = item.model_dump_json()
        for judgement in item.judgements:
            cleared += bool(judgement.detail)
            judgement.detail = ""
        for verdict in item.verdicts:
            verdict.advice = [_unquoted(line, quoted) for line in verdict.advice]
        item.feedback = [_unquoted(line, quoted) for line in item.feedback]
        if item.model_dump_json() != before:
            changed.append(item)
    store.save_items(changed)
    evaluation_rationales, evaluation_judges = store.purge_evaluation_rationales()
    models = {m for m in judge_models if m} | evaluation_judges
    responses = store.purge_responses(sorted(models))
    return Purged(answers=answers, rationales=cleared + evaluation_rationales, judge_responses=responses)


def _unquoted(line: str, rationales: set[str]) -> str:
    """`line` without a rationale the policy quoted at its end."""
    head, marker, tail = line.partition(RATIONALE_IN_ADVICE)
    return head if marker and tail in rationales else line
