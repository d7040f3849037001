import os

# set before MindSpore or a notebook kernel starts: silences MindSpore's C++ [WARNING] lines (strict nbval compares
# stderr) and keeps matplotlib off any display
os.environ.setdefault("GLOG_v", "3")
os.environ.setdefault("MPLBACKEND", "Agg")

import sys  # noqa: E402

from vit_ms.runtime import quiet_exit_noise  # noqa: E402

sys.unraisablehook = quiet_exit_noise  # MindSpore's harmless Cell.__del__ errors at interpreter exit
