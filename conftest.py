import os

# set before MindSpore or a notebook kernel starts: silences MindSpore's C++ [WARNING] lines (strict nbval compares
# stderr) and keeps matplotlib off any display
os.environ.setdefault("GLOG_v", "3")
os.environ.setdefault("MPLBACKEND", "Agg")
