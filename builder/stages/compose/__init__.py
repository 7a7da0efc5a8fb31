"""Stage `compose`: turn planned (seed, relation, round) items into multi-image drafts.

Backends are registered by name, one module each in this package (`offline`, `openai`), and
draft a batch at a time. The rejection reasons of the previous round reach the backend as
feedback; a request it cannot serve leaves the item failed (retried by a later build) or
refused (never retried into compliance).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Self

from pydantic import BaseModel, Field

from builder.config.seeds import Seed
from builder.config.taxonomy import Category, Relation, Taxonomy
from builder.core.items import ImageSlot, Item, ItemStatus, ModelUse, Provenance, item_id
from builder.core.registry import Backend, BackendSettings, Registry
from builder.core.stats import StageOutput, StageStats
from builder.stages.base import FunnelGroup, Place, Stage

if TYPE_CHECKING:
    from builder.config.settings import Settings
    from builder.stages.base import BackendChoices
    from builder.stages.workspace import Workspace


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
    host: str | None = None  # the model's server (host[:port]), for provenance


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


class ComposerSettings(BackendSettings):
    backend: str


class Composer(Backend):
    Settings: ClassVar[type[ComposerSettings]]

    @abstractmethod
    def draft_many(
        self, jobs: list[CompositionJob], on_done: Callable[[], None]
    ) -> list[Draft | CompositionFailure]:
        """One answer per job, in order; call `on_done` as each one finishes."""


composers: Registry[Composer] = Registry("composer", __name__, group="mirbench.composers", default="offline")


def planned_item(seed: Seed, relation: str, iteration: int, feedback: list[str], run_id: str) -> Item:
    """The placeholder of a candidate still to be composed (the planner stores these)."""
    return Item(
        id=item_id(seed.id, relation, iteration),
        seed_id=seed.id,
        original_question=seed.query,
        guarded_phrase=seed.guarded_phrase,
        key_phrase_derived=seed.key_phrase_derived,
        category=seed.category,
        relation=relation,
        iteration=iteration,
        revised_prompt="",
        slots=[],
        status=ItemStatus.PLANNED,
        feedback=feedback,
        provenance=Provenance(composer="", template="", config_hash="", run_id=run_id),
    )


class ComposeStage(Stage):
    name = "compose"
    gives = ItemStatus.COMPOSED
    funnel_group = FunnelGroup.MADE
    funnel_label = "composed"
    batch_size = None  # one call per shard, so a model backend keeps its requests in flight

    def __init__(
        self,
        composer: Composer,
        taxonomy: Taxonomy,
        seeds: Mapping[str, Seed],
        *,
        config_hash: str,
        run_id: str,
    ):
        self.composer, self.backends = composer, (composer,)
        self.taxonomy, self.seeds = taxonomy, seeds
        self.config_hash, self.run_id = config_hash, run_id

    @classmethod
    def backend_choices(cls, settings: Settings) -> BackendChoices:
        return [(composers, [settings.composer])]

    @classmethod
    def open(cls, workspace: Workspace, place: Place) -> Self:
        settings = workspace.settings
        return cls(
            workspace.backend(composers, settings.composer),
            workspace.taxonomy,
            workspace.seeds,
            config_hash=settings.config_hash(),
            run_id=workspace.run_id,
        )

    def process(self, items: list[Item], stats: StageStats, advance: Callable[[int], None]) -> None:
        jobs = [
            CompositionJob(
                CompositionRequest(
                    seed=self.seeds[item.seed_id],
                    relation=item.relation,
                    iteration=item.iteration,
                    feedback=item.feedback,
                ),
                self.taxonomy.relation(item.relation),
                self.taxonomy.category(item.category),
            )
            for item in items
        ]
        for item, draft in zip(items, self.composer.draft_many(jobs, lambda: advance(1)), strict=True):
            item.provenance = Provenance(
                composer=self.composer.name,
                template=draft.template if isinstance(draft, Draft) else "(none)",
                config_hash=self.config_hash,
                run_id=self.run_id,
                seed=self.seeds[item.seed_id].origin,
            )
            drafted = draft if isinstance(draft, Draft) else None
            item.provenance.used(
                ModelUse(
                    role="composer",
                    name=self.composer.name,
                    backend=self.composer.name,
                    model=drafted.model_id if drafted else None,
                    host=drafted.host if drafted else None,
                )
            )
            if isinstance(draft, CompositionFailure):
                if draft.refused:
                    item.refuse("compose", draft.detail)
                else:
                    item.fail("compose", draft.reason, draft.detail)
                continue
            item.revised_prompt, item.slots = draft.revised_prompt, draft.slots
            item.status = self.gives


def compose_items(
    requests: list[CompositionRequest],
    taxonomy: Taxonomy,
    composer: Composer,
    *,
    config_hash: str = "",
    run_id: str = "",
) -> StageOutput[Item]:
    """Compose requests outside a build (tests, notebooks): one item per request, in order."""
    items = [planned_item(r.seed, r.relation, r.iteration, r.feedback, run_id) for r in requests]
    stage = ComposeStage(
        composer, taxonomy, {r.seed.id: r.seed for r in requests}, config_hash=config_hash, run_id=run_id
    )
    return stage.run(items)
