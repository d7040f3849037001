import os

import numpy as np
import pytest

os.environ.setdefault("GLOG_v", "3")  # before MindSpore is imported: silences its C++ [WARNING] lines


@pytest.fixture(autouse=True)
def _fixed_numpy_seed():
    # model initialisation draws from NumPy's global generator: a fixed seed makes every test repeatable
    np.random.seed(0)


@pytest.fixture
def needs_cpu_kernels():
    """Skips a test whose assertions are about vit_ms's C++ kernels themselves where they are not built (no compiler,
    a MindSpore version they were not tested on); the fallback has its own tests."""
    from machine import cpu_kernels_missing

    reason = cpu_kernels_missing()
    if reason is not None:
        pytest.skip(f"vit_ms's C++ kernels are not built here: {reason}")


@pytest.fixture
def cpu_only():
    """Skips a test that asserts what a CPU-only MindSpore does (backend choice, the CPU path of a model)."""
    from machine import accelerator

    if accelerator() is not None:
        pytest.skip(f"this MindSpore can use {accelerator()}: the assertion is about a CPU-only machine")
