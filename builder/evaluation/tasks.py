"""The work behind each orchestrated task of an evaluation: ask a target, judge a protocol.

Tasks take the run's small spec and response ids. A target's answers are saved by its tester
as each arrives (its response cache, the store's answers table), so a run killed at any moment
and run again asks nothing twice: what was answered is replayed, only the rest is sent. Judges
cache their answers the same way. Each task then records what may be reported: the response's
state, how its trace split and its measurements; each verdict with its judge's config hash.
"""

from __future__ import annotations

import json
from typing import Any

from builder.core.items import Item
from builder.core.progress import track
from builder.evaluation import conditions
from builder.evaluation.outputs import write_outputs
from builder.evaluation.plan import EvaluationSpec
from builder.evaluation.protocols import parts_to_judge
from builder.evaluation.report import Results, collect, records
from builder.evaluation.traces import MarkerSet, Split, load_marker_sets, split
from builder.models.replies import details_key
from builder.stages.attack import Answer, Failure, testers
from builder.stages.judge import RATIONALE_CHARS, Assessment, Case, Judge, judges
from builder.store.schema import EvaluationResponseRow, _now

ASKED = ("pending", "failed")  # states a run asks (again)


def _marker_sets(spec: EvaluationSpec) -> list[MarkerSet]:
    settings = spec.settings
    return spec.workspace.once(
        "marker sets", lambda: load_marker_sets(settings.taxonomy, settings.evaluate.trace_markers)
    )


def _items(spec: EvaluationSpec, rows: list[EvaluationResponseRow]) -> dict[str, Item]:
    found = spec.workspace.store.evaluation_items(spec.run_id, sorted({row.item_id for row in rows}))
    return {row.item_id: Item.model_validate_json(row.data) for row in found}


def pending_responses(spec: EvaluationSpec, target: str) -> list[int]:
    """The responses of `target` still to be asked (never asked, killed, or failed), in id order."""
    rows = spec.workspace.store.responses(spec.run_id, ASKED)
    return [row.id for row in rows if row.target == target]


def details_of(spec: EvaluationSpec, keys: list[str]) -> dict[str, dict[str, Any]]:
    """The details the target's client cached beside each answer (extra fields, usage, finish)."""
    stored = spec.workspace.store.answers([details_key(key) for key in keys])
    return {key: json.loads(stored[details_key(key)]) for key in keys if details_key(key) in stored}


def split_response(text: str, details: dict[str, Any] | None, sets: list[MarkerSet]) -> Split:
    details = details or {}
    truncated = details.get("finish_reason") == "length"
    return split(text, details.get("fields") or {}, sets, truncated=truncated)


def ask(spec: EvaluationSpec, target: str, ids: list[int]) -> dict[str, int]:
    """Ask `target` the responses `ids` still waiting; record each one's state and trace."""
    workspace = spec.workspace
    store = workspace.store
    rows = [row for row in store.responses(spec.run_id, ASKED, ids=ids) if row.target == target]
    if not rows:
        return {"asked": 0}
    items = _items(spec, rows)
    cell = spec.settings.evaluate.grid_cell
    shown = [conditions.view(items[row.item_id], row.condition, workspace.artifacts, cell) for row in rows]
    tester = workspace.backend(testers, spec.target(target).tester)
    advance = track(f"ask {target}", len(rows))
    with workspace.turn(tester):
        answers = tester.attack(shown, lambda: advance(1))
    keys = [answer.key for answer in answers if isinstance(answer, Answer)]
    texts, details = store.answers(keys), details_of(spec, keys)
    measured = store.answer_measurements(keys)  # what an in-process tester measured (entropy)
    sets = _marker_sets(spec)
    changes, counts = [], {"answered": 0, "replayed": 0, "failed": 0}
    for row, answer in zip(rows, answers, strict=True):
        if isinstance(answer, Failure):
            counts["failed"] += 1
            changes.append(
                {
                    "id": row.id,
                    "state": "failed",
                    "attempts": row.attempts + 1,
                    "failure_reason": answer.reason,
                    "failure_detail": answer.detail[:2000],
                }
            )
            continue
        counts["replayed" if answer.cached else "answered"] += 1
        parts = split_response(texts.get(answer.key, ""), details.get(answer.key), sets)
        usage = (details.get(answer.key) or {}).get("usage") or {}
        measurements = {**usage, **measured.get(answer.key, {})} or None
        changes.append(
            {
                "id": row.id,
                "state": "answered",
                "answer_key": answer.key,
                "trace": parts.state,
                "trace_markers": parts.markers,
                "attempts": row.attempts + (0 if answer.cached else 1),
                "failure_reason": None,
                "failure_detail": None,
                "answered_at": _now(),
                **({"measurements": json.dumps(measurements, sort_keys=True)} if measurements else {}),
            }
        )
    store.update_responses(changes)
    return counts


def pending_judgements(spec: EvaluationSpec, protocol: str) -> list[int]:
    """Answered responses `protocol` has not judged (or failed to judge), in id order."""
    store = spec.workspace.store
    done: dict[int, bool] = {}
    for verdict in store.verdicts(spec.run_id):
        if verdict.protocol == protocol:
            done[verdict.response_id] = done.get(verdict.response_id, True) and verdict.state != "failed"
    return [row.id for row in store.responses(spec.run_id, ["answered"]) if not done.get(row.id, False)]


def judge(spec: EvaluationSpec, protocol: str, ids: list[int]) -> dict[str, int]:
    """Judge the responses `ids` by `protocol`; save one verdict per part."""
    workspace = spec.workspace
    store = workspace.store
    rows = store.responses(spec.run_id, ["answered"], ids=ids)
    if not rows:
        return {"judged": 0}
    items = _items(spec, rows)
    texts = store.answers([row.answer_key for row in rows])
    details = details_of(spec, [row.answer_key for row in rows])
    sets, cell = _marker_sets(spec), spec.settings.evaluate.grid_cell
    judge_backend = workspace.backend(judges, spec.settings.evaluate.judges[protocol])
    verdicts: list[dict[str, Any]] = []
    cases: list[tuple[int, str, Case]] = []
    for row in rows:
        if row.answer_key not in texts:  # purged since it was answered: ask again
            store.update_responses([{"id": row.id, "state": "pending"}])
            continue
        parts = split_response(texts[row.answer_key], details.get(row.answer_key), sets)
        shown = conditions.view(items[row.item_id], row.condition, workspace.artifacts, cell)
        for part in parts_to_judge(protocol, parts, shown, row.target):
            if part.case is None:
                verdicts.append(_verdict(spec, judge_backend, row.id, protocol, part.part, state="unclosed"))
            else:
                cases.append((row.id, part.part, part.case))
    advance = track(f"judge {protocol}", len(cases))
    with workspace.turn(judge_backend):
        results = judge_backend.judge_many([case for _, _, case in cases], lambda: advance(1))
    for (response_id, part, _), result in zip(cases, results, strict=True):
        verdicts.append(_verdict(spec, judge_backend, response_id, protocol, part, result=result))
    store.save_verdicts(verdicts)
    return {"judged": len(cases), "failed": sum(isinstance(result, Failure) for result in results)}


def _verdict(
    spec: EvaluationSpec,
    judge_backend: Judge,
    response_id: int,
    protocol: str,
    part: str,
    *,
    state: str = "judged",
    result: Assessment | Failure | None = None,
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "response_id": response_id,
        "protocol": protocol,
        "part": part,
        "run_id": spec.run_id,
        "state": state,
        "label": None,
        "score": None,
        "unsafe": None if state == "judged" else False,
        "judge": judge_backend.name,
        "judge_version": judge_backend.version,
        "judge_model": ",".join(_models(judge_backend)) or None,
        "config_hash": judge_backend.config_hash,
        "rationale": "",
        "failure_detail": None,
        "judged_at": _now(),
    }
    if isinstance(result, Failure):
        row.update(state="failed", failure_detail=f"{result.reason}: {result.detail}"[:2000])
    elif isinstance(result, Assessment):
        row.update(
            label=result.answer_class,
            score=result.score,
            unsafe=result.answer_class == "unsafe",
            rationale=" ".join(result.rationale.split())[:RATIONALE_CHARS],
        )
    return row


def _models(judge_backend: Judge) -> list[str]:
    """The models behind a judge (an ensemble's members'): their cached answers hold rationales."""
    members = getattr(judge_backend, "members", None) or [judge_backend]
    return [member.model for member in members if member.model]


def finish(spec: EvaluationSpec) -> Results:
    """The run's figures and files; the run is recorded as finished with its counts."""
    store = spec.workspace.store
    store.finish_evaluation(spec.run_id, {})
    results = write_outputs(collect(spec), records(store, spec.run_id), spec.out)
    summary = {
        "out": str(spec.out),
        "targets": spec.targets,
        "protocols": spec.protocols,
        "failed_responses": results.failed_responses,
        "failed_judgements": results.failed_judgements,
        "pending": len(store.responses(spec.run_id, ["pending"])),
    }
    store.finish_evaluation(spec.run_id, summary)
    return results
