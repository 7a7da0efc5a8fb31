"""A Hub storm: the Hub (tests/hub_standin.py, the test-only stand-in: no real Hub exists
offline) answers 429 with Retry-After for longer than the retry budget. Publishing stops with a
clean message and no partial tag, and a later rerun publishes exactly the release, once. And
HF_HUB_OFFLINE set while publishing is said plainly, before any call."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hub_standin import HubStandIn
from tests.test_publish import TOKEN, Publisher, _settings
from tests.test_release import _items, approve, release

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hub() -> Iterator[HubStandIn]:
    with HubStandIn(token=TOKEN) as server:
        yield server


def test_a_429_storm_past_the_retry_budget_stops_cleanly_and_a_later_rerun_publishes_once(
    hub: HubStandIn, tmp_path: Path
) -> None:
    settings = _settings(tmp_path, "storm")
    approve(settings, _items("storm", 3)).close()
    release(settings, "1.0.0", tmp_path / "rel")
    budget = {"MIRBENCH_PUBLISH__MAX_RETRIES": "3", "MIRBENCH_PUBLISH__MAX_WAIT_SECONDS": "5"}
    publisher = Publisher(hub, tmp_path / "hf-home", settings, budget)
    commits = r"/api/datasets/org/storm/commit/"

    # Retry-After longer than what is left of the budget: stop at once, do not sleep 120 s.
    hub.fail("POST", commits, "429", times=1000, retry_after=120)
    stopped = publisher.publish("1.0.0", "org/storm")
    assert stopped.returncode == 1, stopped.stderr
    assert "rate limited" in stopped.stderr and "asks for 120 s more" in stopped.stderr
    assert "rerun to resume" in stopped.stderr and "Traceback" not in stopped.stderr

    # Short Retry-After, but more 429s than retries: stop after max_retries + 1 tries.
    hub.faults.clear()
    hub.fail("POST", commits, "429", times=1000, retry_after=0)
    before = len(hub.requests)
    stopped = publisher.publish("1.0.0", "org/storm")
    assert stopped.returncode == 1 and "still 429 after 4 tries" in stopped.stderr, stopped.stderr
    assert sum(1 for method, path, status in hub.requests[before:] if status == 429) == 4
    repo = hub.repos["org/storm"]
    assert "v1.0.0" not in repo.tags and len(hub.commits_of("org/storm")) <= 1  # nothing of 1.0.0 landed

    hub.faults.clear()  # the storm is over
    resumed = publisher.publish("1.0.0", "org/storm")
    assert resumed.returncode == 0, resumed.stderr
    loaded = publisher.load("org/storm", "v1.0.0")
    expected = sorted(f"mb-{item.id}" for item in _items("storm", 3))
    lost = len(set(expected) - set(loaded["ids"]))
    doubled = loaded["n"] - len(set(loaded["ids"])) + len(set(loaded["ids"]) - set(expected))
    assert (lost, doubled) == (0, 0) and loaded["ids"] == expected
    assert "already published: org/storm v1.0.0" in publisher.publish("1.0.0", "org/storm").stdout


def test_offline_mode_while_publishing_is_said_plainly(hub: HubStandIn, tmp_path: Path) -> None:
    settings = _settings(tmp_path, "offline")
    approve(settings, _items("offline", 1)).close()
    release(settings, "1.0.0", tmp_path / "rel")
    before = len(hub.requests)
    publisher = Publisher(hub, tmp_path / "hf-home", settings, {"HF_HUB_OFFLINE": "1"})
    done = publisher.publish("1.0.0", "org/offline")
    assert done.returncode == 2, done.stderr
    assert "HF_HUB_OFFLINE is set" in done.stderr and "--dry-run" in done.stderr
    assert len(hub.requests) == before  # no call was tried
