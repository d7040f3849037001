"""Process-wide settings for running MindSpore quietly: set before MindSpore starts."""
import os
import sys


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
