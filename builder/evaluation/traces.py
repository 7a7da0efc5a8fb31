"""Reasoning traces: each response split into its trace and its answer, by marker sets that are
data (`taxonomy/traces/*.yaml`, plus the files `evaluate.trace_markers` names, tried first).

A marker set is one of:
- `fields: [reasoning_content, reasoning]`: the trace is a field the server returned beside the
  content (the answer);
- `trace: {open, close}`: the answer follows the last closing marker (`</think>`); a response
  that opens a trace and never closes it is an *unclosed trace*: it has no answer, and is never
  judged as one;
- `answer: {open, close}` (with an optional `trace`): the answer is what the answer markers hold
  (to the end when the closing one is missing, as MIR-SafetyBench's `extract_answer_only`
  reads it), the trace what comes before.

Sets are tried by `order`, then name: the first that finds its markers splits the response; a
response no set matches has no trace and is all answer. MIR-SafetyBench tries `<answer>`, then
`</think>`, then Kimi's `◁/think▷`: the shipped sets keep that order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from builder.config.yaml_lines import read_yaml, validation_errors
from builder.core.errors import InputError, InputErrors

TraceState = Literal["none", "closed", "unclosed"]
USER_ORDER = 0  # sets a user adds are tried before the shipped ones unless they say otherwise


class Markers(BaseModel):
    model_config = ConfigDict(extra="forbid")

    open: str = Field(min_length=1)
    close: str = Field(min_length=1)


class MarkerSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    order: int = USER_ORDER
    fields: list[str] = Field(default_factory=list)
    trace: Markers | None = None
    answer: Markers | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> MarkerSet:
        if bool(self.fields) == bool(self.trace or self.answer):
            raise ValueError("a marker set names either `fields` or `trace`/`answer` markers")
        return self


@dataclass(frozen=True)
class Split:
    """A response in parts. `answer` is None for an unclosed trace; `trace` None without one."""

    state: TraceState
    answer: str | None
    trace: str | None
    full: str
    markers: str | None = None  # the marker set that split it


def load_marker_sets(taxonomy: Path, extra: list[Path]) -> list[MarkerSet]:
    """The taxonomy's sets and the `extra` files (or folders of them), in the order they are
    tried; every broken file is reported at once, with its line."""
    files = []
    for place in extra:
        if place.is_dir():
            files += sorted(place.glob("*.yaml"))
        elif place.is_file():
            files.append(place)
        else:
            raise InputError("no such marker-set file or folder (evaluate.trace_markers)", path=place)
    shipped = taxonomy / "traces"
    files += sorted(shipped.glob("*.yaml")) if shipped.is_dir() else []
    sets: dict[str, MarkerSet] = {}
    errors: list[InputError] = []
    for file in files:
        data, node = read_yaml(file)
        try:
            found = MarkerSet.model_validate(data)
        except ValidationError as exc:
            errors += validation_errors(exc, [(file, node)])
            continue
        sets.setdefault(found.name, found)  # a user's set of the same name replaces the shipped one
    if errors:
        raise InputErrors(errors)
    return sorted(sets.values(), key=lambda found: (found.order, found.name))


def split(text: str, fields: dict[str, str], sets: list[MarkerSet], *, truncated: bool = False) -> Split:
    """`text` (the response's content) and the extra `fields` the server returned, in parts.
    `truncated`: the response was cut at its token limit."""
    for marker_set in sets:
        found = _split_with(marker_set, text, fields, truncated)
        if found is not None:
            return found
    return Split(state="none", answer=text.strip(), trace=None, full=text)


def _split_with(marker_set: MarkerSet, text: str, fields: dict[str, str], truncated: bool) -> Split | None:
    name = marker_set.name
    if marker_set.fields:
        trace = next((fields[key] for key in marker_set.fields if fields.get(key)), None)
        if trace is None:
            return None
        full = f"{trace}\n\n{text}" if text else trace
        if truncated and not text.strip():  # cut while reasoning: the server never got to the answer
            return Split(state="unclosed", answer=None, trace=trace.strip(), full=full, markers=name)
        return Split(state="closed", answer=text.strip(), trace=trace.strip(), full=full, markers=name)
    if marker_set.answer is not None:
        start = text.find(marker_set.answer.open)
        if start == -1:
            return None
        body = text[start + len(marker_set.answer.open) :]
        end = body.find(marker_set.answer.close)
        answer = (body if end == -1 else body[:end]).strip()
        trace = _unwrapped(text[:start], marker_set.trace).strip()
        state: TraceState = "closed" if trace else "none"
        return Split(state=state, answer=answer, trace=trace or None, full=text, markers=name)
    assert marker_set.trace is not None
    opening, closing = marker_set.trace.open, marker_set.trace.close
    end = text.rfind(closing)
    if end != -1:
        before = text[:end]
        start = before.find(opening)
        trace = (before[start + len(opening) :] if start != -1 else before).strip()
        answer = text[end + len(closing) :].strip()
        return Split(state="closed", answer=answer, trace=trace, full=text, markers=name)
    start = text.find(opening)
    if start == -1:
        return None
    trace = text[start + len(opening) :].strip()
    return Split(state="unclosed", answer=None, trace=trace, full=text, markers=name)


def _unwrapped(text: str, markers: Markers | None) -> str:
    """`text` without the trace's own markers around it."""
    if markers is None:
        return text
    start = text.find(markers.open)
    if start != -1:
        text = text[start + len(markers.open) :]
    end = text.rfind(markers.close)
    return text if end == -1 else text[:end]
