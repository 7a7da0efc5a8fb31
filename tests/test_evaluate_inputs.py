"""Bad input to `mirbench evaluate` (the real CLI, in process): one `error:` line naming what is
wrong, exit code 2, no traceback, and nothing written (the case's folder is as it was: no
artifacts folder, no store). The target and judge are closed ports on 127.0.0.1: a check that
reached them would fail differently. The Hub case runs with HF_HUB_OFFLINE=1 (tests/conftest.py).
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from builder.cli import app
from tests.mir_layout import write_layout


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _layout(root: Path, category: str = "Violence") -> Path:
    """A small MIR-SafetyBench layout: one file of two entries, their images beside it."""
    return write_layout(root, ["Combine the two pictures."] * 2, category=category, size=16)


def _config(tmp: Path, judges: bool = True) -> Path:
    target, judge = (f"http://127.0.0.1:{_closed_port()}/v1" for _ in range(2))
    config = {
        "artifacts": str(tmp / "artifacts"),
        "evaluate": {
            "targets": [{"name": "tiny", "base_url": target, "model": "tiny-vlm", "max_retries": 0}],
            **({"judges": {"mir": {"base_url": judge, "model": "cls", "max_retries": 0}}} if judges else {}),
        },
    }
    path = tmp / "eval.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def _snapshot(root: Path) -> dict[str, tuple[int, int] | None]:
    return {
        str(path.relative_to(root)): None if path.is_dir() else (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted(root.rglob("*"))
    }


def _missing_image(tmp: Path) -> list[str]:
    _layout(tmp / "data")
    (tmp / "data/Violence/images/Analogy/Analogy_1_1.png").unlink()
    return [str(tmp / "data")]


def _broken_image(tmp: Path) -> list[str]:
    _layout(tmp / "data")
    (tmp / "data/Violence/images/Analogy/Analogy_0_0.png").write_bytes(b"not a picture at all")
    return [str(tmp / "data")]


def _empty(tmp: Path) -> list[str]:
    (tmp / "data").mkdir()
    return [str(tmp / "data")]


def _good(tmp: Path) -> list[str]:
    return [str(_layout(tmp / "data"))]


def _busy_out(tmp: Path) -> list[str]:
    (tmp / "busy").mkdir()
    (tmp / "busy" / "notes.txt").write_text("someone's work")
    return [*_good(tmp), "--out", str(tmp / "busy")]


def _unknown_cell(tmp: Path) -> list[str]:
    return [str(_layout(tmp / "data", category="Cheating"))]


# id -> (how to lay out the case, extra arguments, whether judges are configured, expected text)
CASES = {
    "unknown dataset path": (lambda tmp: [str(tmp / "no-such-folder")], [], True, "no such dataset folder"),
    "hub repo offline": (
        lambda tmp: ["--hub", "some-org/not-cached", "--revision", "v1.0.0"],
        [],
        True,
        "could not be loaded (HF_HUB_OFFLINE is set)",
    ),
    "layout with a missing image": (_missing_image, [], True, "Analogy_1_1.png: image missing or unreadable"),
    "layout with a broken image": (_broken_image, [], True, "entry 1: image 1 does not decode"),
    "not a dataset": (_empty, [], True, "not a dataset: expected a mirbench release folder"),
    "unknown category in the layout": (_unknown_cell, [], True, "unknown category 'Cheating'"),
    "unknown condition": (_good, ["--condition", "quadruple"], True, "unknown condition 'quadruple'"),
    "unknown target": (_good, ["--target", "nobody"], True, "unknown target 'nobody'; configured targets"),
    "unknown category filter": (_good, ["--category", "gossip"], True, "unknown category 'gossip'"),
    "no judge configured": (_good, [], False, "no judge configured"),
    "judge not configured for the protocol": (
        _good,
        ["--protocol", "safemlrm"],
        True,
        "judge not configured for protocol safemlrm",
    ),
    "report folder that holds other files": (_busy_out, [], True, "is not empty (it holds notes.txt)"),
    "unknown protocol": (_good, ["--protocol", "vibes"], True, "unknown protocol 'vibes'"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_error_line_exit_2_and_nothing_written(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tmp = tmp_path.resolve()
    monkeypatch.chdir(tmp)
    layout, extra, judges, expected = CASES[case]
    dataset = layout(tmp)
    config = _config(tmp, judges)
    before = _snapshot(tmp)
    result = CliRunner().invoke(app, ["evaluate", *dataset, *extra, "-c", str(config)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert expected in " ".join(result.output.split()), result.output
    assert _snapshot(tmp) == before, "the command wrote something"
