"""vit_ms's CPU fast paths, kept out of the model so that ``vit_ms/model.py`` reads as the paper's diagram.

MindSpore 2.10's CPU backend is slow at a few of a ViT's layers. ``layers.py`` holds drop-in subclasses of those
MindSpore layers, with the same parameters and results (tests compare logits and every gradient):

- ``PatchConv2d``: the patch-embedding convolution as one matmul over flattened patches;
- ``Dense``: a backward pass that uses the fast matmul layouts;
- ``LayerNorm`` (forward and backward) and ``GELU`` (exact form): C++ kernels in ``csrc/``, run as MindSpore custom operators
  and built on first use by ``native.py``. Where they cannot be built, these two keep MindSpore's kernels;
- ``fused_attention``: the attention of every head (scores, softmax, weighted values, and their gradients) in one
  C++ kernel (``csrc/dnnl/``, with the sgemm of the oneDNN library MindSpore ships); None where it cannot be built.

``csrc/adamw.cc`` holds the optimizer's kernels (AdamW's update in one pass, the sums of squares of clipping), which
``vit_ms.optim`` takes under the same switch.

The switch: a model takes these layers when it is built with ``cpu_kernels=True``; with ``cpu_kernels=None`` (the
default) ``use_cpu_kernels()`` decides: yes when the model will run on the CPU (``vit_ms.device.current_device()``),
MindSpore is a version they were tested on (``vit_ms.versions.KERNELS_TESTED``) and the environment variable
``VIT_MS_NATIVE`` is not ``0``. Measured figures: docs/performance.md.
"""
import os
from types import SimpleNamespace

import mindspore

from ..device import current_device
from ..versions import kernels_reason


def use_cpu_kernels(cpu_kernels=None):
    """Whether a model built now takes the CPU layers: ``cpu_kernels`` if it is True or False, else the default."""
    if cpu_kernels is None:
        return (os.environ.get("VIT_MS_NATIVE", "1") != "0" and current_device() == "CPU"
                and kernels_reason(mindspore.__version__) is None)
    if not isinstance(cpu_kernels, bool):
        raise TypeError(f"cpu_kernels must be True, False or None (decide from the device), got {cpu_kernels!r}")
    if cpu_kernels and kernels_reason(mindspore.__version__) is not None:
        raise ValueError(f"cpu_kernels=True: {kernels_reason(mindspore.__version__)}; use cpu_kernels=None or False "
                         f"(MindSpore's layers, same results)")
    if cpu_kernels and current_device() != "CPU":
        raise ValueError(f"cpu_kernels=True: vit_ms's CPU kernels run on the CPU only, but this model would run on "
                         f"{current_device()} (choose the device with vit_ms.set_device before building)")
    return cpu_kernels


def cpu_layers():
    """The CPU layers, named as the layer set ``vit_ms.model.layer_set`` returns."""
    from . import layers

    return SimpleNamespace(Dense=layers.Dense, LayerNorm=layers.LayerNorm, GELU=layers.GELU, Conv2d=layers.PatchConv2d,
                           fused_attention=layers.fused_attention)
