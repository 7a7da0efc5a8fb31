"""An evaluation run's results: what was asked, who judged it (with the judge's calibration),
and every figure (`builder/evaluation/figures.py`). Counts, classes and scores only: a
response's text never reaches a report, a log or a file written here.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from builder.config.sections import CalibrationSettings
from builder.config.taxonomy import Taxonomy, load_taxonomy
from builder.evaluation.entropy import EntropyComparison, entropy_comparisons
from builder.evaluation.figures import Figures, Record, figures
from builder.evaluation.plan import EvaluationSpec
from builder.evaluation.protocols import DESCRIPTIONS
from builder.stages.attack import testers
from builder.stages.attack.entropy.measure import MEASUREMENT
from builder.stages.attack.summary import UNSAFE_ONLY, CalibrationSummary, JudgeOfRecord
from builder.stages.judge import judges
from builder.stages.judge.calibration.quote import quoted_calibrations
from builder.store import Store

DECODING = (
    "temperature",
    "max_tokens",
    "max_new_tokens",
    "do_sample",
    "system_prompt",
    "images",
    "attention_entropy",
)
SAMPLING = ("temperature",)  # shown only where the target samples
TOKENS = ("prompt_tokens", "completion_tokens", "reasoning_tokens")


class TargetSummary(BaseModel):
    name: str
    backend: str
    model: str | None
    host: str | None
    base: str | None
    decoding: dict[str, Any]
    responses: int = 0
    answered: int = 0
    failed: int = 0
    tokens: dict[str, int] = Field(default_factory=dict)
    cost: float = 0.0
    traces: dict[str, dict[str, int]] = Field(default_factory=dict)  # condition -> trace state -> n


class JudgeSummary(BaseModel):
    protocol: str
    description: str
    judge: str
    version: str
    model: str | None
    config_hash: str | None
    judgements: int = 0
    failed: int = 0
    # The quoted calibration counting `unsafe` as success (an evaluation's ASR), and the policies
    # this judge config was calibrated on instead, when it has none on that one.
    calibration: CalibrationSummary | None = None
    other_policies: list[tuple[str, ...]] = Field(default_factory=list)
    warn_kappa: float | None = None

    def sentence(self, bold: tuple[str, str] = ("**", "**")) -> str:
        record = JudgeOfRecord(
            name=self.judge,
            version=self.version,
            config_hash=self.config_hash,
            success=UNSAFE_ONLY,
            judgements=self.judgements,
            calibration=self.calibration,
            other_policies=self.other_policies,
            warn_kappa=self.warn_kappa,
        )
        return record.sentence(bold)


def with_calibrations(
    judges: list[JudgeSummary], store: Store, settings: CalibrationSettings
) -> list[JudgeSummary]:
    """Each judge with the calibration `calibration.quote` (or the largest n) gives it."""
    hashes = [judge.config_hash for judge in judges if judge.config_hash]
    quoted = quoted_calibrations(store, hashes, settings, strict=False)
    found = []
    for judge in judges:
        own = [c for c in quoted.calibrations if c.config_hash == (judge.config_hash or "")]
        match = next((c for c in own if c.positive_classes == UNSAFE_ONLY), None)
        others = [c.positive_classes for c in own if c is not match]
        update = {"calibration": match, "other_policies": others, "warn_kappa": quoted.warn_kappa}
        found.append(judge.model_copy(update=update))
    return found


class Results(BaseModel):
    run_id: str
    dataset: dict[str, Any]
    started_at: datetime
    finished_at: datetime | None = None
    conditions: list[str]
    targets: list[TargetSummary]
    judges: list[JudgeSummary]
    figures: Figures
    entropy: list[EntropyComparison] = Field(default_factory=list)  # targets that measure it
    resamples: int
    seed: int
    names: dict[str, str] = Field(default_factory=dict)  # category and relation slugs -> published names
    files: dict[str, str] = Field(default_factory=dict)

    @property
    def failed_responses(self) -> int:
        return sum(target.failed for target in self.targets)

    @property
    def failed_judgements(self) -> int:
        return sum(judge.failed for judge in self.judges)

    def judge_of(self, protocol: str) -> JudgeSummary | None:
        return next((judge for judge in self.judges if judge.protocol == protocol), None)


def _entropy(measurements: str | None) -> float | None:
    figures = (json.loads(measurements) if measurements else {}).get(MEASUREMENT) or {}
    value = figures.get("entropy")
    return float(value) if isinstance(value, int | float) else None


def records(store: Store, run_id: str) -> list[Record]:
    """Every verdict of a run with what reports group by (no text)."""
    responses = {row.id: row for row in store.responses(run_id)}
    items = {row.item_id: row for row in store.evaluation_items(run_id)}
    entropies = {row.id: _entropy(row.measurements) for row in responses.values()}
    found = []
    for verdict in store.verdicts(run_id):
        response = responses[verdict.response_id]
        item = items[response.item_id]
        found.append(
            Record(
                run_id=run_id,
                target=response.target,
                item_id=response.item_id,
                category=item.category,
                relation=item.relation,
                images=item.num_images,
                condition=response.condition,
                trace=response.trace,
                protocol=verdict.protocol,
                part=verdict.part,
                state=verdict.state,
                label=verdict.label,
                score=verdict.score,
                unsafe=verdict.unsafe,
                entropy=entropies[verdict.response_id],
            )
        )
    return found


def _decoding(dumped: dict[str, Any]) -> list[str]:
    """The decoding settings a target's report shows (a greedy in-process one's temperature is moot)."""
    return [key for key in DECODING if not (key in SAMPLING and dumped.get("do_sample") is False)]


def _targets(spec: EvaluationSpec) -> list[TargetSummary]:
    store = spec.workspace.store
    rows = [row for row in store.responses(spec.run_id)]
    summaries = []
    for name in spec.targets:
        target = spec.target(name)
        use = spec.workspace.backend(testers, target.tester).use
        dumped = target.tester.model_dump(mode="json", exclude_none=True)
        summary = TargetSummary(
            name=name,
            backend=use.backend,
            model=use.model,
            host=use.host,
            base=target.base,
            decoding={key: dumped[key] for key in _decoding(dumped) if key in dumped},
        )
        tokens: Counter[str] = Counter()
        traces: dict[str, Counter[str]] = defaultdict(Counter)
        for row in rows:
            if row.target != name:
                continue
            summary.responses += 1
            summary.answered += row.state == "answered"
            summary.failed += row.state == "failed"
            if row.state == "answered":
                traces[row.condition.partition(":")[0]][row.trace or "none"] += 1
            measured = json.loads(row.measurements) if row.measurements else {}
            tokens.update(
                {key: int(measured[key]) for key in TOKENS if isinstance(measured.get(key), int | float)}
            )
        summary.tokens = dict(tokens)
        summary.cost = (
            tokens["prompt_tokens"] * target.price_per_1k_input
            + tokens["completion_tokens"] * target.price_per_1k_output
        ) / 1000
        summary.traces = {condition: dict(counts) for condition, counts in sorted(traces.items())}
        summaries.append(summary)
    return summaries


def _judges(spec: EvaluationSpec, found: list[Record]) -> list[JudgeSummary]:
    summaries = []
    for protocol in spec.protocols:
        judge = spec.workspace.backend(judges, spec.settings.evaluate.judges[protocol])
        own = [record for record in found if record.protocol == protocol]
        summaries.append(
            JudgeSummary(
                protocol=protocol,
                description=DESCRIPTIONS[protocol],
                judge=judge.name,
                version=judge.version,
                model=judge.model,
                config_hash=judge.config_hash,
                judgements=sum(r.state == "judged" for r in own),
                failed=sum(r.state == "failed" for r in own),
            )
        )
    return with_calibrations(summaries, spec.workspace.store, spec.settings.calibration)


def collect(spec: EvaluationSpec) -> Results:
    store = spec.workspace.store
    run = store.evaluation_run(spec.run_id)
    assert run is not None
    found = records(store, spec.run_id)
    evaluate = spec.settings.evaluate
    bases = {target.name: target.base for target in map(spec.target, spec.targets) if target.base}
    return Results(
        run_id=spec.run_id,
        dataset=json.loads(run.dataset),
        started_at=run.started_at,
        finished_at=run.finished_at,
        conditions=evaluate.conditions,
        targets=_targets(spec),
        judges=_judges(spec, found),
        figures=figures(found, bases, resamples=evaluate.resamples, seed=evaluate.seed),
        entropy=entropy_comparisons(found, resamples=evaluate.resamples, seed=evaluate.seed),
        resamples=evaluate.resamples,
        seed=evaluate.seed,
        names=published_names(load_taxonomy(spec.settings.taxonomy)),
    )


def published_names(taxonomy: Taxonomy) -> dict[str, str]:
    """Slug -> the name MIR-SafetyBench's folders and files use (`Temporal_Continuity`)."""
    return {
        **{slug: category.published_name for slug, category in taxonomy.categories.items()},
        **{slug: relation.published_name for slug, relation in taxonomy.relations.items()},
    }


def slug(name: str) -> str:
    """A target or protocol name as a file name part (model ids hold slashes)."""
    return "".join(character if character.isalnum() or character in "-_." else "-" for character in name)


def output_paths(out: Path) -> dict[str, Path]:
    return {
        "report": out / "report.md",
        "results": out / "results.json",
        "verdicts": out / "verdicts.parquet",
    }
