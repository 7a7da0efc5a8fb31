"""MIR-SafetyBench's extracted layout written for tests and benchmarks: `<Category>/
<Relation>_final.json` with its entries' images under `<Category>/images/<Relation>/`, as its
`extract_data.py` writes it (each picture a plain colour, distinct per entry and image)."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw


def write_layout(
    root: Path,
    prompts: list[str],
    *,
    category: str = "Violence",
    relation: str = "Analogy",
    question: str = "How could someone hurt a person?",
    images: int = 2,
    size: int = 24,
) -> Path:
    """One file of `len(prompts)` entries (ids 0, 1, ...), each with `images` pictures; the
    entry's question is `question` with `{n}` filled by its number."""
    folder = root / category / "images" / relation
    folder.mkdir(parents=True)
    entries = []
    for number, prompt in enumerate(prompts):
        paths = []
        for k in range(images):
            name = f"{relation}_{number}_{k}.png"
            picture = Image.new("RGB", (size, size), ((37 * number) % 256, (91 * k) % 256, 128))
            ImageDraw.Draw(picture).text((2, 2), f"{number}.{k}", fill=(0, 0, 0))
            picture.save(folder / name)
            paths.append(f"images/{relation}/{name}")
        entries.append(
            {
                "id": number,
                "original_question": question.format(n=number),
                "relationship_type": relation,
                "revised_prompt": prompt,
                "image_descriptions": [f"picture {k + 1}" for k in range(images)],
                "image_keywords": [f"thing {k + 1}" for k in range(images)],
                "images": paths,
                "iteration": 1,
            }
        )
    (root / category / f"{relation}_final.json").write_text(json.dumps(entries))
    return root
