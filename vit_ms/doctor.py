"""``python -m vit_ms doctor``: what a learner or a bug report needs to know about this installation.

Each check gives a status: ``ok``, ``note`` (works, but worth knowing) or ``FAIL`` (something the course needs is
broken; the command then exits with status 1).
"""
import contextlib
import io
import os
import platform
import sys
import warnings
from pathlib import Path

from .runtime import process_env
from .versions import describe, kernels_reason, parse

TESTED_PYTHON = ((3, 9), (3, 11))


def _version(text):
    return parse(text)[:2]


def _check(name, status, detail):
    return dict(check=name, status=status, detail=detail)


def _python():
    found = sys.version_info[:2]
    status = "ok" if TESTED_PYTHON[0] <= found <= TESTED_PYTHON[1] else "note"
    return _check("python", status, f"{platform.python_version()} ({platform.machine()}); tested: "
                                    f"{TESTED_PYTHON[0][0]}.{TESTED_PYTHON[0][1]} to "
                                    f"{TESTED_PYTHON[1][0]}.{TESTED_PYTHON[1][1]}")


def _numpy():
    try:
        import numpy
    except ImportError as err:
        return _check("numpy", "FAIL", f"not importable ({err}): pip install 'numpy>=1.25,<2'")
    if _version(numpy.__version__) >= (2, 0):
        return _check("numpy", "FAIL", f"{numpy.__version__}: numpy 2 breaks MindSpore's extension (\"Numpy init "
                                       f"failed\"); pip install 'numpy>=1.25,<2'")
    return _check("numpy", "ok", numpy.__version__)


def _mindspore():
    try:
        import mindspore
    except Exception as err:  # ImportError, or the numpy-2 failure inside MindSpore's extension
        return None, _check("mindspore", "FAIL", f"not importable ({type(err).__name__}: {err}); install the "
                                                 f"MindSpore build for your device from mindspore.cn/install, or "
                                                 f"pip install -r requirements.txt for CPU")
    status, detail = describe(mindspore.__version__)
    return (None if status == "FAIL" else mindspore), _check("mindspore", status, detail)


def _devices(mindspore):
    from .config import BACKENDS
    from .device import set_device

    visible = []
    for target in BACKENDS:
        try:
            available = target == "CPU" or bool(mindspore.hal.is_available(target))
            count = mindspore.hal.device_count(target) if available and target != "CPU" else None
        except Exception:
            available, count = False, None
        if available:
            visible.append(target if count is None else f"{target} x{count}")
    used = set_device("auto", verbose=False)
    output = io.StringIO()
    try:
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            mindspore.run_check()
        result = output.getvalue().strip().splitlines()
        passed = any("successfully" in line for line in result)
        detail = result[-1] if result else "no output"
    except Exception as err:
        passed, detail = False, f"{type(err).__name__}: {err}"
    return [_check("devices", "ok", f"backend in use: {used}; MindSpore sees: {', '.join(visible)}"),
            _check("mindspore.run_check()", "ok" if passed else "FAIL", detail)]


def _kernels():
    from .device import current_device
    from .kernels import native, use_cpu_kernels

    if current_device() != "CPU":
        return _check("CPU kernels", "ok", f"not used on {current_device()} (MindSpore's own kernels)")
    if os.environ.get("VIT_MS_NATIVE", "1") == "0":
        return _check("CPU kernels", "note", "switched off by VIT_MS_NATIVE=0 (same results, slower training)")
    import mindspore

    reason = kernels_reason(mindspore.__version__)
    if reason is not None:
        return _check("CPU kernels", "note", f"not used: {reason}; models use MindSpore's layers (same results, "
                                             f"slower training)")
    built, missing = [], []
    for build in (native.library, native.dnnl_library):   # GELU and LayerNorm; attention (with MindSpore's oneDNN)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            build.cache_clear()
            library = build()
        if library is None:
            missing.append(str(caught[-1].message) if caught else "unknown reason")
        else:
            built.append(str(library))
    if missing:
        return _check("CPU kernels", "note", f"C++ kernels not built: {'; '.join(missing)}; models use vit_ms.kernels: "
                                             f"{use_cpu_kernels()} (where a kernel is missing: MindSpore's, same "
                                             f"results)")
    return _check("CPU kernels", "ok", f"C++ kernels built ({', '.join(built)}); models use vit_ms.kernels: "
                                       f"{use_cpu_kernels()}")


def _attention():
    from .device import flash_attention_support

    used, why = flash_attention_support()
    return _check("flash attention", "ok", f"{'used' if used else 'not used'}: {why}")


def _course_files(root):
    from .course import checkpoint_places, course_checkpoint_path, course_dataset
    from .download import COURSE_CHECKPOINT_URL, COURSE_DATASET_URL

    checks = []
    dataset = course_dataset(root)
    if dataset is not None:
        checks.append(_check("course dataset", "ok", f"{dataset}"))
    else:
        checks.append(_check("course dataset", "note", f"not at {Path(root) / 'data' / 'dataset'} (notebook 04 then "
                                                       f"trains on the offline sample data); get it with: python -m "
                                                       f"vit_ms download dataset ({COURSE_DATASET_URL}, ~490 MB)"))
    found = course_checkpoint_path(root)
    if found is not None:
        checks.append(_check("course checkpoint", "ok", f"{found}"))
    else:
        checks.append(_check("course checkpoint", "note", f"not at {', '.join(map(str, checkpoint_places(root)))}; "
                                                          f"get it with: python -m vit_ms download checkpoint "
                                                          f"({COURSE_CHECKPOINT_URL}, ~330 MB)"))
    return checks


def _threads(mindspore):
    threads = process_env("OMP_NUM_THREADS") or "not set"
    try:
        runtime = mindspore.get_context("runtime_num_threads")
    except Exception:
        runtime = "unknown"
    return _check("threads", "ok", f"{os.cpu_count()} CPU cores; MindSpore runtime_num_threads {runtime}; "
                                   f"OMP_NUM_THREADS {threads} (as child processes inherit it)")


def diagnose(root="."):
    """The checks, as a list of {check, status, detail}; ``root``: where the notebooks look for the course files."""
    checks = [_python(), _numpy()]
    mindspore, check = _mindspore()
    checks.append(check)
    if mindspore is not None:
        checks += _devices(mindspore)
        checks += [_kernels(), _attention(), _threads(mindspore)]
    checks += _course_files(root)
    return checks


def format_report(checks):
    width = max(len(c["check"]) for c in checks)
    return "\n".join(f"{c['status']:>4}  {c['check']:<{width}}  {c['detail']}" for c in checks)
