"""Settings: one validated model; flags beat environment beat config file beat defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.config.settings import load_settings
from builder.core.errors import InputError
from builder.stages.filters import filters
from builder.stages.render.pool import twemoji


def test_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "mirbench.yaml"
    config.write_text("max_iterations: 5\nshard_size: 7\nrenderer:\n  size: 300\n")
    monkeypatch.setenv("MIRBENCH_SHARD_SIZE", "11")
    settings = load_settings(config, max_iterations=2)
    assert settings.max_iterations == 2  # flag
    assert settings.shard_size == 11  # environment over file
    assert settings.renderer.size == 300  # file over default
    assert load_settings().renderer.size == 512  # the file does not leak into later loads


def test_bad_values_name_the_setting_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("renderer:\n  size: 10\nfilters: [structural, vibes]\n")
    with pytest.raises(InputError) as caught:
        load_settings(config)
    message = str(caught.value)
    assert f"{config}:2: setting 'renderer.size'" in message
    assert (
        f"{config}:3: setting 'filters': Value error, entry 2: unknown filter 'vibes'; "
        f"available: {', '.join(filters.names())}" in message
    )
    with pytest.raises(InputError, match="config file not found"):
        load_settings(tmp_path / "missing.yaml")
    monkeypatch.setenv("MIRBENCH_MAX_ITERATIONS", "many")
    with pytest.raises(InputError, match="setting 'max_iterations'"):
        load_settings()


def test_database_defaults_to_sqlite_in_artifacts(tmp_path: Path) -> None:
    settings = load_settings(artifacts=tmp_path / "a")
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'a' / 'mirbench.db'}"


def test_config_hash_ignores_where_things_are_stored(tmp_path: Path) -> None:
    a = load_settings(artifacts=tmp_path / "a", database_url="sqlite:///x.db")
    b = load_settings(artifacts=tmp_path / "b")
    assert a.config_hash() == b.config_hash() != load_settings(max_iterations=4).config_hash()


def test_config_hash_is_made_of_the_enabled_stages_settings() -> None:
    base = load_settings()
    assert load_settings(stages={"dedup": {"text_similarity": 0.9}}).config_hash() != base.config_hash()
    assert load_settings(filters=["leakage"]).config_hash() != base.config_hash()
    # the attack loop is off without testers: its judge and policy decide nothing
    off = load_settings(attack={"judge": "rules", "policy": {"accept_unknown": True}})
    assert off.config_hash() == base.config_hash()
    on = {"testers": [{"backend": "openai", "model": "m", "base_url": "http://127.0.0.1:1/v1"}]}
    assert load_settings(attack=on).config_hash() != base.config_hash()


def test_dedup_settings_sit_under_stages_and_the_old_spelling_still_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "mirbench.yaml"
    config.write_text("dedup:\n  text_similarity: 0.9\n")
    settings = load_settings(config)
    assert settings.stages.dedup.text_similarity == settings.dedup.text_similarity == 0.9
    monkeypatch.setenv("MIRBENCH_STAGES__DEDUP__PHASH_MAX_DISTANCE", "3")
    assert load_settings().stages.dedup.phash_max_distance == 3
    monkeypatch.setenv("MIRBENCH_DEDUP__PHASH_MAX_DISTANCE", "3")
    with pytest.raises(
        InputError, match="MIRBENCH_DEDUP__PHASH_MAX_DISTANCE: dedup's settings are under stages"
    ):
        load_settings()


def test_backends_from_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "mirbench.yaml"
    config.write_text(
        "composer:\n  backend: openai\n  base_url: http://127.0.0.1:8000/v1\n"
        "  model: local\n  concurrency: 16\n"
        "renderer:\n  backend: retrieval\n  pool: /data/pool\n  min_score: 0.5\n"
    )
    monkeypatch.setenv("MIRBENCH_COMPOSER__TIMEOUT", "30")
    settings = load_settings(config)
    composer = settings.composer
    assert (composer.backend, composer.model, composer.concurrency, composer.timeout) == (
        "openai",
        "local",
        16,
        30,
    )
    assert composer.base_url == "http://127.0.0.1:8000/v1"
    assert settings.renderer.pool == Path("/data/pool") and settings.renderer.min_score == 0.5
    assert "api_key" not in type(composer).model_fields  # only the variable's name is a setting


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"composer": {"backend": "openai"}}, "needs a model name"),
        ({"renderer": {"backend": "diffusers"}}, "needs a model"),
        ({"renderer": {"backend": "retrieval", "min_score": 2}}, "min_score"),
        (
            {"renderer": {"backend": "diffusers", "model": "m", "prompt_template": "{subject}"}},
            "prompt_template",
        ),
    ],
)
def test_backends_say_what_they_are_missing(overrides: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        load_settings(**overrides)


def test_retrieval_without_a_pool_needs_the_built_in_one(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(renderer={"backend": "retrieval"}).renderer.pool is None  # the built-in pool
    monkeypatch.setattr(twemoji, "_assets", lambda: None)  # as on a machine without it
    with pytest.raises(InputError, match=r"picture pool is not installed.*or give an image pool"):
        load_settings(renderer={"backend": "retrieval"})
