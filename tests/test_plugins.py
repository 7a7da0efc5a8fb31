"""Backends are plug-ins: a toy filter and toy renderers, written as a separate installed
distribution (a module plus a dist-info folder declaring the `mirbench.filters` and
`mirbench.renderers` entry points), are selected by name from a config file and run in a real
build through the real CLI; nothing in mirbench is edited. A renderer that fails leaves failed
items, and the next build with a working renderer retries them until none is left."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from builder.core.items import ItemStatus
from builder.stages.filters import filters
from builder.store import Store

pytestmark = pytest.mark.slow

TOY_PLUGINS = '''
import os
from typing import Literal

import numpy as np
from PIL import Image

from builder.core.errors import InputError
from builder.stages.filters import Filter, FilterSettings
from builder.stages.render import Rendered, Renderer, RendererSettings, content_key


class ShortPromptSettings(FilterSettings):
    name: Literal["toy_short_prompt"] = "toy_short_prompt"
    max_words: int = 100


class ShortPromptFilter(Filter):
    name = "toy_short_prompt"
    version = "7"
    Settings = ShortPromptSettings

    def __init__(self, max_words):
        self.max_words = max_words

    @classmethod
    def from_settings(cls, settings, workspace):
        return cls(settings.max_words)

    def check(self, item):
        words = len(item.revised_prompt.split())
        short = words <= self.max_words
        return self.verdict(short, "" if short else "prompt too long", score=words)


class NoiseSettings(RendererSettings):
    backend: Literal["toy_noise"] = "toy_noise"


class NoiseRenderer(Renderer):
    """Seeded noise per slot: distinct, never blank."""

    name = "toy_noise"
    Settings = NoiseSettings

    def __init__(self, size):
        self.size = size

    @classmethod
    def from_settings(cls, settings, workspace):
        return cls(settings.size)

    def signature(self):
        return f"toy_noise/{self.size}"

    def render_key(self, job):
        return content_key(self, job.slot)

    def render(self, jobs):
        pictures = []
        for job in jobs:
            seed = int(self.render_key(job)[:8], 16)
            pixels = np.random.default_rng(seed).integers(0, 255, (self.size, self.size, 3), dtype=np.uint8)
            pictures.append(Rendered(Image.fromarray(pixels)))
        return pictures


class BrokenSettings(RendererSettings):
    backend: Literal["toy_broken"] = "toy_broken"


class BrokenRenderer(NoiseRenderer):
    name = "toy_broken"
    Settings = BrokenSettings

    def signature(self):
        return "toy_broken"

    def render(self, jobs):
        raise RuntimeError("the toy GPU fell over")


class GatedSettings(RendererSettings):
    backend: Literal["toy_gated"] = "toy_gated"


class GatedRenderer(NoiseRenderer):
    """Checks before any work starts (Backend.preflight) that its licence was accepted."""

    name = "toy_gated"
    Settings = GatedSettings

    @classmethod
    def preflight(cls, settings):
        if os.environ.get("TOY_LICENCE") != "accepted":
            raise InputError("toy_gated: set TOY_LICENCE=accepted first")
        return ["toy_gated: licence accepted"]
'''

ENTRY_POINTS = """\
[mirbench.filters]
toy_short_prompt = toy_plugins:ShortPromptFilter

[mirbench.renderers]
toy_noise = toy_plugins:NoiseRenderer
toy_broken = toy_plugins:BrokenRenderer
toy_gated = toy_plugins:GatedRenderer
"""


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A third-party distribution on disk, as pip would install it."""
    site = tmp_path_factory.mktemp("site")
    (site / "toy_plugins.py").write_text(TOY_PLUGINS)
    info = site / "toy_plugins-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-plugins\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    return site


def _mirbench(
    plugin_path: Path, prefect_api_url: str, *args: str, **extra_env: str
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        **extra_env,
        "PYTHONPATH": os.pathsep.join([str(plugin_path), os.environ.get("PYTHONPATH", "")]),
        "PREFECT_API_URL": prefect_api_url,
    }
    return subprocess.run(
        [sys.executable, "-c", "from builder.cli import run; run()", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_toy_filter_and_renderer_are_chosen_by_name_from_a_config_file(
    plugin_path: Path, prefect_api_url: str, tmp_path: Path
) -> None:
    config = tmp_path / "mirbench.yaml"
    config.write_text(
        "renderer: {backend: toy_noise, size: 64}\n"
        "filters: [structural, {name: toy_short_prompt, max_words: 6}, leakage]\n"
    )
    artifacts = tmp_path / "artifacts"
    result = _mirbench(
        plugin_path, prefect_api_url, "build", "--config", str(config), "--artifacts", str(artifacts),
        "--limit", "2", "-r", "analogy", "-r", "causality", "--max-iterations", "1",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    store = Store(f"sqlite:///{artifacts / 'mirbench.db'}")
    items = store.items_with_statuses(list(ItemStatus))
    store.close()
    assert len(items) == 4
    for item in items:  # every offline prompt is longer than 6 words
        assert item.provenance.renderer == "toy_noise/64"
        toy = item.rejection
        assert (toy.name, toy.version, toy.reason) == ("toy_short_prompt", "7", "prompt too long")
        assert toy.score == len(item.revised_prompt.split()) > 6
        assert [v.name for v in item.verdicts] == ["dedup", "structural", "toy_short_prompt"]

    config.write_text(
        "renderer: {backend: toy_noise, size: 64}\n"
        "filters: [structural, {name: toy_short_prompt, max_words: 100}, leakage]\n"
    )
    again = _mirbench(
        plugin_path, prefect_api_url, "build", "--config", str(config), "--artifacts", str(artifacts),
        "--limit", "2", "-r", "analogy", "-r", "causality", "--max-iterations", "2",
    )  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    store = Store(f"sqlite:///{artifacts / 'mirbench.db'}")
    refined = store.items_with_statuses([ItemStatus.QUEUED])
    store.close()
    assert len(refined) == 4 and {item.iteration for item in refined} == {2}
    for item in refined:
        toy = next(v for v in item.verdicts if v.name == "toy_short_prompt")
        assert toy.passed and toy.score == len(item.revised_prompt.split())
        assert item.feedback == ["toy_short_prompt: prompt too long"]

    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("filters: [structural, toy_missing]\n")
    refused = _mirbench(plugin_path, prefect_api_url, "build", "--config", str(unknown))
    assert refused.returncode == 2
    # Errors (and --help) list what is registered, third-party backends included.
    available = ", ".join(sorted([*filters.names(), "toy_short_prompt"]))
    assert f"unknown filter 'toy_missing'; available: {available}" in refused.stderr


def test_failed_items_come_back_when_the_renderer_works_again(
    plugin_path: Path, prefect_api_url: str, tmp_path: Path
) -> None:
    artifacts = tmp_path / "artifacts"
    where = ["--artifacts", str(artifacts), "--limit", "2", "-r", "analogy", "-r", "decomposition"]
    broken = _mirbench(plugin_path, prefect_api_url, "build", "--renderer", "toy_broken", *where)
    store = Store(f"sqlite:///{artifacts / 'mirbench.db'}")
    failed = store.items_with_statuses([ItemStatus.FAILED])
    assert len(failed) == 4, broken.stdout + broken.stderr
    assert broken.returncode == 1 and "4 of this run's candidate(s) failed (render: renderer error 4)" in (
        " ".join(broken.stderr.split())
    )
    assert all(i.rejection.detail == "RuntimeError: the toy GPU fell over" for i in failed)

    fixed = _mirbench(plugin_path, prefect_api_url, "build", "--renderer", "toy_noise", *where)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    items = store.items_with_statuses(list(ItemStatus))
    store.close()
    assert {item.status for item in items} == {ItemStatus.QUEUED}
    assert {item.id for item in items} == {item.id for item in failed}  # the same candidates, retried
    for item in items:
        (earlier,) = item.failures  # the failed attempt is kept, with its reason
        assert (earlier.name, earlier.detail) == ("render", "RuntimeError: the toy GPU fell over")
        assert item.attempts == 2 and item.provenance.renderer == "toy_noise/512"


def test_a_plugin_backend_checks_its_needs_before_the_build_starts(
    plugin_path: Path, prefect_api_url: str, tmp_path: Path
) -> None:
    artifacts = tmp_path / "artifacts"
    where = ["--artifacts", str(artifacts), "--limit", "1", "-r", "analogy", "--max-iterations", "1"]
    refused = _mirbench(plugin_path, prefect_api_url, "build", "--renderer", "toy_gated", *where)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "error: toy_gated: set TOY_LICENCE=accepted first" in refused.stderr
    assert not artifacts.exists()  # refused before anything was written

    built = _mirbench(
        plugin_path, prefect_api_url, "build", "--renderer", "toy_gated", *where, TOY_LICENCE="accepted"
    )
    assert built.returncode == 0, built.stdout + built.stderr
    assert "note: toy_gated: licence accepted" in built.stdout
