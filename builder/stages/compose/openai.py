"""Composer `openai`: drafts from a model behind any OpenAI-compatible chat API.

The prompt is rendered from the Jinja templates in the taxonomy (`prompts/compose.*.jinja`)
with the relation's guidance and the previous round's feedback; the template version goes into
every item's provenance and the response cache key.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from builder.config.taxonomy import Relation
from builder.core.items import ImageSlot
from builder.models.formats import StoredFormats
from builder.models.llm import (
    JSONRequest,
    LLMClient,
    LLMFailure,
    LLMSettings,
    RefusalError,
)
from builder.models.prompts import PromptSet
from builder.stages.compose import (
    Composer,
    ComposerSettings,
    CompositionFailure,
    CompositionJob,
    Draft,
    composers,
)
from builder.stages.judge.refusals import looks_like_refusal

if TYPE_CHECKING:
    from builder.stages.workspace import Workspace


class OpenAISettings(ComposerSettings, LLMSettings):
    """Any OpenAI-compatible server (see LLMSettings); the API key stays in the environment."""

    backend: Literal["openai"] = "openai"

    @model_validator(mode="after")
    def _model_named(self) -> OpenAISettings:
        if not self.model:
            raise ValueError("composer backend 'openai' needs a model name (--model or composer.model)")
        return self


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


@composers.register
class LLMComposer(Composer):
    name = "openai"
    Settings = OpenAISettings
    # One client bounds the requests in flight; shards take turns rather than multiply them.
    thread_safe = False

    def __init__(self, client: LLMClient, prompts: Path):
        self.client = client
        self.prompts = PromptSet(prompts, "compose", "compose.system.jinja", "compose.user.jinja")
        self.template_version = self.prompts.version

    @classmethod
    def from_settings(cls, settings: OpenAISettings, workspace: Workspace) -> Self:
        client = LLMClient(settings, cache=workspace.store, formats=StoredFormats(workspace.store))
        return cls(client, workspace.settings.taxonomy / "prompts")

    def messages(self, job: CompositionJob) -> list[dict[str, str]]:
        fields = {
            "seed": job.request.seed,
            "category": job.category,
            "relation": job.relation,
            "iteration": job.request.iteration,
            "feedback": job.request.feedback,
        }
        return [
            {"role": "system", "content": self.prompts.render("compose.system.jinja", **fields).strip()},
            {"role": "user", "content": self.prompts.render("compose.user.jinja", **fields).strip()},
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
                refused=looks_like_refusal,
            )
            for job in jobs
        ]
        drafts: list[Draft | CompositionFailure] = []
        for job, answer in zip(jobs, self.client.run(requests, on_done), strict=True):
            if isinstance(answer, LLMFailure):
                where = f"composer {self.name} (model {self.client.model} at {self.client.host})"
                drafts.append(
                    CompositionFailure(
                        reason=answer.kind, detail=f"{where}: {answer}", refused=answer.kind == "refused"
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
                    host=self.client.host,
                )
            )
        return drafts
