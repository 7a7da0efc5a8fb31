"""The `mirbench` app and what every command shares: the exit policy (bad input is one
`error:` line and exit 2, any other failure one line and exit 1), the options declared once
(config, artifacts, database URL, taxonomy, verbose), and settings and store opening."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from builder import __version__
from builder.cli.display import console, errors
from builder.config.settings import Settings, load_settings
from builder.core.errors import InputError, SystemFault
from builder.store import Store

# Set by -v/--verbose (global or a command's) for the one command line being run.
_tracebacks: ContextVar[bool] = ContextVar("mirbench_tracebacks", default=False)


class _CleanErrors(TyperGroup):
    """Bad input ends as `error: ...` and exit 2; a system fault (full disk, database away) and
    any other failure as one line and exit 1.
    Tracebacks only with -v/--verbose, for bug reports."""

    def invoke(self, ctx: typer.Context) -> Any:
        token = _tracebacks.set(False)
        try:
            return super().invoke(ctx)
        except InputError as error:
            fail(error)
        except SystemFault as error:
            # The machine, not the input: a full disk, a database that stays away. Exit 1, one line.
            errors.print(f"[bold red]error:[/] {error}", highlight=False, markup=True, soft_wrap=True)
            raise typer.Exit(code=1) from None
        except (typer.TyperException, typer.Exit, typer.Abort):
            raise
        except Exception as error:
            if _tracebacks.get():
                raise
            summary = next(iter(str(error).strip().splitlines()), "") or "(no message)"
            errors.print(
                f"[bold red]error:[/] unexpected {type(error).__name__}: {summary} "
                "(run with -v for the traceback)",
                highlight=False,
                markup=True,
                soft_wrap=True,
            )
            raise typer.Exit(code=1) from None
        finally:
            _tracebacks.reset(token)


def show_tracebacks(verbose: bool) -> None:
    if verbose:
        _tracebacks.set(True)


app = typer.Typer(
    cls=_CleanErrors,
    help="`mirbench`: build, review and release multi-image safety benchmarks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML config file (also MIRBENCH_CONFIG).", show_default=False),
]
ArtifactsOption = Annotated[
    Path | None,
    typer.Option(
        help="Run outputs folder (also MIRBENCH_ARTIFACTS). [default: artifacts]", show_default=False
    ),
]
DatabaseOption = Annotated[
    str | None,
    typer.Option(
        help="SQLAlchemy URL of the store (also MIRBENCH_DATABASE_URL), e.g. "
        "postgresql+psycopg://user:pass@host/db. [default: SQLite in the artifacts folder]",
        show_default=False,
    ),
]
TaxonomyOption = Annotated[
    Path | None,
    typer.Option(
        help="Taxonomy folder (categories.yaml + relations/). [default: the bundled one]", show_default=False
    ),
]
JudgeBaseUrlOption = Annotated[
    str | None,
    typer.Option(help="The judge's OpenAI-compatible server, ending in /v1.", show_default=False),
]
JudgeModelOption = Annotated[
    str | None, typer.Option(help="The judge's model name, as its server knows it.", show_default=False)
]
VerboseOption = Annotated[
    bool, typer.Option("--verbose", "-v", help="Show Prefect's logs, and a traceback on a crash.")
]


def fail(error: InputError) -> NoReturn:
    errors.print(f"[bold red]error:[/] {error}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(code=2)


@contextmanager
def user_errors() -> Iterator[None]:
    try:
        yield
    except InputError as error:
        fail(error)


def given(**values: Any) -> dict[str, Any] | None:
    """The options the user actually gave, as a nested-settings override (None if none)."""
    chosen = {key: value for key, value in values.items() if value is not None}
    return chosen or None


def command_settings(config: Path | None, **overrides: Any) -> Settings:
    with user_errors():
        return load_settings(config, **overrides)


def open_store(
    config: Path | None, artifacts: Path | None, database_url: str | None, *, migrate: bool = True
) -> Store:
    return existing_store(
        command_settings(config, artifacts=artifacts, database_url=database_url), migrate=migrate
    )


def existing_store(settings: Settings, *, migrate: bool = True) -> Store:
    """The store as it is: reading commands never create one (nor its folder)."""
    with user_errors():
        return Store(settings.resolved_database_url, must_exist=True, migrate=migrate)


@app.callback(invoke_without_command=True)
def main(
    version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Print a traceback when a command fails unexpectedly.")
    ] = False,
) -> None:
    show_tracebacks(verbose)
    if version:
        console.print(f"mirbench {__version__}")
        raise typer.Exit()
