"""C++ kernels for MindSpore's CPU backend (``vit_ms/kernels/csrc``), built on first use with the system C++ compiler.

MindSpore runs them as custom operators (``ops.Custom`` with ``func_type="aot"``). They replace CPU kernels that are
far slower than the work they do (figures: docs/performance.md). Two shared libraries: ``csrc/*.cc`` (GELU,
LayerNorm forward and backward, AdamW's update), and ``csrc/dnnl/*.cc`` (attention), linked against the oneDNN
library that MindSpore ships for its sgemm. Each is compiled once per source version, compiler, machine type (and
oneDNN file), and cached in ``$VIT_MS_CACHE`` (default ``~/.cache/vit_ms``). Where one cannot be built (no compiler,
not Linux, no oneDNN in the MindSpore installation), vit_ms warns once and keeps MindSpore's own kernels: the
results are the same, only slower. ``VIT_MS_NATIVE=0`` switches them off, with the rest of vit_ms.kernels (see its
``use_cpu_kernels``).
"""
import functools
import hashlib
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

from ..runtime import cache_dir

CSRC = Path(__file__).parent / "csrc"
SOURCES = tuple(sorted(CSRC.glob("*.cc")))
DNNL_SOURCES = tuple(sorted((CSRC / "dnnl").glob("*.cc")))
HEADERS = tuple(sorted(CSRC.rglob("*.h")))
# -ffp-contract=off: no a * b + c fused into one FMA rounding, so that gelu.cc's AVX-512, AVX2 and baseline versions
# (picked at load time by the CPU) give the same bits. -fno-math-errno: sqrt vectorizes (errno is never read).
FLAGS = ("-std=c++17", "-O3", "-ffp-contract=off", "-fno-math-errno", "-shared", "-fPIC", "-pthread")


def _compiler():
    return os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")


def mindspore_onednn():
    """MindSpore's own oneDNN library (mindspore/lib/libdnnl.so.N; oneDNN 3 in MindSpore 2.10, 2 in 2.7), or None."""
    spec = importlib.util.find_spec("mindspore")
    folders = [Path(p) / "lib" for p in (spec.submodule_search_locations or [])] if spec else []
    found = sorted(f for folder in folders for f in folder.glob("libdnnl.so.*") if f.is_file())
    return found[-1] if found else None


@functools.lru_cache(maxsize=None)
def library():
    """Path of the compiled GELU, LayerNorm and AdamW library, or None (after one warning) when it cannot be built,
    or when switched off."""
    return _build("vit_ms_cpu", SOURCES)


@functools.lru_cache(maxsize=None)
def dnnl_library():
    """Path of the compiled attention library, linked against MindSpore's oneDNN, or None (after one warning)."""
    if os.environ.get("VIT_MS_NATIVE", "1") == "0":
        return None
    onednn = mindspore_onednn()
    if onednn is None:
        return _unavailable("this MindSpore installation has no oneDNN library (mindspore/lib/libdnnl.so.*) for the "
                            "attention kernel")
    return _build("vit_ms_dnnl", DNNL_SOURCES, (str(onednn), f"-Wl,-rpath,{onednn.parent}"))


def _build(name, sources, link=()):
    """Compile ``sources`` (with ``link``: libraries and linker flags) into a cached shared library; its path, or
    None after one warning."""
    if os.environ.get("VIT_MS_NATIVE", "1") == "0":
        return None
    if not sys.platform.startswith("linux"):
        return _unavailable(f"native CPU kernels are built on Linux only (this is {sys.platform})")
    compiler = _compiler()
    if compiler is None:
        return _unavailable("no C++ compiler found (install g++ or set CXX)")
    key = hashlib.sha256()
    for part in (compiler, platform.machine(), *FLAGS, *link):
        key.update(part.encode())
    for source in (*sources, *HEADERS):
        key.update(source.read_bytes())
    target = cache_dir() / f"{name}_{key.hexdigest()[:16]}.so"
    if target.is_file():
        return target
    partial = target.with_name(f"{target.name}.{os.getpid()}.part")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        return _unavailable(f"cannot create the kernel cache {target.parent} ({err}; set VIT_MS_CACHE)")
    try:
        result = subprocess.run([compiler, *FLAGS, *map(str, sources), *link, "-o", str(partial)],
                                capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as err:
        return _unavailable(f"running {compiler} failed: {err}")
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        details = result.stderr.strip()[-2000:] or f"exit status {result.returncode}"
        return _unavailable(f"{compiler} could not build {', '.join(s.name for s in sources)} ({details})")
    os.replace(partial, target)  # atomic: several processes (msrun workers) may build at the same time
    return target


def _unavailable(reason):
    warnings.warn(f"vit_ms: {reason}; using MindSpore's CPU kernels instead (same results, slower training)",
                  RuntimeWarning, stacklevel=3)
    return None


def layer_norm():
    """The LayerNorm operators, float32, or None: forward (x, gamma, beta, epsilon [1]) -> (y, mean, rstd), rows' mean
    and 1 / sqrt(var + epsilon) shaped [rows]; backward (x, dy, mean, rstd, gamma) -> (dx, dgamma, dbeta)."""
    path = library()
    if path is None:
        return None
    from mindspore import ops
    forward = ops.Custom(f"{path}:LayerNormForward", func_type="aot",
                         out_shape=lambda x, gamma, beta, eps: (x, x[:-1], x[:-1]),
                         out_dtype=lambda x, gamma, beta, eps: (x, x, x))
    backward = ops.Custom(f"{path}:LayerNormGrad", out_shape=lambda x, dy, mean, rstd, gamma: (x, gamma, gamma),
                          out_dtype=lambda x, dy, mean, rstd, gamma: (x, x, x), func_type="aot")
    return forward, backward


def adamw():
    """AdamW's operators, float32, or None: update (param, m, v, grad, step [7], own [2]) -> placeholder [1], which
    writes param, m and v in place (csrc/adamw.cc has the formula), and sum_of_squares x -> [1]."""
    path = library()
    if path is None:
        return None
    from mindspore import ops
    from mindspore.ops import signature as sig

    class InPlaceUpdate(ops.Custom):
        # as for MindSpore's own ops.Adam: the first three inputs are written, so MindSpore passes the Parameters
        # themselves and orders the update after every read of their old values
        __mindspore_signature__ = (*(sig.make_sig(name, sig.sig_rw.RW_WRITE, dtype=sig.sig_dtype.T)
                                     for name in ("param", "m", "v")),
                                   *(sig.make_sig(name, dtype=sig.sig_dtype.T) for name in ("grad", "step", "own")))

    update = InPlaceUpdate(f"{path}:AdamWUpdate", out_shape=lambda *shapes: [1], out_dtype=lambda *types: types[0],
                           func_type="aot")
    update.add_prim_attr("side_effect_mem", True)
    sum_of_squares = ops.Custom(f"{path}:SumOfSquares", out_shape=lambda x: [1], out_dtype=lambda x: x,
                                func_type="aot")
    return update, sum_of_squares


def gelu():
    """The exact-GELU operators, float32, or None: forward x -> (y, Phi(x)), backward (x, Phi(x), dy) -> dx."""
    path = library()
    if path is None:
        return None
    from mindspore import ops
    forward = ops.Custom(f"{path}:GeluForward", out_shape=lambda x: (x, x), out_dtype=lambda x: (x, x),
                         func_type="aot")
    backward = ops.Custom(f"{path}:GeluBackward", out_shape=lambda x, cdf, dy: x, out_dtype=lambda x, cdf, dy: x,
                          func_type="aot")
    return forward, backward


def attention():
    """The attention operators, float32, or None: forward qkv [B, T, 3, H, d] -> (out [B, T, H, d], probs
    [B, H, T, T]), backward (qkv, probs, dout) -> dqkv."""
    path = dnnl_library()
    if path is None:
        return None
    from mindspore import ops
    forward = ops.Custom(f"{path}:AttentionForward", func_type="aot", out_dtype=lambda qkv: (qkv, qkv),
                         out_shape=lambda qkv: ([*qkv[:2], *qkv[3:]], [qkv[0], qkv[3], qkv[1], qkv[1]]))
    backward = ops.Custom(f"{path}:AttentionBackward", out_shape=lambda qkv, probs, dout: qkv,
                          out_dtype=lambda qkv, probs, dout: qkv, func_type="aot")
    return forward, backward
