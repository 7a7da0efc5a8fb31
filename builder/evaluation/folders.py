"""Where a run's report goes: a new or empty folder, or the one that holds this run's own earlier
report (a rerun of the run replaces it whole). Nothing else is ever written over, as with every
writing command (`builder/core/outputs.py`)."""

from __future__ import annotations

import json
from pathlib import Path

from builder.core.outputs import check_new_folder


def report_of(out: Path) -> str | None:
    """The run whose report a folder holds (its results.json names it), if any."""
    try:
        return json.loads((out / "results.json").read_text(encoding="utf-8")).get("run_id")
    except (OSError, ValueError, AttributeError):
        return None


def check_report_folder(out: Path, run_id: str | None) -> Path:
    """`out` if a run's report may go there: a new or empty folder, or the one that holds this
    run's own earlier report (which a rerun replaces). Nothing else is ever written over."""
    out = Path(out).absolute()
    if run_id is not None and out.is_dir() and report_of(out) == run_id:
        return out
    return check_new_folder(out)
