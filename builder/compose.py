"""Stage `compose`: turn (seed, relation, round) requests into multi-image item drafts.

Backends sit behind `Composer`; the offline one fills the relation's templates from the
taxonomy, deterministically. A rejected candidate comes back with feedback as the next round,
and the offline composer answers by moving to another template variant and keyword order.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

from pydantic import BaseModel, Field

from builder import progress
from builder.items import ImageSlot, Item, ItemStatus, Provenance, item_id
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


class CompositionError(Exception):
    """The composer could not produce a valid draft for this request (the item fails)."""


class Composer(Protocol):
    name: str

    def draft(self, request: CompositionRequest, relation: Relation, category: Category) -> Draft: ...


def _stable_index(text: str, modulo: int) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") % modulo


class OfflineComposer:
    """Deterministic drafts from the relation's templates; needs no model or server."""

    name = "offline"
    version = "1"

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


def compose_items(
    requests: list[CompositionRequest],
    taxonomy: Taxonomy,
    composer: Composer,
    *,
    config_hash: str,
    run_id: str,
) -> StageOutput[Item]:
    """One item per request; a request the composer cannot serve yields a failed item."""
    stats = StageStats(stage="compose", items_in=len(requests))
    advance = progress.track("compose", len(requests))
    items: list[Item] = []
    with stats.timed():
        for request in requests:
            relation = taxonomy.relation(request.relation)
            category = taxonomy.category(request.seed.category)
            try:
                draft = composer.draft(request, relation, category)
                status, failure = ItemStatus.COMPOSED, None
            except CompositionError as exc:
                draft = Draft(revised_prompt="", slots=[], template="(none)")
                status, failure = ItemStatus.FAILED, str(exc)
            item = Item(
                id=request.item_id,
                seed_id=request.seed.id,
                original_question=request.seed.query,
                guarded_phrase=request.seed.guarded_phrase,
                category=request.seed.category,
                relation=relation.slug,
                iteration=request.iteration,
                revised_prompt=draft.revised_prompt,
                slots=draft.slots,
                status=status,
                feedback=request.feedback,
                provenance=Provenance(
                    composer=f"{composer.name}",
                    template=draft.template,
                    model_ids={"composer": draft.model_id} if draft.model_id else {},
                    config_hash=config_hash,
                    run_id=run_id,
                ),
            )
            if failure is not None:
                item.fail("compose", failure)
            stats.count(item.status.value)
            items.append(item)
            advance(1)
    return StageOutput[Item](items=items, stats=stats)
