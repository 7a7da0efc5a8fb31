"""Publishing to the Hub through the real `huggingface_hub` and `datasets` clients.

The Hub itself is the one thing that cannot exist offline: these tests run against
tests/hub_standin.py, a test-only FastAPI stand-in on 127.0.0.1 that speaks the part of the Hub
API the clients call (it does not model permissions, gating, Xet or the dataset viewer). The
CLI and `load_dataset` run in subprocesses because `huggingface_hub` reads HF_ENDPOINT at import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from builder.config.settings import Settings
from builder.core.errors import InputError
from builder.release.publish import check_publishable
from tests.conftest import REPO
from tests.hub_standin import DROPPED, HubStandIn
from tests.test_release import _items, approve, release

TOKEN = "hf_standin_SECRET_token_4242"


@pytest.fixture(scope="module")
def hub() -> Iterator[HubStandIn]:
    with HubStandIn(token=TOKEN) as server:
        yield server


class Publisher:
    """Runs `mirbench publish` and `load_dataset` as separate processes against the stand-in."""

    def __init__(
        self, hub: HubStandIn, home: Path, settings: Settings, extra_env: dict[str, str] | None = None
    ):
        self.settings = settings
        self.env = {**os.environ, **hub.env(str(home)), **(extra_env or {})}
        self.env["MIRBENCH_PUBLISH__BACKOFF_SECONDS"] = "0.05"
        self.outputs: list[str] = []

    def publish(self, version: str, repo: str, *args: str) -> subprocess.CompletedProcess[str]:
        where = [
            "--artifacts",
            str(self.settings.artifacts),
            "--database-url",
            self.settings.resolved_database_url,
        ]
        command = [
            sys.executable,
            "-c",
            "from builder.cli import run; run()",
            "publish",
            version,
            "--repo",
            repo,
        ]
        done = subprocess.run(
            [*command, *where, *args], cwd=REPO, env=self.env, capture_output=True, text=True, timeout=180
        )
        self.outputs += [done.stdout, done.stderr]
        return done

    def load(self, repo: str, revision: str) -> dict:
        script = (
            "import json, sys\n"
            "from datasets import load_dataset\n"
            "rows = load_dataset(sys.argv[1], revision=sys.argv[2], split='train')\n"
            "print(json.dumps({'n': len(rows), 'ids': sorted(rows['id']), 'columns': rows.column_names,"
            " 'images': [len(r) for r in rows['images']]}))\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", script, repo, revision],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        self.outputs += [done.stdout, done.stderr]
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])


def _settings(tmp_path: Path, name: str, license: str | None = "cc-by-nc-4.0") -> Settings:
    return Settings(
        artifacts=tmp_path / name / "artifacts",
        database_url=f"sqlite:///{tmp_path / name / 'store.db'}",
        release={"license": license},
    )


def _no_token_anywhere(tmp_path: Path, publisher: Publisher) -> None:
    for text in publisher.outputs:
        assert TOKEN not in text
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path


@pytest.mark.slow
def test_publish_load_by_tag_next_version_and_immutability(hub: HubStandIn, tmp_path: Path) -> None:
    settings = _settings(tmp_path, "main")
    store = approve(settings, _items("pub", 3))
    release(settings, "1.0.0", tmp_path / "v1.0.0", ["hf", "mir"])
    publisher = Publisher(hub, tmp_path / "hf-home", settings)

    first = publisher.publish("1.0.0", "org/bench")
    assert first.returncode == 0, first.stderr
    assert "published: org/bench v1.0.0" in first.stdout
    repo = hub.repos["org/bench"]
    assert repo.private and repo.gated == "auto"
    loaded = publisher.load("org/bench", "v1.0.0")
    assert loaded["n"] == 3 and loaded["columns"][0] == "id" and set(loaded["images"]) == {2}

    elsewhere = _settings(tmp_path, "elsewhere")  # another machine: no local 1.0.0, the Hub has it
    approve(elsewhere, _items("fresh", 1)).close()
    script = (
        "import sys; from pathlib import Path\n"
        "from builder.release.create import create_release; from builder.config.settings import Settings\n"
        "from pydantic import SecretStr\n"
        "settings = Settings.model_validate_json(sys.argv[1])\n"
        "settings = settings.model_copy(update={'database_url': SecretStr(sys.argv[3])})\n"
        "create_release(settings, '1.1.0', Path(sys.argv[2]), changelog_from='org/bench')\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            elsewhere.model_dump_json(),
            str(tmp_path / "elsewhere-1.1.0"),
            elsewhere.resolved_database_url,
        ],  # the URL apart: its JSON form is masked
        cwd=REPO,
        env=publisher.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    publisher.outputs += [done.stdout, done.stderr]
    assert done.returncode == 0, done.stderr[-3000:]
    log = (tmp_path / "elsewhere-1.1.0" / "CHANGELOG.md").read_text()
    assert "## 1.1.0 (since 1.0.0)" in log and "3 -> 1: 1 added, 3 removed" in log

    approve(settings, _items("more", 2)).close()
    release(settings, "1.1.0", tmp_path / "v1.1.0")
    second = publisher.publish("1.1.0", "org/bench")
    assert second.returncode == 0, second.stderr
    assert publisher.load("org/bench", "v1.1.0")["n"] == 5
    assert publisher.load("org/bench", "v1.0.0")["n"] == 3  # the old tag still serves its rows
    tagged = repo.commits[repo.tags["v1.1.0"]].files
    assert "3 -> 5: 2 added, 0 removed" in tagged["CHANGELOG.md"].data.decode()
    assert "Since 1.0.0: 2 item(s) added" in tagged["README.md"].data.decode()
    assert not any(path.startswith("mir/") for path in tagged)  # 1.0.0's extra layout is gone from main
    assert len(hub.commits_of("org/bench")) == 3  # the repo's first commit + one per version

    again = publisher.publish("1.1.0", "org/bench")
    assert again.returncode == 0 and "already published" in again.stdout
    assert f"commit {repo.tags['v1.1.0']}" in again.stdout  # the tagged commit, not "-"
    assert len(hub.commits_of("org/bench")) == 3

    release(settings, "1.0.5", tmp_path / "v1.0.5")  # an older version after a newer one
    older = publisher.publish("1.0.5", "org/bench")
    publisher.outputs += [older.stdout, older.stderr]
    assert older.returncode == 1 and "already has a newer version (v1.1.0)" in older.stderr
    assert "rerun" not in older.stderr  # a refusal: rerunning meets it again
    assert len(hub.commits_of("org/bench")) == 3 and "v1.0.5" not in repo.tags

    other = _settings(tmp_path, "other")
    approve(other, _items("else", 1)).close()
    release(other, "1.0.0", tmp_path / "other-1.0.0")
    refused = Publisher(hub, tmp_path / "hf-home", other).publish("1.0.0", "org/bench")
    publisher.outputs += [refused.stdout, refused.stderr]
    assert refused.returncode == 1 and "already has tag v1.0.0 with other content" in refused.stderr
    assert "rerun" not in refused.stderr
    assert len(hub.commits_of("org/bench")) == 3
    store.close()
    _no_token_anywhere(tmp_path, publisher)


@pytest.mark.slow
def test_faults_are_retried_and_a_rerun_completes(hub: HubStandIn, tmp_path: Path) -> None:
    """429 with Retry-After, 500s, connections dropped mid-upload and after the commit landed."""
    settings = _settings(tmp_path, "faults")
    approve(settings, _items("fault", 2)).close()
    release(settings, "1.0.0", tmp_path / "rel")
    publisher = Publisher(hub, tmp_path / "hf-home", settings, {"MIRBENCH_PUBLISH__MAX_RETRIES": "2"})
    hub.fail("GET", r"/api/datasets/org/faulty/refs", "429", retry_after=1)
    hub.fail("PUT", r"^/lfs-upload/", "drop")
    hub.fail("POST", r"/api/datasets/org/faulty/commit/", "500")
    hub.fail("POST", r"/api/datasets/org/faulty/commit/", "drop-after")
    done = publisher.publish("1.0.0", "org/faulty")
    assert done.returncode == 0, done.stderr
    assert hub.pending_faults() == []  # every scripted fault was met
    statuses = [status for method, path, status in hub.requests if "faulty" in path or "lfs-upload" in path]
    assert {429, 500, DROPPED} <= set(statuses)
    assert len(hub.commits_of("org/faulty")) == 2  # one commit for the version despite the lost answer
    assert hub.repos["org/faulty"].tags["v1.0.0"] == hub.repos["org/faulty"].branches["main"]

    approve(settings, _items("late", 1)).close()
    release(settings, "1.1.0", tmp_path / "rel-1.1.0")
    hub.fail("POST", r"/api/datasets/org/faulty/tag/", "500", times=5)
    failed = publisher.publish("1.1.0", "org/faulty")
    assert failed.returncode == 1
    assert (
        "tagging v1.1.0 on org/faulty failed: HTTP 500" in failed.stderr
        and "rerun to resume" in failed.stderr
    )
    hub.faults.clear()
    resumed = publisher.publish("1.1.0", "org/faulty")
    assert resumed.returncode == 0 and "tagged an earlier commit" in resumed.stdout
    assert len(hub.commits_of("org/faulty")) == 3
    assert publisher.load("org/faulty", "v1.1.0")["n"] == 3
    _no_token_anywhere(tmp_path, publisher)


def test_dry_run_writes_what_would_be_uploaded_and_contacts_nothing(hub: HubStandIn, tmp_path: Path) -> None:
    settings = _settings(tmp_path, "dry")
    approve(settings, _items("dry", 2)).close()
    release(settings, "1.0.0", tmp_path / "rel")
    before = len(hub.requests)
    done = Publisher(hub, tmp_path / "hf-home", settings).publish(
        "1.0.0", "org/dry", "--dry-run", "--dry-run-out", str(tmp_path / "plan")
    )
    assert done.returncode == 0, done.stderr
    assert len(hub.requests) == before
    listed = sorted(
        p.relative_to(tmp_path / "rel").as_posix() for p in (tmp_path / "rel").rglob("*") if p.is_file()
    )
    written = sorted(
        p.relative_to(tmp_path / "plan").as_posix() for p in (tmp_path / "plan").rglob("*") if p.is_file()
    )
    assert written == listed
    assert (tmp_path / "plan" / "manifest.json").read_bytes() == (
        tmp_path / "rel" / "manifest.json"
    ).read_bytes()


def test_publishing_refuses_unlicensed_unapproved_and_undecodable(hub: HubStandIn, tmp_path: Path) -> None:
    unlicensed = _settings(tmp_path, "nolicense", license=None)
    approve(unlicensed, _items("nl", 1)).close()
    release(unlicensed, "1.0.0", tmp_path / "nl")
    done = Publisher(hub, tmp_path / "hf-home", unlicensed).publish("1.0.0", "org/refused")
    assert done.returncode == 2 and "release has no license" in done.stderr
    assert "org/refused" not in hub.repos

    settings = _settings(tmp_path, "checks")
    items = _items("chk", 2)
    store = approve(settings, items)
    first = release(settings, "1.0.0", tmp_path / "chk")
    approved = {item.id for item in items}
    check_publishable(first.location, first.manifest_sha256, approved)
    with pytest.raises(InputError, match=f"not approved in the store: mb-{items[0].id}"):
        check_publishable(first.location, first.manifest_sha256, approved - {items[0].id})

    broken = _items("broken", 1)
    approve(settings, broken).close()
    (settings.artifacts / broken[0].slots[1].file).write_bytes(b"not an image at all")
    second = release(settings, "1.1.0", tmp_path / "broken")
    with pytest.raises(InputError, match=f"item mb-{broken[0].id}: image 1 does not decode"):
        check_publishable(second.location, second.manifest_sha256, approved | {broken[0].id})
    store.close()
