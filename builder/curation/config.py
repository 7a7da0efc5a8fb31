"""Settings of seed curation (the `curation:` section of the config file)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from builder.llm import LLMSettings


class TriageModelSettings(LLMSettings):
    """The model that gives the second triage opinion (any OpenAI-compatible server)."""

    model_config = ConfigDict(extra="forbid")
    temperature: float = Field(0.0, ge=0, le=2)
    max_tokens: int = Field(256, ge=16)


class CurationSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    near_duplicate_similarity: float = Field(
        0.9, gt=0, le=1, description="Cosine (MiniLM) at or above which two seeds are one behaviour."
    )
    min_confidence: float = Field(
        0.7, ge=0, le=1, description="Below this, the model's triage goes to human curation."
    )
    triage: TriageModelSettings | None = Field(
        None, description="The triage model; none: the label mapping decides, people see the rest."
    )
