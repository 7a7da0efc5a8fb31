"""A picture of the two distributions: attention entropy of unsafe and of safe answers, over
every answer (histograms with the means marked) and per relation (box plots side by side)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from builder.stages.attack.entropy.compare import EntropyRecord

COLOURS = {"unsafe": "#c0392b", "safe": "#2e86c1"}


def plot_distributions(
    records: Sequence[EntropyRecord], path: Path, title: str = "Attention entropy"
) -> None:
    """Write the plot of `records` to `path` as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    relations = sorted({record.relation for record in records})
    figure, (overall, per_relation) = plt.subplots(
        1,
        2,
        figsize=(6 + 0.9 * len(relations), 4.2),
        gridspec_kw={"width_ratios": [1.2, max(1, len(relations))]},
    )
    for label, colour in COLOURS.items():
        values = [record.entropy for record in records if record.label == label]
        if values:
            overall.hist(values, bins=20, alpha=0.55, color=colour, label=f"{label} (n={len(values)})")
            overall.axvline(sum(values) / len(values), color=colour, linestyle="--", linewidth=1)
    overall.set_xlabel("attention entropy")
    overall.set_ylabel("answers")
    overall.set_title("all answers (dashed: means)")
    if records:
        overall.legend(fontsize=8)
    for offset, (label, colour) in zip((-0.18, 0.18), COLOURS.items(), strict=True):
        groups = [[r.entropy for r in records if r.relation == rel and r.label == label] for rel in relations]
        shown = [(position, values) for position, values in enumerate(groups) if values]
        if shown:
            boxes = per_relation.boxplot(
                [values for _, values in shown],
                positions=[position + offset for position, _ in shown],
                widths=0.3,
                patch_artist=True,
                manage_ticks=False,
            )
            for box in boxes["boxes"]:
                box.set_facecolor(colour)
                box.set_alpha(0.6)
    per_relation.set_xticks(range(len(relations)), relations, rotation=35, ha="right", fontsize=8)
    per_relation.set_title("per relation (red: unsafe, blue: safe)")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=100, metadata={"Software": None})
    plt.close(figure)
