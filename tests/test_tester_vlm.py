"""The `openai` tester against a real vision-language model: a tiny LLaVA (random weights,
built from configs) behind a test-only OpenAI-compatible server on 127.0.0.1 that decodes the
data-URL images with the model's own processor (tests/tiny_vlm.py). Its answers are noise; the
point is that the images reach a real VLM processor decoded, counted and in the order sent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from builder.models.llm import LLMClient, LLMSettings
from builder.stages.attack.openai import OpenAITester
from builder.store import Store
from tests.helpers import make_item, picture_slot
from tests.tiny_vlm import VisionServer, pixel_hashes

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def vlm() -> Iterator[VisionServer]:
    with VisionServer() as server:
        yield server


def test_images_reach_a_real_vlm_processor_in_order_and_reruns_replay(
    vlm: VisionServer, tmp_path: Path
) -> None:
    slots = [
        picture_slot(tmp_path, "one", (200, 30, 30), 4),
        picture_slot(tmp_path, "two", (30, 200, 30), 12),
        picture_slot(tmp_path, "three", (30, 30, 200), 20),
    ]
    forward = make_item(seed_id="v-1").model_copy(update={"slots": slots, "revised_prompt": "w1 w2 w3"})
    backward = make_item(seed_id="v-2").model_copy(update={"slots": slots[::-1], "revised_prompt": "w4 w5"})
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    settings = LLMSettings(
        base_url=vlm.base_url, model="tiny-llava", max_tokens=16, temperature=0, max_retries=0, concurrency=1
    )
    tester = OpenAITester(LLMClient(settings, cache=store.answer_cache), tmp_path, label="tiny-llava")

    answers = tester.attack([forward, backward], lambda: None)
    assert [answer.cached for answer in answers] == [False, False]
    expected = pixel_hashes(
        vlm.processor.image_processor(
            images=[Image.open(tmp_path / slot.file).convert("RGB") for slot in slots], return_tensors="pt"
        )["pixel_values"]
    )
    assert len(set(expected)) == 3
    assert [(r.images, r.hashes) for r in vlm.received] == [(3, expected), (3, expected[::-1])]
    assert vlm.received[0].text.count("<image>") == 3 and vlm.received[0].text.index(
        "<image>"
    ) < vlm.received[0].text.index("w1")
    stored = store.answers([tester.answer_key(forward), tester.answer_key(backward)])
    assert len(stored) == 2 and all(text.strip() for text in stored.values())

    again = tester.attack([forward, backward], lambda: None)
    assert [answer.cached for answer in again] == [True, True] and len(vlm.received) == 2
    store.close()
