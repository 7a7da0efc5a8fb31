"""`mirbench judge calibrate` as the calibration tests call it: a labelled file written here,
the real CLI, its `--json` report read back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from builder.cli import app


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def run_calibrate(tmp_path: Path, *arguments: str) -> tuple[int, str, dict[str, Any]]:
    """Exit code, output (white space collapsed) and the `--json` report ({} if none)."""
    report = tmp_path / "report.json"
    report.unlink(missing_ok=True)
    result = CliRunner().invoke(
        app, ["judge", "calibrate", *arguments, "--artifacts", str(tmp_path / "a"), "--json", str(report)]
    )
    found = json.loads(report.read_text()) if report.exists() else {}
    return result.exit_code, " ".join(result.output.split()), found
