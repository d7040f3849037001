import os

import numpy as np
import pytest

os.environ.setdefault("GLOG_v", "3")  # before MindSpore is imported: silences its C++ [WARNING] lines


@pytest.fixture(autouse=True)
def _fixed_numpy_seed():
    # model initialisation draws from NumPy's global generator: a fixed seed makes every test repeatable
    np.random.seed(0)
