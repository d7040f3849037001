"""A worker lost under msrun: the job ends, the next start says what to type, and --resume under the same msrun
command ends with the uninterrupted data-parallel run's weights and history."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest

from vit_ms.sample_data import make_sample_data

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.skipif(shutil.which("msrun") is None, reason="msrun (MindSpore's launcher) not on PATH"),
              pytest.mark.slow]
# the CLI defaults (drop-path 0.1 among them), scaled down by flags; depth 2 so that one block has drop-path
SMALL = ["--model", "vit_ti_16", "--image-size", "32", "--patch-size", "8", "--embed-dim", "48", "--num-heads", "3",
         "--depth", "2", "--batch-size", "8", "--epochs", "3", "--num-workers", "1", "--device", "CPU", "--seed", "5"]
DETERMINISTIC = ("epoch", "train_loss", "val_loss", "val_top1", "val_top5", "lr")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("msrun") / "sample"
    make_sample_data(root, image_size=32, train_per_class=8, val_per_class=2)  # 80 images: 5 steps of 2 x 8
    return root


def msrun(args, output, logs):
    cmd = ["msrun", "--worker_num=2", "--local_worker_num=2", f"--master_port={_free_port()}", "--join=True",
           f"--log_dir={logs}", str(ROOT / "scripts" / "train.py"), *map(str, args), "--output", str(output)]
    env = dict(os.environ, GLOG_v="3")
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def worker_of_rank(parent, rank):
    """The pid of the worker process msrun started with RANK_ID=rank."""
    for pid in subprocess.run(["pgrep", "-P", str(parent)], capture_output=True, text=True).stdout.split():
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK_ID={rank}".encode() in environ:
            return int(pid)
    return None


def epochs_done(output):
    try:
        return json.loads((output / "metrics.json").read_text())["epochs"]
    except (OSError, ValueError, KeyError):
        return 0


def weights(path):
    return {k: v.asnumpy() for k, v in ms.load_checkpoint(str(path)).items() if not isinstance(v, str)}


def test_a_worker_killed_after_epoch_1_ends_the_job_and_resume_gives_the_uninterrupted_run(data, tmp_path):
    args = [*SMALL, "--data", data]
    straight = msrun(args, tmp_path / "straight", tmp_path / "logs_straight")
    out, _ = straight.communicate(timeout=600)
    assert straight.returncode == 0, out[-3000:]

    output, logs = tmp_path / "dp", tmp_path / "logs"
    job = msrun(args, output, logs)
    deadline = time.time() + 600
    while epochs_done(output) < 1 and job.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert epochs_done(output) == 1, "epoch 1 was not saved"
    victim = worker_of_rank(job.pid, 1)
    assert victim is not None, "rank 1's worker not found"
    os.kill(victim, signal.SIGKILL)
    killed = time.time()
    out, _ = job.communicate(timeout=300)
    ended = time.time() - killed
    print(f"msrun ended {ended:.1f}s after rank 1 was killed, exit status {job.returncode}; its last lines:")
    print("\n".join(out.strip().splitlines()[-6:]))
    assert job.returncode != 0 and ended < 120, (ended, out[-3000:])
    # what the learner sees: msrun's last line points to the logs, where the scheduler names the node that timed out
    assert f"Distributed job exited with exception. Please check logs in directory: {logs}" in out, out[-3000:]
    assert re.search(r"node: \d+ is timed out|worker \d+ is the first one timed out",
                     (logs / "scheduler.log").read_text())
    assert epochs_done(output) < 3

    # the same command again: the next start sees the unfinished run and says what to type
    again = msrun(args, output, tmp_path / "logs_again")
    out, _ = again.communicate(timeout=600)
    assert again.returncode != 0
    assert f"error: {output} holds a run that stopped after epoch {epochs_done(output)} of 3; to continue it, type " \
           f"the same command with --resume added" in out, out[-3000:]  # msrun shows the workers' logs

    resumed = msrun([*args, "--resume"], output, tmp_path / "logs_resume")
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out[-3000:]
    a, b = weights(tmp_path / "straight" / "model.ckpt"), weights(output / "model.ckpt")
    differ = {k: float(np.abs(a[k] - b[k]).max()) for k in a if not np.array_equal(a[k], b[k])}
    assert not differ, f"{len(differ)} of {len(a)} tensors differ, max |diff| {max(differ.values()):.3e}"
    first = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    second = json.loads((output / "metrics.json").read_text())
    assert first["world_size"] == second["world_size"] == 2
    assert [{k: h[k] for k in DETERMINISTIC} for h in first["history"]] == \
           [{k: h[k] for k in DETERMINISTIC} for h in second["history"]]
