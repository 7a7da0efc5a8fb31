"""What an evaluation run asks, checked before anything is written, then recorded in the store.

`check_request` reads every input and refuses bad input with one `InputError` (an unknown
dataset path, a Hub repo that cannot be reached, a layout with a missing image, an unknown
target, a protocol without a judge); it writes nothing. `open_evaluation` then stores the images,
records the run (or finds the unfinished run of the same plan, which it resumes), its items and
every response it will ask for, each with the key its answer will be cached under.

A plan is identified by what decides its figures: the items' content, the targets and the
judges (backend, model, decoding, prompt; not where they run), the conditions and protocols.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from builder.config.evaluation import PROTOCOL_JUDGES, TargetSettings
from builder.config.settings import Settings
from builder.config.taxonomy import Taxonomy, load_taxonomy
from builder.core.errors import InputError
from builder.evaluation import conditions
from builder.evaluation.folders import check_report_folder
from builder.evaluation.loading import Loaded, Selection, check, content_hash, store_images
from builder.evaluation.sources import Source, open_source
from builder.evaluation.traces import load_marker_sets
from builder.run.tasks import new_run_id
from builder.stages.attack import testers
from builder.stages.judge import RUNTIME_SETTINGS
from builder.stages.workspace import Workspace
from builder.store import Store


class EvaluationRequest(BaseModel):
    """What one `mirbench evaluate` asks for (conditions and protocols are in the settings)."""

    dataset: Path | None = None
    hub: str | None = None
    revision: str | None = None
    selection: Selection = Selection()
    targets: list[str] = []  # the configured targets to ask; empty: every one
    judge: bool = True  # False: collect responses only (a later run with judges pays nothing again)
    out: Path | None = None
    resume: str | None = None  # a run to go on with (`mirbench evaluate retry RUN`), finished or not


class EvaluationSpec(BaseModel):
    """What every task of one evaluation run needs to find its work: small and serializable."""

    settings: Settings
    run_id: str
    targets: list[str]
    protocols: list[str]
    out: Path
    resumed: bool = False

    @property
    def workspace(self) -> Workspace:
        return Workspace.of(self.settings, self.run_id)

    def target(self, name: str) -> TargetSettings:
        return next(target for target in self.settings.evaluate.targets if target.name == name)


@dataclass
class Checked:
    """A request whose every input was read and found good."""

    source: Source
    loaded: Loaded
    taxonomy: Taxonomy
    targets: list[TargetSettings]
    protocols: list[str]


def chosen_targets(settings: Settings, names: list[str]) -> list[TargetSettings]:
    configured = settings.evaluate.targets
    if not configured:
        raise InputError(
            "no target to evaluate: give --target-model (and --target-base-url), or list "
            "evaluate.targets in the config file"
        )
    known = [target.name for target in configured]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise InputError(f"unknown target {unknown[0]!r}; configured targets: {', '.join(known)}")
    return [target for target in configured if not names or target.name in names]


def chosen_protocols(settings: Settings, judge: bool) -> list[str]:
    """The protocols to judge with, each with a judge that can be reached; none if not `judge`."""
    evaluate = settings.evaluate
    if not judge:
        return []
    protocols = evaluate.chosen_protocols
    if not protocols:
        raise InputError(
            "no judge configured: set evaluate.judges.mir (the HarmBench classifier), .safemlrm or "
            ".class in the config file, or give --judge-model and --judge-base-url; --no-judge collects "
            "the responses only"
        )
    for protocol in protocols:
        entry = evaluate.judges.get(protocol)
        if entry is None:
            raise InputError(
                f"judge not configured for protocol {protocol}: set evaluate.judges.{protocol} "
                f"(backend {PROTOCOL_JUDGES[protocol]}, base_url, model) in the config file"
            )
        members = getattr(entry, "ensemble", None) or [entry]
        for member in members:
            base_url, key_env = getattr(member, "base_url", ""), getattr(member, "api_key_env", None)
            if key_env and not base_url and not os.environ.get(key_env):
                raise InputError(
                    f"judge not configured for protocol {protocol}: {member.backend} has no base_url "  # type: ignore[attr-defined]
                    f"and {key_env} is not set"
                )
    return protocols


def check_request(settings: Settings, request: EvaluationRequest) -> Checked:
    """Every input of the request, read and checked; nothing is written."""
    if settings.runner.kind == "dask" and settings.resolved_database_url.startswith("sqlite"):
        raise InputError(
            "the dask runner runs tasks in several processes, which SQLite cannot serve: use PostgreSQL"
        )
    if (request.dataset is None) == (request.hub is None):
        raise InputError("name one dataset: a folder (release or MIR layout), or --hub ORG/NAME")
    taxonomy = load_taxonomy(settings.taxonomy)
    load_marker_sets(settings.taxonomy, settings.evaluate.trace_markers)
    targets = chosen_targets(settings, request.targets)
    protocols = chosen_protocols(settings, request.judge)
    if request.out is not None:
        check_report_folder(request.out, request.resume)
    source = open_source(request.dataset, request.hub, request.revision)
    loaded = check(source, taxonomy, request.selection)
    return Checked(source, loaded, taxonomy, targets, protocols)


def _decisive(settings: Any) -> dict[str, Any]:
    """A backend's settings without where and how fast it runs."""
    dumped = settings.model_dump(mode="json")
    return {key: value for key, value in dumped.items() if key not in RUNTIME_SETTINGS}


def plan_of(settings: Settings, checked: Checked, request: EvaluationRequest) -> dict[str, Any]:
    evaluate = settings.evaluate
    return {
        "dataset": checked.loaded.content_hash,
        "selection": request.selection.model_dump(mode="json"),
        "targets": {target.name: _decisive(target.tester) for target in checked.targets},
        "conditions": evaluate.conditions,
        "protocols": {protocol: _decisive(evaluate.judges[protocol]) for protocol in checked.protocols},
        "grid_cell": evaluate.grid_cell,
    }


def open_evaluation(settings: Settings, request: EvaluationRequest, checked: Checked) -> EvaluationSpec:
    """Store the images, record the run (or resume the unfinished run of this plan), its items
    and every response it asks for."""
    settings = settings.model_copy(update={"artifacts": settings.artifacts.resolve()})
    settings.artifacts.mkdir(parents=True, exist_ok=True)
    plan = plan_of(settings, checked, request)
    plan_hash = hashlib.sha256(json.dumps(plan, sort_keys=True).encode()).hexdigest()
    with Store(settings.resolved_database_url) as store:
        resumed = _resumed(store, request.resume, plan_hash)
        run_id = resumed or f"eval-{new_run_id()}"
        if resumed is None:
            dataset = {
                **checked.loaded.source,
                "rows": checked.loaded.rows,
                "items": len(checked.loaded.items),
                "content_hash": checked.loaded.content_hash,
                "request": request.model_dump(mode="json", exclude={"resume"}),
            }
            store.start_evaluation(run_id, plan_hash, dataset, plan)
    spec = EvaluationSpec(
        settings=settings,
        run_id=run_id,
        targets=[target.name for target in checked.targets],
        protocols=checked.protocols,
        out=(request.out or settings.artifacts / "evaluations" / run_id).resolve(),
        resumed=resumed is not None,
    )
    store_images(checked.source, checked.loaded, settings.artifacts)
    _record_plan(spec, checked)
    return spec


def _resumed(store: Store, run_id: str | None, plan_hash: str) -> str | None:
    """The run this one goes on with: the one named (its plan unchanged), else the latest
    unfinished run of the same plan."""
    if run_id is None:
        return store.unfinished_evaluation(plan_hash)
    run = store.evaluation_run(run_id)
    if run is None:
        raise InputError(f"no evaluation run {run_id!r}; `mirbench evaluate runs` lists them")
    if run.plan_hash != plan_hash:
        raise InputError(
            f"run {run_id} was planned with other targets, judges, conditions or items than the "
            "configuration gives now: evaluate again (a new run pays only for what is new)"
        )
    store.reopen_evaluation(run_id)
    return run_id


def _record_plan(spec: EvaluationSpec, checked: Checked) -> None:
    workspace = spec.workspace
    items = checked.loaded.items
    workspace.store.save_evaluation_items(
        [
            {
                "run_id": spec.run_id,
                "item_id": item.id,
                "content_hash": content_hash(item),
                "category": item.category,
                "relation": item.relation,
                "num_images": len(item.slots),
                "data": item.model_dump_json(),
            }
            for item in items
        ]
    )
    evaluate = spec.settings.evaluate
    views = [  # each view once (a `single` grid is composed once), whatever the targets
        (item, label, conditions.view(item, label, workspace.artifacts, evaluate.grid_cell))
        for item in items
        for label in conditions.labels(item, evaluate.conditions)
    ]
    rows = []
    for target in checked.targets:
        tester = workspace.backend(testers, target.tester)
        for item, label, shown in views:
            rows.append(
                {
                    "run_id": spec.run_id,
                    "target": target.name,
                    "item_id": item.id,
                    "condition": label,
                    "answer_key": tester.answer_key(shown),
                    "state": "pending",
                    "attempts": 0,
                }
            )
    workspace.store.plan_responses(rows)
