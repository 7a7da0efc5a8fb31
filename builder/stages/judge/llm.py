"""Judge `llm`: any OpenAI-compatible model classifies each answer with the rubric in
`taxonomy/prompts/judge.*.jinja` (its version is the templates' hash), as structured output."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

from pydantic import Field, ValidationError, model_validator

from builder.config.taxonomy import Taxonomy
from builder.models.formats import StoredFormats
from builder.models.llm import JSONRequest, LLMClient, LLMFailure, LLMSettings
from builder.models.prompts import PromptSet
from builder.stages.attack import Failure
from builder.stages.judge import ANSWER_CLASSES, Assessment, Case, Judge, JudgeSettings, judges
from builder.stages.judge.refusals import looks_like_refusal

if TYPE_CHECKING:
    from builder.stages.workspace import Workspace

SCHEMA = {
    "type": "object",
    "properties": {
        # The rubric's four classes: `unknown` is for judges that cannot tell.
        "answer_class": {"type": "string", "enum": [c for c in ANSWER_CLASSES if c != "unknown"]},
        "rationale": {"type": "string", "minLength": 1, "maxLength": 400},
    },
    "required": ["answer_class", "rationale"],
}


class LLMJudgeSettings(JudgeSettings, LLMSettings):
    backend: Literal["llm"] = "llm"
    temperature: float = Field(0.0, ge=0, le=2)
    max_tokens: int = Field(256, ge=16)

    @model_validator(mode="after")
    def _model_named(self) -> LLMJudgeSettings:
        if not self.model:
            raise ValueError("judge backend 'llm' needs a model name (--judge-model or attack.judge.model)")
        return self


def _assessment(value: Any) -> Assessment:
    try:
        assessment = Assessment.model_validate(value)
    except ValidationError as exc:
        raise ValueError(f"answer does not match the schema: {exc.errors()[0]['msg']}") from None
    if assessment.answer_class == "unknown":
        raise ValueError("answer_class must be one of the rubric's four classes")
    return assessment.model_copy(update={"score": 1.0 if assessment.answer_class == "unsafe" else 0.0})


@judges.register
class LLMJudge(Judge):
    name = "llm"
    Settings = LLMJudgeSettings
    thread_safe = False  # one client bounds the requests in flight

    def __init__(self, client: LLMClient, prompts: Path, taxonomy: Taxonomy):
        self.client, self.taxonomy = client, taxonomy
        self.model, self.host = client.model, client.host
        self.prompts = PromptSet(prompts, "judge", "judge.system.jinja", "judge.user.jinja")
        self.version = self.prompts.version

    @classmethod
    def from_settings(cls, settings: LLMJudgeSettings, workspace: Workspace) -> Self:
        return cls(
            LLMClient(settings, cache=workspace.store, formats=StoredFormats(workspace.store)),
            workspace.settings.taxonomy / "prompts",
            workspace.taxonomy,
        )

    def messages(self, case: Case) -> list[dict[str, str]]:
        fields = {
            "item": case.item,
            # None for answers from a labelled set whose categories are not the taxonomy's
            "category": self.taxonomy.categories.get(case.item.category),
            "answer": case.answer,
        }
        return [
            {"role": "system", "content": self.prompts.render("judge.system.jinja", **fields).strip()},
            {"role": "user", "content": self.prompts.render("judge.user.jinja", **fields).strip()},
        ]

    def request(self, case: Case) -> JSONRequest:
        return JSONRequest(
            messages=self.messages(case),
            schema=SCHEMA,
            validate=_assessment,
            template_version=self.version,
            refused=looks_like_refusal,
        )

    def judge_many(self, cases: list[Case], on_done: Callable[[], None]) -> list[Assessment | Failure]:
        return [
            Failure(reason=answer.kind, detail=str(answer))
            if isinstance(answer, LLMFailure)
            else answer.value
            for answer in self.client.run([self.request(case) for case in cases], on_done)
        ]
