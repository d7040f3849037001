"""The process MindSpore runs in: settings to make before it starts, and what the machine is."""
import os
import platform
import sys
from pathlib import Path


def quiet_exit_noise(unraisable):
    """sys.unraisablehook that drops MindSpore's harmless Cell.__del__ AttributeErrors at interpreter exit (Cells
    kept alive by compiled graphs); hundreds of such lines would bury a command's output."""
    if isinstance(unraisable.exc_value, AttributeError) and "__del__" in repr(unraisable.object):
        return
    sys.__unraisablehook__(unraisable)


def quiet_mindspore():
    """Silence MindSpore's C++ [WARNING] lines (GLOG_v=3, unless set) and its exit-time noise."""
    os.environ.setdefault("GLOG_v", "3")
    sys.unraisablehook = quiet_exit_noise


def cache_dir():
    """vit_ms's cache folder: ``$VIT_MS_CACHE``, default ``~/.cache/vit_ms`` (built kernels, downloaded weights)."""
    return Path(os.environ.get("VIT_MS_CACHE") or Path.home() / ".cache" / "vit_ms")


def cpu_name():
    """The CPU's model name (Linux: from /proc/cpuinfo), for benchmark reports."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def process_env(name):
    """``name`` in the process's C-level environment. MindSpore's runtime sets OMP_NUM_THREADS=1 there, where
    os.environ does not see it, and child processes (another framework in a benchmark) inherit it."""
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        libc.getenv.restype = ctypes.c_char_p
        value = libc.getenv(name.encode())
        return None if value is None else value.decode()
    except (OSError, AttributeError):
        return os.environ.get(name)


def progress_bar(iterable=None, **kwargs):
    """tqdm's text bar on stderr, redrawn at most once a second.

    Not tqdm.auto's widget: a notebook saves a widget as the text it had when it appeared ("0%| | 0/62"), while
    Jupyter and nbconvert fold a text bar's carriage returns into its last state, so a saved notebook shows each bar
    finished. Once a second keeps a cell that trains for minutes from flooding the kernel's output channel."""
    from tqdm import tqdm

    kwargs.setdefault("mininterval", 1.0)
    kwargs.setdefault("file", sys.stderr)
    return tqdm(iterable, **kwargs)
