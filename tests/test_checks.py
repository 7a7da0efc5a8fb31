"""The benign-alone check (a real SmolLM2 server through llama.cpp; a closed port on 127.0.0.1 as
the unreachable one) and the alignment check (a tiny CLIP built from a config: random weights,
so its scores test the code path, not the quality of a match), and both when they are off."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from builder.core.items import Item, ItemStatus, Verdict
from builder.core.stats import Outcome
from builder.models.embeddings import ClipEncoder
from builder.stages.filters import filter_items
from builder.stages.filters.alignment import AlignmentFilter
from builder.stages.filters.benign_alone import BenignAloneFilter, BenignAloneSettings
from builder.stages.render import render_items
from builder.stages.render.typographic import TypographicRenderer
from builder.store import Store
from tests.helpers import make_item
from tests.servers import LlamaServer, free_port
from tests.tiny_models import save_tiny_clip


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(f"sqlite:///{tmp_path / 's.db'}")
    yield opened
    opened.close()


def _rendered(tmp_path: Path, store: Store, count: int = 2) -> list[Item]:
    items = [
        make_item(seed_id=f"s{n}", descriptions=(f"a ladder number {n}", "a quiet harbour at dawn"))
        for n in range(count)
    ]
    render_items(items, TypographicRenderer(size=64), store, tmp_path)
    return items


def test_checks_that_are_off_say_so(tmp_path: Path, store: Store) -> None:
    items = _rendered(tmp_path, store)
    output = filter_items(items, [BenignAloneFilter(None), AlignmentFilter(None, tmp_path, 0.2)])
    assert all(item.status is ItemStatus.PASSED for item in items)
    assert [(v.name, v.reason) for v in items[0].verdicts] == [("benign_alone", "off"), ("alignment", "off")]
    # neither passed nor failed: the item is not rejected by them, and nothing says they passed
    assert all(v.skipped and not v.passed and not v.failed for v in items[0].verdicts)
    assert items[0].rejection is None
    unchecked = {(c.check, c.reason): c.n for c in output.stats.of(Outcome.UNCHECKED)}
    assert unchecked == {
        ("benign_alone", "no classifier model configured (filters: benign_alone.model)"): len(items),
        ("alignment", "no CLIP model configured (filters: alignment.clip_model)"): len(items),
    }


def test_alignment_scores_each_image_against_its_description(tmp_path: Path, store: Store) -> None:
    clip = ClipEncoder(str(save_tiny_clip(tmp_path / "clip")), local_files_only=True)
    (item,) = _rendered(tmp_path, store, count=1)
    pictures = [Image.open(tmp_path / slot.file).convert("RGB") for slot in item.slots]
    expected = (
        clip.encode_images(pictures) * clip.encode_texts([slot.description for slot in item.slots])
    ).sum(axis=1)
    scores = AlignmentFilter(clip, tmp_path, 0.0).scores(item)
    assert np.allclose(scores, expected, atol=1e-5)
    lowest = float(scores.min())
    at_edge = AlignmentFilter(clip, tmp_path, lowest).check(item)
    assert at_edge.passed and at_edge.score == round(lowest, 4)
    above = AlignmentFilter(clip, tmp_path, lowest + 1e-4).check(item)
    assert not above.passed and above.reason == "image does not show its description"
    assert above.detail.startswith(f"slot {int(scores.argmin()) + 1}:")


def _benign(base_url: str, store: Store | None, **overrides: object) -> BenignAloneFilter:
    values = {"base_url": base_url, "model": "smollm2", "max_retries": 0, "timeout": 60.0, "concurrency": 4}
    settings = BenignAloneSettings(**{**values, **overrides})
    return BenignAloneFilter(BenignAloneFilter.client_for(settings, store))


def test_benign_alone_unreachable_classifier_fails_the_item_for_a_retry(tmp_path: Path, store: Store) -> None:
    items = _rendered(tmp_path, store)
    closed = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    filter_items(items, [_benign(closed, None, timeout=2.0)])
    assert all(item.status is ItemStatus.FAILED for item in items)  # not refined: retried
    assert all(item.rejection.reason == "classifier gave no answer" for item in items)
    assert all(item.rejection.name == "filters" for item in items)  # the stage a retry goes back to
    assert "benign_alone" in items[0].rejection.detail and "connection" in items[0].rejection.detail


def _outcome(item: Item) -> tuple[ItemStatus, str, str]:
    """How the filters stage left an item: its status and the name and reason of its last verdict."""
    return item.status, item.verdicts[-1].name, item.verdicts[-1].reason


@pytest.mark.slow
def test_benign_alone_asks_a_real_model_once_per_description(tmp_path: Path, store: Store) -> None:
    """SmolLM2-135M is far too small to judge harm: its answers are noise. What is checked: every
    description is asked about on its own, once (shared descriptions are asked once), every item
    ends judged or failed for a retry, and a replay with the server gone (a closed port) gives
    the same outcomes: answers come from the store's cache, only unanswered descriptions are
    asked again (and fail again)."""
    items = _rendered(tmp_path, store, count=3)
    with LlamaServer() as server:
        check = _benign(server.base_url, store, max_retries=2)
        filter_items(items, [check])
    assert check.client.requests_sent >= 4  # 3 ladders + 1 shared harbour, at least once each
    outcomes = [_outcome(item) for item in items]
    assert set(outcomes) <= {
        (ItemStatus.PASSED, "benign_alone", ""),
        (ItemStatus.REJECTED, "benign_alone", "an image is harmful on its own"),
        (ItemStatus.FAILED, "filters", "classifier gave no answer"),  # the stage that retries it
    }
    failed = [item for item in items if item.status is ItemStatus.FAILED]
    unanswered = {slot.description for item in failed for slot in item.slots}

    again = _rendered(tmp_path, store, count=3)
    closed = f"http://127.0.0.1:{free_port()}/v1"
    replay = _benign(closed, store, timeout=2.0)
    filter_items(again, [replay])
    assert [_outcome(item) for item in again] == outcomes
    assert replay.client.requests_sent <= len(unanswered)  # none at all when every item was judged


def test_an_off_check_stored_before_skipped_existed_loads_as_skipped() -> None:
    stored = {"name": "alignment", "version": "1", "passed": True, "reason": "off", "detail": "no model"}
    verdict = Verdict.model_validate(stored)
    assert verdict.skipped and not verdict.passed and not verdict.failed
    ran = Verdict.model_validate({"name": "structural", "version": "1", "passed": True, "reason": ""})
    assert ran.passed and not ran.skipped
