"""What this machine offers the tests, so that a test of something it lacks skips with the reason instead of failing:
vit_ms's C++ CPU kernels (a compiler, a MindSpore version they were tested on) and a CPU-only MindSpore."""
import functools
import warnings


@functools.lru_cache(maxsize=None)
def cpu_kernels_missing():
    """None if vit_ms's C++ kernels (both libraries) are built and used on this machine, else why not."""
    import mindspore

    from vit_ms.kernels import native
    from vit_ms.versions import kernels_reason

    reason = kernels_reason(mindspore.__version__)
    if reason is not None:
        return reason
    native.library.cache_clear()       # built (or not) before: build again, to hear the reason
    native.dnnl_library.cache_clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        built = native.library() is not None and native.dnnl_library() is not None
    native.library.cache_clear()       # the tests that count warnings see the first one again
    native.dnnl_library.cache_clear()
    if built:
        return None
    return "; ".join(str(w.message) for w in caught) or "the C++ kernels were not built"


@functools.lru_cache(maxsize=None)
def accelerator():
    """"Ascend" or "GPU" if this MindSpore can use one, else None."""
    import mindspore as ms

    for target in ("Ascend", "GPU"):
        try:
            if ms.hal.is_available(target):
                return target
        except Exception:
            pass
    return None
