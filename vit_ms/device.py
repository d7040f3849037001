"""Pick the MindSpore backend: Ascend, then GPU, then CPU."""
import mindspore as ms

BACKENDS = ("Ascend", "GPU", "CPU")


def _available(target):
    if target == "CPU":
        return True
    try:
        return bool(ms.hal.is_available(target))
    except Exception:  # older MindSpore or a build without this backend's plugin
        return False


def set_device(device="auto", verbose=True):
    """Select the backend ("auto" = the best available) and return its name ("Ascend", "GPU" or "CPU")."""
    if not isinstance(device, str):
        raise TypeError(f"device must be a string, one of 'auto', {', '.join(map(repr, BACKENDS))}; got {device!r}")
    names = {b.lower(): b for b in BACKENDS}
    if device.lower() == "auto":
        target = next(b for b in BACKENDS if _available(b))
    elif device.lower() in names:
        target = names[device.lower()]
        if not _available(target):
            raise RuntimeError(f"device {target!r} was asked for but this MindSpore installation cannot use it; "
                               f"use device='auto' or 'CPU'")
    else:
        raise ValueError(f"device must be 'auto', {', '.join(map(repr, BACKENDS))}; got {device!r}")
    current = ms.get_context("device_target")
    if current != target or not getattr(set_device, "_done", False):
        if hasattr(ms, "set_device"):  # MindSpore >= 2.5
            try:
                ms.set_device(target)
            except RuntimeError:
                if current != target:  # the runtime is already initialised on another backend
                    raise
        else:
            ms.set_context(device_target=target)
        set_device._done = True
    if verbose:
        print(f"vit_ms: using {target} (MindSpore {ms.__version__})")
    return target
