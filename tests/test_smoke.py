"""python -m vit_ms doctor --smoke: a learner's check that training and inference work on the device, run here on
the CPU (the flash-attention comparison needs an Ascend chip that has the kernel: on the CPU it reports why not)."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vit_ms import smoke
from vit_ms.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_smoke_command_trains_evaluates_and_reports_pass_with_speeds(tmp_path, cpu_only):
    done = subprocess.run([sys.executable, "-m", "vit_ms", "doctor", "--smoke", "--root", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT, env=dict(os.environ, GLOG_v="3"))
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert re.search(r"smoke test on CPU \(MindSpore [\d.]+\w*, mixed precision O0\): ViT-B/16 width, 2 blocks, "
                     r"64x64 images, batch 8", out), out
    losses = [float(v) for v in re.search(r"pass  train .*? loss ([\d.> -]+) \(falling\)", out).group(1).split(" -> ")]
    assert len(losses) == 6 and losses[-1] < losses[0]
    assert re.search(r"pass  eval .* logits \[8, 10\], finite; [\d.]+ img/s", out)
    assert float(re.search(r"\(falling\); ([\d.]+) img/s", out).group(1)) > 0
    assert "pass  flash attention  not used: Ascend only (this model runs on CPU)" in out
    assert out.rstrip().endswith("smoke test: PASS")


def test_a_loss_that_does_not_fall_fails_the_smoke_test(monkeypatch, capsys):
    """With a learning rate of 0 nothing is learned: the train check fails and the command exits with status 1."""
    make_optimizer, run_smoke = smoke.make_optimizer, smoke.run_smoke
    monkeypatch.setattr(smoke, "make_optimizer", lambda model, lr, wd: make_optimizer(model, 0.0, 0.0))
    monkeypatch.setattr(smoke, "run_smoke", lambda device: run_smoke(device=device, steps=3, depth=1))
    assert main(["doctor", "--smoke", "--device", "CPU"]) == 1
    captured = capsys.readouterr()
    assert re.search(r"FAIL  train .*\(NOT falling\)", captured.out) and "smoke test: FAIL" in captured.out
    assert "smoke test failed (see above)" in captured.err
