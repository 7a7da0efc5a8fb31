"""What a release says about itself: the dataset card, the changelog and the plot of items per cell.

Everything here is derived from the release description (the manifest less its file list), so
the card states what the items' provenance, verdicts and review rows say, not what the code
hopes. Names: the rows, the card and the MIR layout use MIR-SafetyBench's published names
(`Hate_Speech`, `Temporal_Continuity`); `manifest.json` uses mirbench's slugs, with the map.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import yaml
from pydantic import BaseModel

from builder import __version__
from builder.curation.provenance import seed_sources_markdown
from builder.run.picture_figures import PictureFigures
from builder.stages import pipeline
from builder.stages.attack.summary import AttackSummary
from builder.stages.render import draws_words

CITATION = """@article{mirsafetybench2026,
  title   = {MIR-SafetyBench: Multi-Image Reasoning Safety Benchmark for Multimodal Large Language Models},
  author  = {{thu-coai}},
  journal = {arXiv preprint arXiv:2601.14127},
  year    = {2026},
  url     = {https://arxiv.org/abs/2601.14127}
}"""


class Changes(BaseModel):
    previous: str | None
    added: list[str]
    removed: list[str]
    changed: list[str]
    cells: list[tuple[str, str, int, int]]  # category, relation, before, after (published names)
    taxonomy: list[str]
    config: list[str]
    markdown: str

    def summary(self) -> str:
        if self.previous is None:
            return "First release: no previous release to compare with."
        return (
            f"Since {self.previous}: {len(self.added)} item(s) added, {len(self.removed)} removed, "
            f"{len(self.changed)} changed; {len(self.taxonomy)} taxonomy change(s), "
            f"{len(self.config)} configuration change(s). See CHANGELOG.md."
        )


def _published(description: dict[str, Any], kind: str, slug: str) -> str:
    return description["names"][kind].get(slug, slug)


def _cell_counts(description: dict[str, Any]) -> dict[tuple[str, str], int]:
    return {
        (
            _published(description, "categories", cell["category"]),
            _published(description, "relations", cell["relation"]),
        ): cell["items"]
        for cell in description["cells"]
    }


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): value}


def _config_view(config: dict[str, Any]) -> dict[str, Any]:
    """A config flattened for comparison; build runs as the distinct values each setting took
    (run ids differ from release to release, settings rarely)."""
    runs = [run for run in (config.get("build_runs") or {}).values() if run]
    view = _flatten({key: value for key, value in config.items() if key != "build_runs"})
    for run in runs:
        for key, value in _flatten(run, "build.").items():
            view.setdefault(key, [])
            if value not in view[key]:
                view[key].append(value)
    return view


def _in_current_shape(previous: dict[str, Any], description: dict[str, Any]) -> dict[str, Any]:
    """A manifest written by mirbench 0.1.0 (no name maps, unprefixed row ids) in today's shape,
    so a store upgraded from 0.1.0 can write its next changelog."""
    if "names" in previous:
        return previous
    prefix = description["id_scheme"].split("<")[0]
    selection = [
        {**entry, "id": entry["id"] if entry["id"].startswith(prefix) else prefix + entry["id"]}
        for entry in previous["selection"]
    ]
    return {**previous, "names": description["names"], "selection": selection}


def changelog(description: dict[str, Any], previous: dict[str, Any] | None) -> Changes:
    """What changed from `previous` (a manifest) to this release."""
    version = description["version"]
    if previous is None:
        markdown = f"# Changelog\n\n## {version}\n\nFirst release: {description['items']} items.\n"
        return Changes(
            previous=None,
            added=[],
            removed=[],
            changed=[],
            cells=[],
            taxonomy=[],
            config=[],
            markdown=markdown,
        )
    previous = _in_current_shape(previous, description)
    now = {entry["id"]: entry["content_sha256"] for entry in description["selection"]}
    before = {entry["id"]: entry.get("content_sha256") for entry in previous["selection"]}
    added = sorted(set(now) - set(before))
    removed = sorted(set(before) - set(now))
    changed = sorted(i for i in set(now) & set(before) if now[i] != before[i])
    after_cells, before_cells = _cell_counts(description), _cell_counts(previous)
    cells = [
        (
            category,
            relation,
            before_cells.get((category, relation), 0),
            after_cells.get((category, relation), 0),
        )
        for category, relation in sorted(set(after_cells) | set(before_cells))
        if before_cells.get((category, relation), 0) != after_cells.get((category, relation), 0)
    ]
    taxonomy = []
    for kind in ("categories", "relations"):
        old, new = set(previous["names"][kind]), set(description["names"][kind])
        taxonomy += [
            f"{kind[:-1] if kind == 'relations' else 'category'} added: {s}" for s in sorted(new - old)
        ]
        taxonomy += [
            f"{kind[:-1] if kind == 'relations' else 'category'} removed: {s}" for s in sorted(old - new)
        ]
    if previous["taxonomy_hash"] != description["taxonomy_hash"] and not taxonomy:
        taxonomy.append("taxonomy files edited (definitions, guidance or templates)")
    old_config, new_config = _config_view(previous["config"]), _config_view(description["config"])
    config = [
        f"`{key}`: {old_config.get(key)!r} -> {new_config.get(key)!r}"
        for key in sorted(set(old_config) | set(new_config))
        if old_config.get(key) != new_config.get(key)
    ]
    lines = [
        "# Changelog",
        "",
        f"## {version} (since {previous['version']})",
        "",
        f"- items: {previous['items']} -> {description['items']}: {len(added)} added, "
        f"{len(removed)} removed, {len(changed)} changed",
        "",
    ]
    if cells:
        lines += [
            "### Items per cell that changed",
            "",
            "| category | relation | before | after |",
            "|---|---|---|---|",
        ]
        lines += [f"| {c} | {r} | {b} | {a} |" for c, r, b, a in cells]
        lines.append("")
    for title, entries in (("Taxonomy", taxonomy), ("Configuration", config)):
        lines += [f"### {title}", ""] + ([f"- {e}" for e in entries] or ["- no change"]) + [""]
    for title, ids in (("Added", added), ("Removed", removed), ("Changed", changed)):
        if ids:
            lines += [f"### {title} items", "", ", ".join(f"`{i}`" for i in ids), ""]
    return Changes(
        previous=previous["version"],
        added=added,
        removed=removed,
        changed=changed,
        cells=cells,
        taxonomy=taxonomy,
        config=config,
        markdown="\n".join(lines),
    )


def plot_cells(description: dict[str, Any], path: Any) -> None:
    """A heat map of items per (category, relation) cell, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = _cell_counts(description)
    categories = sorted({c for c, _ in counts})
    relations = sorted({r for _, r in counts})
    grid = [[counts.get((c, r), 0) for r in relations] for c in categories]
    figure, axes = plt.subplots(figsize=(1.1 * len(relations) + 2.5, 0.6 * len(categories) + 2))
    image = axes.imshow(grid, cmap="Blues", vmin=0)
    axes.set_xticks(range(len(relations)), relations, rotation=40, ha="right")
    axes.set_yticks(range(len(categories)), categories)
    for row, values in enumerate(grid):
        for column, value in enumerate(values):
            axes.text(column, row, str(value), ha="center", va="center", fontsize=8)
    axes.set_title(f"mirbench {description['version']}: items per cell")
    figure.colorbar(image, ax=axes, shrink=0.8)
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=100, metadata={"Software": None})
    plt.close(figure)


def _size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K")):
        if n < limit:
            return label
    return "100K<n<1M"


def _metadata(description: dict[str, Any]) -> dict[str, Any]:
    release = description["config"].get("release", {})
    return {
        "pretty_name": f"mirbench release {description['version']}",
        "license": release.get("license") or "unknown",
        "language": release.get("language") or ["en"],
        "task_categories": ["visual-question-answering", "image-text-to-text"],
        "size_categories": [_size_category(description["items"])],
        "tags": ["safety", "multimodal", "multi-image", "red-teaming", "jailbreak", "mir-safetybench"],
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": "train", "path": description["data_files"]}],
            }
        ],
        "extra_gated_heading": "Request access to a dataset of hidden harmful requests",
        "extra_gated_prompt": (
            "This dataset hides harmful questions (hate speech, violence, self-harm, illegal "
            "activities, harassment, privacy) in multi-image prompts, for testing the safety of "
            "multimodal models. Access is for safety research and evaluation only."
        ),
        "extra_gated_button_content": "I agree: safety research and evaluation only",
        "extra_gated_fields": {
            "Name": "text",
            "Affiliation": "text",
            "Intended use": {
                "type": "select",
                "options": [
                    "Safety evaluation of a model",
                    "Safety research",
                    "Red-teaming a system I operate",
                    "Other",
                ],
            },
            "I will not use this dataset to cause harm or to generate harmful content": "checkbox",
        },
    }


def _table(description: dict[str, Any]) -> str:
    counts = _cell_counts(description)
    categories = sorted({c for c, _ in counts})
    relations = sorted({r for _, r in counts})
    lines = [
        "| category | " + " | ".join(relations) + " | total |",
        "|---" * (len(relations) + 2) + "|",
    ]
    for category in categories:
        row = [counts.get((category, r), 0) for r in relations]
        lines.append(f"| {category} | " + " | ".join(map(str, row)) + f" | {sum(row)} |")
    totals = [sum(counts.get((c, r), 0) for c in categories) for r in relations]
    lines.append("| total | " + " | ".join(map(str, totals)) + f" | {sum(totals)} |")
    return "\n".join(lines)


MOSTLY_COPIED = 0.2  # above this share of keywords copied from the question, cards print the harm


def _funnel_table(description: dict[str, Any]) -> str:
    """How the candidates behind this release ended (manifests before 0.3 do not say)."""
    rows = description.get("funnel") or []
    if not rows:
        return ""
    lines = [f"| {'&nbsp;' * 4 * row['indent']}{row['label']} | {row['count']} |" for row in rows]
    return "\n## From candidates to items\n\n| candidates | count |\n|---|---:|\n" + "\n".join(lines) + "\n"


def _build_facts(description: dict[str, Any]) -> tuple[list[str], bool, bool]:
    """Bullet points on how the items were made, from their provenance and verdicts; whether the
    images show text; whether the items went through an attack loop."""
    selection = description["selection"]
    composers = Counter(
        entry["provenance"]["composer"]
        + (
            f" (model `{entry['provenance']['model_ids']['composer']}`)"
            if "composer" in entry["provenance"]["model_ids"]
            else ""
        )
        for entry in selection
    )
    renderers = Counter(entry["provenance"].get("renderer") or "unknown" for entry in selection)
    checks = sorted(
        {f"{v['name']}@{v['version']}" for entry in selection for v in entry["verdicts"] if v["passed"]}
    )
    # `skipped` is absent from manifests written before it existed; there, an off check was "passed"
    checks_off = Counter(
        f"{v['name']}@{v['version']}" for entry in selection for v in entry["verdicts"] if v.get("skipped")
    )
    typographic = any(draws_words(name) for name in renderers)
    attack_loop = pipeline.tester_stages()
    attacks = sorted(
        {
            f"{v['name']}@{v['version']}"
            for e in selection
            for v in e["verdicts"]
            if v.get("stage", v["name"]) in attack_loop  # releases before 0.2 named no stage
        }
    )
    review = description["review"]
    bulk = review["bulk_approved"]

    def counted(counter: Counter[str]) -> str:
        return "; ".join(f"`{name}` ({n} items)" for name, n in counter.most_common())

    facts = [
        f"**Composer** (writes the prompt and the image descriptions): {counted(composers)}.",
        f"**Renderer** (draws the images): {counted(renderers)}.",
        f"**Checks the items passed**: {', '.join(f'`{c}`' for c in checks) or 'none recorded'}.",
        f"**Checks that were off** (the items were not checked by them): {counted(checks_off)}."
        if checks_off
        else "**Checks that were off**: none.",
        f"**Attack loop**: tested with {', '.join(f'`{a}`' for a in attacks)}."
        if attacks
        else "**Attack loop: not tested against a model.** No target model was attacked and no judge "
        "decided success: items are not filtered by attack success, unlike MIR-SafetyBench.",
    ]
    if bulk:
        facts.append(
            f"**Review: {bulk} of {description['items']} items were approved in bulk "
            f"(`mirbench review approve --all`) without anyone looking at them.**"
        )
    else:
        facts.append(
            f"**Review**: every item was approved individually (reviewers: {', '.join(review['reviewers'])})."
        )
    pictures = PictureFigures.model_validate(description.get("pictures") or {})
    if pictures.slots:
        facts.append("**Pictures**: " + "; ".join(pictures.lines()) + ".")
    if pictures.licenses:
        licenses = ", ".join(f"{name} ({n} images)" for name, n in pictures.licenses.items())
        facts.append(f"**Picture licences**: {licenses}. {' '.join(pictures.attribution)}")
    copied = pictures.share_from_question > MOSTLY_COPIED
    if typographic:
        facts.append(
            "**The images are typographic cards** (offline renderer): each prints its slot's keywords "
            "and description, "
            + (
                "which are words of the harmful question. **These images are not benign on their own.**"
                if copied or not pictures.slots
                else "which name benign things, not words of the question."
            )
        )
    return facts, typographic and (copied or not pictures.slots), bool(attacks)


def _model(use: dict[str, Any]) -> str:
    host = f" at {use['host']}" if use.get("host") else ""
    return f"`{use['model']}`{host}" if use.get("model") else f"`{use['backend']}` (no model)"


def _attack_models(selection: list[dict[str, Any]]) -> tuple[dict[str, str], str | None]:
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


def render_card(description: dict[str, Any], changes: Changes) -> str:
    """The dataset card (README.md): YAML metadata, then what a reader must know."""
    version = description["version"]
    facts, typographic, attacked = _build_facts(description)
    images_claim = (
        "Here the images are typographic cards that show words of the question (see below)."
        if typographic
        else "The images are meant to be benign on their own; the harm appears when a model reasons "
        "across them."
    )
    mir = (
        "\nThis release also holds MIR-SafetyBench's own folder layout under `mir/` "
        "(`<Category>/<Relation>_final.json` + `<Category>/images/<Relation>/<Relation>_<id>_<k>.png`): "
        "`python eval.py --json_dir mir ...` reads it directly.\n"
        if "mir" in description["layouts"]
        else ""
    )
    untested = (
        ""
        if attacked
        else "- Not filtered by attack success against any model (see above): attack success rates on "
        "this\n  release are not comparable with MIR-SafetyBench's published ones.\n"
    )
    bullet_facts = "\n".join(f"- {fact}" for fact in facts)
    attack = AttackSummary.model_validate(description.get("attack") or {})
    testers, judge = _attack_models(description["selection"])
    attack_success = (
        f"\n### Construction-time attack success\n\n{attack.markdown(testers, judge)}"
        if attack.items_judged
        else ""
    )
    metadata = yaml.safe_dump(_metadata(description), sort_keys=False, allow_unicode=True, width=100)
    return f"""---
{metadata}---

# mirbench release {version}

> **Content warning.** Every item encodes a harmful request (hate speech, violence, self-harm,
> illegal activities, harassment, privacy), hidden in a relation between 2-4 images. {images_claim}
> Use only for safety evaluation and research; never to obtain harmful answers.

{description["items"]} items built with mirbench {__version__}, in the row format of MIR-SafetyBench
(`id, category, relationship_type, original_question, revised_prompt, image_descriptions,
image_keywords, images, num_images, iteration`), so its own `extract_data.py` and `eval.py` read
this release unchanged. `manifest.json` lists every item with its verdicts and provenance, the
checksums of every file, and the configuration that produced them.

## Changes

{changes.summary()}

## How this release was built

{bullet_facts}

`iteration` is the round in which an item was accepted (a rejected candidate comes back with the
reasons as feedback, up to a cap).
{_funnel_table(description)}{attack_success}
## Items per cell

{_table(description)}

![items per cell](items_per_cell.png)

{seed_sources_markdown(description.get("seed_sources") or [])}
## Names and ids

- The rows, this card and the `mir/` layout use MIR-SafetyBench's published names (`Hate_Speech`,
  `Temporal_Continuity`, ...). `manifest.json` uses mirbench's slugs (`hate_speech`,
  `temporal_continuity`) and holds the map between the two under `names`.
- `id` is `mb-` followed by mirbench's item id (16 hex characters). It never reads as an integer,
  so `extract_data.py`, which turns an id into an integer when it can, keeps every id as written.

## How to load

```python
from datasets import load_dataset

rows = load_dataset("ORG/NAME", revision="v{version}", split="train")  # a tag per version
rows = load_dataset("path/to/this/folder", split="train")              # a local copy
```

With MIR-SafetyBench's tools (thu-coai/MIR-SafetyBench):

```bash
python extract_data.py --local-path path/to/this/folder --output ./data
python eval.py --json_dir ./data --models MODEL --output_dir ./results
```
{mir}
## Limitations

{untested}- Prompts and image descriptions are in English only and come from templates or a small model
  when the composer says so; they may be repetitive or awkward.
- Seeds are short questions at the level of public safety benchmarks; the categories follow
  MIR-SafetyBench's six and inherit their blind spots.
- A judge must grade answers against `original_question`, not against the prompt.

## Citation

This release follows the design of MIR-SafetyBench; if you use it, please cite:

```bibtex
{CITATION}
```
"""
