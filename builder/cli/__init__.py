"""`mirbench`: build, review and release multi-image safety benchmarks.

The command line. `core` holds the app, its exit policy and the options every command shares;
`display` what commands print; each module in `COMMAND_MODULES` adds its commands and command
groups (its own `app`, a `typer.Typer`) to the app, in this order.
"""

from __future__ import annotations

import sys

from builder.cli import build, data, judge, release, review
from builder.cli.core import app

COMMAND_MODULES = [build, release, review, data, judge]

for _module in COMMAND_MODULES:
    app.add_typer(_module.app)


def run() -> None:
    """Console-script entry point."""
    sys.exit(app())


__all__ = ["COMMAND_MODULES", "app", "run"]
