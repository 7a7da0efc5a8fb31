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

from builder import __version__
from builder.curation.provenance import seed_sources_markdown
from builder.release.attack_section import attack_section
from builder.release.cells import cells_table
from builder.release.changelog import Changes
from builder.release.licence import ReleaseLicense
from builder.run.picture_figures import PictureFigures
from builder.stages import pipeline
from builder.stages.render import draws_words

CITATION = """@article{mirsafetybench2026,
  title   = {MIR-SafetyBench: Multi-Image Reasoning Safety Benchmark for Multimodal Large Language Models},
  author  = {{thu-coai}},
  journal = {arXiv preprint arXiv:2601.14127},
  year    = {2026},
  url     = {https://arxiv.org/abs/2601.14127}
}"""


def _size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K")):
        if n < limit:
            return label
    return "100K<n<1M"


def _license_metadata(description: dict[str, Any]) -> str | list[str]:
    """The card's `license:`: the release's own (set or derived); a release written before
    licences were derived has only `release.license`."""
    if "license" in description:
        return ReleaseLicense.model_validate(description["license"]).metadata
    return description["config"].get("release", {}).get("license") or "unknown"


def _metadata(description: dict[str, Any]) -> dict[str, Any]:
    release = description["config"].get("release", {})
    return {
        "pretty_name": f"mirbench release {description['version']}",
        "license": _license_metadata(description),
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


MOSTLY_COPIED = 0.2  # above this share of keywords copied from the question, cards print the harm


def _funnel_table(description: dict[str, Any]) -> str:
    """How the candidates behind this release ended (manifests before 0.3 do not say)."""
    rows = description.get("funnel") or []
    if not rows:
        return ""
    lines = [f"| {'&nbsp;' * 4 * row['indent']}{row['label']} | {row['count']} |" for row in rows]
    return "\n## From candidates to items\n\n| candidates | count |\n|---|---:|\n" + "\n".join(lines) + "\n"


def _counted(counter: Counter[str]) -> str:
    return "; ".join(f"`{name}` ({n} items)" for name, n in counter.most_common())


def _making_facts(selection: list[dict[str, Any]]) -> tuple[list[str], bool]:
    """Who composed and drew the items and which checks they passed; whether the items went
    through an attack loop."""
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
    attack_loop = pipeline.tester_stages()
    attacks = sorted(
        {
            f"{v['name']}@{v['version']}"
            for e in selection
            for v in e["verdicts"]
            if v.get("stage", v["name"]) in attack_loop  # releases before 0.2 named no stage
        }
    )
    facts = [
        f"**Composer** (writes the prompt and the image descriptions): {_counted(composers)}.",
        f"**Renderer** (draws the images): {_counted(renderers)}.",
        f"**Checks the items passed**: {', '.join(f'`{c}`' for c in checks) or 'none recorded'}.",
        f"**Checks that were off** (the items were not checked by them): {_counted(checks_off)}."
        if checks_off
        else "**Checks that were off**: none.",
        f"**Attack loop**: tested with {', '.join(f'`{a}`' for a in attacks)}."
        if attacks
        else "**Attack loop: not tested against a model.** No target model was attacked and no judge "
        "decided success: items are not filtered by attack success, unlike MIR-SafetyBench.",
    ]
    return facts, bool(attacks)


def _review_fact(description: dict[str, Any]) -> str:
    review = description["review"]
    bulk = review["bulk_approved"]
    if bulk:
        return (
            f"**Review: {bulk} of {description['items']} items were approved in bulk "
            f"(`mirbench review approve --all`) without anyone looking at them.**"
        )
    return f"**Review**: every item was approved individually (reviewers: {', '.join(review['reviewers'])})."


def _picture_facts(description: dict[str, Any], typographic: bool) -> tuple[list[str], bool]:
    """What the pictures are and under which licence; whether they print words of the question."""
    pictures = PictureFigures.model_validate(description.get("pictures") or {})
    facts = []
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
    return facts, typographic and (copied or not pictures.slots)


def _license_fact(description: dict[str, Any]) -> list[str]:
    if "license" not in description:  # written before releases derived their licence
        return []
    license = ReleaseLicense.model_validate(description["license"])
    parts = "; ".join(license.parts())
    return [f"**Licence**: {license.line()}" + (f": {parts}." if parts else ".")]


def _build_facts(description: dict[str, Any]) -> tuple[list[str], bool, bool]:
    """Bullet points on how the items were made, from their provenance and verdicts; whether the
    images show words of the question; whether the items went through an attack loop."""
    selection = description["selection"]
    facts, attacked = _making_facts(selection)
    typographic = any(draws_words(entry["provenance"].get("renderer") or "") for entry in selection)
    pictures, shows_question = _picture_facts(description, typographic)
    return (
        [*facts, _review_fact(description), *pictures, *_license_fact(description)],
        shows_question,
        attacked,
    )


def _names_and_ids(mir: bool) -> str:
    layout = ", this card and the `mir/` layout use" if mir else " and this card use"
    return f"""## Names and ids

- The rows{layout} MIR-SafetyBench's published names (`Hate_Speech`,
  `Temporal_Continuity`, ...). `manifest.json` uses mirbench's slugs (`hate_speech`,
  `temporal_continuity`) and holds the map between the two under `names`.
- `id` is `mb-` followed by mirbench's item id (16 hex characters). It never reads as an integer,
  so `extract_data.py`, which turns an id into an integer when it can, keeps every id as written.
"""


def _how_to_load(version: str, mir: bool) -> str:
    layout = (
        "\nThis release also holds MIR-SafetyBench's own folder layout under `mir/` "
        "(`<Category>/<Relation>_final.json` + `<Category>/images/<Relation>/<Relation>_<id>_<k>.png`): "
        "`python eval.py --json_dir mir ...` reads it directly.\n"
        if mir
        else ""
    )
    return f"""## How to load

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
{layout}"""


def _limitations(attacked: bool) -> str:
    untested = (
        ""
        if attacked
        else "- Not filtered by attack success against any model (see above): attack success rates on "
        "this\n  release are not comparable with MIR-SafetyBench's published ones.\n"
    )
    return f"""## Limitations

{untested}- Prompts and image descriptions are in English only and come from templates or a small model
  when the composer says so; they may be repetitive or awkward.
- Seeds are short questions at the level of public safety benchmarks; the categories follow
  MIR-SafetyBench's six and inherit their blind spots.
- A judge must grade answers against `original_question`, not against the prompt.
"""


def render_card(description: dict[str, Any], changes: Changes) -> str:
    """The dataset card (README.md): YAML metadata, then what a reader must know."""
    version = description["version"]
    facts, typographic, attacked = _build_facts(description)
    mir = "mir" in description["layouts"]
    images_claim = (
        "Here the images are typographic cards that show words of the question (see below)."
        if typographic
        else "The images are meant to be benign on their own; the harm appears when a model reasons "
        "across them."
    )
    bullet_facts = "\n".join(f"- {fact}" for fact in facts)
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
{_funnel_table(description)}{attack_section(description)}
## Items per cell

{cells_table(description)}

![items per cell](items_per_cell.png)

{seed_sources_markdown(description.get("seed_sources") or [])}
{_names_and_ids(mir)}
{_how_to_load(version, mir)}
{_limitations(attacked)}
## Citation

This release follows the design of MIR-SafetyBench; if you use it, please cite:

```bibtex
{CITATION}
```
"""
