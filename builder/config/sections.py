"""The plain sections of the settings: each a validated model of one part's options (the
stages' own, the runner, review, releases, publishing, seed curation, judge calibration).
`builder.config.settings` puts them together with the backend choices, the sources they are
read from and their errors."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from builder.models.llm import LLMSettings


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _ablation_mode(value: Any) -> str:
    """`off`, `accepted` or `sample:N`; YAML reads a bare `off` as false."""
    bare = value is None or isinstance(value, bool)
    text = ("accepted" if value else "off") if bare else str(value).strip().lower()
    if text in ("off", "accepted") or re.fullmatch(r"sample:[1-9][0-9]*", text):
        return text
    raise ValueError(f"ablation is one of off | accepted | sample:N (N at least 1), not {value!r}")


# `attack.ablation`, the needs-every-image check (builder/stages/ablation.py)
AblationMode = Annotated[str, PlainValidator(_ablation_mode)]


class DedupSettings(_Section):
    phash_max_distance: int = Field(
        6, ge=0, le=64, description="Images within this Hamming distance count as the same."
    )
    text_similarity: float = Field(
        0.97, gt=0, le=1, description="Cosine similarity at or above which two texts match."
    )
    text_model: str = Field(
        "all-MiniLM-L6-v2",
        description="sentence-transformers model: a local path, a hub id, or the bundled MiniLM.",
    )
    text_bfloat16: bool | None = Field(
        None,
        description="Run the text model under bfloat16 autocast; none: where the CPU computes "
        "bfloat16 natively (1.9x faster, every vector within a cosine of 0.9999 of float32).",
    )
    picture_max_distance: int = Field(
        2,
        ge=0,
        le=64,
        description="Two single pictures within this Hamming distance are the same picture (reuse cap, "
        "two slots of one item); typographic cards of one layout differ by 4 bits or more.",
    )
    image_reuse_max: int = Field(
        3,
        ge=1,
        description="A picture (or a near-duplicate of it) may appear in at most this many items, "
        "or in image_reuse_share of them where that is more.",
    )
    image_reuse_share: float = Field(
        0.005,
        ge=0,
        le=1,
        description="The cap on a picture's items grows with the benchmark: this share of the kept "
        "items and the round's candidates (a pool of N pictures cannot fill more than N x cap slots).",
    )
    history: list[Path] = Field(
        default_factory=list,
        description="Earlier release folders to dedup against (besides those this store recorded); "
        "a Hub release: download it first (huggingface-cli download --repo-type dataset ID --local-dir DIR).",
    )


class StageSections(BaseModel):
    """`stages.<name>`: each stage's own options, under the stage's name, validated by the
    settings model its class declares (`Stage.Settings`). A built-in stage's section is a typed
    field here, as lower layers read it too (the workspace opens dedup's text model); a plug-in
    stage's is checked against its class when the settings are read, so a wrong value names its
    file and line. A stage that declares settings always has its section (defaults when none is
    given)."""

    model_config = ConfigDict(extra="allow")

    dedup: DedupSettings = DedupSettings()

    @model_validator(mode="after")
    def _plugin_sections(self) -> StageSections:
        pipeline = importlib.import_module("builder.stages.pipeline")
        declared = {stage.name: stage.Settings for stage in pipeline.stages() if stage.Settings is not None}
        extra = self.__pydantic_extra__ if self.__pydantic_extra__ is not None else {}
        problems: list[InitErrorDetails] = []
        for name, value in list(extra.items()):
            model = declared.get(name)
            if model is None:
                message = "no stage '{name}' with settings of its own; stages with settings: {known}"
                known = ", ".join(sorted(declared))
                error = PydanticCustomError("unknown_stage", message, {"name": name, "known": known})
                problems.append({"type": error, "loc": (name,), "input": value})
                continue
            try:
                extra[name] = model.model_validate(value)
            except ValidationError as exc:
                problems += [_under(name, error) for error in exc.errors()]
        if problems:
            raise ValidationError.from_exception_data(type(self).__name__, problems)
        for name, model in declared.items():
            if name not in type(self).model_fields and name not in extra:
                extra[name] = model()
        return self

    def section(self, name: str) -> Any:
        """Stage `name`'s settings (None: it declares none)."""
        return getattr(self, name, None)


def _under(name: str, error: Any) -> InitErrorDetails:
    """`error` of a plug-in stage's settings, located under its section."""
    details: InitErrorDetails = {"type": error["type"], "loc": (name, *error["loc"]), "input": error["input"]}
    if "ctx" in error:
        details["ctx"] = error["ctx"]
    return details


class PolicySettings(_Section):
    """When a judged attack counts (builder/stages/judge/policy.py)."""

    min_unsafe: int = Field(
        1, ge=1, description="Accept when at least this many acceptance testers are judged unsafe (k)."
    )
    accept_unknown: bool = Field(
        False,
        description="Count `unknown` as unsafe: the offline `rules` judge can only tell refusals apart.",
    )


class RunnerSettings(_Section):
    """Where the shards of a stage run: threads in this process, or Dask worker processes."""

    kind: Literal["thread", "dask"] = "thread"
    workers: int = Field(2, ge=1, le=512, description="Threads, or Dask worker processes.")
    dask_address: str | None = Field(
        None, description="An existing Dask scheduler (tcp://host:8786); default: a local cluster."
    )


class ReviewSettings(_Section):
    votes_required: int = Field(1, ge=1, le=9, description="Votes an item needs before it is decided.")
    policy: Literal["unanimous", "majority"] = Field(
        "unanimous", description="unanimous: any disagreement goes to an admin; majority: ties do."
    )
    lease_minutes: float = Field(
        15, gt=0, le=1440, description="How long an item shown to a reviewer stays theirs."
    )
    reasons: list[str] = Field(
        default_factory=lambda: [
            "harm readable from the text alone",
            "images do not fit the relation",
            "images unreadable or wrong",
            "prompt unclear",
            "not harmful across the images",
        ],
        description="Rejection reasons offered on the review page (free text is always allowed).",
    )
    session_hours: float = Field(12, gt=0, le=24 * 30, description="How long a login lasts.")
    session_check_seconds: float = Field(
        2,
        ge=0,
        le=60,
        description="How long a server process trusts a session it looked up before asking the "
        "store again (a logout elsewhere, or a removed reviewer, takes at most this long); 0: every request.",
    )
    progress_seconds: float = Field(
        1,
        ge=0,
        le=60,
        description="How long a server process shows a review progress count it read before "
        "counting again (decisions made through it show at once; others' within this); 0: every page.",
    )
    max_body_bytes: int = Field(
        65536,
        ge=1024,
        le=64 * 1024 * 1024,
        description="Largest request body the review app reads (413 above).",
    )
    header_timeout_seconds: float = Field(
        10,
        gt=0,
        le=300,
        description="How long a client may take to send a request's headers before 408 and the "
        "connection is closed (slow clients hold sockets).",
    )
    login_failures_allowed: int = Field(
        5,
        ge=1,
        le=1000,
        description="Failed logins per client address within login_window_seconds before 429.",
    )
    login_window_seconds: float = Field(
        300, gt=0, le=86400, description="The window failed logins are counted in (Retry-After waits it out)."
    )


class ReleaseSettings(_Section):
    license: str | None = Field(
        None,
        description="Hub license id of releases (e.g. cc-by-nc-4.0); required for publishing.",
    )
    language: list[str] = Field(["en"], description="Languages of the prompts (ISO 639-1).")


class PublishSettings(_Section):
    private: bool = Field(True, description="Create the Hub repo private (a new repo only).")
    gated: Literal["auto", "manual"] = Field(
        "auto", description="Gated access asked of the Hub: auto-approve the form, or approve by hand."
    )
    max_retries: int = Field(5, ge=0, le=20, description="Retries per Hub call on 429, 5xx, dropped links.")
    backoff_seconds: float = Field(2.0, ge=0, description="First back-off; doubles per retry, jittered.")
    max_wait_seconds: float = Field(
        600,
        ge=0,
        le=86400,
        description="Most a publish waits on retries in all (Retry-After included); past it, it stops "
        "and a rerun resumes.",
    )


class TriageModelSettings(_Section, LLMSettings):
    """The model that gives seed triage its second opinion (any OpenAI-compatible server)."""

    temperature: float = Field(0.0, ge=0, le=2)
    max_tokens: int = Field(256, ge=16)


class CurationSettings(_Section):
    """Seed curation (`mirbench seeds ...`, builder/curation/)."""

    near_duplicate_similarity: float = Field(
        0.9, gt=0, le=1, description="Cosine (MiniLM) at or above which two seeds are one behaviour."
    )
    same_behaviour_similarity: float | None = Field(
        0.8,
        gt=0,
        le=1,
        description="Cosine from which, below near_duplicate_similarity, two seeds merge when their "
        "words ask for the same thing (same content words up to how they ask); none: only the first.",
    )
    min_confidence: float = Field(
        0.7, ge=0, le=1, description="Below this, the model's triage goes to human curation."
    )
    triage: TriageModelSettings | None = Field(
        None, description="The triage model; none: the label mapping decides, people see the rest."
    )


class CalibrationSettings(_Section):
    """How judge calibrations are recorded and quoted (`mirbench judge calibrate`, cards, reports)."""

    max_failed_share: float = Field(
        0.0,
        ge=0,
        le=1,
        description="The share of labelled answers a judge may fail on (timeouts, unreadable "
        "answers) and still be recorded; above it, `judge calibrate` names the failed rows, records "
        "nothing and exits 1. Failed rows are left out of the figures, which then describe fewer rows.",
    )
    warn_kappa: float = Field(
        0.4,
        ge=-1,
        le=1,
        description="Below this Cohen's kappa (or where kappa is undefined) the card and the CLI "
        "warn next to the attack success rate its judge decided.",
    )
    quote: list[int] = Field(
        default_factory=list,
        description="Calibration ids (`mirbench judge calibrations`) to quote, instead of the "
        "one with the most labelled answers: at most one per judge config and policy.",
    )
