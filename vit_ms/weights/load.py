"""Loading weights into a ``VisionTransformer``, strictly.

Numerics: the same weights give different logits under a different LayerNorm epsilon or GELU formula, so by default
(``numerics="source"``) ``load_pretrained`` switches the model to the numerics the weights were trained with, and sets
``model.mean``/``model.std`` to the input normalisation that goes with them. ``numerics="model"`` keeps the model's.

Strict: every model parameter must come from the file with the right shape, and every file entry must be used, except
 - optimizer / training state (``adam_m.<param>``, ``moment1.<param>``, ``global_step``, scalars ...), skipped;
 - the classifier when ``num_classes`` differs (fine-tuning): the model keeps its freshly initialised head (and
   pre-logits layer, when the file has none; a pre-logits layer the model lacks is dropped), with a log line;
 - the position embedding when the image size differs: resampled to the model's patch grid (class token kept).
Anything else missing, unexpected or of the wrong shape is listed in one ValueError, and nothing is loaded.
"""
import logging
from collections import defaultdict

import mindspore as ms
import numpy as np

from ..checks import check_choice
from ..model import VisionTransformer
from ..pos_embed import resample_pos_embed
from .layouts import natural_order, read_as_vit_ms, shorten

_logger = logging.getLogger(__name__)

NUMERICS_CHOICES = ("source", "model")


def load_pretrained(model, path, layout=None, numerics="source"):
    """Load a weights file into ``model`` (a ``VisionTransformer``), strictly; returns a summary dict.

    ``layout``: one of LAYOUTS, detected from the file when None. ``numerics``: "source" sets the model's LayerNorm
    epsilon, GELU formula and input mean/std to those the weights were trained with; "model" keeps the model's.
    In graph mode, load before the model's first call (a compiled graph keeps the numerics it was built with).
    """
    if not isinstance(model, VisionTransformer):
        raise TypeError(f"load_pretrained expects a vit_ms VisionTransformer, got {type(model).__name__}")
    check_choice(numerics, "numerics", NUMERICS_CHOICES)
    state, unknown, info = read_as_vit_ms(path, layout)
    state, notes = _plan_load(model, state, unknown, info)

    applied = info["numerics"] if numerics == "source" else None
    if applied:  # validates before changing anything, so it goes first
        model.set_numerics(**applied)
    params = {p.name: p for p in model.get_parameters()}
    for name, value in state.items():
        params[name].set_data(ms.Tensor(np.ascontiguousarray(value), dtype=params[name].dtype))

    _logger.info("loaded %d tensors from %s (layout %s%s)", len(state), info["path"], info["layout"],
                 f", {len(info['training_state'])} optimizer/training entries skipped" if info["training_state"]
                 else "")
    for note in notes:
        _logger.warning("%s", note)
    if applied:
        _logger.info("numerics of the %s weights: LayerNorm eps %g, %s GELU, input mean %s std %s (numerics='model' "
                     "keeps the model's)", info["layout"], applied["norm_eps"],
                     "tanh" if applied["gelu_approximate"] else "exact (erf)", applied["mean"], applied["std"])
    return dict(path=info["path"], layout=info["layout"], loaded=sorted(state, key=natural_order), notes=notes,
                numerics=applied, skipped_training_state=info["training_state"])


def _plan_load(model, state, unknown, info):
    """Check ``state`` against the model; returns (arrays to assign, notes). Raises one ValueError listing all
    problems."""
    params = {p.name: tuple(p.shape) for p in model.get_parameters()}
    state = dict(state)
    notes, problems, fresh = [], [], set()
    where = f"{info['path']} (layout {info['layout']})"

    # classifier: another number of classes (or none in the file) = fine-tuning, the model keeps its own head
    head = state.get("head.weight")
    if "head.weight" not in params:
        if head is not None:
            notes.append(f"{where}: the model has no classifier (num_classes=0); the checkpoint's "
                         f"{head.shape[0]}-class head is not used")
            state.pop("head.weight"), state.pop("head.bias", None)
        new_head = False
    else:
        new_head = head is None or head.shape[0] != params["head.weight"][0]
        if new_head:
            fresh |= {"head.weight", "head.bias"}
            source = "has no classifier" if head is None else f"classifies {head.shape[0]} classes"
            notes.append(f"{where} {source}, the model {model.num_classes}: the model's head is freshly "
                         f"initialised (not loaded), as for fine-tuning")
            state.pop("head.weight", None), state.pop("head.bias", None)
    pre_names = ("pre_logits.0.weight", "pre_logits.0.bias")
    if new_head or "head.weight" not in params:
        if "pre_logits.0.weight" in state and "pre_logits.0.weight" not in params:
            notes.append(f"the checkpoint's pre-logits layer (size {state['pre_logits.0.weight'].shape[0]}) is "
                         f"dropped, as in the paper's fine-tuning (the model has representation_size=None)")
            for n in pre_names:
                state.pop(n, None)
        elif "pre_logits.0.weight" in params and "pre_logits.0.weight" not in state:
            fresh |= set(pre_names)
            notes.append("the checkpoint has no pre-logits layer: the model's is freshly initialised")

    patch = state.get("patch_embed.proj.weight")
    if patch is not None and tuple(patch.shape[2:]) != params["patch_embed.proj.weight"][2:]:
        problems.append(f"patch size: the checkpoint cuts {patch.shape[2]}x{patch.shape[3]} patches, the model "
                        f"{model.patch_size}x{model.patch_size}; build the model with patch_size={patch.shape[2]}")
    elif "pos_embed" in state and state["pos_embed"].shape != params["pos_embed"] \
            and state["pos_embed"].shape[-1] == params["pos_embed"][-1]:
        old_tokens = state["pos_embed"].shape[1] - 1
        try:
            state["pos_embed"] = resample_pos_embed(state["pos_embed"], model.grid_size)
            side = int(round(old_tokens ** 0.5))
            notes.append(f"position embeddings resampled from a {side}x{side} to a {model.grid_size[0]}x"
                         f"{model.grid_size[1]} patch grid (image size {side * model.patch_size} -> "
                         f"{model.image_size}); the class token's is kept")
        except ValueError as err:
            problems.append(f"pos_embed: cannot resample {tuple(state['pos_embed'].shape)}: {err}")
    heads = model.blocks[0].attn.num_heads if len(model.blocks) else None
    if info.get("num_heads") is not None and heads is not None and info["num_heads"] != heads:
        problems.append(f"attention heads: the checkpoint has {info['num_heads']}, the model {heads}; build the "
                        f"model with num_heads={info['num_heads']}")

    missing = sorted(set(params) - set(state) - fresh, key=natural_order)
    unexpected = sorted(unknown + [n for n in state if n not in params], key=natural_order)
    mismatched = [f"{n}: checkpoint {tuple(state[n].shape)}, model {params[n]}"
                  for n in sorted(state, key=natural_order) if n in params and tuple(state[n].shape) != params[n]]
    file_depth, model_depth = _depth(state), len(model.blocks)
    if (missing or unexpected) and file_depth != model_depth:
        problems.append(f"depth: the checkpoint has {file_depth} blocks, the model {model_depth}")
    if "pre_logits.0.weight" in state and "pre_logits.0.weight" not in params:
        problems.append(f"the checkpoint has a pre-logits layer: build the model with "
                        f"representation_size={state['pre_logits.0.weight'].shape[0]}")
    for title, items, shown in (("missing from the checkpoint", missing, _collapse_blocks(missing, params)),
                                ("unexpected in the checkpoint", unexpected, unexpected),
                                ("shape mismatch", mismatched, mismatched)):
        if items:
            problems.append(f"{title} ({len(items)}): {shorten(shown)}")
    if problems:
        raise ValueError(f"cannot load {where} into {_describe(model)}; nothing was loaded:\n  - "
                         + "\n  - ".join(problems))
    return state, notes


def _collapse_blocks(names, params):
    """Write a block whose every parameter is in ``names`` as "blocks.{i}.* (whole block)"."""
    per_block = defaultdict(list)
    for name in names:
        if name.startswith("blocks."):
            per_block[name.split(".")[1]].append(name)
    out = []
    for name in names:
        block = name.split(".")[1] if name.startswith("blocks.") else None
        prefix = f"blocks.{block}."
        if block is not None and len(per_block[block]) == sum(n.startswith(prefix) for n in params):
            if name == per_block[block][0]:
                out.append(f"{prefix}* (whole block)")
        else:
            out.append(name)
    return out


def _depth(state):
    blocks = {int(n.split(".")[1]) for n in state if n.startswith("blocks.")}
    return max(blocks) + 1 if blocks else 0


def _describe(model):
    heads = model.blocks[0].attn.num_heads if len(model.blocks) else 0
    return (f"VisionTransformer(image_size={model.image_size}, patch_size={model.patch_size}, "
            f"embed_dim={model.embed_dim}, depth={len(model.blocks)}, num_heads={heads}, "
            f"num_classes={model.num_classes})")




def set_numerics(model, norm_eps=None, gelu_approximate=None, mean=None, std=None):
    """``model.set_numerics(...)``: change a built model's LayerNorm epsilon, GELU formula and input mean/std."""
    model.set_numerics(norm_eps=norm_eps, gelu_approximate=gelu_approximate, mean=mean, std=std)
