"""The registry's error paths, on a registry of its own: a throwaway backend package written to a
temporary folder (one module per backend, as in builder/) and a throwaway installed
distribution declaring entry points. Nothing in builder/ is registered or changed."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path
from typing import Literal

import pytest
from pydantic import ValidationError

from builder.core.registry import Backend, BackendSettings, Registry

_packages = itertools.count()

PACKAGE_INIT = """
from builder.core.registry import Registry

widgets = Registry("widget", __name__, group="{group}", default="alpha")
"""

BACKEND_MODULE = """
from typing import Literal

from builder.core.registry import Backend, BackendSettings
from {package} import widgets


class {title}Settings(BackendSettings):
    backend: Literal["{name}"] = "{name}"
    size: int = 1


@widgets.register
class {title}Widget(Backend):
    name = "{name}"
    Settings = {title}Settings
"""

PLUGIN_MODULE = """
from typing import Literal

from builder.core.registry import Backend, BackendSettings


class GammaSettings(BackendSettings):
    backend: Literal["gamma"] = "gamma"


class GammaWidget(Backend):
    name = "gamma"
    Settings = GammaSettings


class NotABackend:
    name = "delta"
"""


class Site:
    """A folder on sys.path holding one backend package and, on demand, one distribution."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch):
        number = next(_packages)
        self.root, self.package, self.group = root, f"widgets_{number}", f"mirbench.test_widgets_{number}"
        self.plugin = f"widget_plugins_{number}"
        folder = root / self.package
        folder.mkdir()
        (folder / "__init__.py").write_text(PACKAGE_INIT.format(group=self.group))
        for name in ("alpha", "beta"):
            module = BACKEND_MODULE.format(package=self.package, name=name, title=name.title())
            (folder / f"{name}.py").write_text(module)
        (root / f"{self.plugin}.py").write_text(PLUGIN_MODULE)
        monkeypatch.syspath_prepend(str(root))
        for module in (self.package, f"{self.package}.alpha", f"{self.package}.beta", self.plugin):
            monkeypatch.delitem(sys.modules, module, raising=False)

    def entry_points(self, *lines: str) -> None:
        info = self.root / "widget_plugins-1.0.dist-info"
        info.mkdir(exist_ok=True)
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: widget-plugins\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[{self.group}]\n" + "\n".join(lines) + "\n")

    def registry(self) -> Registry:
        import importlib

        return importlib.import_module(self.package).widgets


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Site:
    return Site(tmp_path, monkeypatch)


def test_every_module_of_the_package_registers(site: Site) -> None:
    widgets = site.registry()
    assert widgets.names() == ["alpha", "beta"]
    assert widgets.describe() == "alpha, beta"
    assert widgets.get("beta").__name__ == "BetaWidget"
    assert widgets.parse({"size": 3}).model_dump() == {"backend": "alpha", "size": 3}  # the default
    assert widgets.parse("beta").model_dump() == {"backend": "beta", "size": 1}


def test_an_unknown_name_lists_the_available_ones(site: Site) -> None:
    widgets = site.registry()
    with pytest.raises(KeyError) as caught:
        widgets.get("gamma")
    assert caught.value.args[0] == "no widget backend 'gamma'; available: alpha, beta"
    for value in ("gamma", {"backend": "gamma", "size": 2}):
        with pytest.raises(ValueError) as parsed:
            widgets.parse(value)
        assert str(parsed.value) == "unknown widget 'gamma'; available: alpha, beta"


def test_bad_settings_for_a_known_backend_are_a_validation_error(site: Site) -> None:
    widgets = site.registry()
    with pytest.raises(ValidationError) as caught:
        widgets.parse({"backend": "beta", "size": "large", "colour": "red"})
    problems = {(error["loc"][-1], error["type"]) for error in caught.value.errors()}
    assert problems == {("size", "int_parsing"), ("colour", "extra_forbidden")}


def test_a_second_backend_with_a_taken_name_is_refused(site: Site) -> None:
    widgets = site.registry()
    first = widgets.get("alpha")
    assert widgets.register(first) is first  # registering the same class again is harmless

    class Impostor(Backend):
        name = "alpha"
        Settings = first.Settings

    with pytest.raises(TypeError, match="two widget backends named 'alpha'"):
        widgets.register(Impostor)
    assert widgets.get("alpha") is first


def test_a_backend_whose_settings_do_not_name_it_is_refused() -> None:
    widgets: Registry[Backend] = Registry("widget", "builder.registry_test_unused", group="none")

    class Unnamed(BackendSettings):
        size: int = 1

    class Misnamed(BackendSettings):
        backend: Literal["other"] = "other"

    for settings in (Unnamed, Misnamed):

        class Broken(Backend):
            name = "broken"
            Settings = settings

        with pytest.raises(TypeError) as caught:
            widgets.register(Broken)
        assert str(caught.value).endswith(".Broken.Settings needs `backend: Literal['broken'] = 'broken'`")


def test_an_entry_point_adds_a_third_party_backend(site: Site) -> None:
    site.entry_points(f"gamma = {site.plugin}:GammaWidget")
    widgets = site.registry()
    assert widgets.names() == ["alpha", "beta", "gamma"]
    with pytest.raises(ValueError, match=r"available: alpha, beta, gamma$"):
        widgets.parse("epsilon")


@pytest.mark.parametrize(
    ("entry", "error", "message"),
    [
        (
            "delta = {plugin}:NotABackend",
            TypeError,
            "entry point delta = {plugin}:NotABackend: not a mirbench backend class",
        ),
        (
            "zeta = {plugin}:GammaWidget",
            TypeError,
            "entry point zeta = {plugin}:GammaWidget: class is named 'gamma'",
        ),
        (
            "gamma = {plugin}_missing:GammaWidget",
            TypeError,
            "entry point gamma = {plugin}_missing:GammaWidget ({group}): No module named",
        ),
        ("gamma = {plugin}:Missing", TypeError, "entry point gamma = {plugin}:Missing ({group}): "),
    ],
)
def test_a_broken_entry_point_fails_discovery_every_time(
    site: Site, entry: str, error: type[Exception], message: str
) -> None:
    site.entry_points(entry.format(plugin=site.plugin))
    widgets = site.registry()
    for _ in range(2):  # not remembered as discovered: the next use fails the same way
        with pytest.raises(error) as caught:
            widgets.names()
        assert message.format(plugin=site.plugin, group=site.group) in str(caught.value)


def test_a_backend_without_a_method_of_its_base_is_refused_when_it_registers() -> None:
    """The bases are abstract: a renderer without `render_key`, a filter without `check` or a
    tester without `attack` fails at registration, naming what it lacks, not at build time."""
    from builder.stages.attack import Tester, TesterSettings, testers
    from builder.stages.filters import Filter, FilterSettings, filters
    from builder.stages.render import Renderer, RendererSettings, renderers

    class HalfRenderer(Renderer):
        name = "half"
        Settings = type(
            "HalfSettings",
            (RendererSettings,),
            {"__annotations__": {"backend": Literal["half"]}, "backend": "half"},
        )

        def signature(self) -> str:
            return "half"

        def render(self, jobs):  # type: ignore[no-untyped-def]
            return []

    class SilentFilter(Filter):
        name = "silent"
        version = "1"
        Settings = type(
            "SilentSettings",
            (FilterSettings,),
            {"__annotations__": {"name": Literal["silent"]}, "name": "silent"},
        )

    class MuteTester(Tester):
        name = "mute"
        Settings = type(
            "MuteSettings",
            (TesterSettings,),
            {"__annotations__": {"backend": Literal["mute"]}, "backend": "mute"},
        )

        def answer_key(self, item) -> str:  # type: ignore[no-untyped-def]
            return item.id

    for registry, backend, missing in (
        (renderers, HalfRenderer, "render_key"),
        (filters, SilentFilter, "check"),
        (testers, MuteTester, "attack"),
    ):
        with pytest.raises(
            TypeError, match=f"{backend.__qualname__} is a .* backend without {missing}: define it"
        ):
            registry.register(backend)  # type: ignore[arg-type]
        assert backend.name not in registry.names()
