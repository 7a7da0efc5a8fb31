"""The options of `mirbench build`, declared once each (the command's signature names them)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from builder.stages.attack import testers
from builder.stages.compose import composers
from builder.stages.judge import judges
from builder.stages.render import renderers

SeedsOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--seeds",
        help="Seed file or folder; repeat for several. [default: the bundled seeds]",
        show_default=False,
    ),
]
RelationOption = Annotated[
    list[str] | None,
    typer.Option(
        "--relation",
        "-r",
        help="Build only this relation (slug); repeat for several.",
        show_default=False,
    ),
]
LimitOption = Annotated[
    int | None,
    typer.Option(help="Use at most N seeds, spread over the categories (smoke runs).", show_default=False),
]
RelationsPerSeedOption = Annotated[
    int | None,
    typer.Option(
        help="Build each seed against N relations, dealt in turn within its category (every "
        "category spreads over all relations). [default: every relation]",
        show_default=False,
    ),
]
ComposerOption = Annotated[
    str | None,
    typer.Option(help=f"Composer backend: {composers.describe()}. [default: offline]", show_default=False),
]
BaseUrlOption = Annotated[
    str | None,
    typer.Option(help="OpenAI-compatible server URL, ending in /v1 (openai composer).", show_default=False),
]
RendererOption = Annotated[
    str | None,
    typer.Option(
        help=f"Renderer backend: {renderers.describe()}. "
        "[default: retrieval; typographic without the picture pool]",
        show_default=False,
    ),
]
ModelOption = Annotated[
    str | None,
    typer.Option(
        help="Model for the backend chosen with --composer (server model name) or --renderer "
        "(diffusers model id or local folder).",
        show_default=False,
    ),
]
PoolOption = Annotated[
    Path | None,
    typer.Option(help="Image pool folder or saved dataset (retrieval renderer).", show_default=False),
]
MaxIterationsOption = Annotated[
    int | None,
    typer.Option(help="Rounds per (seed, relation) pair before giving up. [default: 3]", show_default=False),
]
RunnerOption = Annotated[
    str | None,
    typer.Option(
        help="Where shards run: thread (this process) or dask (worker processes; needs "
        "PostgreSQL). [default: thread]",
        show_default=False,
    ),
]
WorkersOption = Annotated[
    int | None,
    typer.Option(help="Threads or local Dask worker processes. [default: 2]", show_default=False),
]
DaskAddressOption = Annotated[
    str | None,
    typer.Option(
        help="An existing Dask scheduler, tcp://HOST:8786 (instead of a local cluster).",
        show_default=False,
    ),
]
TesterOption = Annotated[
    str | None,
    typer.Option(
        help=f"Attack every candidate with a tester model: {testers.describe()} (more testers, "
        "held-out ones: attack.testers in the config file). [default: none, the loop is off]",
        show_default=False,
    ),
]
TesterBaseUrlOption = Annotated[
    str | None,
    typer.Option(
        help="The tester's OpenAI-compatible vision chat server, ending in /v1.", show_default=False
    ),
]
TesterModelOption = Annotated[
    str | None,
    typer.Option(
        help="The tester's model name, as its server knows it (transformers: its local folder).",
        show_default=False,
    ),
]
JudgeOption = Annotated[
    str | None,
    typer.Option(
        help=f"Judge of the testers' answers: {judges.describe()}. [default: rules]", show_default=False
    ),
]
AllowFailuresOption = Annotated[
    bool,
    typer.Option(
        "--allow-failures",
        help="Exit 0 even when some of this run's candidates failed (schedules that accept "
        "partial failure); the failures are still listed.",
    ),
]
