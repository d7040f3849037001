"""Numerics unchanged by refactoring: the demo model, trained one epoch with a fixed seed on CPU with vit_ms's CPU
kernels, ends with bit-identical weights to those recorded for this kind of machine. A change that is meant to change
the numbers (the sample data, the recipe, a kernel's arithmetic, the augmentation ops) records the hash again, with
the script below, on each machine it can; a machine with no record skips the test."""
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# SHA-256 of the trained weights (names and float32 bytes, sorted by name), per machine: float32 results depend on
# the CPU's instruction set and on MindSpore's kernels. Recorded with SCRIPT on each machine.
RECORDED = {
    ("x86_64", "AMD EPYC", False, "2.10.0"): "b391360a7fa71a1565310e909ede78c0e9cd92621369a65790e3086f5cad3b5d",
}

SCRIPT = """
import hashlib, sys
import mindspore as ms
import numpy as np
from vit_ms.config import TrainConfig
from vit_ms.recipes import load_recipe
from vit_ms.sample_data import make_sample_data
from vit_ms.train import train

data, out = sys.argv[1], sys.argv[2]
make_sample_data(data, train_per_class=50, val_per_class=5, seed=0)
cfg = dict(load_recipe("demo"), epochs=1, warmup_epochs=0, data=data, output=out, device="CPU", num_workers=2, seed=0)
seen = {}
train(TrainConfig(**cfg), on_epoch_end=lambda epoch, record, model: seen.update(cpu_kernels=model.cpu_kernels))
assert seen["cpu_kernels"], "the model did not take the CPU kernels"
params = ms.load_checkpoint(out + "/model.ckpt")
digest = hashlib.sha256()
for name in sorted(params):
    if not isinstance(params[name], str):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(params[name].asnumpy()).tobytes())
print(digest.hexdigest())
"""


def machine():
    """(architecture, CPU model, AVX-512?, MindSpore version): what the float32 results depend on."""
    import mindspore as ms

    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    lines = info.splitlines()
    name = next((l.split(":", 1)[1].strip() for l in lines if l.startswith("model name")), platform.processor())
    flags = next((l.split(":", 1)[1].split() for l in lines if l.startswith("flags")), [])
    return platform.machine(), name, "avx512f" in flags, ms.__version__


@pytest.mark.slow
def test_demo_epoch_gives_the_recorded_weights(tmp_path, needs_cpu_kernels):
    key = machine()
    if key not in RECORDED:  # before the training run, which takes minutes
        pytest.skip(f"no weights hash recorded for this machine {key}")
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "data"), str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=900, cwd=ROOT,
                          env=dict(os.environ, GLOG_v="3", VIT_MS_NATIVE="1"))
    assert done.returncode == 0, done.stderr[-3000:]
    digest = done.stdout.strip().splitlines()[-1]
    assert digest == RECORDED[key]
