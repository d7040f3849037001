"""Converting weights of any layout to a vit_ms .ckpt or .safetensors file."""
import json
import os
from pathlib import Path

import numpy as np

from ..config import CLASSES_KEY, CONFIG_KEY, SOURCE_KEY
from .files import atomic_save
from .layouts import natural_order, read_as_vit_ms, shorten


def convert(src, dst, layout=None):
    """Write ``src`` (any layout) as a MindSpore .ckpt or a .safetensors file in vit_ms names; returns a summary.

    Optimizer/training state is dropped. The source's numerics (and number of heads, when the file tells) are
    recorded in the output (entry ``vit_ms_source``), so loading it later follows them; vit_ms's model configuration
    and class names are carried over when present.
    """
    dst = Path(dst) if isinstance(dst, (str, os.PathLike)) else dst
    if not isinstance(dst, Path) or dst.suffix.lower() not in (".ckpt", ".safetensors"):
        raise ValueError(f"the output must be a .ckpt or .safetensors path, got {dst!r}")
    state, unknown, info = read_as_vit_ms(src, layout)
    if unknown:
        raise ValueError(f"cannot convert {info['path']} (layout {info['layout']}): entries this layout does not "
                         f"have ({len(unknown)}): {shorten(unknown)}")
    record = dict(layout=info["layout"])
    if info["numerics"] is not None:
        record.update(info["numerics"])
    if info["num_heads"] is not None:
        record["num_heads"] = int(info["num_heads"])
    extra = {key: info["metadata"][key] for key in (CONFIG_KEY, CLASSES_KEY) if key in info["metadata"]}
    extra[SOURCE_KEY] = json.dumps(record)
    names = sorted(state, key=natural_order)
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
