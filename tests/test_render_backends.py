"""Rendering backends on the CPU: diffusers (a tiny Stable Diffusion pipeline with random weights,
loaded through the same code path as a user's model) and retrieval from an image pool of real
generated pictures, including pools full of bad files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from builder.cli import app
from builder.config.settings import Settings
from builder.core.items import ImageSlot, ItemStatus
from builder.models.embeddings import ClipEncoder, TextEmbedder
from builder.stages.render import SlotJob, render_items
from builder.stages.render.diffusers import DiffusionRenderer
from builder.stages.render.pool import PoolIndex, build_index, index_dir_for
from builder.stages.render.retrieval import NO_MATCH, RetrievalRenderer
from builder.store import Store
from tests.helpers import make_item
from tests.tiny_models import save_tiny_clip, save_tiny_pipeline


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_pipeline(tmp_path_factory.mktemp("models") / "tiny-sd")


@pytest.fixture(scope="module")
def embedder() -> TextEmbedder:
    return TextEmbedder()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(f"sqlite:///{tmp_path / 'store.db'}")
    yield opened
    opened.close()


def _diffusion(model: Path, batch_size: int = 4) -> DiffusionRenderer:
    return DiffusionRenderer(
        str(model),
        size=32,
        steps=2,
        guidance_scale=0.0,
        negative_prompt="blurry",
        prompt_template="{description} ({keywords})",
        batch_size=batch_size,
        local_files_only=True,
    )


def _jobs(count: int) -> list[SlotJob]:
    return [
        SlotJob(
            f"item-{n}",
            n % 3,
            ImageSlot(role="r", description=f"a quiet harbour at dawn {n}", keywords=["harbour"]),
        )
        for n in range(count)
    ]


def test_diffusion_is_deterministic_and_batching_changes_nothing(tiny_model: Path) -> None:
    jobs = _jobs(5)
    batched = _diffusion(tiny_model, batch_size=4)
    first = [np.asarray(r.pixels()) for r in batched.render(jobs[:4]) + batched.render(jobs[4:])]
    one_by_one = _diffusion(tiny_model, batch_size=1)
    again = [np.asarray(one_by_one.render([job])[0].pixels()) for job in jobs]
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert first[0].shape == (32, 32, 3) and first[0].std() > 0
    assert not np.array_equal(first[0], first[1])  # other slot, other seed
    assert batched.render(jobs[:1])[0].prompt == "a quiet harbour at dawn 0 (harbour)"
    assert "EulerDiscreteScheduler" in batched.signature() and "steps=2" in batched.signature()


def test_diffusion_render_stage_caches_by_seed(tiny_model: Path, tmp_path: Path, store: Store) -> None:
    items = [make_item(seed_id=f"s-{n}") for n in range(3)]
    renderer = _diffusion(tiny_model)
    output = render_items(items, renderer, store, tmp_path)
    assert output.stats.get("images", "rendered") == 6 and all(i.status is ItemStatus.RENDERED for i in items)
    for slot in items[0].slots:
        assert slot.file.endswith(f"{slot.sha256}.png") and slot.render_prompt
        with Image.open(tmp_path / slot.file) as image:
            assert image.size == (32, 32)
    again = [make_item(seed_id=f"s-{n}") for n in range(3)]
    rerun = render_items(again, _diffusion(tiny_model), store, tmp_path)
    assert rerun.stats.get("images", "rendered") == 0 and rerun.stats.get("images", "cached") == 6
    assert [s.sha256 for s in again[0].slots] == [s.sha256 for s in items[0].slots]


SHAPES = {
    "circle.png": "a red circle on a white background",
    "square.png": "a blue square on a white background",
    "triangle.png": "a green triangle pointing up",
    "stripes.png": "black and yellow horizontal stripes",
    "cross.png": "a purple cross in the middle",
}


def _draw(name: str) -> Image.Image:
    image = Image.new("RGB", (96, 96), "white")
    draw = ImageDraw.Draw(image)
    if name == "circle.png":
        draw.ellipse([16, 16, 80, 80], fill="red")
    elif name == "square.png":
        draw.rectangle([16, 16, 80, 80], fill="blue")
    elif name == "triangle.png":
        draw.polygon([(48, 10), (86, 86), (10, 86)], fill="green")
    elif name == "stripes.png":
        for y in range(0, 96, 16):
            draw.rectangle([0, y, 96, y + 8], fill="black" if y % 32 else "yellow")
    else:
        draw.rectangle([40, 10, 56, 86], fill="purple")
        draw.rectangle([10, 40, 86, 56], fill="purple")
    return image


def make_pool(folder: Path, extra: dict[str, str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, caption in SHAPES.items():
        _draw(name).save(folder / name)
        rows.append({"file": name, "caption": caption, "source": f"test-suite/{name}", "license": "CC0-1.0"})
    rows += [{"file": name, "caption": caption} for name, caption in (extra or {}).items()]
    (folder / "captions.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder


def _retrieval(pool: Path, tmp_path: Path, embedder: TextEmbedder) -> RetrievalRenderer:
    """No threshold: these tests are about ranking (loose paraphrases of five shapes score under
    the default; test_picture_pool checks the threshold)."""
    directory = tmp_path / "index"
    build_index(pool, directory, embedder.encode, embedder.model_name)
    return RetrievalRenderer(PoolIndex(directory, pool), embedder, size=64, min_score=-1.0)


def test_retrieval_picks_the_matching_picture(tmp_path: Path, embedder: TextEmbedder, store: Store) -> None:
    pool = make_pool(tmp_path / "pool")
    renderer = _retrieval(pool, tmp_path, embedder)
    queries = {
        "circle.png": "a round red disc",
        "square.png": "a blue box shape",
        "stripes.png": "yellow and black bands",
        "cross.png": "a violet plus sign",
    }
    jobs = [
        SlotJob("i", n, ImageSlot(role="r", description=text, keywords=[text.split()[-1]]))
        for n, text in enumerate(queries.values())
    ]
    for expected, picture in zip(queries, renderer.render(jobs), strict=True):
        assert picture.source == f"test-suite/{expected} [{expected}]" and picture.license == "CC0-1.0"
        with Image.open(pool / expected) as original:
            assert np.array_equal(
                np.asarray(picture.pixels()), np.asarray(original.convert("RGB").resize((64, 64)))
            )


def test_retrieval_keeps_an_item_distinct_and_ignores_other_items(
    tmp_path: Path, embedder: TextEmbedder
) -> None:
    """A slot's picture depends on its own text and its item's earlier slots only: the same item
    gets the same pictures alone or after other items, in any order of items, in a fresh store.
    How many items may share a picture is dedup's cap (test_dedup), not the renderer's."""
    pool = make_pool(tmp_path / "pool")
    renderer = _retrieval(pool, tmp_path, embedder)

    def sources(items: list, run: str) -> dict[str, list[str | None]]:
        store = Store(f"sqlite:///{tmp_path / f'{run}.db'}")
        render_items(items, renderer, store, tmp_path / run)
        store.close()
        return {item.seed_id: [slot.source for slot in item.slots] for item in items}

    def item(seed_id: str, *descriptions: str):
        return make_item(seed_id=seed_id, descriptions=descriptions)

    alone = sources([item("twice", "a red circle", "a red circle again")], "alone")
    first, second = alone["twice"]
    assert first == "test-suite/circle.png [circle.png]" and second != first
    others = [item("o1", "a red circle", "a blue square"), item("o2", "a big red circle", "red round shape")]
    forward = sources([*others, item("twice", "a red circle", "a red circle again")], "forward")
    backward = sources([item("twice", "a red circle", "a red circle again"), *others[::-1]], "backward")
    assert forward == backward and forward["twice"] == alone["twice"]
    assert forward["o1"][0] == first, "another item's use of a picture changed nothing"


def test_exhausted_pool_fails_the_item_with_a_reason(
    tmp_path: Path, embedder: TextEmbedder, store: Store
) -> None:
    pool = make_pool(tmp_path / "pool")  # five pictures for six slots: the sixth has none left
    item = make_item(descriptions=tuple(f"shape number {n}" for n in range(6)))
    render_items([item], _retrieval(pool, tmp_path, embedder), store, tmp_path)
    assert item.status is ItemStatus.FAILED and item.rejection.reason == NO_MATCH
    assert "no caption left" in item.rejection.detail and "slot 6" in item.rejection.detail


def test_a_slot_without_a_picture_fails_its_item_only(
    tmp_path: Path, embedder: TextEmbedder, store: Store
) -> None:
    pool = make_pool(tmp_path / "pool")
    healthy = make_item(seed_id="h1", descriptions=("a red circle", "a blue square"))
    also_healthy = make_item(seed_id="h2", descriptions=("a green triangle", "yellow stripes"))
    greedy = make_item(seed_id="g", descriptions=tuple(f"shape number {n}" for n in range(6)))
    items = [healthy, also_healthy, greedy]  # one batch: the renderer takes 256 slots at a time
    output = render_items(items, _retrieval(pool, tmp_path, embedder), store, tmp_path)
    assert healthy.status is ItemStatus.RENDERED and also_healthy.status is ItemStatus.RENDERED
    assert greedy.status is ItemStatus.FAILED and greedy.rejection.reason == NO_MATCH
    assert output.stats.statuses()["rendered"] == 2 and output.stats.statuses()["failed"] == 1


def test_bad_pool_content_is_skipped_with_reasons(tmp_path: Path, embedder: TextEmbedder) -> None:
    pool = make_pool(
        tmp_path / "pool",
        extra={
            "truncated.png": "a truncated file",
            "text.png": "not an image",
            "missing.png": "a missing file",
            "deep.tif": "a 16-bit scan",
            "huge.png": "a very large image",
            "bomb.png": "a decompression bomb",
            "cmyk.jpg": "an orange print in CMYK",
            "palette.png": "a palette image",
        },
    )
    data = (pool / "circle.png").read_bytes()
    (pool / "truncated.png").write_bytes(data[: len(data) // 2])
    (pool / "text.png").write_text("hello, I am text")
    Image.new("I;16", (8, 8)).save(pool / "deep.tif")
    Image.new("1", (10_000, 9_000)).save(pool / "huge.png")  # over MAX_IMAGE_PIXELS: Pillow warns
    Image.new("1", (14_000, 14_000)).save(pool / "bomb.png")  # over twice that: Pillow refuses
    Image.new("CMYK", (32, 32), (0, 128, 255, 0)).save(pool / "cmyk.jpg")
    _draw("circle.png").convert("P").save(pool / "palette.png")
    report = build_index(pool, tmp_path / "index", embedder.encode, embedder.model_name)
    reasons = {skipped.id: skipped.reason for skipped in report.skipped}
    assert report.indexed == len(SHAPES) + 2  # cmyk and palette are converted, not skipped
    assert set(reasons) == {"truncated.png", "text.png", "missing.png", "deep.tif", "huge.png", "bomb.png"}
    assert reasons["text.png"] == "not an image Pillow can read"
    assert reasons["deep.tif"] == "unsupported image mode I;16"
    assert reasons["huge.png"].startswith("huge image") and reasons["bomb.png"].startswith(
        "decompression bomb"
    )
    assert "unreadable image" in reasons["truncated.png"] and "unreadable image" in reasons["missing.png"]
    assert Image.MAX_IMAGE_PIXELS == 89_478_485  # the guard stayed in force


def test_clip_image_vectors_join_the_ranking(tmp_path: Path, embedder: TextEmbedder, store: Store) -> None:
    # A tiny CLIP with random weights: this checks the code path (index, search, scoring), not
    # the quality of the matches; no CLIP weights can be had offline.
    clip = ClipEncoder(str(save_tiny_clip(tmp_path / "clip")), local_files_only=True)
    pool = make_pool(tmp_path / "pool")
    build_index(pool, tmp_path / "index", embedder.encode, embedder.model_name, clip=clip)
    index = PoolIndex(tmp_path / "index", pool)
    assert index.clip_model == str(tmp_path / "clip") and index.image_index.ntotal == len(SHAPES)
    with Image.open(pool / "square.png") as square:
        expected = clip.encode_images([square.convert("RGB")])[0]
    square_row = next(i for i, entry in enumerate(index.entries) if entry.id == "square.png")
    assert np.allclose(index.image_index.reconstruct(square_row), expected, atol=1e-5)
    renderer = RetrievalRenderer(index, embedder, size=64, min_score=-1.0, clip=clip)
    assert "/clip=" in renderer.signature()
    jobs = [
        SlotJob("i", n, ImageSlot(role="r", description=text, keywords=["shape"]))
        for n, text in enumerate(["a red circle", "a blue square", "green triangle"])
    ]
    sources = [picture.source for picture in renderer.render(jobs)]
    assert len(set(sources)) == 3 and all(source.startswith("test-suite/") for source in sources)


def test_dataset_pool(tmp_path: Path, embedder: TextEmbedder, store: Store) -> None:
    from datasets import Dataset, Features, Value
    from datasets import Image as ImageFeature

    rows = {"image": [_draw(name) for name in SHAPES], "text": list(SHAPES.values())}
    Dataset.from_dict(
        rows, features=Features({"image": ImageFeature(), "text": Value("string")})
    ).save_to_disk(str(tmp_path / "ds"))
    renderer = _retrieval(tmp_path / "ds", tmp_path, embedder)
    (picture,) = renderer.render(
        [SlotJob("i", 0, ImageSlot(role="r", description="green triangle", keywords=["up"]))]
    )
    assert picture.source.endswith("[row:2]")


def test_pool_index_command_lists_what_it_skipped(tmp_path: Path) -> None:
    pool = make_pool(tmp_path / "pool", extra={"text.png": "not an image"})
    (pool / "text.png").write_text("nope")
    result = CliRunner().invoke(app, ["pool", "index", str(pool), "--artifacts", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    assert (
        f"indexed {len(SHAPES)} image(s)" in result.output and "not an image Pillow can read" in result.output
    )
    assert (index_dir_for(tmp_path / "a", pool) / "captions.faiss").is_file()


@pytest.mark.parametrize("backend", ["diffusers", "retrieval"])
def test_build_with_each_backend_then_rerun_renders_nothing(
    backend: str, tmp_path: Path, tiny_model: Path, prefect_api_url: str
) -> None:
    from flows.build import build

    renderer = {
        "backend": backend,
        "size": 32,
        "steps": 2,
        "model": str(tiny_model),
        "local_files_only": True,
    }
    if backend == "retrieval":
        renderer = {"backend": backend, "size": 64, "pool": make_pool(tmp_path / "pool")}
    settings = Settings(artifacts=tmp_path / "a", renderer=renderer, relations=["analogy", "causality"])
    report = build(settings=settings, limit=2)
    assert report.stages["render"].get("images", "rendered") > 0
    store = Store(settings.resolved_database_url)
    items = store.items_with_statuses([ItemStatus.QUEUED, ItemStatus.REJECTED])
    assert items and all(slot.file and slot.sha256 for item in items for slot in item.slots)
    for slot in items[0].slots:
        with Image.open(settings.artifacts / slot.file) as image:
            image.load()
        assert slot.file == f"images/{slot.sha256[:2]}/{slot.sha256}.png"
    # A resumed build that lost its items (but not its render cache) renders nothing again.
    from sqlalchemy import text

    with store.engine.begin() as connection:
        connection.execute(text("DELETE FROM items"))
        connection.execute(text("DELETE FROM reviews"))
    store.close()
    rerun = build(settings=settings, limit=2)
    assert rerun.stages["render"].get("images", "rendered") == 0
    assert rerun.stages["render"].get("images", "cached") > 0
