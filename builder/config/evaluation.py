"""The `evaluate` section of the settings: the targets a run asks, the conditions it asks them
under, the judge of each protocol and how its figures are computed (`mirbench evaluate`).

A target is a tester backend (`builder/stages/attack/`) plus what an evaluation adds: a price per
1,000 tokens and the target it is compared with (`base`). Its decoding defaults are
MIR-SafetyBench's (temperature 0, max tokens 4,096; the `openai` tester sends the images first,
then the text, with no system prompt). A protocol's judge is a judge backend
(`builder/stages/judge/`), chosen per protocol: `mir` (HarmBench's classifier, as
MIR-SafetyBench's `eval.py` uses it), `safemlrm` (SafeMLRM's 1-5 harmfulness rubric) and
`class` (the answer classes of the `llm` judge or an ensemble).

Registries are found by name at validation time (`importlib`), as the settings module does, so
this section knows no stage package at import.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, PlainValidator, SerializeAsAny, ValidationError, field_validator, model_validator

from builder.config.sections import _Section
from builder.core.registry import BackendSettings, Registry

CONDITIONS = ("multi", "single", "text", "vanilla", "drop")
PROTOCOLS = ("mir", "safemlrm", "class")
PROTOCOL_JUDGES = {"mir": "harmbench", "safemlrm": "safemlrm", "class": "llm"}
# MIR-SafetyBench's decoding, where a target's backend has these settings and they are not given
# (a backend whose settings name them otherwise declares its own: `evaluation_decoding`).
DECODING_DEFAULTS = {"temperature": 0.0, "max_tokens": 4096}


def _registry(package: str, name: str) -> Registry[Any]:
    return getattr(importlib.import_module(package), name)


def testers() -> Registry[Any]:
    return _registry("builder.stages.attack", "testers")


def judges() -> Registry[Any]:
    return _registry("builder.stages.judge", "judges")


class TargetSettings(_Section):
    """One model to evaluate, written flat in the config file: the tester backend's own settings
    (`backend`, `base_url`, `model`, `concurrency`, `requests_per_minute`, ...) beside these."""

    tester: SerializeAsAny[BackendSettings]
    base: str | None = Field(
        None, description="The target this one is compared with (its base model): reasoning tax, blind spots."
    )
    price_per_1k_input: float = Field(0.0, ge=0, description="Price per 1,000 prompt tokens.")
    price_per_1k_output: float = Field(0.0, ge=0, description="Price per 1,000 completion tokens.")

    @model_validator(mode="before")
    @classmethod
    def _flat(cls, value: Any) -> Any:
        if not isinstance(value, dict) or "tester" in value:
            return value
        own = {
            key: value[key] for key in ("base", "price_per_1k_input", "price_per_1k_output") if key in value
        }
        rest = {key: entry for key, entry in value.items() if key not in own}
        backend = testers().get(rest.get("backend") or testers().default or "openai")
        fields = backend.Settings.model_fields
        decoding = getattr(backend.Settings, "evaluation_decoding", None) or DECODING_DEFAULTS
        defaults = {key: entry for key, entry in decoding.items() if key in fields and key not in rest}
        return {**own, "tester": testers().parse({**defaults, **rest})}

    @property
    def name(self) -> str:
        named = getattr(self.tester, "name", None) or getattr(self.tester, "model", None)  # or a model folder
        return str(named) if named else self.tester.backend  # type: ignore[attr-defined]


def _judge_map(value: Any) -> dict[str, BackendSettings]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"a mapping of protocol -> judge settings; protocols: {', '.join(PROTOCOLS)}")
    parsed = {}
    for protocol, entry in value.items():
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r}; protocols: {', '.join(PROTOCOLS)}")
        if isinstance(entry, dict) and "backend" not in entry and "ensemble" not in entry:
            entry = {"backend": PROTOCOL_JUDGES[protocol], **entry}
        try:
            parsed[protocol] = judges().parse(entry)
        except ValidationError:
            raise
        except ValueError as exc:
            raise ValueError(f"judge of protocol {protocol}: {exc}") from None
    return parsed


class EvaluateSettings(_Section):
    """`mirbench evaluate`: which targets, under which conditions, judged by which protocols."""

    targets: list[TargetSettings] = Field(default_factory=list, description="The models to evaluate.")
    conditions: list[str] = Field(
        default_factory=lambda: ["multi"],
        description="multi (as released), single (the images as one grid, labelled 1..n), text (the "
        "prompt alone), vanilla (the original question alone), drop (each image left out in turn).",
    )
    protocols: list[str] | None = Field(
        None, description="mir, safemlrm, class; default: every protocol that has a judge."
    )
    judges: Annotated[dict[str, SerializeAsAny[BackendSettings]], PlainValidator(_judge_map)] = Field(
        default_factory=dict, description="The judge of each protocol (a judge backend's settings)."
    )
    resamples: int = Field(1000, ge=100, le=100_000, description="Bootstrap resamples per interval.")
    seed: int = Field(0, description="Seed of the bootstrap: a rerun gives the same intervals.")
    trace_markers: list[Path] = Field(
        default_factory=list,
        description="Marker-set files (or folders of them) beside the taxonomy's traces/, tried first.",
    )
    grid_cell: int = Field(
        512, ge=64, le=2048, description="Size of each picture in the `single` condition's grid."
    )

    @field_validator("conditions")
    @classmethod
    def _known_conditions(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in CONDITIONS]
        if unknown:
            raise ValueError(f"unknown condition {unknown[0]!r}; conditions: {', '.join(CONDITIONS)}")
        if not value:
            raise ValueError(f"at least one condition: {', '.join(CONDITIONS)}")
        return list(dict.fromkeys(value))

    @field_validator("protocols")
    @classmethod
    def _known_protocols(cls, value: list[str] | None) -> list[str] | None:
        unknown = [name for name in value or [] if name not in PROTOCOLS]
        if unknown:
            raise ValueError(f"unknown protocol {unknown[0]!r}; protocols: {', '.join(PROTOCOLS)}")
        return None if value is None else list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _distinct_targets(self) -> EvaluateSettings:
        names = [target.name for target in self.targets]
        if len(set(names)) != len(names):
            raise ValueError(f"targets need distinct names (name: or model:): {names}")
        for target in self.targets:
            if target.base is not None and target.base not in names:
                raise ValueError(f"target {target.name}: base {target.base!r} is not a target ({names})")
        return self

    @property
    def chosen_protocols(self) -> list[str]:
        return self.protocols if self.protocols is not None else [p for p in PROTOCOLS if p in self.judges]
