"""Exit 2 means nothing written: a build refused for its input (a pool whose pictures are all
broken, more relations per seed than it builds, an artifacts folder it cannot make) leaves the
store's rows, Prefect's flow and task runs and every file as they were.

Real components: the CLI in process against a real Prefect server (the session's harness, by
PREFECT_API_URL), a real SQLite store, real broken image files and a saved `datasets` pool.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from typer.testing import CliRunner

from builder.cli import app
from builder.core.errors import InputError
from builder.stages.render.pool.screen import SAMPLE, screen_pool
from builder.store import Store
from tests.test_output_paths import row_counts, snapshot


def _png(colour: str = "red") -> bytes:
    data = io.BytesIO()
    Image.new("RGB", (16, 16), colour).save(data, format="PNG")
    return data.getvalue()


def broken_pool(folder: Path, good: dict[str, str] | None = None) -> Path:
    """A captioned pool folder of broken pictures: text, a truncated PNG, a missing file, an
    empty file (and `good` pictures, by file name and caption, after them)."""
    folder.mkdir(parents=True)
    broken = {
        "text.png": b"hello, I am text",
        "truncated.png": _png()[:40],
        "empty.png": b"",
    }
    for name, data in broken.items():
        (folder / name).write_bytes(data)
    rows = [{"file": name, "caption": f"a picture {name}"} for name in [*broken, "missing.png"]]
    for name, caption in (good or {}).items():
        (folder / name).write_bytes(_png())
        rows.append({"file": name, "caption": caption})
    (folder / "captions.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return folder


def broken_dataset(folder: Path) -> Path:
    from datasets import Dataset, Features, Value
    from datasets import Image as ImageFeature

    rows = {"image": [{"bytes": b"not a picture", "path": None}] * 3, "text": ["a cat", "a dog", "a cup"]}
    Dataset.from_dict(
        rows, features=Features({"image": ImageFeature(), "text": Value("string")})
    ).save_to_disk(str(folder))
    return folder


def prefect_state(client: Any) -> tuple[int, int, int]:
    """What a build leaves in Prefect: flows, flow runs, task runs."""
    return len(client.read_flows()), client.count_flow_runs(), len(client.read_task_runs())


CASES = {
    "pool of broken pictures": (
        lambda tmp: ["--renderer", "retrieval", "--pool", str(broken_pool(tmp / "pool")), "--limit", "1"],
        "no usable picture in the image pool: all 4 are unusable",
    ),
    "dataset pool of broken pictures": (
        lambda tmp: ["--renderer", "retrieval", "--pool", str(broken_dataset(tmp / "ds")), "--limit", "1"],
        "no usable picture in the image pool: all 3 are unusable",
    ),
    "more relations per seed than relations": (
        lambda tmp: ["--relations-per-seed", "99", "--limit", "1"],
        "--relations-per-seed 99 is more than the 9 relations this build makes",
    ),
    "more relations per seed than -r names": (
        lambda tmp: ["--relations-per-seed", "3", "-r", "analogy", "--limit", "1"],
        "--relations-per-seed 3 is more than the 1 relation this build makes",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_a_refused_build_writes_no_run_item_or_prefect_state(
    case: str, tmp_path: Path, prefect_api_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.client.orchestration import get_client

    monkeypatch.setenv("PREFECT_API_URL", prefect_api_url)  # the command's Prefect is the harness's
    arguments, message = CASES[case]
    extra = arguments(tmp_path)
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    Store(f"sqlite:///{artifacts / 'mirbench.db'}").close()  # a store that exists, with its schema
    before, rows = snapshot(tmp_path), row_counts(artifacts / "mirbench.db")
    with get_client(sync_client=True) as client:
        prefect_before = prefect_state(client)
        result = CliRunner().invoke(app, ["build", "--artifacts", str(artifacts), *extra])
        assert prefect_state(client) == prefect_before
    assert result.exit_code == 2, result.output
    assert message in result.output, result.output
    assert row_counts(artifacts / "mirbench.db") == rows
    assert snapshot(tmp_path) == before, "the build wrote something"


def test_the_preflight_screens_a_sample_and_notes_what_is_broken(tmp_path: Path) -> None:
    pool = broken_pool(tmp_path / "pool", good={"cat.png": "a cat", "dog.png": "a dog"})
    screened = screen_pool(pool)
    assert (screened.sampled, screened.unusable) == (6, 4)
    assert screened.note is not None and "4 of the first 6 pool picture(s) are unusable" in screened.note
    assert "text.png: not an image Pillow can read" in screened.note


def test_a_sample_of_broken_pictures_screens_on_until_one_is_usable(tmp_path: Path) -> None:
    """A sample with no usable picture is not a verdict: the rest is screened, and one good
    picture after it lets the build go on (indexing skips the broken ones)."""
    folder = tmp_path / "pool"
    folder.mkdir()
    rows = [{"file": f"bad-{n}.png", "caption": f"bad {n}"} for n in range(SAMPLE + 3)]
    for row in rows:
        (folder / row["file"]).write_bytes(b"broken")
    (folder / "good.png").write_bytes(_png())
    rows.append({"file": "good.png", "caption": "a red square"})
    (folder / "captions.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    screened = screen_pool(folder)
    assert (screened.sampled, screened.unusable) == (SAMPLE, SAMPLE)
    (folder / "good.png").write_bytes(b"broken too")
    with pytest.raises(InputError, match=f"all {SAMPLE + 4} are unusable"):
        screen_pool(folder)


def test_pool_index_refuses_a_pool_of_broken_pictures_before_writing(tmp_path: Path) -> None:
    pool = broken_pool(tmp_path / "pool")
    result = CliRunner().invoke(app, ["pool", "index", str(pool), "--artifacts", str(tmp_path / "a")])
    assert result.exit_code == 2 and "no usable picture in the image pool" in result.output, result.output
    assert not (tmp_path / "a").exists()
