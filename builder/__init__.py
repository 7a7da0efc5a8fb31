"""mirbench: build multi-image safety benchmarks (MIR-SafetyBench style).

Packages by concern, lowest layer first: `core` (the item, registry, stats), `store`, `models`,
`config`, `stages` (the pipeline and one package per stage), `run` (a build run and its report),
`curation` (seeds), `release`, `review`, `cli`. The README's "Layout" section has a line on each.

Plug-ins import the stable names `builder.items`, `builder.stage` and `builder.registry`: they
are the modules `builder.core.items`, `builder.stages.base` and `builder.core.registry` under
their older, shorter names, so a plug-in written for either layout runs unchanged.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mirbench")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

PLUGIN_API = {
    "builder.items": "builder.core.items",
    "builder.stage": "builder.stages.base",
    "builder.registry": "builder.core.registry",
}


class _PluginAPI(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds each plug-in name of PLUGIN_API as the very module it stands for (one module object
    under two names, so classes and registries are shared, not copied)."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in PLUGIN_API:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return importlib.import_module(PLUGIN_API[spec.name])

    def exec_module(self, module: types.ModuleType) -> None:
        """The module ran when it was imported under its own name."""


if not any(isinstance(finder, _PluginAPI) for finder in sys.meta_path):
    sys.meta_path.append(_PluginAPI())
