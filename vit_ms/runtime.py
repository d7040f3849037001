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


def shown_path(path):
    """``path`` as a message shows it: relative to the current folder when it lies there or one folder up (a
    notebook runs in notebooks/, its files are in the repository beside it), else as given. Saved notebook outputs
    then hold no machine's folder names."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # Windows: another drive
        return str(path)
    return relative if not relative.startswith(os.path.join("..", "..")) else str(path)


def progress_bar(iterable=None, **kwargs):
    """tqdm's text bar on stderr, redrawn at most once a second.

    Not tqdm.auto's widget: a notebook saves a widget as the text it had when it appeared ("0%| | 0/62"), while
    Jupyter and nbconvert fold a text bar's carriage returns into its last state, so a saved notebook shows each bar
    finished. Once a second keeps a cell that trains for minutes from flooding the kernel's output channel."""
    from tqdm import tqdm

    kwargs.setdefault("mininterval", 1.0)
    kwargs.setdefault("file", sys.stderr)
    return tqdm(iterable, **kwargs)


def keep_notebook_sources():
    """In a Jupyter kernel, write each cell's code to the file name the kernel compiles it under, before it runs.

    ``ms.jit`` looks up the file of a function it compiles; a cell's file (/tmp/ipykernel_<pid>/<hash>.py) is not on
    disk, and MindSpore then prints "GetRealPath] Get realpath failed" errors. Call it once in a notebook that
    defines ``@ms.jit`` functions. Returns whether it is on (False outside a kernel, e.g. in plain Python)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None or not hasattr(shell, "compile"):
        return False

    def write_cell(info):
        name = shell.compile.get_code_name(info.raw_cell, None, shell.execution_count)
        if os.path.isabs(name):  # ipykernel's file names; plain IPython's "<ipython-input-...>" are not files
            Path(name).parent.mkdir(parents=True, exist_ok=True)
            Path(name).write_text(shell.transform_cell(info.raw_cell), encoding="utf-8")

    hooks = shell.events.callbacks["pre_run_cell"]
    if write_cell.__qualname__ not in {getattr(f, "__qualname__", None) for f in hooks}:  # once per kernel
        shell.events.register("pre_run_cell", write_cell)
    return True
