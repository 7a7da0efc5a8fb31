"""The import graph of builder/ and flows/ has no cycle, type-only imports included.

Every module is read with `ast`, not imported: every `import` and `from ... import` counts,
at the top, under `if TYPE_CHECKING:` and inside functions alike. A package is one node (its
`__init__`), each of its modules another, so a cycle inside a package counts as much as one
between packages.

Lower layers never import higher ones, and a package's modules share its layer: a backend in
`builder/stages/compose/` importing `builder.stages.workspace` puts the compose stage below the
workspace, so the workspace must not import it. Each stage under `builder/stages/` is a layer of
its own, as are the stages' base, workspace and pipeline modules. Backends and plug-ins are found at run
time (registries import their package's modules, settings import a registry on first use);
those dynamic imports are by design not edges here.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOP_LEVEL = ("builder", "flows")


def modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file; a package's name maps to its `__init__.py`."""
    found = {}
    for top in TOP_LEVEL:
        for path in sorted((root / top).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imported(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The known modules `name` (read from `path`) imports: each import resolved to the longest
    known module it names (`from builder.compose import offline` is builder.compose.offline,
    `from builder.compose import Composer` is builder.compose)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    targets = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets += [f"{base}.{alias.name}" for alias in node.names]
    edges = set()
    for target in targets:
        while target and target not in known:
            target = target.rpartition(".")[0]
        if target and target != name:
            edges.add(target)
    return edges


def graph(root: Path) -> dict[str, set[str]]:
    known = modules(root)
    return {name: imported(name, path, known) for name, path in known.items()}


def layers(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph with every module merged into its package under builder/ or flows/
    (builder.run.tasks -> builder.run; builder.stages.compose.offline -> builder.stages.compose),
    edges inside one package dropped."""

    def unit(name: str) -> str:
        parts = name.split(".")
        return ".".join(parts[:3] if parts[:2] == ["builder", "stages"] else parts[:2])

    merged: dict[str, set[str]] = {}
    for name, targets in edges.items():
        merged.setdefault(unit(name), set()).update(unit(t) for t in targets if unit(t) != unit(name))
    return merged


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph, as a closed path (first == last), or None."""
    state: dict[str, str] = {}  # "open": on the current path, "done": explored
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == "open":
                return [*path[path.index(target) :], target]
            if target not in state and (found := visit(target)):
                return found
        state[node] = "done"
        path.pop()
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_module_imports_itself_back() -> None:
    found = cycle(graph(ROOT))
    assert found is None, "import cycle: " + " -> ".join(found)


def test_no_package_imports_a_higher_one() -> None:
    found = cycle(layers(graph(ROOT)))
    assert found is None, "a lower layer imports a higher one: " + " -> ".join(found)


def test_the_registry_knows_no_workspace_settings_or_stage() -> None:
    assert not graph(ROOT)["builder.core.registry"] & {
        "builder.stages.workspace",
        "builder.config.settings",
        "builder.stages.base",
    }


def test_core_imports_nothing_else_of_mirbench() -> None:
    edges = graph(ROOT)
    outside = {
        f"{name} -> {target}"
        for name, targets in edges.items()
        if name.startswith("builder.core")
        for target in targets
        if not target.startswith("builder.core")
    }
    assert not outside


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text), encoding="utf-8")
    return tmp_path


def test_a_type_only_import_closes_a_cycle(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "builder/__init__.py": "",
            "builder/low.py": """
                from typing import TYPE_CHECKING
                if TYPE_CHECKING:
                    from builder.high import High
            """,
            "builder/high.py": "from builder import low\n",
            "flows/__init__.py": "",
        },
    )
    assert cycle(graph(root)) == ["builder.high", "builder.low", "builder.high"]


def test_imports_inside_functions_and_relative_ones_count_in_packages(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "builder/__init__.py": "",
            "builder/store/__init__.py": "from .items import save\n",
            "builder/store/items.py": """
                def save():
                    from builder.store import engine
            """,
            "builder/store/engine.py": "",
            "flows/__init__.py": "",
        },
    )
    edges = graph(root)
    assert edges["builder.store.items"] == {"builder.store.engine"}  # `engine` is a module
    assert cycle(edges) is None
    (root / "builder/store/engine.py").write_text("from builder.store import items\n", encoding="utf-8")
    (root / "builder/store/items.py").write_text("from . import save_all\n", encoding="utf-8")
    assert cycle(graph(root)) == ["builder.store", "builder.store.items", "builder.store"]


def test_a_backend_importing_a_higher_module_puts_its_package_below_it(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "builder/__init__.py": "",
            "builder/compose/__init__.py": "",
            "builder/compose/openai.py": "from builder.workspace import Workspace\n",
            "builder/workspace.py": "from builder.compose import composers\n",
            "flows/__init__.py": "",
        },
    )
    assert cycle(graph(root)) is None  # nothing imports the backend module by name
    assert cycle(layers(graph(root))) == ["builder.compose", "builder.workspace", "builder.compose"]
