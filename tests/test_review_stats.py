"""Review statistics and Label Studio exchange on a real SQLite store."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from builder.config.sections import ReviewSettings
from builder.config.settings import Settings
from builder.review.labelstudio import export_tasks, import_annotations
from builder.review.policy import Decision
from builder.review.service import ReviewService
from builder.review.stats import review_stats
from builder.store import ReviewState, Store
from tests.review_support import queue_items


@pytest.fixture
def store(tmp_path: Path) -> Store:
    opened = Store(f"sqlite:///{tmp_path / 'store.db'}")
    yield opened
    opened.close()


def test_counts_agreement_and_calibration(store: Store, tmp_path: Path) -> None:
    items = queue_items(store, tmp_path, 6, size=32)
    reviews = ReviewService(store, ReviewSettings(votes_required=2))
    ada = "AAARRA"
    bob = "AARRAA"  # agrees on 4 of 6
    for item, a, b in zip(items, ada, bob, strict=True):
        for name, vote in (("ada", a), ("bob", b)):
            decision = Decision.APPROVE if vote == "A" else Decision.REJECT
            reviews.vote(item.id, name, decision, None if vote == "A" else "leaks")
    report = review_stats(store)
    assert [(r.name, r.votes, r.approved, r.rejected) for r in report.reviewers] == [
        ("ada", 6, 4, 2),
        ("bob", 6, 4, 2),
    ]
    assert all(r.median_seconds is not None for r in report.reviewers)
    (pair,) = report.pairs
    # by hand: p_o = 4/6, p_e = (4/6)^2 + (2/6)^2 = 20/36, kappa = (24 - 20) / (36 - 20) = 0.25
    assert (pair.first, pair.second, pair.items) == ("ada", "bob", 6) and pair.kappa == pytest.approx(0.25)
    # by hand (nominal): n = 12 values (8 approve, 4 reject), 2 disagreeing units -> o_AR = o_RA = 2;
    # alpha = 1 - (n - 1) * 4 / (2 * 8 * 4) = 1 - 44/64
    assert report.alpha == pytest.approx(0.3125)
    (structural,) = report.calibration  # unanimous: the 2 disagreements await an admin
    assert (structural.verdict, structural.passed_approved, structural.passed_rejected) == (
        "structural",
        3,
        1,
    )
    assert (structural.failed_approved, structural.failed_rejected) == (0, 0)


def test_no_shared_votes_means_no_agreement_figures(store: Store, tmp_path: Path) -> None:
    first, second = queue_items(store, tmp_path, 2, size=32)
    reviews = ReviewService(store, ReviewSettings())
    reviews.vote(first.id, "ada", Decision.APPROVE)
    reviews.vote(second.id, "bob", Decision.APPROVE)
    report = review_stats(store)
    assert report.pairs == [] and report.alpha is None


def test_label_studio_export_then_import_under_the_same_rules(store: Store, tmp_path: Path) -> None:
    """Label Studio itself is not started here; the import reads the JSON layout its export
    writes (tasks with `annotations[].result[].value.choices`), written by the test."""
    settings = Settings(artifacts=tmp_path, database_url=store.url)
    items = queue_items(store, tmp_path, 3, size=32, prompts=["<b>bold</b> & co"])
    written = export_tasks(store, settings, tmp_path / "ls")
    tasks = json.loads(written.tasks_file.read_text())
    assert written.tasks == 3 and [task["data"]["item_id"] for task in tasks] == [item.id for item in items]
    assert tasks[0]["data"]["prompt"] == "<b>bold</b> & co"
    assert tasks[0]["data"]["images"][0] == "/data/local-files/?d=" + items[0].slots[0].file
    config = ElementTree.fromstring(written.config_file.read_text())
    reasons = [choice.get("value") for choice in config.find("Choices[@name='reason']")]
    assert reasons == settings.review.reasons

    def annotation(email: str, decision: str, at: str, reason: str | None = None) -> dict:
        result = [
            {
                "from_name": "decision",
                "to_name": "prompt",
                "type": "choices",
                "value": {"choices": [decision]},
            }
        ]
        if reason:
            result.append(
                {
                    "from_name": "reason",
                    "to_name": "prompt",
                    "type": "choices",
                    "value": {"choices": [reason]},
                }
            )
            result.append(
                {"from_name": "note", "to_name": "prompt", "type": "textarea", "value": {"text": ["see 2"]}}
            )
        return {
            "completed_by": {"id": 3, "email": email},
            "result": result,
            "was_cancelled": False,
            "created_at": at,
        }

    tasks[0]["annotations"] = [annotation("ada@example.org", "approve", "2026-01-01T10:00:00Z")]
    tasks[1]["annotations"] = [
        annotation("ada@example.org", "reject", "2026-01-01T10:01:00Z", "prompt unclear")
    ]
    tasks[2]["annotations"] = [
        annotation("ada@example.org", "approve", "2026-01-01T10:02:00Z"),
        annotation("bob@example.org", "reject", "2026-01-01T10:03:00Z", "prompt unclear"),  # decided already
        {"completed_by": 4, "result": [], "was_cancelled": True},
    ]
    exported = tmp_path / "export.json"
    exported.write_text(json.dumps(tasks))
    result = import_annotations(exported, ReviewService(store, settings.review))
    assert result.applied == [items[0].id, items[1].id, items[2].id]
    assert [item_id for item_id, _ in result.refused] == [items[2].id]
    assert "only an admin" in result.refused[0][1]
    assert store.review_entry(items[1].id).state is ReviewState.REJECTED
    assert store.review_entry(items[1].id).reason == "prompt unclear: see 2"
    assert store.review_entry(items[2].id).reviewer == "ada@example.org"
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(Exception, match="not a Label Studio JSON export"):
        import_annotations(broken, ReviewService(store, settings.review))
