"""Reading weights files (.ckpt, .safetensors, .npz) into NumPy arrays, and writing checkpoints atomically."""
import json
import os
from pathlib import Path

import numpy as np

DOWNLOAD_HINT = "the course's ViT-B/16 checkpoint can be fetched with: python -m vit_ms download checkpoint"


def atomic_save(cell_or_list, path, append_dict=None):
    """ms.save_checkpoint to a temporary file, then rename: a crash never leaves a half-written checkpoint."""
    import mindspore as ms

    path = Path(path)
    tmp = path.with_name(path.stem + ".tmp.ckpt")
    ms.save_checkpoint(cell_or_list, str(tmp), append_dict=append_dict)
    os.replace(tmp, path)


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
