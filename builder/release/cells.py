"""A release's items per (category, relation) cell, under MIR-SafetyBench's published names:
counted, as the card's table and as a plot."""

from __future__ import annotations

from typing import Any


def published(description: dict[str, Any], kind: str, slug: str) -> str:
    """The published name of category or relation `slug` (`kind`: categories | relations)."""
    return description["names"][kind].get(slug, slug)


def cell_counts(description: dict[str, Any]) -> dict[tuple[str, str], int]:
    return {
        (
            published(description, "categories", cell["category"]),
            published(description, "relations", cell["relation"]),
        ): cell["items"]
        for cell in description["cells"]
    }


def cells_table(description: dict[str, Any]) -> str:
    """Items per cell as a Markdown table, with totals."""
    counts = cell_counts(description)
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


def plot_cells(description: dict[str, Any], path: Any) -> None:
    """A heat map of items per (category, relation) cell, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = cell_counts(description)
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
