"""Triage: two opinions per seed, then a decision.

(a) the mapping in the source's profile, from the source's own labels (or its text) to a
    category or `out_of_scope`;
(b) a model through the OpenAI-compatible client: structured output (a category or
    `out_of_scope`, a confidence, a short reason and a key phrase copied from the seed), cached
    in the store by (model, template version, request) like the composer's answers.

A seed is decided when the opinions agree with enough confidence (accepted in the category, or
out of scope); otherwise it goes to human curation. Without a triage model, the mapping decides
and the seeds it cannot map go to people.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from builder.config.sections import CurationSettings
from builder.config.taxonomy import Taxonomy
from builder.core.words import contains_phrase
from builder.curation.sources import OUT_OF_SCOPE, RuleMatch, SourceProfile
from builder.models.llm import JSONRequest, LLMClient, LLMFailure, ResponseCache
from builder.models.prompts import PromptSet
from builder.stages.judge.refusals import looks_like_refusal
from builder.store import SeedRow, SeedState, Store

TRIAGE_DECIDER = "triage"


class LLMOpinion(BaseModel):
    category: str
    confidence: float = Field(ge=0, le=1)
    reason: str = ""
    key_phrase: str | None = None


@dataclass
class TriageReport:
    seeds: int = 0
    both_opinions: int = 0
    agreed: int = 0
    llm_failures: int = 0
    decided: dict[str, int] = field(default_factory=dict)  # new state -> seeds

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.both_opinions if self.both_opinions else None


def opinion_schema(categories: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "category": {"type": "string", "enum": [*categories, OUT_OF_SCOPE]},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "reason": {"type": "string", "maxLength": 300},
            "key_phrase": {"type": "string", "maxLength": 120},
        },
        "required": ["category", "confidence", "reason", "key_phrase"],
    }


def _validate(value: Any, text: str, categories: set[str]) -> LLMOpinion:
    try:
        opinion = LLMOpinion.model_validate(value)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise ValueError(f"answer does not match the schema: {error['loc']}: {error['msg']}") from None
    if opinion.category not in categories | {OUT_OF_SCOPE}:
        raise ValueError(f"unknown category {opinion.category!r}")
    phrase = (opinion.key_phrase or "").strip()
    # A key phrase the seed does not contain cannot guard anything: people derive one instead.
    kept = phrase if phrase and contains_phrase(text, phrase) else None
    return opinion.model_copy(update={"key_phrase": kept, "reason": opinion.reason.strip()[:300]})


class ModelTriage:
    """Opinion (b), one request per seed, answers cached by the store."""

    def __init__(self, client: LLMClient, prompts: Path, taxonomy: Taxonomy):
        self.client = client
        self.prompts = PromptSet(prompts, "triage", "triage.system.jinja", "triage.user.jinja")
        self.categories = sorted(taxonomy.categories)
        self.described = [taxonomy.categories[slug] for slug in self.categories]

    @classmethod
    def of(
        cls, settings: CurationSettings, cache: ResponseCache, taxonomy: Taxonomy, root: Path
    ) -> ModelTriage:
        assert settings.triage is not None
        return cls(LLMClient(settings.triage, cache=cache), root / "prompts", taxonomy)

    def opinions(
        self, rows: list[SeedRow], on_done: Callable[[], None] | None = None
    ) -> list[LLMOpinion | LLMFailure]:
        known = set(self.categories)
        requests = [
            JSONRequest(
                messages=[
                    {"role": "system", "content": self.prompts.render("triage.system.jinja").strip()},
                    {
                        "role": "user",
                        "content": self.prompts.render(
                            "triage.user.jinja", categories=self.described, text=row.text
                        ).strip(),
                    },
                ],
                schema=opinion_schema(self.categories),
                validate=lambda value, text=row.text: _validate(value, text, known),
                template_version=self.prompts.version,
                refused=looks_like_refusal,
            )
            for row in rows
        ]
        return [
            answer if isinstance(answer, LLMFailure) else answer.value
            for answer in self.client.run(requests, on_done)
        ]


class TriageReason(StrEnum):
    """Why triage left a seed in its state (`seeds list --reason`)."""

    RULE = "rule"  # the mapping decided alone (no triage model)
    AGREED = "agreed"  # the mapping and a confident model agree
    NO_RULE = "no_rule"  # pending: no mapping rule matched
    DISAGREED = "disagreed"  # pending: the model and the mapping disagree
    LOW_CONFIDENCE = "low_confidence"  # pending: they agree, the model below triage.min_confidence
    MODEL_FAILED = "model_failed"  # pending: the model gave no usable answer


def triage(
    store: Store,
    profiles: dict[str, SourceProfile],
    settings: CurationSettings,
    model: ModelTriage | None = None,
    again: bool = False,
) -> TriageReport:
    """Triage every imported seed (with `again`: every seed not decided by people)."""
    states = [SeedState.IMPORTED] + (
        [SeedState.ACCEPTED, SeedState.OUT_OF_SCOPE, SeedState.PENDING] if again else []
    )
    rows = [
        row
        for row in store.seed_candidates(states)
        if again is False or row.decided_by in (None, TRIAGE_DECIDER)
    ]
    report = TriageReport(seeds=len(rows))
    opinions: list[LLMOpinion | LLMFailure | None] = (
        list(model.opinions(rows)) if model and rows else [None] * len(rows)
    )
    changes = []
    for row, opinion in zip(rows, opinions, strict=True):
        match = profiles[row.source].explain(row.text, json.loads(row.labels))
        mapped = match.category if match else None
        change: dict[str, Any] = {"id": row.id, **_mapping_columns(match)}
        if isinstance(opinion, LLMFailure):
            report.llm_failures += 1
            change.update(
                llm_category=None, llm_confidence=None, llm_reason=f"{opinion.kind}: {opinion.detail}"[:300]
            )
            state, category, reason = SeedState.PENDING, _in_scope(mapped), TriageReason.MODEL_FAILED
        elif opinion is not None:
            change.update(
                llm_category=opinion.category,
                llm_confidence=opinion.confidence,
                llm_reason=opinion.reason,
                llm_model=model.client.model if model else None,
                key_phrase=row.key_phrase or opinion.key_phrase,
            )
            state, category, reason = _decide(mapped, opinion, settings.min_confidence, report)
        else:
            state = {None: SeedState.PENDING, OUT_OF_SCOPE: SeedState.OUT_OF_SCOPE}.get(
                mapped, SeedState.ACCEPTED
            )
            category = _in_scope(mapped)
            reason = TriageReason.NO_RULE if mapped is None else TriageReason.RULE
        change.update(
            state=state.value,
            category=category,
            triage_reason=reason.value,
            decided_by=None if state is SeedState.PENDING else TRIAGE_DECIDER,
        )
        report.decided[state.value] = report.decided.get(state.value, 0) + 1
        changes.append(change)
    store.update_seeds(changes)
    return report


def _mapping_columns(match: RuleMatch | None) -> dict[str, Any]:
    if match is None:
        return {"mapped_category": None, "mapped_rule": None, "mapped_by": None, "mapped_match": None}
    return {
        "mapped_category": match.category,
        "mapped_rule": match.rule,
        "mapped_by": match.by,
        "mapped_match": match.matched,
    }


def _in_scope(category: str | None) -> str | None:
    return None if category == OUT_OF_SCOPE else category


def _decide(
    mapped: str | None, opinion: LLMOpinion, min_confidence: float, report: TriageReport
) -> tuple[SeedState, str | None, TriageReason]:
    """The state, the proposed category and why. A model answer below `min_confidence` is shown
    to people but never replaces the mapping's proposal."""
    confident = opinion.confidence >= min_confidence
    model_says = _in_scope(opinion.category) if confident else None
    if mapped is None:
        return SeedState.PENDING, model_says, TriageReason.NO_RULE
    report.both_opinions += 1
    if mapped != opinion.category:
        return SeedState.PENDING, model_says or _in_scope(mapped), TriageReason.DISAGREED
    report.agreed += 1
    if not confident:
        return SeedState.PENDING, _in_scope(mapped), TriageReason.LOW_CONFIDENCE
    if mapped == OUT_OF_SCOPE:
        return SeedState.OUT_OF_SCOPE, None, TriageReason.AGREED
    return SeedState.ACCEPTED, mapped, TriageReason.AGREED
