import os

# set before MindSpore or a notebook kernel starts: silences MindSpore's C++ [WARNING] lines (strict nbval compares
# stderr) and keeps matplotlib off any display
os.environ.setdefault("GLOG_v", "3")
os.environ.setdefault("MPLBACKEND", "Agg")

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from vit_ms.runtime import quiet_exit_noise  # noqa: E402

sys.unraisablehook = quiet_exit_noise  # MindSpore's harmless Cell.__del__ errors at interpreter exit


def pytest_configure(config):
    """Strict nbval for notebooks given on the command line (``python -m pytest notebooks/01_patch_embedding.ipynb``),
    with the sanitizer of notebooks/sanitize.cfg, where nbval is installed (the fast tier runs without it)."""
    option = config.option
    if not hasattr(option, "nbval") or option.nbval_lax:
        return
    option.nbval = True
    if option.nbval_sanitize_with is None:
        option.nbval_sanitize_with = str(Path(__file__).parent / "notebooks" / "sanitize.cfg")
    if option.nbval_cell_timeout == 2000:  # nbval's default
        option.nbval_cell_timeout = 300
