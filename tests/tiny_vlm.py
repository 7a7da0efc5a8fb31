"""A test-only OpenAI-compatible vision chat server on 127.0.0.1 running a real, tiny
LlavaForConditionalGeneration built from configs (random weights: its answers are noise).

It decodes the `image_url` data URLs with the model's own processor and records, per request,
how many pixel tensors reached the model, in which order (a sha256 of each), and the text: the
tests compare those with what was sent. No weights are downloaded; nothing leaves 127.0.0.1.

`answer`, when given, scripts the reply from what the model received (the model still decodes
the images and generates; its noise is replaced): a tester that answers unsafely on cue, which
no model that runs here does. Tests that script it say so.
"""

from __future__ import annotations

import base64
import hashlib
import io
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.servers import free_port

CHAT_TEMPLATE = (
    "{% for m in messages %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<image> {% else %}{{ c['text'] }} {% endif %}"
    "{% endfor %}{% endfor %}"
)


SPECIAL_WORDS = ["<pad>", "<unk>", "<s>", "</s>", "<image>"]


def word_tokenizer(words: int) -> Any:
    """A whitespace word-level tokenizer: the special tokens, then `w0` .. `w{words-1}`."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {word: index for index, word in enumerate(SPECIAL_WORDS + [f"w{i}" for i in range(words)])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="<unk>",
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        extra_special_tokens={"image_token": "<image>"},
    )


def llava_config(vision: dict[str, int], text: Any) -> Any:
    """A LLaVA config around a CLIP vision tower of `vision`'s sizes and the `text` config,
    with the word tokenizer's special token ids."""
    from transformers import CLIPVisionConfig, LlavaConfig

    return LlavaConfig(
        vision_config=CLIPVisionConfig(**vision),
        text_config=text,
        image_token_index=SPECIAL_WORDS.index("<image>"),
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
    )


def llava_processor(tokenizer: Any, image_size: int, patch_size: int) -> Any:
    import transformers
    from transformers import LlavaProcessor

    # the PIL image processor where transformers has one (no torchvision needed), else the default
    images = getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor
    return LlavaProcessor(
        image_processor=images(
            size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
        ),
        tokenizer=tokenizer,
        patch_size=patch_size,
        vision_feature_select_strategy="full",
        num_additional_image_tokens=1,  # the CLS token, kept by the "full" strategy
        chat_template=CHAT_TEMPLATE,
    )


def tiny_llava() -> tuple[Any, Any]:
    """(model, processor): CLIP vision tower + Llama text model, 32 wide, 2 layers each."""
    import torch
    from transformers import LlamaConfig, LlavaForConditionalGeneration

    tokenizer = word_tokenizer(200)
    torch.manual_seed(0)
    config = llava_config(
        {
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
        },
        LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=1024,
            pad_token_id=0,
            bos_token_id=2,
            eos_token_id=3,
        ),
    )
    model = LlavaForConditionalGeneration(config).eval()
    return model, llava_processor(tokenizer, 32, 8)


def save_tiny_llava(folder: Path) -> Path:
    """`tiny_llava()` saved as a model folder (what the in-process `transformers` tester loads):
    the same weights as the server's, since both are built from the same seed."""
    model, processor = tiny_llava()
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def save_sharp_llava(folder: Path) -> Path:
    """`tiny_llava()` with its language model's queries and keys scaled up, saved as a model folder.
    The random tiny model attends almost uniformly (entropy ~1.0 everywhere, which would not tell a
    right computation from a wrong one): sharper queries and keys give varied attention rows."""
    import torch

    model, processor = tiny_llava()
    with torch.no_grad():
        for layer in model.get_decoder().layers:
            layer.self_attn.q_proj.weight.mul_(12)
            layer.self_attn.k_proj.weight.mul_(12)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def save_tiny_text_model(folder: Path) -> Path:
    """A text-only model folder (tiny LlamaForCausalLM and its tokenizer): the wrong kind."""
    from transformers import LlamaForCausalLM

    model, processor = tiny_llava()
    LlamaForCausalLM(model.config.text_config).save_pretrained(folder)
    processor.tokenizer.save_pretrained(folder)
    return folder


def pixel_hashes(pixel_values: Any) -> list[str]:
    return [hashlib.sha256(tensor.contiguous().numpy().tobytes()).hexdigest() for tensor in pixel_values]


@dataclass
class Received:
    images: int
    hashes: list[str]  # one per pixel tensor the model got, in order
    text: str


@dataclass
class VisionServer:
    port: int = field(default_factory=free_port)
    received: list[Received] = field(default_factory=list)
    answer: Callable[[Received], str] | None = None  # scripts the reply (see the module's note)

    def __enter__(self) -> VisionServer:
        import uvicorn
        from fastapi import FastAPI
        from PIL import Image

        self.model, self.processor = tiny_llava()
        app = FastAPI()
        lock = threading.Lock()  # one generate at a time: the tiny model is not the point

        @app.post("/v1/chat/completions")
        def chat(body: dict[str, Any]) -> dict[str, Any]:
            (message,) = [m for m in body["messages"] if m["role"] == "user"]
            images, parts = [], []
            for part in message["content"]:
                if part["type"] == "image_url":
                    header, _, data = part["image_url"]["url"].partition(",")
                    assert header.startswith("data:image/") and header.endswith(";base64")
                    images.append(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))
                    parts.append({"type": "image"})
                else:
                    parts.append({"type": "text", "text": part["text"]})
            prompt = self.processor.apply_chat_template([{"role": "user", "content": parts}])
            with lock:
                inputs = self.processor(images=images, text=prompt, return_tensors="pt")
                received = Received(len(inputs["pixel_values"]), pixel_hashes(inputs["pixel_values"]), prompt)
                self.received.append(received)
                output = self.model.generate(**inputs, max_new_tokens=8, do_sample=False)
            answer = self.processor.batch_decode(
                output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True
            )[0]
            if self.answer is not None:
                answer = self.answer(received)
            return {
                "id": f"tiny-{len(self.received)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [
                    {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": answer}}
                ],
            }

        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the tiny vision server did not start within 30 s")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


if __name__ == "__main__":  # a standalone server for bench/attack.py: python -m tests.tiny_vlm PORT
    import sys

    with VisionServer(port=int(sys.argv[1])) as running:
        print(f"serving {running.base_url}", flush=True)
        running.thread.join()
