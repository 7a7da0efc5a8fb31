"""What commands print: the consoles, tables, per-stage progress bars, the attack summary and
failures grouped by stage and reason."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from builder.core import progress
from builder.run.failures import FailureGroup
from builder.stages.attack.summary import AttackSummary

# In a terminal rich fits tables to its width; piped into a log, wide lines read better than
# lines folded at rich's default of 80 columns.
_LOG_WIDTH = None if sys.stdout.isatty() else 200
console = Console(width=_LOG_WIDTH)
errors = Console(stderr=True, width=_LOG_WIDTH)

TOP_REASONS = 3  # failure groups a build prints in full
LIST_FAILED = "mirbench items list --status failed"


def make_table(title: str, *columns: str, right: tuple[str, ...] = ()) -> Table:
    """A table whose long cells wrap instead of being cut off in narrow terminals."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold", justify="right" if column in right else "left")
    return table


class _RichReporter:
    """One bar per stage; shards of the same stage add to its bar."""

    def __init__(self, display: Progress):
        self.display = display
        self.tasks: dict[str, Any] = {}

    def start(self, stage: str, total: int) -> Callable[[int], None]:
        if stage in self.tasks:
            task = self.tasks[stage]
            self.display.update(task, total=self.display.tasks[task].total + total)
        else:
            task = self.tasks[stage] = self.display.add_task(stage, total=total)
        return lambda n=1: self.display.advance(task, n)


@contextmanager
def progress_bars(eta: bool = False) -> Iterator[None]:
    """A bar per stage (or target, or judge) while the block runs; `eta`: with the time left."""
    columns = [TextColumn("{task.description:>9}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    display = Progress(*columns, *([TimeRemainingColumn()] if eta else []), console=console)
    with display, progress.use_reporter(_RichReporter(display)):
        yield


def print_attack(summary: AttackSummary) -> None:
    """Attack success per (tester, judge), acceptance and held-out testers apart, each row with
    its judge's calibration on the policy it applied; then per cell."""
    for held_out, title in ((False, "acceptance testers"), (True, "held-out testers")):
        rates = summary.table(held_out)
        if not rates:
            continue
        table = make_table(
            f"Attack success, {title}",
            *("tester", "judge", "success", "attacked", "successes", "ASR", "judge's calibration"),
            right=("attacked", "successes", "ASR"),
        )
        for rate in rates:
            row = summary.row(rate)
            calibration = Text(row.calibration, style="bold red" if row.flagged else "")
            if row.warning:
                calibration.append(f" WARNING: {row.warning}")
            counts = (str(rate.attacked), str(rate.successes), f"{rate.asr:.1%}")
            table.add_row(*map(Text, (rate.tester, row.judge, row.success, *counts)), calibration)
        console.print(table)
        cells = make_table(
            f"ASR by category x relation, {title}",
            "category",
            "relation",
            "tester",
            "judge",
            "ASR",
            right=("ASR",),
        )
        for rate in (rate for rate in summary.cells if rate.held_out is held_out):
            place = (str(rate.category), str(rate.relation), rate.tester, summary.row(rate).judge)
            cells.add_row(*place, f"{rate.successes}/{rate.attacked}")
        console.print(cells)
    for judge in summary.judges:
        bold = None if judge.calibration and not judge.warning else "bold"  # stands out
        console.print(judge.sentence(bold=("", "")), markup=False, highlight=False, style=bold)
    for number in summary.unknown_quotes:
        console.print(
            f"calibration.quote names calibration #{number}, which the store does not hold", style="bold"
        )
    rounds = summary.mean_rounds_to_acceptance
    console.print(
        f"accepted by the attack policy: {summary.accepted} of {summary.items_judged} judged"
        + (f"; mean rounds to acceptance {rounds:.2f}" if rounds is not None else "")
    )


def print_failure_groups(groups: list[FailureGroup], title: str) -> None:
    """Failures by (stage, reason), each with one item's full message, shown as text (never markup)."""
    table = make_table(title, "stage", "reason", "items", "example item", "message", right=("items",))
    for group in groups:
        table.add_row(group.stage, group.reason, str(group.count), group.item_id, Text(group.message))
    console.print(table)
