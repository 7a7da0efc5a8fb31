"""What changed from the previous release to this one: items, cells, taxonomy, configuration.

Both sides are release descriptions (a manifest less its file list); a manifest written by
mirbench 0.1.0 is read in today's shape first.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from builder.release.cells import cell_counts


class Changes(BaseModel):
    previous: str | None
    added: list[str]
    removed: list[str]
    changed: list[str]
    cells: list[tuple[str, str, int, int]]  # category, relation, before, after (published names)
    taxonomy: list[str]
    config: list[str]
    markdown: str

    def summary(self) -> str:
        if self.previous is None:
            return "First release: no previous release to compare with."
        return (
            f"Since {self.previous}: {len(self.added)} item(s) added, {len(self.removed)} removed, "
            f"{len(self.changed)} changed; {len(self.taxonomy)} taxonomy change(s), "
            f"{len(self.config)} configuration change(s). See CHANGELOG.md."
        )


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): value}


def _config_view(config: dict[str, Any]) -> dict[str, Any]:
    """A config flattened for comparison; build runs as the distinct values each setting took
    (run ids differ from release to release, settings rarely)."""
    runs = [run for run in (config.get("build_runs") or {}).values() if run]
    view = _flatten({key: value for key, value in config.items() if key != "build_runs"})
    for run in runs:
        for key, value in _flatten(run, "build.").items():
            view.setdefault(key, [])
            if value not in view[key]:
                view[key].append(value)
    return view


def _in_current_shape(previous: dict[str, Any], description: dict[str, Any]) -> dict[str, Any]:
    """A manifest written by mirbench 0.1.0 (no name maps, unprefixed row ids) in today's shape,
    so a store upgraded from 0.1.0 can write its next changelog."""
    if "names" in previous:
        return previous
    prefix = description["id_scheme"].split("<")[0]
    selection = [
        {**entry, "id": entry["id"] if entry["id"].startswith(prefix) else prefix + entry["id"]}
        for entry in previous["selection"]
    ]
    return {**previous, "names": description["names"], "selection": selection}


def _cell_changes(previous: dict[str, Any], description: dict[str, Any]) -> list[tuple[str, str, int, int]]:
    after, before = cell_counts(description), cell_counts(previous)
    return [
        (category, relation, before.get((category, relation), 0), after.get((category, relation), 0))
        for category, relation in sorted(set(after) | set(before))
        if before.get((category, relation), 0) != after.get((category, relation), 0)
    ]


def _taxonomy_changes(previous: dict[str, Any], description: dict[str, Any]) -> list[str]:
    changes = []
    for kind, noun in (("categories", "category"), ("relations", "relation")):
        old, new = set(previous["names"][kind]), set(description["names"][kind])
        changes += [f"{noun} added: {slug}" for slug in sorted(new - old)]
        changes += [f"{noun} removed: {slug}" for slug in sorted(old - new)]
    if previous["taxonomy_hash"] != description["taxonomy_hash"] and not changes:
        changes.append("taxonomy files edited (definitions, guidance or templates)")
    return changes


def _config_changes(previous: dict[str, Any], description: dict[str, Any]) -> list[str]:
    old, new = _config_view(previous["config"]), _config_view(description["config"])
    return [
        f"`{key}`: {old.get(key)!r} -> {new.get(key)!r}"
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key)
    ]


def _markdown(changes: Changes, version: str, items: tuple[int, int]) -> str:
    added, removed, changed = changes.added, changes.removed, changes.changed
    lines = [
        "# Changelog",
        "",
        f"## {version} (since {changes.previous})",
        "",
        f"- items: {items[0]} -> {items[1]}: {len(added)} added, {len(removed)} removed, "
        f"{len(changed)} changed",
        "",
    ]
    if changes.cells:
        lines += ["### Items per cell that changed", "", "| category | relation | before | after |"]
        lines += ["|---|---|---|---|", *(f"| {c} | {r} | {b} | {a} |" for c, r, b, a in changes.cells), ""]
    for title, entries in (("Taxonomy", changes.taxonomy), ("Configuration", changes.config)):
        lines += [f"### {title}", ""] + ([f"- {e}" for e in entries] or ["- no change"]) + [""]
    for title, ids in (("Added", added), ("Removed", removed), ("Changed", changed)):
        if ids:
            lines += [f"### {title} items", "", ", ".join(f"`{i}`" for i in ids), ""]
    return "\n".join(lines)


def changelog(description: dict[str, Any], previous: dict[str, Any] | None) -> Changes:
    """What changed from `previous` (a manifest) to this release."""
    version = description["version"]
    if previous is None:
        markdown = f"# Changelog\n\n## {version}\n\nFirst release: {description['items']} items.\n"
        return Changes(
            previous=None,
            added=[],
            removed=[],
            changed=[],
            cells=[],
            taxonomy=[],
            config=[],
            markdown=markdown,
        )
    previous = _in_current_shape(previous, description)
    now = {entry["id"]: entry["content_sha256"] for entry in description["selection"]}
    before = {entry["id"]: entry.get("content_sha256") for entry in previous["selection"]}
    changes = Changes(
        previous=previous["version"],
        added=sorted(set(now) - set(before)),
        removed=sorted(set(before) - set(now)),
        changed=sorted(i for i in set(now) & set(before) if now[i] != before[i]),
        cells=_cell_changes(previous, description),
        taxonomy=_taxonomy_changes(previous, description),
        config=_config_changes(previous, description),
        markdown="",
    )
    changes.markdown = _markdown(changes, version, (previous["items"], description["items"]))
    return changes
