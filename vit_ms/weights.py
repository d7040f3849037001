"""Load published ViT weights into ``VisionTransformer``, strictly, from any of the layouts they are shipped in.

    layout       where it comes from                                       file            eps    GELU   mean/std
    vit_ms       vit_ms training / ``python -m vit_ms convert``            .ckpt .safetensors  (recorded in the file)
    mindcv       mindcv's ViT checkpoints (same names as vit_ms)           .ckpt           1e-7   tanh   ImageNet
    tutorial     the MindSpore ViT tutorial's ``vit_b_16_224.ckpt``        .ckpt           1e-7   tanh   ImageNet
    timm         timm / Hugging Face hub ``model.safetensors``             .safetensors    1e-6   exact  0.5/0.5
    huggingface  transformers ``ViTModel``/``ViTForImageClassification``   .safetensors    1e-12  exact  0.5/0.5
    google       Google's original ``ViT-B_16.npz`` (JAX/Flax)             .npz            1e-6   exact  0.5/0.5

The layout is detected from the parameter names. vit_ms and mindcv files use the same names; a file is taken as
vit_ms's own when it records its numerics (every file vit_ms training or ``convert`` writes does), else as mindcv's.

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
import json
import logging
import os
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from .checkpoint import CLASSES_KEY, CONFIG_KEY, atomic_save
from .pos_embed import resample_pos_embed

_logger = logging.getLogger(__name__)

LAYOUTS = ("vit_ms", "mindcv", "tutorial", "timm", "huggingface", "google")
NUMERICS_CHOICES = ("source", "model")
# the numerics and input normalisation a converted file records (checkpoints written by training record CONFIG_KEY)
SOURCE_KEY = "vit_ms_source"

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
HALF_MEAN, HALF_STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
# MindSpore's nn.LayerNorm / nn.GELU defaults (eps 1e-7, tanh GELU) trained the tutorial's and mindcv's weights
SOURCE_NUMERICS = {
    "mindcv": dict(norm_eps=1e-7, gelu_approximate=True, mean=IMAGENET_MEAN, std=IMAGENET_STD),
    "tutorial": dict(norm_eps=1e-7, gelu_approximate=True, mean=IMAGENET_MEAN, std=IMAGENET_STD),
    "timm": dict(norm_eps=1e-6, gelu_approximate=False, mean=HALF_MEAN, std=HALF_STD),
    "huggingface": dict(norm_eps=1e-12, gelu_approximate=False, mean=HALF_MEAN, std=HALF_STD),
    "google": dict(norm_eps=1e-6, gelu_approximate=False, mean=HALF_MEAN, std=HALF_STD),
}
NUMERICS_FIELDS = ("norm_eps", "gelu_approximate", "mean", "std")

DOWNLOAD_HINT = "the course's ViT-B/16 checkpoint can be fetched with: python -m vit_ms download checkpoint"

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


# ----------------------------------------------------------------------------------------------------------- reading

def read_weights(path):
    """Read a weights file into ({name: float32/int NumPy array}, {name: str metadata}).

    .ckpt (MindSpore), .safetensors and .npz are recognised by extension, else by their first bytes.
    Raises FileNotFoundError for a missing file and ValueError (naming the file) for one that cannot be read.
    """
    path = _check_path(path)
    kind = _file_kind(path)
    try:
        if kind == "npz":
            arrays, metadata = _read_npz(path)
        elif kind == "safetensors":
            arrays, metadata = _read_safetensors(path)
        else:
            arrays, metadata = _read_ckpt(path)
    except Exception as err:  # each reader fails its own way on a damaged file (BadZipFile, SafetensorError ...)
        raise ValueError(f"cannot read weights file {path} (as {kind}): it is truncated, corrupted or not a "
                         f"{kind} file ({type(err).__name__}: {err})") from err
    if not arrays:
        raise ValueError(f"weights file {path} contains no tensors")
    return arrays, metadata


def _check_path(path):
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"expected a checkpoint path (str or os.PathLike), got {type(path).__name__}: {path!r}")
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path} ({DOWNLOAD_HINT})")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint path is not a file: {path}")
    return path


def _file_kind(path):
    suffix = path.suffix.lower()
    if suffix in (".ckpt", ".safetensors", ".npz"):
        return suffix[1:]
    if suffix in (".bin", ".pth", ".pt"):
        raise ValueError(f"{path} is a PyTorch pickle, which vit_ms does not read (it would need torch); use the "
                         f"model's .safetensors file from the same repository instead")
    with open(path, "rb") as f:
        head = f.read(9)
    if head[:4] == b"PK\x03\x04":
        return "npz"
    if len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < path.stat().st_size:
        return "safetensors"
    return "ckpt"


def _read_npz(path):
    arrays, metadata = {}, {}
    with np.load(path, allow_pickle=False) as npz:
        if any(name.endswith("data.pkl") for name in npz.files):
            raise ValueError("this zip archive is a PyTorch checkpoint, not a NumPy .npz")
        for name in npz.files:
            value = npz[name]
            if value.dtype.kind in "fiub":
                arrays[name] = value
            else:
                metadata[name] = str(value)
    return arrays, metadata


def _read_safetensors(path):
    from safetensors import safe_open
    with safe_open(str(path), framework="np") as f:
        metadata = dict(f.metadata() or {})
        names = list(f.keys())
    try:
        from safetensors.numpy import load_file
        return load_file(str(path)), metadata
    except TypeError as err:  # NumPy has no bfloat16: read those tensors' raw bits instead
        if "bfloat16" not in str(err):
            raise
        return _read_safetensors_bf16(path, names), metadata


def _read_safetensors_bf16(path, names):
    """Fallback reader for files with bfloat16 tensors: bfloat16 is the upper half of a float32."""
    dtypes = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
              "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_, "BF16": np.uint16}
    with open(path, "rb") as f:
        header_len = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(header_len))
        data = f.read()
    arrays = {}
    for name in names:
        info = header[name]
        start, end = info["data_offsets"]
        if info["dtype"] not in dtypes or end > len(data):
            raise ValueError(f"tensor {name}: unsupported dtype {info['dtype']} or data past the end of the file")
        value = np.frombuffer(data[start:end], dtype=dtypes[info["dtype"]]).reshape(info["shape"])
        if info["dtype"] == "BF16":
            value = (value.astype(np.uint32) << 16).view(np.float32)
        arrays[name] = value
    return arrays


def _read_ckpt(path):
    import mindspore as ms
    arrays, metadata = {}, {}
    for name, value in ms.load_checkpoint(str(path)).items():
        if isinstance(value, str):
            metadata[name] = value
        else:
            arrays[name] = value.asnumpy() if hasattr(value, "asnumpy") else np.asarray(value)
    return arrays, metadata


# ------------------------------------------------------------------------------------------- layouts and conversion

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
    _check_choice("layout", layout, LAYOUTS)
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
    return state, sorted(unknown, key=_natural), num_heads


def source_numerics(layout, metadata=None):
    """The numerics {norm_eps, gelu_approximate, mean, std} a layout's weights were trained with (None: unknown)."""
    _check_choice("layout", layout, LAYOUTS)
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


def _read_as_vit_ms(path, layout=None):
    """Read, detect, drop training state, convert: (state, unknown names, info dict)."""
    arrays, metadata = read_weights(path)
    if layout is None:
        layout = detect_layout(arrays, metadata)
    else:
        _check_choice("layout", layout, LAYOUTS)
    weights, training_state = split_training_state(arrays)
    state, unknown, num_heads = to_vit_ms(weights, layout)
    if num_heads is None and layout == "vit_ms":  # convert records the heads when its source told them
        num_heads = (_record(metadata, SOURCE_KEY) or {}).get("num_heads")
    info = dict(path=str(path), layout=layout, metadata=metadata, num_heads=num_heads,
                numerics=source_numerics(layout, metadata), training_state=training_state)
    return state, unknown, info


# ------------------------------------------------------------------------------------------------- loading

def load_pretrained(model, path, layout=None, numerics="source"):
    """Load a weights file into ``model`` (a ``VisionTransformer``), strictly; returns a summary dict.

    ``layout``: one of LAYOUTS, detected from the file when None. ``numerics``: "source" sets the model's LayerNorm
    epsilon, GELU formula and input mean/std to those the weights were trained with; "model" keeps the model's.
    In graph mode, load before the model's first call (a compiled graph keeps the numerics it was built with).
    """
    from .model import VisionTransformer
    if not isinstance(model, VisionTransformer):
        raise TypeError(f"load_pretrained expects a vit_ms VisionTransformer, got {type(model).__name__}")
    _check_choice("numerics", numerics, NUMERICS_CHOICES)
    state, unknown, info = _read_as_vit_ms(path, layout)
    state, notes = _plan_load(model, state, unknown, info)

    import mindspore as ms
    applied = info["numerics"] if numerics == "source" else None
    if applied:  # validates before changing anything, so it goes first
        set_numerics(model, **applied)
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
    return dict(path=info["path"], layout=info["layout"], loaded=sorted(state, key=_natural), notes=notes,
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

    missing = sorted(set(params) - set(state) - fresh, key=_natural)
    unexpected = sorted(unknown + [n for n in state if n not in params], key=_natural)
    mismatched = [f"{n}: checkpoint {tuple(state[n].shape)}, model {params[n]}"
                  for n in sorted(state, key=_natural) if n in params and tuple(state[n].shape) != params[n]]
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
            problems.append(f"{title} ({len(items)}): {_shorten(shown)}")
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


def _shorten(items, limit=12):
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def _natural(name):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _check_choice(what, value, choices):
    if value not in choices:
        raise ValueError(f"{what} must be one of {', '.join(map(repr, choices))}, got {value!r}")


# ------------------------------------------------------------------------------------------------- numerics

def set_numerics(model, norm_eps=None, gelu_approximate=None, mean=None, std=None):
    """Change a built model's LayerNorm epsilon, GELU formula (True: tanh approximation, False: exact erf) and the
    input normalisation (mean/std) it carries; None leaves that one as it is.

    In graph mode, call this before the model's first call: a compiled graph keeps the numerics it was built with.
    """
    from mindspore import nn, ops

    from .model import LayerNorm
    if norm_eps is not None and (isinstance(norm_eps, bool) or not isinstance(norm_eps, (int, float))
                                 or not norm_eps > 0):
        raise ValueError(f"norm_eps must be a positive number, got {norm_eps!r}")
    if gelu_approximate is not None and not isinstance(gelu_approximate, bool):
        raise TypeError(f"gelu_approximate must be True (tanh) or False (exact), got {gelu_approximate!r}")
    in_chans = model.patch_embed.in_chans
    for name, value in (("mean", mean), ("std", std)):
        if value is not None and (len(tuple(value)) != in_chans or not all(isinstance(v, (int, float))
                                                                            for v in value)):
            raise ValueError(f"{name} must be {in_chans} numbers (one per input channel), got {value!r}")
    if std is not None and not all(v > 0 for v in std):
        raise ValueError(f"std must be positive, got {std!r}")
    for _, cell in model.cells_and_names():
        if norm_eps is not None and isinstance(cell, LayerNorm):
            cell.set_epsilon(norm_eps)
        elif norm_eps is not None and isinstance(cell, nn.LayerNorm):
            # the epsilon lives in the LayerNorm primitive built by the constructor: rebuild it
            cell.epsilon = float(norm_eps)
            cell.layer_norm = ops.LayerNorm(begin_norm_axis=cell.begin_norm_axis,
                                            begin_params_axis=cell.begin_params_axis, epsilon=float(norm_eps))
        if gelu_approximate is not None and isinstance(cell, nn.GELU):
            cell.approximate = "tanh" if gelu_approximate else "none"
    config = getattr(model, "config", None)
    for attr, value in (("norm_eps", norm_eps), ("gelu_approximate", gelu_approximate),
                        ("mean", mean), ("std", std)):
        if value is None:
            continue
        value = tuple(float(v) for v in value) if attr in ("mean", "std") else value
        setattr(model, attr, value)
        if isinstance(config, dict):
            config[attr] = value


# ------------------------------------------------------------------------------------------------- conversion

def convert(src, dst, layout=None):
    """Write ``src`` (any layout) as a MindSpore .ckpt or a .safetensors file in vit_ms names; returns a summary.

    Optimizer/training state is dropped. The source's numerics (and number of heads, when the file tells) are
    recorded in the output (entry ``vit_ms_source``), so loading it later follows them; vit_ms's model configuration
    and class names are carried over when present.
    """
    dst = Path(dst) if isinstance(dst, (str, os.PathLike)) else dst
    if not isinstance(dst, Path) or dst.suffix.lower() not in (".ckpt", ".safetensors"):
        raise ValueError(f"the output must be a .ckpt or .safetensors path, got {dst!r}")
    state, unknown, info = _read_as_vit_ms(src, layout)
    if unknown:
        raise ValueError(f"cannot convert {info['path']} (layout {info['layout']}): entries this layout does not "
                         f"have ({len(unknown)}): {_shorten(unknown)}")
    record = dict(layout=info["layout"])
    if info["numerics"] is not None:
        record.update(info["numerics"])
    if info["num_heads"] is not None:
        record["num_heads"] = int(info["num_heads"])
    extra = {key: info["metadata"][key] for key in (CONFIG_KEY, CLASSES_KEY) if key in info["metadata"]}
    extra[SOURCE_KEY] = json.dumps(record)
    names = sorted(state, key=_natural)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.suffix.lower() == ".ckpt":
        import mindspore as ms
        atomic_save([{"name": n, "data": ms.Tensor(np.ascontiguousarray(state[n]))} for n in names], dst, extra)
    else:
        from safetensors.numpy import save_file
        tmp = dst.with_name(dst.stem + ".tmp.safetensors")
        save_file({n: np.ascontiguousarray(state[n]) for n in names}, str(tmp), metadata=extra)
        os.replace(tmp, dst)
    return dict(src=info["path"], dst=str(dst), layout=info["layout"], tensors=len(names),
                skipped_training_state=len(info["training_state"]), record=record)


def add_cli(subparsers):
    p = subparsers.add_parser("convert", help="convert published ViT weights to a .ckpt/.safetensors in vit_ms names",
                              description="Convert ViT weights (vit_ms, mindcv, MindSpore tutorial, timm, Hugging "
                                          "Face, Google .npz) to a MindSpore .ckpt or a .safetensors file with "
                                          "vit_ms parameter names; the source's numerics are recorded in it.")
    p.add_argument("src", help="weights file to read (.ckpt, .safetensors or .npz)")
    p.add_argument("dst", help="file to write: .ckpt (MindSpore) or .safetensors")
    p.add_argument("--layout", choices=LAYOUTS, default=None, help="source layout (default: detected)")
    p.set_defaults(func=_convert_command)


def _convert_command(args):
    import sys
    try:
        summary = convert(args.src, args.dst, layout=args.layout)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    record = summary["record"]
    numerics = (f"LayerNorm eps {record['norm_eps']:g}, {'tanh' if record['gelu_approximate'] else 'exact'} GELU, "
                f"mean {tuple(record['mean'])} std {tuple(record['std'])}" if "norm_eps" in record
                else "numerics not recorded in the source")
    print(f"wrote {summary['dst']}: {summary['tensors']} tensors from {summary['src']} (layout {summary['layout']}; "
          f"{numerics}; {summary['skipped_training_state']} optimizer/training entries dropped)")
    return 0
