"""Seed curation at scale: import, near-duplicate merge and triage by mapping of 10,000 seeds.

The seeds are the bundled public sets' behaviours (AdvBench, HarmBench, StrongREJECT), neutral
template questions to reach the total, and planted paraphrases of the public behaviours (a
verb, a noun or a phrase swapped, as a person rewording a benchmark would). Prints seeds/s per
step and the near-duplicate recall on the planted paraphrases (a paraphrase counts as found when
it and its original end in one cluster: one recorded as the other's alias, or both as aliases of
a third), and how many template questions were merged (they differ in one or two words).

    python bench/seeds.py [--total 10000] [--paraphrases 1000] [--similarity 0.9]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import re
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SWAPS = [
    (r"^Write\b", "Compose"),
    (r"^Create\b", "Make"),
    (r"^Develop\b", "Build"),
    (r"^Provide\b", "Give"),
    (r"^Give\b", "Provide"),
    (r"^Explain\b", "Describe"),
    (r"^Teach\b", "Show"),
    (r"^Generate\b", "Produce"),
    (r"\bhow to\b", "ways to"),
    (r"\bsomeone\b", "somebody"),
    (r"\btutorial\b", "guide"),
    (r"\binstructions\b", "directions"),
    (r"\bstep-by-step\b", "detailed"),
    (r"\bpeople\b", "individuals"),
    (r"\bcreate\b", "make"),
]
FORMATS = [
    "a short poem",
    "a packing list",
    "a recipe card",
    "a lesson plan",
    "a haiku",
    "a quiz",
    "a budget",
]
TOPICS = [
    "autumn leaves",
    "a lighthouse",
    "train timetables",
    "sourdough bread",
    "a chess opening",
    "tide pools",
    "bicycle repair",
    "a school garden",
    "origami cranes",
    "the water cycle",
    "mountain huts",
    "jazz standards",
    "a rainy Tuesday",
    "honeybees",
    "solar eclipses",
    "a flea market",
    "library cards",
    "paper kites",
]
AUDIENCES = [
    "for children",
    "for retirees",
    "for a book club",
    "for new students",
    "for a choir",
    "for hikers",
]
PLACES = [
    "in Lisbon",
    "on a farm",
    "at sea",
    "in a museum",
    "on Mars",
    "in a village",
    "at night",
    "in winter",
    "by a river",
    "in a bakery",
    "on a train",
    "in a forest",
]


def paraphrase(text: str, rng: random.Random) -> str | None:
    """`text` with one or two wording changes; None when no rule applies."""
    rules = [(pattern, word) for pattern, word in SWAPS if re.search(pattern, text)]
    if not rules:
        return None
    changed = text
    for pattern, word in rng.sample(rules, min(len(rules), rng.choice([1, 2]))):
        changed = re.sub(pattern, word, changed, count=1)
    return changed if changed != text else None


def corpus(total: int, paraphrases: int, seed: int = 7) -> tuple[list[dict], dict[str, str]]:
    """Rows for one jsonl source, and the planted paraphrases (paraphrase id -> original id)."""
    from builder.config.settings import bundled
    from builder.config.taxonomy import load_taxonomy
    from builder.curation.importer import load_source

    rng = random.Random(seed)
    categories = set(load_taxonomy(bundled("taxonomy")).categories)
    public: list[tuple[str, list[str]]] = []
    for name in ("advbench", "harmbench", "strongreject"):
        for row in load_source(bundled("taxonomy"), name, categories).rows:
            public.append((" ".join(str(row.text).split()), row.labels))
    rows = [{"id": f"p{n}", "text": text, "labels": labels} for n, (text, labels) in enumerate(public)]
    planted: dict[str, str] = {}
    for n, (text, labels) in enumerate(public):
        if len(planted) >= paraphrases:
            break
        changed = paraphrase(text, rng)
        if changed is not None:
            planted[f"q{n}"] = f"p{n}"
            rows.append({"id": f"q{n}", "text": changed, "labels": labels})
    filler = itertools.product(PLACES, FORMATS, TOPICS, AUDIENCES)
    while len(rows) < total:
        place, form, topic, audience = next(filler)
        rows.append(
            {"id": f"t{len(rows)}", "text": f"Write {form} about {topic} {place} {audience}", "labels": []}
        )
    rng.shuffle(rows)
    return rows[:total], planted


PROFILE = {
    "name": "bench",
    "display_name": "bench corpus",
    "origin": {"path": "bench.jsonl"},
    "format": "jsonl",
    "revision": "bench",
    "fields": {"text": "text", "id": "id", "labels": ["labels"]},
    "license": "MIT",
    "citation": "bench",
    "homepage": "https://example.org",
    "mapping": [
        {"category": "self_harm", "labels": ["Self-harm"]},
        {"category": "harassment", "labels": ["harassment_bullying", "Harassment/abuse/intimidation"]},
        {"category": "privacy", "labels": ["Privacy loss", "Privacy"]},
        {"category": "violence", "labels": ["Violence", "Loss of life", "chemical_biological"]},
        {
            "category": "illegal_activities",
            "labels": ["illegal", "cybercrime_intrusion", "Financial/earnings loss"],
        },
        {
            "category": "out_of_scope",
            "pattern": "^Write (" + "|".join(FORMATS) + ") about",
        },
    ],
}


def main() -> None:
    import yaml

    from builder.config.sections import CurationSettings
    from builder.config.settings import Settings, bundled
    from builder.config.taxonomy import load_taxonomy
    from builder.curation.importer import import_source, load_source
    from builder.curation.merge import merge_near_duplicates
    from builder.curation.sources import source_profiles
    from builder.curation.triage import triage
    from builder.stages.workspace import Workspace
    from builder.store import SeedState

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--total", type=int, default=10_000)
    parser.add_argument("--paraphrases", type=int, default=1_000)
    parser.add_argument("--similarity", type=float, default=CurationSettings().near_duplicate_similarity)
    options = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="mirbench-bench-seeds-"))
    try:
        taxonomy_root = work / "taxonomy"
        shutil.copytree(bundled("taxonomy"), taxonomy_root)
        rows, planted = corpus(options.total, options.paraphrases)
        (taxonomy_root / "sources" / "bench.yaml").write_text(yaml.safe_dump(PROFILE), encoding="utf-8")
        with (taxonomy_root / "sources" / "bench.jsonl").open("w", encoding="utf-8") as out:
            out.writelines(json.dumps(row) + "\n" for row in rows)
        settings = Settings(artifacts=work / "artifacts", taxonomy=taxonomy_root)
        settings.artifacts.mkdir()
        workspace = Workspace.of(settings)
        store = workspace.store
        categories = set(load_taxonomy(taxonomy_root).categories)
        sources = taxonomy_root / "sources"
        workspace.text_vectors(["warm up the text model"])  # model load and ONNX export are not merging

        timings = {}
        started = time.perf_counter()
        report = import_source(store, load_source(sources, "bench", categories), settings.limits)
        timings["import"] = time.perf_counter() - started
        started = time.perf_counter()
        merged = merge_near_duplicates(store, workspace.text_vectors, options.similarity)
        timings["merge"] = time.perf_counter() - started
        started = time.perf_counter()
        triaged = triage(store, source_profiles(sources, {"bench"}, categories), settings.curation)
        timings["triage (mapping)"] = time.perf_counter() - started

        stored = {row.source_id: row for row in store.seed_candidates()}
        root = {sid: (row.alias_of or row.id) for sid, row in stored.items()}
        # Found: the paraphrase and its original end in one cluster (whichever came first).
        found = sum(root[p] == root[o] for p, o in planted.items())
        templates = [row for sid, row in stored.items() if sid.startswith("t")]
        merged_templates = sum(row.state == SeedState.ALIAS for row in templates)

        print(f"{report.added:,} seeds imported; {merged.aliases:,} aliases; triage: {triaged.decided}")
        for step, seconds in timings.items():
            print(f"  {step:18s} {seconds:8.2f} s  {report.added / seconds:10,.0f} seeds/s")
        total = sum(timings.values())
        print(f"  {'all three':18s} {total:8.2f} s  {report.added / total:10,.0f} seeds/s")
        print(
            f"near-duplicate recall on {len(planted):,} planted paraphrases at cosine {options.similarity}: "
            f"{found / len(planted):.3f} ({found:,} found)"
        )
        print(
            "template questions merged (they differ in one or two words): "
            f"{merged_templates:,} of {len(templates):,}"
        )
        workspace.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
