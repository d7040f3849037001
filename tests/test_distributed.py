"""Data-parallel training under msrun on CPU: 2 worker processes, AllReduce of the gradients."""
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vit_ms.sample_data import make_sample_data
from vit_ms.train import TrainConfig, train

pytestmark = pytest.mark.skipif(shutil.which("msrun") is None, reason="msrun (MindSpore's launcher) not on PATH")
TINY = dict(model="vit_ti_16", image_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2, epochs=1,
            warmup_epochs=0, lr=1e-3, drop_path=0.0, label_smoothing=0.0, num_workers=1, log_interval=1,
            crop_scale=(0.5, 1.0), device="CPU", seed=3)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist") / "sample"
    make_sample_data(root, image_size=32, train_per_class=8, val_per_class=2)
    return root


@pytest.mark.slow
def test_two_workers_match_single_process(data, tmp_path):
    weights = tmp_path / "weights"
    weights.mkdir()
    config = dict(TINY, data=str(data), output=str(tmp_path / "dist"), batch_size=8)
    cmd = ["msrun", "--worker_num=2", "--local_worker_num=2", f"--master_port={_free_port()}", "--join=True",
           f"--log_dir={tmp_path / 'logs'}", str(Path(__file__).with_name("dist_worker.py")), json.dumps(config),
           str(weights)]
    env = dict(os.environ, GLOG_v="3", PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    logs = "".join(p.read_text() for p in sorted((tmp_path / "logs").glob("*.log")))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:] + logs[-5000:]

    rank0, rank1 = np.load(weights / "rank0.npz"), np.load(weights / "rank1.npz")
    assert set(rank0.files) == set(rank1.files)
    for name in rank0.files:  # gradients were averaged: both replicas took identical steps
        np.testing.assert_array_equal(rank0[name], rank1[name], err_msg=name)

    metrics = json.loads((tmp_path / "dist" / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    # 80 images, 8 per rank x 2 ranks = global batch 16 -> 5 steps, as a single process with batch 16
    assert metrics["steps_per_epoch"] == 5 and metrics["global_batch"] == 16
    assert not list((tmp_path / "dist").glob("rank*"))  # only rank 0 writes outputs

    single = train(TrainConfig(**dict(config, batch_size=16, output=str(tmp_path / "single"))))
    assert single["steps_per_epoch"] == metrics["steps_per_epoch"]
    dist_loss, single_loss = metrics["history"][0]["train_loss"], single["history"][0]["train_loss"]
    assert abs(dist_loss - single_loss) < 0.05 * single_loss, (dist_loss, single_loss)
