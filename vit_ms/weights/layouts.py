"""The layouts published ViT weights come in, and their translation to vit_ms parameter names.

    layout       where it comes from                                       file            eps    GELU   mean/std
    vit_ms       vit_ms training / ``python -m vit_ms convert``            .ckpt .safetensors  (recorded in the file)
    mindcv       mindcv's ViT checkpoints (same names as vit_ms)           .ckpt           1e-7   tanh   ImageNet
    tutorial     the MindSpore ViT tutorial's ``vit_b_16_224.ckpt``        .ckpt           1e-7   tanh   ImageNet
    timm         timm / Hugging Face hub ``model.safetensors``             .safetensors    1e-6   exact  0.5/0.5
    huggingface  transformers ``ViTModel``/``ViTForImageClassification``   .safetensors    1e-12  exact  0.5/0.5
    google       Google's original ``ViT-B_16.npz`` (JAX/Flax)             .npz            1e-6   exact  0.5/0.5

The layout is detected from the parameter names. vit_ms and mindcv files use the same names; a file is taken as
vit_ms's own when it records its numerics (every file vit_ms training or ``convert`` writes does), else as mindcv's.
Optimizer and training state (``adam_m.<param>``, ``global_step``, scalars ...) is told apart from weights here.
"""
import json
import re
from collections import defaultdict

import numpy as np

from ..checks import check_choice
from ..config import CONFIG_KEY, HALF_MEAN, HALF_STD, IMAGENET_MEAN, IMAGENET_STD, LAYOUTS, SOURCE_KEY
from .files import read_weights

# MindSpore's nn.LayerNorm / nn.GELU defaults (eps 1e-7, tanh GELU) trained the tutorial's and mindcv's weights
SOURCE_NUMERICS = {
    "mindcv": dict(norm_eps=1e-7, gelu_approximate=True, mean=IMAGENET_MEAN, std=IMAGENET_STD),
    "tutorial": dict(norm_eps=1e-7, gelu_approximate=True, mean=IMAGENET_MEAN, std=IMAGENET_STD),
    "timm": dict(norm_eps=1e-6, gelu_approximate=False, mean=HALF_MEAN, std=HALF_STD),
    "huggingface": dict(norm_eps=1e-12, gelu_approximate=False, mean=HALF_MEAN, std=HALF_STD),
    "google": dict(norm_eps=1e-6, gelu_approximate=False, mean=HALF_MEAN, std=HALF_STD),
}
NUMERICS_FIELDS = ("norm_eps", "gelu_approximate", "mean", "std")


# every parameter name VisionTransformer can have
_VIT_MS_NAME = (r"cls_token|pos_embed|patch_embed\.proj\.(?:weight|bias)|norm\.(?:gamma|beta)|head\.(?:weight|bias)"
                r"|pre_logits\.0\.(?:weight|bias)|blocks\.\d+\.(?:norm[12]\.(?:gamma|beta)"
                r"|attn\.(?:qkv|proj)\.(?:weight|bias)|mlp\.fc[12]\.(?:weight|bias))")

# Per-parameter optimizer slots are saved as "<prefix>.<parameter name>" (MindSpore/mindcv optimizers, mindcv EMA)
_OPTIMIZER_PREFIXES = {"adam_m", "adam_v", "moment", "moment1", "moment2", "moment3", "moments", "exp_avg",
                       "exp_avg_sq", "max_exp_avg_sq", "accum", "accum_update", "mean_grad", "mean_square", "lamb_m",
                       "lamb_v", "lion_m", "nadam_m", "nadam_v", "vhat", "linear", "prev", "prev_gradient", "stat",
                       "ema"}
# whole-run state that is not a scalar (a per-step learning-rate schedule is a 1-D tensor)
_TRAINING_STATE_NAMES = {"learning_rate", "global_step", "momentum", "beta1_power", "beta2_power", "scale_sense"}

# Name mappings: (source-name regex, vit_ms name template, array transform or None); first full match wins.
# Separate query/key/value projections map to "blocks.{i}.attn.{query|key|value}.*" and are fused into qkv afterwards.
def _dense(kernel):          # [in, out] -> [out, in]
    return np.ascontiguousarray(kernel.T)


def _conv_hwio(kernel):      # [p, p, C, D] -> [D, C, p, p]
    return np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))


def _heads_in(kernel):       # query/key/value kernel [D, heads, head_dim] -> [heads*head_dim, D]
    return np.ascontiguousarray(kernel.reshape(kernel.shape[0], -1).T)


def _heads_out(kernel):      # out kernel [heads, head_dim, D] -> [D, heads*head_dim]
    return np.ascontiguousarray(kernel.reshape(-1, kernel.shape[-1]).T)


def _flat(bias):             # [heads, head_dim] -> [heads*head_dim]
    return bias.reshape(-1)


def _norm_rules(src, dst, weight="weight", bias="bias", sep=r"\."):
    return [(src + sep + weight, dst + ".gamma", None), (src + sep + bias, dst + ".beta", None)]


_BLOCK = r"blocks\.(\d+)"
_RULES = {
    "vit_ms": [(_VIT_MS_NAME, r"\g<0>", None)],
    "tutorial": [
        ("cls", "cls_token", None),
        ("pos_embedding", "pos_embed", None),
        (r"patch_embedding\.conv\.(weight|bias)", r"patch_embed.proj.\1", None),
        (r"transformer\.layers\.(\d+)\.0\.cell\.0\.(gamma|beta)", r"blocks.\1.norm1.\2", None),
        (r"transformer\.layers\.(\d+)\.0\.cell\.1\.qkv\.(weight|bias)", r"blocks.\1.attn.qkv.\2", None),
        (r"transformer\.layers\.(\d+)\.0\.cell\.1\.out\.(weight|bias)", r"blocks.\1.attn.proj.\2", None),
        (r"transformer\.layers\.(\d+)\.1\.cell\.0\.(gamma|beta)", r"blocks.\1.norm2.\2", None),
        (r"transformer\.layers\.(\d+)\.1\.cell\.1\.dense1\.(weight|bias)", r"blocks.\1.mlp.fc1.\2", None),
        (r"transformer\.layers\.(\d+)\.1\.cell\.1\.dense2\.(weight|bias)", r"blocks.\1.mlp.fc2.\2", None),
        (r"norm\.(gamma|beta)", r"norm.\1", None),
        (r"dense\.(weight|bias)", r"head.\1", None),
    ],
    "timm": [
        *_norm_rules(_BLOCK + r"\.(norm[12])", r"blocks.\1.\2"),
        *_norm_rules("norm", "norm"),
        (r"pre_logits\.fc\.(weight|bias)", r"pre_logits.0.\1", None),
        (r"cls_token|pos_embed|patch_embed\.proj\.(?:weight|bias)|head\.(?:weight|bias)", r"\g<0>", None),
        (_BLOCK + r"\.((?:attn\.qkv|attn\.proj|mlp\.fc1|mlp\.fc2)\.(?:weight|bias))", r"blocks.\1.\2", None),
    ],
    "huggingface": [  # ViTModel names, or ViTForImageClassification's ("vit." prefix + "classifier")
        (r"(?:vit\.)?embeddings\.cls_token", "cls_token", None),
        (r"(?:vit\.)?embeddings\.position_embeddings", "pos_embed", None),
        (r"(?:vit\.)?embeddings\.patch_embeddings\.projection\.(weight|bias)", r"patch_embed.proj.\1", None),
        *_norm_rules(r"(?:vit\.)?encoder\.layer\.(\d+)\.layernorm_before", r"blocks.\1.norm1"),
        *_norm_rules(r"(?:vit\.)?encoder\.layer\.(\d+)\.layernorm_after", r"blocks.\1.norm2"),
        (r"(?:vit\.)?encoder\.layer\.(\d+)\.attention\.attention\.(query|key|value)\.(weight|bias)",
         r"blocks.\1.attn.\2.\3", None),
        (r"(?:vit\.)?encoder\.layer\.(\d+)\.attention\.output\.dense\.(weight|bias)", r"blocks.\1.attn.proj.\2", None),
        (r"(?:vit\.)?encoder\.layer\.(\d+)\.intermediate\.dense\.(weight|bias)", r"blocks.\1.mlp.fc1.\2", None),
        (r"(?:vit\.)?encoder\.layer\.(\d+)\.output\.dense\.(weight|bias)", r"blocks.\1.mlp.fc2.\2", None),
        *_norm_rules(r"(?:vit\.)?layernorm", "norm"),
        (r"(?:vit\.)?pooler\.dense\.(weight|bias)", r"pre_logits.0.\1", None),  # Dense + tanh on the class token
        (r"classifier\.(weight|bias)", r"head.\1", None),
    ],
    "google": [  # flax kernels are [in, out]; attention kernels keep a separate heads axis
        (r"embedding/kernel", "patch_embed.proj.weight", _conv_hwio),
        (r"embedding/bias", "patch_embed.proj.bias", None),
        (r"cls", "cls_token", None),
        (r"Transformer/posembed_input/pos_embedding", "pos_embed", None),
        *_norm_rules(r"Transformer/encoderblock_(\d+)/LayerNorm_0", r"blocks.\1.norm1", "scale", "bias", "/"),
        *_norm_rules(r"Transformer/encoderblock_(\d+)/LayerNorm_2", r"blocks.\1.norm2", "scale", "bias", "/"),
        (r"Transformer/encoderblock_(\d+)/MultiHeadDotProductAttention_1/(query|key|value)/kernel",
         r"blocks.\1.attn.\2.weight", _heads_in),
        (r"Transformer/encoderblock_(\d+)/MultiHeadDotProductAttention_1/(query|key|value)/bias",
         r"blocks.\1.attn.\2.bias", _flat),
        (r"Transformer/encoderblock_(\d+)/MultiHeadDotProductAttention_1/out/kernel", r"blocks.\1.attn.proj.weight",
         _heads_out),
        (r"Transformer/encoderblock_(\d+)/MultiHeadDotProductAttention_1/out/bias", r"blocks.\1.attn.proj.bias", None),
        (r"Transformer/encoderblock_(\d+)/MlpBlock_3/Dense_0/kernel", r"blocks.\1.mlp.fc1.weight", _dense),
        (r"Transformer/encoderblock_(\d+)/MlpBlock_3/Dense_0/bias", r"blocks.\1.mlp.fc1.bias", None),
        (r"Transformer/encoderblock_(\d+)/MlpBlock_3/Dense_1/kernel", r"blocks.\1.mlp.fc2.weight", _dense),
        (r"Transformer/encoderblock_(\d+)/MlpBlock_3/Dense_1/bias", r"blocks.\1.mlp.fc2.bias", None),
        *_norm_rules(r"Transformer/encoder_norm", "norm", "scale", "bias", "/"),
        (r"pre_logits/kernel", "pre_logits.0.weight", _dense),
        (r"pre_logits/bias", "pre_logits.0.bias", None),
        (r"head/kernel", "head.weight", _dense),
        (r"head/bias", "head.bias", None),
    ],
}
_RULES["mindcv"] = _RULES["vit_ms"]
_RULES = {layout: [(re.compile(p), t, f) for p, t, f in rules] for layout, rules in _RULES.items()}
_GOOGLE_OPT_PREFIX = "opt/target/"  # Flax optimizer checkpoints keep the parameters under opt/target/

def detect_layout(names, metadata=None):
    """Which of LAYOUTS a file's parameter names (and metadata) belong to; ValueError if none."""
    names = list(names)
    metadata = metadata or {}

    def has(pattern):
        regex = re.compile(pattern)
        return any(regex.fullmatch(n) for n in names)

    if has(r"(?:opt/target/)?(?:embedding/kernel|Transformer/encoder_norm/scale)"):
        return "google"
    if has(r"pos_embedding|patch_embedding\.conv\.weight|transformer\.layers\.\d+\..*"):
        return "tutorial"
    if has(r"(?:vit\.)?(?:embeddings|encoder\.layer\.\d+)\..*"):
        return "huggingface"
    if has(r"(?:blocks\.\d+\.norm[12]|norm)\.weight"):
        return "timm"
    if has(r"(?:blocks\.\d+\.norm[12]|norm)\.gamma"):
        return "vit_ms" if (SOURCE_KEY in metadata or CONFIG_KEY in metadata) else "mindcv"
    shown = ", ".join(sorted(names)[:8])
    raise ValueError(f"cannot tell which ViT weights layout these parameter names belong to (first names: {shown}); "
                     f"supported layouts: {', '.join(LAYOUTS)} (pass layout=... to choose one)")


def split_training_state(arrays):
    """(model weights, names of optimizer/training state) of a checkpoint's arrays.

    Training state: "<optimizer prefix>.<name of another entry>" (adam_m.blocks.0..., moment1.cls...), Flax's
    opt/state/..., the run-level entries (learning_rate, global_step, ...), and any top-level scalar (epoch,
    step ...; a model weight is never a scalar). Anything else stays, so real junk is still reported.
    """
    names = set(arrays)
    google_opt = any(n.startswith(_GOOGLE_OPT_PREFIX) for n in names)
    weights, state = {}, []
    for name, value in arrays.items():
        prefix, _, rest = name.partition(".")
        if ((rest and prefix in _OPTIMIZER_PREFIXES and rest in names)
                or (google_opt and name.startswith("opt/") and not name.startswith(_GOOGLE_OPT_PREFIX))
                or (not rest and "/" not in name and (name in _TRAINING_STATE_NAMES or np.size(value) <= 1))):
            state.append(name)
        else:
            weights[name[len(_GOOGLE_OPT_PREFIX):] if google_opt and name.startswith(_GOOGLE_OPT_PREFIX)
                    else name] = value
    return weights, state


def to_vit_ms(arrays, layout):
    """Rename/reshape one layout's weights to vit_ms names and layouts.

    Returns (state {vit_ms name: array}, names the layout does not know, number of attention heads if the file
    tells (Google's kernels do) else None).
    """
    check_choice(layout, "layout", LAYOUTS)
    state, origin, unknown = {}, {}, []
    for name, value in arrays.items():
        for pattern, template, transform in _RULES[layout]:
            match = pattern.fullmatch(name)
            if match:
                break
        else:
            unknown.append(name)
            continue
        new = match.expand(template)
        if new in state:
            raise ValueError(f"entries {origin[new]!r} and {name!r} both map to {new!r} (layout {layout})")
        try:
            state[new] = transform(value) if transform else value
        except ValueError as err:
            raise ValueError(f"{name} has an unexpected shape {tuple(value.shape)} for layout {layout}: {err}") from err
        origin[new] = name
    num_heads = None
    parts = defaultdict(dict)  # (block, weight|bias) -> {query|key|value: array}
    for name in [n for n in state if re.fullmatch(r"blocks\.\d+\.attn\.(query|key|value)\.(weight|bias)", n)]:
        _, block, _, kind, suffix = name.split(".")
        parts[(block, suffix)][kind] = name
        if layout == "google" and kind == "query" and suffix == "weight":
            num_heads = arrays[origin[name]].shape[1]
    for (block, suffix), found in parts.items():
        if len(found) == 3:  # fused as [q; k; v] along the output axis, heads contiguous inside each
            state[f"blocks.{block}.attn.qkv.{suffix}"] = np.concatenate(
                [state.pop(found[k]) for k in ("query", "key", "value")])
        else:  # an incomplete set cannot be fused: report what is there as not understood
            unknown.extend(origin[n] for n in found.values())
            for n in found.values():
                state.pop(n)
    return state, sorted(unknown, key=natural_order), num_heads


def source_numerics(layout, metadata=None):
    """The numerics {norm_eps, gelu_approximate, mean, std} a layout's weights were trained with (None: unknown)."""
    check_choice(layout, "layout", LAYOUTS)
    if layout != "vit_ms":
        return dict(SOURCE_NUMERICS[layout])
    for key in (SOURCE_KEY, CONFIG_KEY):
        record = _record(metadata, key)
        if record is not None:
            if not all(field in record for field in NUMERICS_FIELDS):
                raise ValueError(f"the checkpoint's {key} entry lacks one of {', '.join(NUMERICS_FIELDS)}")
            return {field: (tuple(record[field]) if field in ("mean", "std") else record[field])
                    for field in NUMERICS_FIELDS}
    return None


def _record(metadata, key):
    """The JSON dict stored under ``key`` in a file's metadata, or None."""
    if not metadata or key not in metadata:
        return None
    try:
        record = json.loads(metadata[key])
    except ValueError as err:
        raise ValueError(f"the checkpoint's {key} entry is not valid JSON: {err}") from err
    if not isinstance(record, dict):
        raise ValueError(f"the checkpoint's {key} entry is not a JSON object: {metadata[key]!r}")
    return record


def read_as_vit_ms(path, layout=None):
    """Read, detect, drop training state, convert: (state, unknown names, info dict)."""
    arrays, metadata = read_weights(path)
    if layout is None:
        layout = detect_layout(arrays, metadata)
    else:
        check_choice(layout, "layout", LAYOUTS)
    weights, training_state = split_training_state(arrays)
    state, unknown, num_heads = to_vit_ms(weights, layout)
    if num_heads is None and layout == "vit_ms":  # convert records the heads when its source told them
        num_heads = (_record(metadata, SOURCE_KEY) or {}).get("num_heads")
    info = dict(path=str(path), layout=layout, metadata=metadata, num_heads=num_heads,
                numerics=source_numerics(layout, metadata), training_state=training_state)
    return state, unknown, info


def shorten(items, limit=12):
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def natural_order(name):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]
