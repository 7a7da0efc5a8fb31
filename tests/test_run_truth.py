"""Every run tells the truth: the README's walk-through "build, break the tester, rebuild, find
why, fix, retry, release" through the real CLI, Prefect flow and store, with the exit code
checked at each step; then the review page and `answers purge`.

The tester and the judge are the scripted answer server of the attack-loop tests
(`ScriptedServer`, a test double on 127.0.0.1): no model that runs here complies or judges on
cue. "Breaking the tester" points it at a port where nothing listens (a real refused
connection). Everything else is real.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from builder.cli import app
from builder.config.settings import Settings
from builder.core.items import ItemStatus
from builder.review.service import ReviewService
from builder.store import Store
from tests.servers import ScriptedServer, free_port

pytestmark = pytest.mark.slow

ANSWER = 'UNSAFE-CUE <script>alert("answer")</script> & <b>steps</b>'
RATIONALE = "It follows the request: <i>carries it out</i>."


def script(path: str, body: dict) -> str:
    if body["model"] == "tester-a":
        return ANSWER
    if body["model"] == "judge":
        return json.dumps({"answer_class": "unsafe", "rationale": RATIONALE})
    raise AssertionError(f"unexpected model {body['model']}")


@pytest.fixture(autouse=True)
def _prefect(prefect_api_url: str) -> None:
    """Every build here runs against the session's real Prefect server."""


def _config(path: Path, tester_url: str, judge_url: str) -> Path:
    llm = {"max_retries": 0, "timeout": 5, "backoff_base": 0.01}
    path.write_text(
        json.dumps(
            {
                "max_iterations": 1,
                "max_attempts": 1,
                "renderer": {"backend": "typographic", "size": 96},
                "attack": {
                    "testers": [{"backend": "openai", "base_url": tester_url, "model": "tester-a", **llm}],
                    "judge": {"backend": "llm", "base_url": judge_url, "model": "judge", **llm},
                },
            }
        )
    )
    return path


def _count(output: str, label: str) -> int:
    """The number on the funnel row `label` of a build's table."""
    line = next(line for line in output.splitlines() if label in line)
    return int(re.findall(r"\d+", line.split(label, 1)[1])[-1])


def test_build_break_find_fix_retry_release(tmp_path: Path, database_url: str) -> None:
    runner = CliRunner()
    store_options = ["--artifacts", str(tmp_path / "artifacts"), "--database-url", database_url]
    seeds = ["--limit", "2"]
    with ScriptedServer(script) as server:
        good = _config(tmp_path / "good.yaml", server.base_url, server.base_url)
        dead_port = free_port()
        broken = _config(tmp_path / "broken.yaml", f"http://127.0.0.1:{dead_port}/v1", server.base_url)

        def build(config: Path, relation: str):
            args = ["build", "--config", str(config), "-r", relation, *seeds, *store_options]
            return runner.invoke(app, args)

        # 1. A healthy build: everything queued, exit 0.
        first = build(good, "analogy")
        assert first.exit_code == 0, first.output
        assert _count(first.output, "queued for review") == 2

        # 2. The tester breaks; a build over another relation of the same seeds fails every new
        # candidate. It counts only its own pairs, and exits 1 although older items are queued.
        second = build(broken, "causality")
        assert second.exit_code == 1, second.output
        assert _count(second.output, "candidates composed (all rounds)") == 2
        assert _count(second.output, "queued for review") == 0
        assert _count(second.output, "attack: connection") == 2
        assert "error:" in second.output and "2 of this run's candidate(s) failed (attack: connection 2)" in (
            second.output.replace("\n", " ")
        )
        assert f"127.0.0.1:{dead_port}" in second.output  # the most common failure, in full
        assert "mirbench items list --status failed" in second.output

        # 3. Find why: the failed items list and one item in full name the tester, its host and
        # the message.
        listed = runner.invoke(
            app,
            [
                "items",
                "list",
                "--status",
                "failed",
                "--stage",
                "attack",
                "--config",
                str(broken),
                *store_options,
            ],
        )
        assert listed.exit_code == 0, listed.output
        failed_ids = re.findall(r"\b[0-9a-f]{16}\b", listed.output)
        assert (
            len(set(failed_ids)) == 2
            and "connection" in listed.output
            and "attempts used up" in listed.output
        )
        shown = runner.invoke(app, ["items", "show", failed_ids[0], "--config", str(broken), *store_options])
        assert shown.exit_code == 0, shown.output
        text = " ".join(shown.output.split())
        assert "tester tester-a (openai, model tester-a at" in text and f"127.0.0.1:{dead_port}" in text
        assert "attempts: 1 of max_attempts 1" in text

        # 4. Rebuilding without fixing anything: the exhausted items are not retried, nothing
        # this run touched failed (exit 0), and the build says how to retry them.
        third = build(broken, "causality")
        assert third.exit_code == 0, third.output
        assert _count(third.output, "candidates composed (all rounds)") == 0
        assert _count(third.output, "failed, attempts used up") == 2
        assert "mirbench retry" in third.output

        # 5. Fix the tester, reopen the exhausted items, rebuild: the build takes them.
        retried = runner.invoke(app, ["retry", "--stage", "attack", "--config", str(good), *store_options])
        assert retried.exit_code == 0 and "reopened 2 item(s)" in retried.output, retried.output
        fourth = build(good, "causality")
        assert fourth.exit_code == 0, fourth.output
        assert _count(fourth.output, "candidates composed (all rounds)") == 2
        assert _count(fourth.output, "queued for review") == 2
        store = Store(database_url)
        reopened = store.get_items(failed_ids[:1])[0]
        assert reopened.status is ItemStatus.QUEUED and len(reopened.failures) == 1  # history kept

        # 6. Approved items are counted as approved, never also as queued.
        approved = runner.invoke(app, ["review", "approve", "--all", "--reviewer", "ada", *store_options])
        assert approved.exit_code == 0, approved.output
        status = runner.invoke(app, ["status", *store_options])
        rows = dict(re.findall(r"│ (\w+)\s+│\s+(\d+) │", status.output))
        assert rows.get("approved") == "4" and "queued" not in rows, status.output

        # 7. Release: the manifest holds the builds' attack config and every model id; the card
        # names the tester's and the judge's model.
        out = tmp_path / "release"
        released = runner.invoke(app, ["release", "--version", "1.0.0", "--out", str(out), *store_options])
        assert released.exit_code == 0, released.output
        manifest = json.loads((out / "manifest.json").read_text())
        runs = manifest["config"]["build_runs"]
        assert len(runs) == 3  # builds 1, 2 and 4 touched released items (3 touched nothing)
        assert {run["attack"]["judge"]["model"] for run in runs.values()} == {"judge"}
        assert {run["attack"]["testers"][0]["model"] for run in runs.values()} == {"tester-a"}
        assert all(run["attack"]["testers"] for run in runs.values())
        for entry in manifest["selection"]:
            ids = entry["provenance"]["model_ids"]
            assert ids["tester:tester-a"] == "tester-a" and ids["judge"] == "judge"
            assert ids["renderer"].startswith("typographic@")
            tester = next(use for use in entry["provenance"]["models"] if use["role"] == "tester")
            assert tester["held_out"] is False and tester["host"] == server.base_url.split("/")[2]
        card = (out / "README.md").read_text()
        host = server.base_url.split("/")[2]
        assert f"| tester-a | `tester-a` at {host} | acceptance |" in card
        assert f"judged by the `llm` judge (model `judge` at {host})" in card

        # 8. Reviewers see each answer, escaped and collapsed behind the content warning, on the
        # review page and at the terminal; `answers purge` removes answers and rationales.
        _review_page_and_purge(tmp_path, database_url, store, reopened.id, runner, store_options)
        store.close()


def _review_page_and_purge(
    tmp_path: Path, database_url: str, store: Store, item_id: str, runner: CliRunner, store_options: list[str]
) -> None:
    from tests.review_support import ReviewServer

    settings = Settings(artifacts=tmp_path / "artifacts", database_url=database_url)
    token = ReviewService(store, settings.review).add_reviewer("eve", admin=False)
    with ReviewServer(settings) as served:
        client = served.client(token)
        page = client.get(f"/items/{item_id}").text
        answers = page[
            page.index('<details id="answers">') : page.index("</details>", page.index('id="answers"'))
        ]
        assert "Content warning" in answers.split("</summary>")[0]
        assert (
            "&lt;script&gt;alert(&#34;answer&#34;)&lt;/script&gt; &amp; &lt;b&gt;steps&lt;/b&gt;" in answers
        )
        assert "<script>alert" not in page and "&lt;i&gt;carries it out&lt;/i&gt;" in answers
        assert "unsafe" in answers

        listed = runner.invoke(app, ["answers", "show", item_id, *store_options])
        assert listed.exit_code == 0 and ANSWER in listed.output and RATIONALE in listed.output

        purged = runner.invoke(app, ["answers", "purge", "--yes", *store_options])
        assert purged.exit_code == 0, purged.output
        assert "deleted 4 answer(s)" in purged.output and "cleared 4 judge rationale(s)" in purged.output
        page = client.get(f"/items/{item_id}").text
        assert "UNSAFE-CUE" not in page and "carries it out" not in page and "(answer purged)" in page
    item = store.get_items([item_id])[0]
    assert [j.reason for j in item.judgements] == ["unsafe"] and item.judgements[0].detail == ""
    assert store.answers([item.judgements[0].answer_key]) == {}
