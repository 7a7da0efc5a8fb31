"""Attention entropy of one generated answer: the definition and its recorder.

Definition (version 1; the paper's exact one was not published). For every generated token
t = 1..T, take the attention row that produced it: in each chosen decoder layer l and head h,
the attention distribution p of the query at the position just before t over the n keys it may
attend to (the prompt's tokens, images' placeholder tokens included, and the tokens generated
so far; padding excluded). Then

    H(l, h, t) = -sum_k p_k ln p_k                      (nats; 0 ln 0 = 0)
    normalisation "log_context": H / ln n              (1.0 = uniform over the context, 0 = one key)
    normalisation "none":        H

    per layer l:  mean over heads and over the T tokens
    entropy:      mean over heads, chosen layers and tokens (= the mean of the per-layer means)
    image share:  the attention mass on the image placeholder tokens, averaged the same way;
                  text share = 1 - image share (everything else: text, template, generated)

The rows come from the model's own attention weights (eager attention) through forward hooks
on the decoder layers' attention modules, one row per layer and step, reduced at once so that
no step keeps a full attention matrix.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    import torch

DEFINITION = 1
MEASUREMENT = "attention_entropy"  # the key of these figures in an answer's measurements


class EntropySettings(BaseModel):
    """Which layers are measured and how entropy is normalised."""

    model_config = ConfigDict(extra="forbid")

    layers: tuple[int, int] | None = Field(
        None,
        description="First and last decoder layer measured, inclusive (negative counts from the "
        "end: [-4, -1] is the last four); default: every layer.",
    )
    normalisation: Literal["log_context", "none"] = Field(
        "log_context",
        description="log_context: divide by ln(context length), so answers of any length "
        "compare (1.0 = uniform attention); none: entropy in nats.",
    )

    def layer_indices(self, count: int) -> list[int]:
        """The measured layers of a model with `count` decoder layers."""
        if self.layers is None:
            return list(range(count))
        first, last = (index + count if index < 0 else index for index in self.layers)
        if not 0 <= first <= last < count:
            raise ValueError(
                f"entropy layers {list(self.layers)} are outside the model's {count} decoder layers"
            )
        return list(range(first, last + 1))


class AttentionUnavailable(RuntimeError):
    """The model did not hand its attention weights to the recorder."""


def row_figures(
    rows: torch.Tensor, context: torch.Tensor, image_keys: torch.Tensor, normalise: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Entropy and image share of attention rows, each averaged over heads.

    `rows` (B, H, K): one query's attention over K keys per sequence (masked keys hold 0);
    `context` (B,): how many keys each query may attend to; `image_keys` (B, K): which keys
    are image placeholder tokens. Returns (entropy (B,), image share (B,))."""
    import torch

    p = rows.float()
    p_log_p = torch.where(p > 0, p * p.clamp_min(torch.finfo(torch.float32).tiny).log(), 0.0)
    entropy = -p_log_p.sum(-1)
    if normalise:  # ln 1 = 0: a single key has entropy 0, so dividing by ln 2 there changes nothing
        entropy = entropy / context.float().clamp_min(2).log().unsqueeze(-1)
    share = (p * image_keys.unsqueeze(1).to(p.dtype)).sum(-1)
    return entropy.mean(-1), share.mean(-1)


def attention_modules(model: Any) -> list[Any]:
    """The attention module of each decoder layer of the model's language model, in order."""
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    layers = getattr(decoder, "layers", None)
    if layers is None or not all(hasattr(layer, "self_attn") for layer in layers):
        raise AttentionUnavailable(
            f"attention entropy: no decoder layers with `self_attn` found in {type(model).__name__}"
        )
    return [layer.self_attn for layer in layers]


class AttentionRecorder:
    """Collects, during one `generate` call, each chosen layer's attention row per step."""

    def __init__(self, model: Any, settings: EntropySettings):
        modules = attention_modules(model)
        self.indices = settings.layer_indices(len(modules))
        self.modules = [modules[index] for index in self.indices]
        self.settings = settings

    @contextmanager
    def recording(self, attention_mask: torch.Tensor, image_tokens: torch.Tensor) -> Iterator[None]:
        """Record while the body generates from a prompt batch with this `attention_mask`
        (B, L; left padding) whose `image_tokens` (B, L) mark the image placeholders."""
        self.prompt_length = attention_mask.shape[1]
        self.prompt_context = attention_mask.sum(-1)
        self.image_tokens = image_tokens.bool()
        self.entropy: list[list[torch.Tensor]] = [[] for _ in self.modules]
        self.share: list[list[torch.Tensor]] = [[] for _ in self.modules]
        handles = [module.register_forward_hook(self._hook(n)) for n, module in enumerate(self.modules)]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def _hook(self, position: int) -> Any:
        def record(module: Any, args: Any, output: Any) -> None:
            import torch.nn.functional as F

            weights = output[1] if isinstance(output, tuple) and len(output) > 1 else None
            if weights is None:
                raise AttentionUnavailable(
                    "attention entropy needs the attention weights: load the model with "
                    f"attn_implementation='eager' (layer {self.indices[position]} returned none)"
                )
            step = len(self.entropy[position])
            rows = weights[:, :, -1, :]
            if rows.shape[-1] != self.prompt_length + step:
                raise AttentionUnavailable(
                    f"attention entropy: layer {self.indices[position]} attended over {rows.shape[-1]} "
                    f"keys at step {step}, expected {self.prompt_length + step} (a windowed or static cache?)"
                )
            image_keys = F.pad(self.image_tokens, (0, step), value=False)
            entropy, share = row_figures(
                rows, self.prompt_context + step, image_keys, self.settings.normalisation == "log_context"
            )
            self.entropy[position].append(entropy)
            self.share[position].append(share)

        return record

    def figures(self, generated: list[int]) -> list[dict[str, Any] | None]:
        """Per sequence of the batch, its figures over its first `generated[b]` tokens (the
        answer up to and including its end token); None for an empty answer."""
        import torch

        entropy = torch.stack([torch.stack(steps) for steps in self.entropy]).cpu()  # (layers, steps, B)
        share = torch.stack([torch.stack(steps) for steps in self.share]).cpu()
        found: list[dict[str, Any] | None] = []
        for sequence, tokens in enumerate(generated):
            if tokens == 0:
                found.append(None)
                continue
            per_layer = entropy[:, :tokens, sequence].mean(1)
            image_share = float(share[:, :tokens, sequence].mean())
            found.append(
                {
                    "definition": DEFINITION,
                    "normalisation": self.settings.normalisation,
                    "layers": self.indices,
                    "tokens": tokens,
                    "entropy": float(per_layer.mean()),
                    "per_layer": [float(value) for value in per_layer],
                    "image_share": image_share,
                    "text_share": 1.0 - image_share,
                }
            )
        return found
