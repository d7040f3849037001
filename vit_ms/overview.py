"""``vit_ms.summary``: every stage of a ViT with its output shape and parameter count, computed by running it."""
from dataclasses import dataclass

import mindspore as ms
import numpy as np
from mindspore import ops

from .model import VisionTransformer, count_params


@dataclass
class Summary:
    """The stages of one forward pass: rows of (stage, output shape, parameters); ``print`` shows them as a table."""
    rows: list
    total_params: int

    def __str__(self):
        width = max(len(name) for name, _, _ in self.rows)
        lines = [f"{'stage':<{width}}  {'output shape':<18} {'parameters':>12}", "-" * (width + 33)]
        lines += [f"{name:<{width}}  {str(list(shape)):<18} {params:>12,}" for name, shape, params in self.rows]
        lines += ["-" * (width + 33), f"{'total':<{width}}  {'':<18} {self.total_params:>12,}"]
        return "\n".join(lines)


def summary(model, input_size):
    """Run ``model`` (a VisionTransformer) on zeros of ``input_size`` [B, C, H, W], stage by stage, in eval mode,
    and return each stage's output shape and parameter count, like torchinfo's or Keras' ``summary``."""
    if not isinstance(model, VisionTransformer):
        raise TypeError(f"summary expects a vit_ms VisionTransformer, got {type(model).__name__}")
    expected = (model.patch_embed.in_chans, model.image_size, model.image_size)
    if len(tuple(input_size)) != 4 or tuple(input_size)[1:] != expected:
        raise ValueError(f"input_size must be [B, {expected[0]}, {expected[1]}, {expected[2]}] for this model, "
                         f"got {list(input_size)}")
    model.set_train(False)
    x = ms.Tensor(np.zeros(tuple(input_size), np.float32))
    rows = [("input image", x.shape, 0)]
    x = model.patch_embed(x)
    rows.append(("patch embedding", x.shape, count_params(model.patch_embed)))
    cls = ops.broadcast_to(model.cls_token, (x.shape[0], 1, x.shape[2]))
    x = ops.concat((cls, x), axis=1)
    rows.append(("+ class token", x.shape, model.cls_token.size))
    x = x + model.pos_embed
    rows.append(("+ position embedding", x.shape, model.pos_embed.size))
    for i, block in enumerate(model.blocks):
        x = block(x)
        rows.append((f"encoder block {i}", x.shape, count_params(block)))
    x = model.norm(x)
    rows.append(("final LayerNorm", x.shape, count_params(model.norm)))
    x = x[:, 1:].mean(axis=1) if model.global_pool == "avg" else x[:, 0]
    rows.append(("mean of patch tokens" if model.global_pool == "avg" else "class token", x.shape, 0))
    if count_params(model.pre_logits):
        x = model.pre_logits(x)
        rows.append(("pre-logits Dense + tanh", x.shape, count_params(model.pre_logits)))
    if model.num_classes:
        x = model.head(x)
        rows.append(("classification head", x.shape, count_params(model.head)))
    total = sum(params for _, _, params in rows)
    if total != count_params(model):
        raise AssertionError(f"the stages hold {total} parameters but the model {count_params(model)}")
    return Summary(rows=[(name, tuple(shape), int(params)) for name, shape, params in rows], total_params=total)
