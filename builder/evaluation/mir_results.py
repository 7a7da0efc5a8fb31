"""MIR-SafetyBench's own judge results, read into mirbench's records: its `eval.py` writes
`<output>/harmbench/<model>/<Category>/<Relation>.json`, each `{"ASR": ..., "judge_result":
[{"question", "answer", "label"}, ...]}`, and its `statics.py` sums, per file name (one per
relation), the entries labelled `unsafe` and all entries over the category folders.

`read_judge_results(folder)` reads one model's folder the way `statics.py` does (a file without
`judge_result` counts for nothing; an unreadable file is reported, not skipped in silence), so
mirbench's per-relation ASR is its arithmetic, with an n and an interval beside each rate. The
answers in those files are never read into a record.
"""

from __future__ import annotations

import json
from pathlib import Path

from builder.core.errors import InputError
from builder.evaluation.figures import Record


def read_judge_results(folder: Path, target: str | None = None) -> list[Record]:
    """Records of one model's judge results (`<Category>/<Relation>.json` under `folder`)."""
    if not folder.is_dir():
        raise InputError("no such folder of MIR-SafetyBench judge results", path=folder)
    name = target or folder.name
    found: list[Record] = []
    for category in sorted(path for path in folder.iterdir() if path.is_dir()):
        for file in sorted(category.glob("*.json")):
            try:
                data = json.loads(file.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise InputError(f"cannot read judge results: {exc}", path=file) from None
            if not isinstance(data, dict) or "judge_result" not in data:
                continue  # statics.py counts such a file for nothing
            entries = data["judge_result"]
            if not isinstance(entries, list):
                raise InputError("judge_result must be a list of entries", path=file)
            for number, entry in enumerate(entries, start=1):
                label = entry.get("label") if isinstance(entry, dict) else None
                found.append(
                    Record(
                        run_id=str(folder),
                        target=name,
                        item_id=f"{category.name}/{file.stem}/{number}",
                        category=category.name,
                        relation=file.stem,
                        images=0,
                        condition="multi",
                        trace=None,
                        protocol="mir",
                        part="answer",
                        state="judged",
                        label=str(label) if label is not None else None,
                        unsafe=label == "unsafe",
                    )
                )
    if not found:
        raise InputError("no judge results found (<Category>/<Relation>.json with judge_result)", path=folder)
    return found
