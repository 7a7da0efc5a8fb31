"""The needs-every-image check (`attack.ablation`): a candidate asked again with each image
left out, and the helper that leaves one out (`Item.without_image`)."""

from __future__ import annotations

import pytest

from tests.helpers import make_item


def test_without_image_leaves_out_that_image_only() -> None:
    item = make_item(descriptions=("a ladder", "a window", "a garden"))
    view = item.without_image(2)
    assert [slot.description for slot in view.slots] == ["a ladder", "a garden"]
    assert view.id == item.id and view.revised_prompt == item.revised_prompt
    assert [slot.description for slot in item.slots] == ["a ladder", "a window", "a garden"]
    view.slots[0].description = "changed"
    assert item.slots[0].description == "a ladder"  # a copy, not the same slots


@pytest.mark.parametrize("number", [0, 4, -1])
def test_without_image_names_the_images_there_are(number: int) -> None:
    item = make_item(descriptions=("a ladder", "a window", "a garden"))
    with pytest.raises(ValueError, match="images 1 to 3"):
        item.without_image(number)
