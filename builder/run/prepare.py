"""The one way to begin a build: `prepare(settings, limit)`.

Whoever starts a build (`mirbench build`, the flows' `build` and `scheduled_build`, the
benchmark) prepares it here first, so every build is checked alike before anything is written:
the runner against the database, the inputs (taxonomy, seeds, relations: each file read once,
then handed to the run's workspace), every enabled stage's preflight (a retrieval pool's
captions file, a judge that cannot accept anything), and the database itself. What a reader
should know comes back for the caller to show: the part of the inputs a build covers (`scope`:
a sample of the seeds, relations dealt per seed) and the stages' warnings (`notes`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from builder.config.pairing import Pair, pairs_of
from builder.config.seeds import Seed, load_seeds
from builder.config.settings import Settings
from builder.config.taxonomy import Relation, Taxonomy, load_taxonomy
from builder.core.errors import InputError
from builder.stages import pipeline
from builder.store import open_engine


@dataclass(frozen=True)
class Prepared:
    """A build's checked inputs: what its run is opened from (`tasks.open_build`)."""

    settings: Settings
    limit: int | None
    taxonomy: Taxonomy
    every_seed: list[Seed]  # all the seed files hold
    seeds: list[Seed]  # those this build uses: at most `limit`, spread over the categories
    relations: list[Relation]
    scope: list[str] = field(default_factory=list)  # what part of the inputs the build covers
    notes: list[str] = field(default_factory=list)  # the stages' preflight warnings

    @property
    def slugs(self) -> list[str]:
        return [relation.slug for relation in self.relations]

    @property
    def pairs(self) -> list[Pair]:
        """The (seed, relation) pairs this build makes (builder/config/pairing.py)."""
        return pairs_of(self.seeds, self.slugs, self.settings.relations_per_seed)


def prepare(settings: Settings, limit: int | None = None) -> Prepared:
    """Check everything a build needs, in the order that writes nothing until all is known good:
    the runner, the inputs, every enabled stage's preflight, then the database (whose folder, for
    SQLite, is the one the build creates). Raises `InputError` for the first thing wrong."""
    check_runner(settings)
    taxonomy = load_taxonomy(settings.taxonomy)
    every_seed = load_seeds(settings.seeds, taxonomy, settings.limits)
    relations = taxonomy.select_relations(settings.relations)
    check_relations_per_seed(settings, relations)
    seeds = spread(every_seed, limit)
    scope = _scope(settings, limit, len(seeds), len(every_seed), len(relations))
    notes = pipeline.preflight(settings)
    open_engine(settings.resolved_database_url, folder_to_create=settings.artifacts).dispose()
    return Prepared(settings, limit, taxonomy, every_seed, seeds, relations, scope, notes)


def check_runner(settings: Settings) -> None:
    if settings.runner.kind == "dask" and settings.resolved_database_url.startswith("sqlite"):
        raise InputError(
            "the dask runner runs tasks in several processes, which SQLite cannot serve: "
            "use PostgreSQL (--database-url postgresql+psycopg://...) and an artifacts folder "
            "every worker sees"
        )


def check_relations_per_seed(settings: Settings, relations: list[Relation]) -> None:
    per_seed = settings.relations_per_seed
    if per_seed is not None and per_seed > len(relations):
        built = f"{len(relations)} relation{'s' if len(relations) > 1 else ''}"
        raise InputError(
            f"--relations-per-seed {per_seed} is more than the {built} this build makes "
            f"({', '.join(relation.slug for relation in relations)}); give at most {len(relations)} "
            "(relations_per_seed in a config file), or more relations with -r"
        )


def spread(seeds: list[Seed], limit: int | None) -> list[Seed]:
    """The first `limit` seeds taken round-robin over categories, so a smoke run covers all
    (all of them without a limit)."""
    if limit is None:
        return seeds
    if limit < 1:
        raise InputError(f"--limit must be at least 1 (got {limit})")
    by_category: dict[str, list[Seed]] = {}
    for seed in seeds:
        by_category.setdefault(seed.category, []).append(seed)
    picked: list[Seed] = []
    queues = [list(group) for group in by_category.values()]
    while len(picked) < limit and any(queues):
        for queue in queues:
            if queue and len(picked) < limit:
                picked.append(queue.pop(0))
    return picked


def _scope(settings: Settings, limit: int | None, used: int, total: int, relations: int) -> list[str]:
    """What a build on part of the inputs says about it (a demo or smoke run)."""
    notes = []
    if limit is not None:
        notes.append(f"building {used} of {total} seeds (--limit), spread over the categories")
    if settings.relations_per_seed is not None:
        per_seed = settings.relations_per_seed
        notes.append(
            f"each seed against {per_seed} of {relations} relations (--relations-per-seed), "
            "dealt in turn within its category"
        )
    return notes
