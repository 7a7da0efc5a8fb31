"""Answering a batch of requests of one shape with a loaded model, in one `generate` call.

One user turn per request, in the published evaluation's order: every image, then the prompt,
through the model's own chat template and processor. Prompts are padded on the left, so every
answer starts where its prompt ends; decoding is greedy unless sampling is asked for, and the
random generator is seeded before each call. With attention entropy on, a recorder reduces the
attention rows of each step as they are computed (`entropy.measure`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from builder.stages.attack.entropy.measure import MEASUREMENT, AttentionRecorder, EntropySettings
from builder.stages.attack.inprocess.loading import LoadedModel, is_out_of_memory

if TYPE_CHECKING:
    from PIL.Image import Image


@dataclass(frozen=True)
class GenerationOptions:
    max_new_tokens: int
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0
    entropy: EntropySettings | None = None  # None: no attention entropy


@dataclass
class Request:
    images: list[Image]
    prompt: str


@dataclass
class Reply:
    text: str
    tokens: int  # generated, up to and including the end token
    measurements: dict[str, Any] | None = None


class OutOfMemory(Exception):
    """One request alone did not fit in the device's memory."""


def chat_text(processor: Any, prompt: str, images: int) -> str:
    content = [{"type": "image"} for _ in range(images)] + [{"type": "text", "text": prompt}]
    return processor.apply_chat_template(
        [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
    )


def answer_lengths(new_tokens: Any, end_tokens: set[int]) -> list[int]:
    """Per row, how many tokens the answer has: up to and including its first end token."""
    lengths = []
    for row in new_tokens.tolist():
        ends = [position for position, token in enumerate(row) if token in end_tokens]
        lengths.append(ends[0] + 1 if ends else len(row))
    return lengths


def _end_tokens(model: Any) -> set[int]:
    found = model.generation_config.eos_token_id
    if found is None:
        return set()
    return {found} if isinstance(found, int) else set(found)


def _generate_kwargs(loaded: LoadedModel, options: GenerationOptions) -> dict[str, Any]:
    tokenizer = getattr(loaded.processor, "tokenizer", None)
    pad = getattr(tokenizer, "pad_token_id", None)
    kwargs: dict[str, Any] = {"max_new_tokens": options.max_new_tokens, "do_sample": options.do_sample}
    if options.do_sample:
        kwargs |= {"temperature": options.temperature, "top_p": options.top_p}
    else:  # the model's own sampling defaults would only draw warnings
        kwargs |= {"temperature": None, "top_p": None, "top_k": None}
    if pad is not None:
        kwargs["pad_token_id"] = pad
    return kwargs


def answer(loaded: LoadedModel, requests: list[Request], options: GenerationOptions) -> list[Reply]:
    """Answers to `requests` (one shape: as many images each, of the same sizes), in order."""
    import torch

    processor = loaded.processor
    texts = [chat_text(processor, request.prompt, len(request.images)) for request in requests]
    # One shape: every request has as many images, so either all of them or none has images
    # (a processor given empty image lists hands the vision tower an empty tensor).
    images = {"images": [request.images for request in requests]} if requests[0].images else {}
    inputs = processor(text=texts, return_tensors="pt", padding=True, **images)
    inputs = inputs.to(loaded.device).to(loaded.dtype)
    prompt_length = inputs["input_ids"].shape[1]
    recorder = AttentionRecorder(loaded.model, options.entropy) if options.entropy else None
    # One generate call at a time per model: testers and targets that share a loaded model (two
    # targets of one folder) would otherwise run into each other's hooks and seeds.
    with loaded.lock, torch.inference_mode():
        torch.manual_seed(options.seed)
        if recorder is None:
            output = loaded.model.generate(**inputs, **_generate_kwargs(loaded, options))
        else:
            image_tokens = inputs["input_ids"] == (
                loaded.image_token_id if loaded.image_token_id is not None else -1
            )
            with recorder.recording(inputs["attention_mask"], image_tokens):
                output = loaded.model.generate(**inputs, **_generate_kwargs(loaded, options))
    new_tokens = output[:, prompt_length:]
    lengths = answer_lengths(new_tokens, _end_tokens(loaded.model))
    decoded = processor.batch_decode(
        [row[:length] for row, length in zip(new_tokens, lengths, strict=True)], skip_special_tokens=True
    )
    figures = recorder.figures(lengths) if recorder else [None] * len(requests)
    return [
        Reply(text=text, tokens=length, measurements=None if found is None else {MEASUREMENT: found})
        for text, length, found in zip(decoded, lengths, figures, strict=True)
    ]


def answer_halving(
    loaded: LoadedModel, requests: list[Request], options: GenerationOptions
) -> list[Reply | OutOfMemory]:
    """`answer`, and on running out of memory the two halves of the batch in turn, down to one
    request: what does not fit alone comes back as `OutOfMemory` in its place."""
    try:
        return list(answer(loaded, requests, options))
    except Exception as error:
        if not is_out_of_memory(error):
            raise
        _free(loaded)
        if len(requests) == 1:
            return [OutOfMemory(str(error))]
    middle = len(requests) // 2
    return answer_halving(loaded, requests[:middle], options) + answer_halving(
        loaded, requests[middle:], options
    )


def _free(loaded: LoadedModel) -> None:
    import torch

    if loaded.device.type == "cuda":
        torch.cuda.empty_cache()
