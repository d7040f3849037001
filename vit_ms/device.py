"""Pick the MindSpore backend (Ascend, then GPU, then CPU) and read results back from it."""
import concurrent.futures
import functools
import logging
import os
import threading

import mindspore as ms
from mindspore import log as ms_log

from .config import BACKENDS
from .versions import require_mindspore

require_mindspore(ms.__version__)  # every model, pipeline and step goes through this module

_chosen = None  # the backend set_device selected in this process
_announced = None  # the id of the process that printed the device line: a notebook shows it once, however many
# cells (and evaluate/train inside them) select the device


@functools.lru_cache(maxsize=None)
def _available(target):
    """Whether this MindSpore can use ``target``; asked once per process (models ask before each build), without
    MindSpore's warning that a plugin is missing: on a CPU machine that is the expected answer, not news."""
    if target == "CPU":
        return True
    logger = ms_log._get_logger() if hasattr(ms_log, "_get_logger") else logging.getLogger("unused")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return bool(ms.hal.is_available(target))
    except Exception:  # older MindSpore or a build without this backend's plugin
        return False
    finally:
        logger.setLevel(level)


def set_device(device="auto", verbose=True):
    """Select the backend ("auto" = the best available) and return its name ("Ascend", "GPU" or "CPU"). With
    ``verbose``, print which one, once per process (a notebook calls this from several cells, and ``evaluate`` and
    ``train`` call it again); a forked child that selects a device prints its own line."""
    if not isinstance(device, str):
        raise TypeError(f"device must be a string, one of 'auto', {', '.join(map(repr, BACKENDS))}; got {device!r}")
    names = {b.lower(): b for b in BACKENDS}
    if device.lower() == "auto":
        target = _best_available()
    elif device.lower() in names:
        target = names[device.lower()]
        if not _available(target):
            raise RuntimeError(f"device {target!r} was asked for but this MindSpore installation cannot use it; "
                               f"use device='auto' or 'CPU'")
    else:
        raise ValueError(f"device must be 'auto', {', '.join(map(repr, BACKENDS))}; got {device!r}")
    global _chosen, _announced
    current = ms.get_context("device_target")
    if current != target or _chosen is None:
        if hasattr(ms, "set_device"):  # MindSpore >= 2.5
            try:
                ms.set_device(target)
            except RuntimeError:
                if current != target:  # the runtime is already initialised on another backend
                    raise
        else:
            ms.set_context(device_target=target)
        _chosen = target
    if verbose and _announced != os.getpid():
        print(f"vit_ms: using {target} (MindSpore {ms.__version__})")
        _announced = os.getpid()
    return target


def _best_available():
    return next(b for b in BACKENDS if _available(b))


def current_device():
    """The backend a model built now will run on: the one ``set_device`` selected; before any selection, the one
    MindSpore's context names if it is an accelerator, else the one ``set_device("auto")`` will select. So a model
    built before ``set_device("auto")`` takes the same path as one built after it."""
    if _chosen is not None:
        return _chosen
    target = ms.get_context("device_target")
    return target if target != "CPU" else _best_available()


# Ascend chips whose CANN ships ops.flash_attention_score's kernel (Atlas A2/A3: 910B, 910C); the first 910 ("910A",
# soc name "ascend910") of older ModelArts images lacks it
FLASH_ATTENTION_CHIPS = ("ascend910b", "ascend910_93")


def device_facts():
    """(backend a model built now runs on, Ascend chip name or None, whether this MindSpore has
    ops.flash_attention_score): what the flash-attention decision reads."""
    target = current_device()
    chip = None
    if target == "Ascend":
        try:
            from mindspore._c_expression import MSContext
            chip = MSContext.get_instance().get_ascend_soc_version().lower()
        except Exception:  # an older MindSpore without the query: the chip is unknown
            chip = None
    return target, chip, hasattr(ms.ops, "flash_attention_score")


def flash_attention_support():
    """(True/False, why): whether a model built now can use ``ops.flash_attention_score`` on this device."""
    target, chip, has_op = device_facts()
    if target != "Ascend":
        return False, f"Ascend only (this model runs on {target})"
    if not has_op:
        return False, f"MindSpore {ms.__version__} has no ops.flash_attention_score"
    if chip not in FLASH_ATTENTION_CHIPS:
        return False, (f"this Ascend chip ({chip or 'unknown'}) has no flash-attention kernel (it needs one of "
                       f"{', '.join(FLASH_ATTENTION_CHIPS)})")
    return True, f"{chip} with ops.flash_attention_score"


# MindSpore 2.10 runs a jit-compiled graph asynchronously; reading a result (Tensor.asnumpy) then waits in a busy
# loop (runtime::Pipeline::WaitAll) in the calling thread, which on a CPU backend takes a core from the kernels
# (figures: docs/performance.md).
_waiter = None
_waiter_pid = None


def _lowest_priority():
    """Make the calling thread run only when no other thread wants the CPU (Linux SCHED_IDLE; else nice 19)."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except (AttributeError, OSError):
            pass


def to_numpy(tensor):
    """``tensor.asnumpy()``, without the wait taking CPU time from the computation that produces the tensor.

    On the CPU backend the wait runs on a helper thread at the lowest scheduling priority, while the caller sleeps
    until the result is there; elsewhere (Ascend, GPU, or a system without per-thread priorities) it is plain
    ``asnumpy()``. Use it wherever a loop reads results of a compiled step (training loss, eval logits, benchmarks).
    """
    global _waiter, _waiter_pid
    if not hasattr(tensor, "asnumpy"):
        raise TypeError(f"expected a MindSpore Tensor, got {type(tensor).__name__}")
    if ms.get_context("device_target") != "CPU" or not hasattr(os, "sched_setscheduler"):
        return tensor.asnumpy()
    if _waiter is None or _waiter_pid != os.getpid():  # a forked child gets a fresh helper thread
        _waiter = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="vit_ms-wait",
                                                        initializer=_lowest_priority)
        _waiter_pid = os.getpid()
    return _waiter.submit(tensor.asnumpy).result()
