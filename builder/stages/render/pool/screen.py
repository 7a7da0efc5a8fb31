"""A pool's pictures screened before a build records anything: the retrieval renderer's preflight.

Indexing decodes every picture, but it runs once the build has started; a pool none of whose
pictures decode would then fail a run already recorded. So the preflight decodes a sample (the
first few captioned records) and, only when none of them is usable, goes on through the rest
until one is: a good pool costs a few decodes, a pool of broken pictures is refused (exit 2)
after all of it is screened, before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from builder.config.input_limits import InputLimits
from builder.core.errors import InputError
from builder.stages.render.pool import open_rgb, pool_label, pool_records

SAMPLE = 16  # pictures decoded up front; their failures are reported as a note


@dataclass(frozen=True)
class Screened:
    sampled: int
    unusable: int
    example: str | None  # the first unusable picture and why

    @property
    def note(self) -> str | None:
        if not self.unusable:
            return None
        return (
            f"{self.unusable} of the first {self.sampled} pool picture(s) are unusable "
            f"(e.g. {self.example}); indexing skips and lists every such picture"
        )


def screen_pool(
    pool: Path | None,
    image_column: str = "image",
    text_column: str = "text",
    max_record_chars: int = InputLimits().max_record_chars,
    sample: int = SAMPLE,
) -> Screened:
    """The sample's findings; an InputError naming the pool when no picture in it is usable."""
    records = iter(pool_records(pool, image_column, text_column, max_record_chars))
    sampled = list(islice(records, sample))
    problems = [f"{record.entry.id}: {problem}" for record in sampled if (problem := _problem(record))]
    if len(problems) == len(sampled):  # nothing usable yet: screen the rest until a picture is
        screened = len(sampled)
        for record in records:
            screened += 1
            if _problem(record) is None:
                break
        else:
            where = pool if pool is not None else pool_label(pool)
            if not screened:
                raise InputError("the image pool holds no pictures", path=where)
            raise InputError(
                f"no usable picture in the image pool: all {screened} are unusable (e.g. {problems[0]}); "
                "fix the images or give another pool",
                path=where,
            )
    return Screened(len(sampled), len(problems), problems[0] if problems else None)


def _problem(record: Any) -> str | None:
    """Why the pool record (`pool_records`) cannot be indexed, if it cannot."""
    if not record.entry.caption:
        return "empty caption"
    try:
        open_rgb(record.load)
    except ValueError as exc:
        return str(exc)
    return None
