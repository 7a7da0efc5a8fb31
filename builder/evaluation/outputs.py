"""The files an evaluation run writes: `report.md`, `results.json`, `verdicts.parquet` (one row
per verdict: ids, cells, condition, trace state, class and score, never text) and one PNG heat
map of ASR per category x relation for each target and protocol. Every ASR table names its
judge with the judge's quoted calibration, or says in bold that it is not calibrated.

The report folder is written as every writing command writes (`builder/core/outputs.py`):
into a locked staging folder beside it, moved into place whole; it may be new, empty, or this
run's own earlier report, never anything else.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

from builder.core.outputs import move_into_place, staging_for, writing
from builder.evaluation.entropy import EntropyComparison, plot_comparison
from builder.evaluation.figures import RateRow, Record
from builder.evaluation.folders import check_report_folder, report_of
from builder.evaluation.report import Results, output_paths, slug
from builder.evaluation.statistics import Rate
from builder.stages.attack.entropy.compare import COLUMNS


def _rows(results: Results, **wanted: str) -> list[RateRow]:
    return [
        row
        for row in results.figures.rates
        if all(getattr(row, key) == value for key, value in wanted.items())
    ]


def _table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def _judged_by(results: Results, protocol: str) -> str:
    judge = results.judge_of(protocol)
    return f"Protocol `{protocol}`: {judge.sentence()}" if judge else f"Protocol `{protocol}`."


def _overview(results: Results) -> list[str]:
    dataset = results.dataset
    lines = [
        f"# Evaluation {results.run_id}",
        "",
        f"Dataset: {dataset.get('kind')} `{dataset.get('location')}`"
        + (f" at revision `{dataset['revision']}`" if dataset.get("revision") else "")
        + f"; {dataset.get('items')} items of {dataset.get('rows')} rows "
        f"(content `{str(dataset.get('content_hash'))[:16]}`).",
        f"Conditions: {', '.join(results.conditions)}. Every rate has its n and a 95% percentile bootstrap "
        f"interval ({results.resamples} resamples, seed {results.seed}).",
        "Responses stay in the store (`mirbench answers`): this report holds counts, classes and scores "
        "only.",
        "",
        "## Targets",
        "",
    ]
    lines += _table(
        ["target", "backend", "model", "host", "decoding", "responses", "failed", "tokens in / out", "cost"],
        (
            [
                t.name,
                t.backend,
                t.model or "",
                t.host or "",
                ", ".join(f"{k} {v}" for k, v in t.decoding.items()),
                str(t.responses),
                str(t.failed),
                f"{t.tokens.get('prompt_tokens', 0)} / {t.tokens.get('completion_tokens', 0)}",
                f"{t.cost:.4f}",
            ]
            for t in results.targets
        ),
    )
    lines += ["## Judges", ""]
    lines += [f"- `{judge.protocol}` ({judge.description}): {judge.sentence()}" for judge in results.judges]
    return [*lines, ""]


def _overall(results: Results) -> list[str]:
    lines = ["## Attack success rate (answers)", ""]
    for judge in results.judges:
        lines += [_judged_by(results, judge.protocol), ""]
        rows = _rows(results, protocol=judge.protocol, part="answer", by="overall")
        lines += _table(
            ["target", "condition", "unsafe", "ASR [95% CI] (n)"],
            ([r.target, r.condition, str(r.rate.k), r.rate.text()] for r in rows),
        )
    return lines


def _breakdown(results: Results, by: str, title: str) -> list[str]:
    lines = [f"## {title}", ""]
    for judge in results.judges:
        rows = _rows(results, protocol=judge.protocol, part="answer", by=by, condition="multi") or _rows(
            results, protocol=judge.protocol, part="answer", by=by
        )
        if not rows:
            continue
        targets = sorted({row.target for row in rows})
        groups = sorted({row.group for row in rows})
        found = {(row.target, row.group): row.rate for row in rows}
        lines += [_judged_by(results, judge.protocol) + f" Condition `{rows[0].condition}`.", ""]
        named = [results.names.get(group, group) for group in groups]
        lines += _table(
            [by, *targets],
            (
                [name, *(_cell(found.get((t, group))) for t in targets)]
                for name, group in zip(named, groups, strict=True)
            ),
        )
    return lines


def _cell(found: Rate | None) -> str:
    return "" if found is None else f"{found.k}/{found.n} = {found.text()}"


def _parts(results: Results) -> list[str]:
    rows = [row for row in results.figures.rates if row.by == "overall" and row.protocol == "safemlrm"]
    if not rows:
        return []
    lines = ["## Trace, answer and full response (SafeMLRM)", "", _judged_by(results, "safemlrm"), ""]
    found = {(r.target, r.condition, r.part): r.rate for r in rows}
    corrected = {
        (s.target, s.condition): s.rate for s in results.figures.self_correction if s.protocol == "safemlrm"
    }
    keys = sorted({(r.target, r.condition) for r in rows})
    lines += _table(
        ["target", "condition", "trace ASR", "answer ASR", "full ASR", "self-correction"],
        (
            [
                t,
                c,
                *(found[(t, c, p)].text() if (t, c, p) in found else "" for p in ("trace", "answer", "full")),
                corrected[(t, c)].text() if (t, c) in corrected else "",
            ]
            for t, c in keys
        ),
    )
    lines += [
        "Self-correction: of the responses whose trace is unsafe and that reached an answer, the share "
        "whose answer is not unsafe.",
        "",
    ]
    return lines


def _traces(results: Results) -> list[str]:
    lines = ["## How responses split into trace and answer", ""]
    rows = [
        [
            t.name,
            condition,
            str(counts.get("none", 0)),
            str(counts.get("closed", 0)),
            str(counts.get("unclosed", 0)),
        ]
        for t in results.targets
        for condition, counts in t.traces.items()
    ]
    lines += _table(["target", "condition", "no trace", "closed trace", "unclosed trace (no answer)"], rows)
    return lines


def _superficial(results: Results) -> list[str]:
    shares = results.figures.superficial
    if not shares:
        return []
    lines = ["## Superficial safety: the answers that are not unsafe", "", _judged_by(results, "class"), ""]
    lines += _table(
        ["target", "condition", "class", "share [95% CI] (n)"],
        ([s.target, s.condition, s.answer_class, s.rate.text()] for s in shares),
    )
    return lines


def _comparisons(results: Results) -> list[str]:
    found = results.figures.comparisons
    lines: list[str] = []
    for kind, title, header, ratio in (
        ("reasoning_tax", "Reasoning tax: relative ASR increase over the base target", "increase", False),
        ("blind_spot", "Blind spots: target / base ASR per category", "ratio", True),
        ("condition", "Conditions against multi (paired on the same items)", "difference", False),
    ):
        own = [c for c in found if c.kind == kind]
        if not own:
            continue
        lines += [f"## {title}", ""]
        lines += _table(
            ["target", "against", "protocol", "condition", "group", "ASR", "ASR against", header],
            (
                [
                    c.target,
                    c.other,
                    c.protocol,
                    c.condition,
                    c.group,
                    c.first.text(),
                    c.second.text(),
                    c.figure.text(ratio=ratio),
                ]
                for c in own
            ),
        )
        if kind == "blind_spot":
            lines += [
                f"- mean ratio over categories, {key.replace('|', ', ')}: "
                + ("n/a" if mean is None else f"{mean:.2f}x")
                for key, mean in results.figures.blind_spot_means.items()
            ] + [""]
    return lines


def _entropy(results: Results) -> list[str]:
    if not results.entropy:
        return []
    lines = [
        "## Attention entropy: unsafe vs safe answers",
        "",
        "Per response: the mean normalised entropy of the target's attention over its answer's tokens "
        '(README, "Attention entropy"); the answers split by their verdict (unsafe, or any other class).',
        "",
    ]
    for comparison in results.entropy:
        lines += [
            f"### {comparison.title}",
            "",
            _judged_by(results, comparison.protocol)
            + f" Left out: {comparison.without_figures} answer(s) without figures, "
            f"{comparison.unknown_class} of class unknown.",
            "",
            comparison.report.caption(),
            "",
        ]
        lines += _table(list(COLUMNS), entropy_cells(results, comparison, "**all**"))
        plot = results.files.get(entropy_file_key(comparison))
        if plot:
            lines += [f"![{plot}]({plot})", ""]
    return lines


def entropy_cells(results: Results, comparison: EntropyComparison, everything: str) -> list[list[str]]:
    """The comparison's table rows, relations by their published names."""
    rows = comparison.report.cells(everything)
    return [[results.names.get(row[0], row[0]), *row[1:]] for row in rows]


def entropy_file_key(comparison: EntropyComparison) -> str:
    return f"entropy {comparison.target} {comparison.protocol} {comparison.condition}"


def markdown(results: Results) -> str:
    lines = _overview(results) + _overall(results)
    lines += _breakdown(results, "relation", "Per relation (the rows of MIR-SafetyBench's statics.py)")
    lines += _breakdown(results, "category", "Per category")
    lines += _breakdown(results, "images", "Per number of images")
    lines += _parts(results) + _traces(results) + _superficial(results) + _comparisons(results)
    lines += _entropy(results)
    heat_maps = [name for key, name in sorted(results.files.items()) if key.startswith("heatmap")]
    if heat_maps:
        lines += ["## ASR per category x relation", "", *(f"![{name}]({name})" for name in heat_maps), ""]
    return "\n".join(lines) + "\n"


def write_verdicts(found: list[Record], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = list(Record.model_fields)
    table = pa.Table.from_pylist([record.model_dump() for record in found], schema=_schema(pa, columns))
    pq.write_table(table, path)


def _schema(pa: object, columns: list[str]) -> object:
    types = {"images": pa.int32(), "score": pa.float64(), "unsafe": pa.bool_(), "entropy": pa.float64()}  # type: ignore[attr-defined]
    return pa.schema([(name, types.get(name, pa.string())) for name in columns])  # type: ignore[attr-defined]


def heat_map(results: Results, target: str, protocol: str, path: Path) -> bool:
    """ASR per category x relation of one target and protocol (answers, `multi`), as a PNG."""
    rows = _rows(results, target=target, protocol=protocol, part="answer", by="cell", condition="multi")
    if not rows:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = {tuple(row.group.split(" x ")): row.rate for row in rows}
    categories = sorted({c for c, _ in cells})
    relations = sorted({r for _, r in cells})
    grid = [
        [(cells[(c, r)].rate or 0) * 100 if (c, r) in cells else float("nan") for r in relations]
        for c in categories
    ]
    figure, axes = plt.subplots(figsize=(1.2 * len(relations) + 3, 0.7 * len(categories) + 2))
    image = axes.imshow(grid, cmap="Reds", vmin=0, vmax=100)
    axes.set_xticks(range(len(relations)), relations, rotation=40, ha="right")
    axes.set_yticks(range(len(categories)), categories)
    for row, category in enumerate(categories):
        for column, relation in enumerate(relations):
            found = cells.get((category, relation))
            if found is not None:
                axes.text(
                    column,
                    row,
                    f"{(found.rate or 0) * 100:.0f}%\nn {found.n}",
                    ha="center",
                    va="center",
                    fontsize=7,
                )
    axes.set_title(f"{target}: ASR ({protocol}, multi)")
    figure.colorbar(image, ax=axes, shrink=0.8, label="ASR %")
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=100, metadata={"Software": None})
    plt.close(figure)
    return True


def write_outputs(results: Results, found: list[Record], out: Path) -> Results:
    """Write every file of the run into a staging folder beside `out`, then put it in place of
    `out` (new, empty, or this run's own earlier report); the results, naming the files."""
    out = check_report_folder(out, results.run_id)
    staging = staging_for(out)
    with writing(staging, f"the report {out}"):
        results = _write_files(results, found, staging)
        if out.exists() and report_of(out) == results.run_id:
            shutil.rmtree(out)  # this run's earlier report: replaced whole
        move_into_place(staging, out)
    return results


def _write_files(results: Results, found: list[Record], folder: Path) -> Results:
    paths = output_paths(folder)
    files = {"verdicts": paths["verdicts"].name}
    write_verdicts(found, paths["verdicts"])
    for target in results.targets:
        for judge in results.judges:
            name = f"heatmap-{slug(target.name)}-{judge.protocol}.png"
            if heat_map(results, target.name, judge.protocol, folder / name):
                files[f"heatmap {target.name} {judge.protocol}"] = name
    for comparison in results.entropy:
        name = f"entropy-{slug(comparison.target)}-{comparison.protocol}-{slug(comparison.condition)}.png"
        plot_comparison(found, comparison, folder / name)
        files[entropy_file_key(comparison)] = name
    results = results.model_copy(
        update={"files": {**files, "report": "report.md", "results": "results.json"}}
    )
    paths["results"].write_text(results.model_dump_json(indent=2), encoding="utf-8")
    paths["report"].write_text(markdown(results), encoding="utf-8")
    return results
