"""The card's account of the attack loop: one subsection per figure, in `SUBSECTIONS`' order.

Each subsection is a function of the release description that returns its Markdown (a `###`
heading and its body) or "" when it has nothing to say; a new figure is one function and one
entry in the list. Figures are classes and counts, never an answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from builder.release.cells import published
from builder.stages.ablation import AblationRate, AblationStage
from builder.stages.attack.summary import AttackSummary


def _model(use: dict[str, Any]) -> str:
    host = f" at {use['host']}" if use.get("host") else ""
    return f"`{use['model']}`{host}" if use.get("model") else f"`{use['backend']}` (no model)"


def attack_models(selection: list[dict[str, Any]]) -> tuple[dict[str, str], str | None]:
    """Each tester's model (by label) and the judge's, from the items' provenance."""
    uses = [use for entry in selection for use in entry["provenance"].get("models", [])]
    testers: dict[str, set[str]] = {}
    judges: set[str] = set()
    for use in uses:
        if use["role"] == "tester":
            testers.setdefault(use["name"], set()).add(_model(use))
        elif use["role"] == "judge":
            judges.add(
                f"the `{use['backend']}` judge" + (f" (model {_model(use)})" if use.get("model") else "")
            )
    named = {label: ", ".join(sorted(models)) for label, models in testers.items()}
    return named, "; ".join(sorted(judges)) or None


def attack_success(description: dict[str, Any]) -> str:
    attack = AttackSummary.model_validate(description.get("attack") or {})
    if not attack.items_judged:
        return ""
    testers, judge = attack_models(description["selection"])
    return f"### Construction-time attack success\n\n{attack.markdown(testers, judge)}"


def _released_checks(selection: list[dict[str, Any]]) -> tuple[int, int]:
    """Released items the needs-every-image check passed, and those it did not take."""
    checks = [
        verdict
        for entry in selection
        for verdict in entry["verdicts"]
        if verdict.get("stage") == AblationStage.name
    ]
    return sum(bool(v["passed"]) for v in checks), sum(bool(v.get("skipped")) for v in checks)


def every_image_needed(description: dict[str, Any]) -> str:
    attack = AttackSummary.model_validate(description.get("attack") or {})
    if not attack.items_judged:
        return ""
    rates = [AblationRate.model_validate(rate) for rate in description.get("ablation") or []]
    heading = "### Every image needed\n\n"
    if not any(rate.checked for rate in rates):
        return heading + (
            "**Not checked.** No candidate was asked again with an image left out "
            "(`attack.ablation: off`): an item may be answered unsafely from fewer than all of its "
            "images, against MIR-SafetyBench's design rule.\n"
        )
    passed, unchecked = _released_checks(description["selection"])
    lines = [
        "Each accepted candidate was asked again of the testers that made its attack work, with "
        "each image left out in turn (`attack.ablation`); one whose answer stayed unsafe without an "
        'image was rejected ("image k not needed") and composed again. Candidates of the released '
        "items' (seed, relation) pairs, every round:",
        "",
        "| relation | accepted by the attack policy | checked | every image needed | an image not needed |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {published(description, 'relations', r.relation)} | {r.accepted} | {r.checked} | "
            f"{r.passed} | {r.not_needed} |"
            for r in rates
        ),
        "",
        f"Released: {passed} item(s) checked, each needed every image"
        + (f"; **{unchecked} not checked** (`sample:N` took others)." if unchecked else "."),
    ]
    return heading + "\n".join(lines) + "\n"


SUBSECTIONS: list[Callable[[dict[str, Any]], str]] = [attack_success, every_image_needed]


def attack_section(description: dict[str, Any]) -> str:
    """The subsections that have something to say, each after a blank line ("" for none)."""
    parts = [part for part in (subsection(description) for subsection in SUBSECTIONS) if part]
    return "".join(f"\n{part}" for part in parts)
