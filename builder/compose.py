"""Stage `compose`: turn (seed, relation, round) requests into multi-image item drafts.

Backends sit behind `Composer`, which drafts a batch at a time:
- `offline` fills the relation's templates from the taxonomy, deterministically; a rejected
  candidate comes back as the next round and gets another template variant and keyword order.
- `openai` asks any OpenAI-compatible server, with a prompt rendered from Jinja templates in
  the taxonomy (`prompts/`) and the relation's guidance; the rejection reasons of the previous
  round go into the prompt.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, Field, ValidationError, field_validator

from builder import progress
from builder.items import ImageSlot, Item, ItemStatus, Provenance, item_id
from builder.llm import JSONRequest, LLMClient, LLMFailure, RefusalError, looks_like_refusal
from builder.seeds import Seed
from builder.stats import StageOutput, StageStats
from builder.taxonomy import Category, Relation, Taxonomy
from builder.text import keywords


class CompositionRequest(BaseModel):
    seed: Seed
    relation: str
    iteration: int = Field(ge=1)
    feedback: list[str] = Field(default_factory=list)

    @property
    def item_id(self) -> str:
        return item_id(self.seed.id, self.relation, self.iteration)


class Draft(BaseModel):
    """What a composer writes: the prompt and its image slots, plus which template made it."""

    revised_prompt: str
    slots: list[ImageSlot]
    template: str
    model_id: str | None = None


class CompositionFailure(BaseModel):
    """Why a request got no draft. `refused`: the model declined (never retried into compliance)."""

    reason: str
    detail: str = ""
    refused: bool = False


@dataclass(frozen=True)
class CompositionJob:
    request: CompositionRequest
    relation: Relation
    category: Category


class Composer(Protocol):
    name: str

    def draft_many(
        self, jobs: list[CompositionJob], on_done: Callable[[], None]
    ) -> list[Draft | CompositionFailure]:
        """One answer per job, in order; call `on_done` as each one finishes."""
        ...


def _stable_index(text: str, modulo: int) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") % modulo


class OfflineComposer:
    """Deterministic drafts from the relation's templates; needs no model or server."""

    name = "offline"
    version = "1"

    def draft_many(
        self, jobs: list[CompositionJob], on_done: Callable[[], None]
    ) -> list[Draft | CompositionFailure]:
        drafts: list[Draft | CompositionFailure] = []
        for job in jobs:
            drafts.append(self.draft(job.request, job.relation, job.category))
            on_done()
        return drafts

    def draft(self, request: CompositionRequest, relation: Relation, category: Category) -> Draft:
        templates = relation.offline.templates
        # Seeds start at different variants so one relation's items do not all read alike;
        # each further round moves on by one.
        variant = (_stable_index(request.seed.id, len(templates)) + request.iteration - 1) % len(templates)
        words = keywords(request.seed.query, limit=relation.max_images) or [category.display_name.lower()]
        shift = (request.iteration - 1) % len(words)
        words = words[shift:] + words[:shift]
        count = min(relation.max_images, max(relation.min_images, len(words)))
        fields = {"n": count, "category": category.display_name}
        slots = []
        for index in range(count):
            role = relation.image_roles[index]
            keyword = words[index % len(words)]
            description = relation.offline.slot_description.format(
                index=index + 1, keyword=keyword, role=role.hint, **fields
            )
            slots.append(ImageSlot(role=role.name, description=description, keywords=[keyword]))
        return Draft(
            revised_prompt=templates[variant].format(**fields),
            slots=slots,
            template=f"{relation.slug}/offline/{variant}@{self.version}",
        )


class _LLMImage(BaseModel):
    description: str = Field(min_length=1)
    keywords: list[str] = Field(min_length=1)

    @field_validator("description")
    @classmethod
    def _strip(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("empty description")
        return value.strip()

    @field_validator("keywords")
    @classmethod
    def _non_empty(cls, value: list[str]) -> list[str]:
        kept = [word.strip() for word in value if word.strip()]
        if not kept:
            raise ValueError("no non-empty keyword")
        return kept


class _LLMDraft(BaseModel):
    revised_prompt: str = Field(min_length=1)
    images: list[_LLMImage]


def draft_schema(relation: Relation) -> dict[str, Any]:
    """The JSON schema an LLM answer must follow for `relation` (image count included)."""
    image = {
        "type": "object",
        "properties": {
            "description": {"type": "string", "minLength": 1},
            "keywords": {
                "type": "array",
                "minItems": 1,
                "maxItems": 5,
                "items": {"type": "string", "minLength": 1},
            },
        },
        "required": ["description", "keywords"],
    }
    return {
        "type": "object",
        "properties": {
            "revised_prompt": {"type": "string", "minLength": 1},
            "images": {
                "type": "array",
                "minItems": relation.min_images,
                "maxItems": relation.max_images,
                "items": image,
            },
        },
        "required": ["revised_prompt", "images"],
    }


def _validate_draft(value: Any, relation: Relation) -> _LLMDraft:
    try:
        draft = _LLMDraft.model_validate(value)
    except ValidationError as exc:
        raise ValueError(
            f"answer does not match the schema: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}"
        ) from None
    if looks_like_refusal(draft.revised_prompt):
        raise RefusalError(draft.revised_prompt[:300])
    if not relation.min_images <= len(draft.images) <= relation.max_images:
        raise ValueError(
            f"{len(draft.images)} images; {relation.slug} needs {relation.min_images}-{relation.max_images}"
        )
    return draft


class LLMComposer:
    """Drafts from a model behind any OpenAI-compatible chat API."""

    name = "openai"

    def __init__(self, client: LLMClient, prompts: Path):
        from jinja2 import Environment, FileSystemLoader, StrictUndefined

        environment = Environment(
            loader=FileSystemLoader(prompts),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        self.client = client
        self._system = environment.get_template("compose.system.jinja")
        self._user = environment.get_template("compose.user.jinja")
        sources = b"".join(
            (prompts / name).read_bytes() for name in ("compose.system.jinja", "compose.user.jinja")
        )
        self.template_version = f"compose@{hashlib.sha256(sources).hexdigest()[:12]}"

    def messages(self, job: CompositionJob) -> list[dict[str, str]]:
        fields = {
            "seed": job.request.seed,
            "category": job.category,
            "relation": job.relation,
            "iteration": job.request.iteration,
            "feedback": job.request.feedback,
        }
        return [
            {"role": "system", "content": self._system.render(**fields).strip()},
            {"role": "user", "content": self._user.render(**fields).strip()},
        ]

    def draft_many(
        self, jobs: list[CompositionJob], on_done: Callable[[], None]
    ) -> list[Draft | CompositionFailure]:
        requests = [
            JSONRequest(
                messages=self.messages(job),
                schema=draft_schema(job.relation),
                validate=partial(_validate_draft, relation=job.relation),
                template_version=self.template_version,
            )
            for job in jobs
        ]
        drafts: list[Draft | CompositionFailure] = []
        for job, answer in zip(jobs, self.client.run(requests, on_done), strict=True):
            if isinstance(answer, LLMFailure):
                drafts.append(
                    CompositionFailure(
                        reason=answer.kind, detail=str(answer), refused=answer.kind == "refused"
                    )
                )
                continue
            value: _LLMDraft = answer.value
            slots = [
                ImageSlot(role=role.name, description=image.description, keywords=image.keywords)
                for role, image in zip(job.relation.image_roles, value.images, strict=False)
            ]
            drafts.append(
                Draft(
                    revised_prompt=value.revised_prompt.strip(),
                    slots=slots,
                    template=self.template_version,
                    model_id=self.client.model,
                )
            )
        return drafts


def compose_items(
    requests: list[CompositionRequest],
    taxonomy: Taxonomy,
    composer: Composer,
    *,
    config_hash: str,
    run_id: str,
) -> StageOutput[Item]:
    """One item per request; a request the composer cannot serve yields a failed or refused item."""
    stats = StageStats(stage="compose", items_in=len(requests))
    advance = progress.track("compose", len(requests))
    items: list[Item] = []
    with stats.timed():
        jobs = [
            CompositionJob(
                request, taxonomy.relation(request.relation), taxonomy.category(request.seed.category)
            )
            for request in requests
        ]
        for job, draft in zip(jobs, composer.draft_many(jobs, lambda: advance(1)), strict=True):
            request = job.request
            failure = draft if isinstance(draft, CompositionFailure) else None
            if failure is not None:
                draft = Draft(revised_prompt="", slots=[], template="(none)")
            item = Item(
                id=request.item_id,
                seed_id=request.seed.id,
                original_question=request.seed.query,
                guarded_phrase=request.seed.guarded_phrase,
                category=request.seed.category,
                relation=job.relation.slug,
                iteration=request.iteration,
                revised_prompt=draft.revised_prompt,
                slots=draft.slots,
                status=ItemStatus.COMPOSED,
                feedback=request.feedback,
                provenance=Provenance(
                    composer=composer.name,
                    template=draft.template,
                    model_ids={"composer": draft.model_id} if draft.model_id else {},
                    config_hash=config_hash,
                    run_id=run_id,
                ),
            )
            if failure is not None and failure.refused:
                item.refuse("compose", failure.detail)
            elif failure is not None:
                item.fail("compose", failure.reason, failure.detail)
            stats.count(item.status.value)
            items.append(item)
    return StageOutput[Item](items=items, stats=stats)
