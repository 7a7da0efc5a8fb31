"""All settings, validated in one place.

Precedence, highest first: CLI flags (passed as keyword arguments), environment variables
(`MIRBENCH_*`, nested with `__`, e.g. `MIRBENCH_RENDERER__SIZE=256`), the YAML config file
(`--config` or `MIRBENCH_CONFIG`), then the defaults below.

Settings sit below the stages and their backends: backend fields validate against the
registries of the stage packages (`_REGISTRIES`), which are imported on first validation, not
when this module is, so a stage and its backends can read their settings from here.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    Field,
    PlainValidator,
    SecretStr,
    SerializeAsAny,
    ValidationError,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from builder.config.config_file import CONFIG_FILE_ENV, ConfigFile, active_config_file, using_config_file
from builder.config.evaluation import EvaluateSettings
from builder.config.input_limits import InputLimits
from builder.config.sections import (
    AblationMode,
    CalibrationSettings,
    CurationSettings,
    DedupSettings,
    PolicySettings,
    PublishSettings,
    ReleaseSettings,
    ReviewSettings,
    RunnerSettings,
    StageSections,
    _Section,
)
from builder.config.yaml_lines import line_of, match_depth
from builder.core.errors import InputError, InputErrors
from builder.core.registry import BackendSettings, Registry

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def bundled(name: str) -> Path:
    """A data folder shipped with mirbench: the source tree's, else the installed copy."""
    source_tree = PROJECT_ROOT / name
    return source_tree if source_tree.is_dir() else Path(__file__).resolve().parents[1] / "data" / name


# The registry of each backend kind: (its stage package, its name there).
_REGISTRIES = {
    "composer": ("builder.stages.compose", "composers"),
    "renderer": ("builder.stages.render", "renderers"),
    "filter": ("builder.stages.filters", "filters"),
    "tester": ("builder.stages.attack", "testers"),
    "judge": ("builder.stages.judge", "judges"),
}


def registry(kind: str) -> Registry[Any]:
    """The registry of backend `kind`, its package imported on first use."""
    package, name = _REGISTRIES[kind]
    return getattr(importlib.import_module(package), name)


def backend_default(kind: str) -> BackendSettings:
    """The settings of backend `kind` when none are given: its package's `default_settings()`
    where it decides at run time (the renderer: is the picture pool installed?), else the
    registry's default backend."""
    package = importlib.import_module(_REGISTRIES[kind][0])
    decide = getattr(package, "default_settings", None)
    return decide() if decide is not None else registry(kind).parse({})


def _backend_field(kind: str) -> Any:
    """A settings field validated as one of the registered `kind` backends (discriminated by name)."""
    return Annotated[
        SerializeAsAny[BackendSettings], PlainValidator(lambda value: registry(kind).parse(value))
    ]


def _backend_list(kind: str, shape: str, entry: str) -> Any:
    """A validator of a list of `kind` backends: `shape` says what the list holds, `entry` names
    an entry in an error ("entry 2: ...")."""

    def parse(value: Any) -> list[BackendSettings]:
        if not isinstance(value, list):
            raise ValueError(shape)
        parsed = []
        for number, item in enumerate(value, start=1):
            try:
                parsed.append(registry(kind).parse(item))
            except ValidationError:
                raise
            except ValueError as exc:
                raise ValueError(f"{entry} {number}: {exc}") from None
        return parsed

    return parse


_filter_list = _backend_list("filter", "a list of filters: names or {name: ..., <settings>}", "entry")
_tester_list = _backend_list(
    "tester", "a list of testers: {backend: openai, model: ..., base_url: ..., held_out: false}", "tester"
)


class AttackSettings(_Section):
    """The attack loop: testers answer every candidate, a judge classifies the answers, the
    policy accepts or sends the candidate back with advice. `attack: none` (the default, no
    testers) leaves it off: candidates that pass the filters go straight to review."""

    testers: Annotated[list[SerializeAsAny[BackendSettings]], PlainValidator(_tester_list)] = Field(
        default_factory=list, description="Tester models (a registered tester backend each)."
    )
    judge: _backend_field("judge") = Field(  # type: ignore[valid-type]
        default_factory=lambda: registry("judge").parse({}),
        description="Judge backend (a registered one) and its settings.",
    )
    policy: PolicySettings = PolicySettings()
    ablation: AblationMode = Field(
        "off",
        description="Does a candidate need every image: `accepted` asks each accepted one again with "
        "each image left out; `sample:N`, N per relation and round; `off`, none (stages/ablation.py).",
    )

    @model_validator(mode="before")
    @classmethod
    def _none(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "off", "")):
            return {}
        return value

    @model_validator(mode="after")
    def _panel(self) -> AttackSettings:
        if not self.testers:
            return self
        labels = [getattr(tester, "name", None) or getattr(tester, "model", None) for tester in self.testers]
        if len(set(labels)) != len(labels):
            raise ValueError(f"testers need distinct names (name: or model:): {labels}")
        deciding = [tester for tester in self.testers if not getattr(tester, "held_out", False)]
        if not deciding:
            raise ValueError("every tester is held out: at least one must decide acceptance")
        if self.policy.min_unsafe > len(deciding):
            raise ValueError(
                f"policy.min_unsafe is {self.policy.min_unsafe} but only {len(deciding)} tester(s) decide"
            )
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.testers)


_ENV_PREFIX = "MIRBENCH_"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MIRBENCH_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    artifacts: Path = Field(Path("artifacts"), description="Folder for run outputs.")
    database_url: SecretStr | None = Field(
        None, description="SQLAlchemy URL; default: SQLite file inside the artifacts folder."
    )
    database_wait_seconds: float = Field(
        60,
        ge=0,
        le=3600,
        description="How long a build waits for a database that stopped answering (a restart) "
        "before it fails; reconnects are tried with back-off and reported.",
    )
    taxonomy: Path = Field(default_factory=lambda: bundled("taxonomy"))
    seeds: list[Path] = Field(default_factory=lambda: [bundled("seeds") / "default"])
    sources: Path | None = Field(
        None,
        description="Folder of seed source profiles (`mirbench seeds ...`); default: the taxonomy's "
        "sources/ folder, else the bundled one.",
    )
    relations: list[str] = Field(
        default_factory=list, description="Relation slugs to build; empty means all."
    )
    relations_per_seed: int | None = Field(
        None,
        ge=1,
        description="Relations each seed is built against, dealt in turn within its category so "
        "every category spreads evenly over the relations; none: every relation.",
    )
    max_iterations: int = Field(3, ge=1, le=20, description="Rounds per (seed, relation) pair.")
    max_attempts: int = Field(
        3, ge=1, le=20, description="Tries per candidate when a backend fails (failed items come back)."
    )
    shard_size: int = Field(500, ge=1, description="Items per orchestrated task.")
    runner: RunnerSettings = RunnerSettings()
    composer: _backend_field("composer") = Field(  # type: ignore[valid-type]
        default_factory=lambda: registry("composer").parse({}),
        description="Composer backend (a registered one) and its settings.",
    )
    renderer: _backend_field("renderer") = Field(  # type: ignore[valid-type]
        default_factory=lambda: backend_default("renderer"),
        description="Renderer backend (a registered one) and its settings; default: retrieval from "
        "the built-in picture pool, typographic cards where that pool is not installed.",
    )
    stages: StageSections = Field(
        default_factory=StageSections,
        description="Each stage's own options, under its name (stages.dedup, a plug-in's stages.NAME).",
    )
    filters: Annotated[list[SerializeAsAny[BackendSettings]], PlainValidator(_filter_list)] = Field(
        default_factory=lambda: _filter_list(["structural", "leakage", "benign_alone", "alignment"]),
        description="Filters in the order they run (registered filter backends).",
    )
    limits: InputLimits = InputLimits()
    review: ReviewSettings = ReviewSettings()
    release: ReleaseSettings = ReleaseSettings()
    publish: PublishSettings = PublishSettings()
    attack: AttackSettings = Field(
        default_factory=AttackSettings, description="The attack loop (default: none, off)."
    )
    curation: CurationSettings = Field(
        default_factory=CurationSettings, description="Seed curation (`mirbench seeds ...`)."
    )
    calibration: CalibrationSettings = Field(
        default_factory=CalibrationSettings,
        description="Judge calibrations: how many failed rows a record tolerates, which is quoted.",
    )
    evaluate: EvaluateSettings = Field(
        default_factory=EvaluateSettings,
        description="Evaluating models on a benchmark (`mirbench evaluate`).",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = active_config_file()
        if config_file is not None:
            sources.append(InitSettingsSource(settings_cls, init_kwargs=config_file.data))
        return tuple(sources)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{(self.artifacts / 'mirbench.db').resolve()}"

    @model_validator(mode="before")
    @classmethod
    def _dedup_moved(cls, value: Any) -> Any:
        """`dedup:` (before 0.3) is the dedup stage's section now: `stages.dedup`."""
        if isinstance(value, dict) and "dedup" in value:
            stages = dict(value.get("stages") or {})
            if "dedup" in stages:
                raise ValueError("both `dedup` and `stages.dedup` are set: keep `stages.dedup`")
            value = {key: field for key, field in value.items() if key != "dedup"} | {
                "stages": {**stages, "dedup": value["dedup"]}
            }
        moved = sorted(name for name in os.environ if name.upper().startswith(f"{_ENV_PREFIX}DEDUP"))
        if moved:
            raise ValueError(
                f"environment variable {moved[0]}: dedup's settings are under stages now: "
                f"{_ENV_PREFIX}STAGES__DEDUP__<NAME>"
            )
        return value

    @property
    def dedup(self) -> DedupSettings:
        """The dedup stage's section (`stages.dedup`)."""
        return self.stages.dedup

    def config_hash(self) -> str:
        """Hash of what decides item content (not where things are stored): the rounds, and what
        each enabled stage says decides its work (`Stage.decisive_settings`)."""
        pipeline = importlib.import_module("builder.stages.pipeline")
        relevant = {"max_iterations": self.max_iterations, "stages": pipeline.decisive_settings(self)}
        return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings from every source; every bad value is an InputError naming where it was set:
    `config_file:line`, the environment variable, or the command line."""
    if config_file is not None:
        config = ConfigFile.read(Path(config_file))
    elif os.environ.get(CONFIG_FILE_ENV):
        config = ConfigFile.read(Path(os.environ[CONFIG_FILE_ENV]))
    else:
        config = None
    given = {key: value for key, value in overrides.items() if value is not None}
    token = using_config_file(config)
    try:
        return Settings(**given)
    except ValidationError as exc:
        raise InputErrors([_located(error, given, config) for error in exc.errors()]) from None
    except SettingsError as exc:
        # pydantic-settings could not parse an environment value: lists and sections are JSON.
        named = re.search(r'field "([^"]+)"', str(exc))
        variable = _environment_variable((named.group(1),))[0] if named else None
        raise InputError(
            f"environment variable {variable or _ENV_PREFIX + '*'}: not valid JSON; lists and sections "
            """are given as JSON, e.g. MIRBENCH_SEEDS='["seeds/", "more.jsonl"]'"""
        ) from None
    finally:
        token.var.reset(token)


def _located(error: Any, given: dict[str, Any], config: ConfigFile | None) -> InputError:
    """The error, at the source that set the field: the one spelling most of its path; on a tie
    the one that wins (command line, then environment, then the config file)."""
    location = _without_backend_tag(tuple(error["loc"]))
    message = f"setting '{'.'.join(str(part) for part in location) or '(all)'}': {error['msg']}"
    variable, env_depth = _environment_variable(location)
    file_depth = match_depth(config.node, location) if config is not None else 0
    flag_depth = _dict_depth(given, location)
    best = max(flag_depth, env_depth, file_depth)
    if best == 0:
        return InputError(message)
    if flag_depth == best:
        return InputError(f"{message} (command line)")
    if env_depth == best:
        return InputError(f"environment variable {variable}: {message}")
    assert config is not None
    return InputError(message, path=config.path, line=line_of(config.node, location))


def _without_backend_tag(location: tuple[Any, ...]) -> tuple[Any, ...]:
    """`renderer.typographic.size` -> `renderer.size`: the union's tag is not a key users write."""
    if (
        len(location) > 1
        and location[0] in ("composer", "renderer")
        and location[1] in registry(location[0]).names()
    ):
        return (location[0], *location[2:])
    return location


def _environment_variable(location: tuple[Any, ...]) -> tuple[str | None, int]:
    """The MIRBENCH_* variable that sets the longest prefix of `location`, and that length."""
    names = {name.upper(): name for name in os.environ if name.upper().startswith(_ENV_PREFIX)}
    keys = [str(part).upper() for part in location]
    under = _ENV_PREFIX + "__".join(keys) + "__"
    nested = next((names[name] for name in sorted(names) if keys and name.startswith(under)), None)
    if nested is not None:
        return nested, len(keys)
    for depth in range(len(keys), 0, -1):
        name = _ENV_PREFIX + "__".join(keys[:depth])
        if name in names:
            return names[name], depth
    return None, 0


def _dict_depth(values: Any, location: tuple[Any, ...]) -> int:
    depth = 0
    for key in location:
        if not isinstance(values, dict) or key not in values:
            break
        values = values[key]
        depth += 1
    return depth
