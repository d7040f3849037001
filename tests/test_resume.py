"""Resume after SIGKILL: `python -m vit_ms train` killed mid-epoch and while writing a checkpoint, resumed with
--resume each time, ends with the uninterrupted run's weights (bit for bit) and history (epoch by epoch)."""
import ctypes
import json
import os
import select
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest

from vit_ms.sample_data import make_sample_data

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="kills at a checkpoint write via inotify")
# scaled down only by flags; everything else (drop-path 0.1, warm-up 1, label smoothing, clipping ...) is the default
SMALL = ["--model", "vit_ti_16", "--image-size", "32", "--patch-size", "8", "--depth", "2", "--batch-size", "16",
         "--seed", "7", "--epochs", "3", "--num-workers", "2"]
DETERMINISTIC = ("epoch", "train_loss", "val_loss", "val_top1", "val_top5", "lr")  # not the timings


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume") / "sample"
    make_sample_data(root, image_size=32, train_per_class=32, val_per_class=2)  # 320 images: 20 steps an epoch
    return root


def start(args, output, log):
    cmd = [sys.executable, "-m", "vit_ms", "train", *map(str, args), "--output", str(output)]
    env = dict(os.environ, GLOG_v="3", PYTHONPATH=str(ROOT))
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def epochs_done(output):
    try:
        return json.loads((output / "metrics.json").read_text())["epochs"]
    except (OSError, ValueError, KeyError):
        return 0


def writing(output):
    """A checkpoint is being written: a temporary file (atomic_save's, or MindSpore's inside it) exists."""
    return any(".tmp" in p.name for p in os.scandir(output)) if output.is_dir() else False


class FileCreations:
    """Linux inotify on a folder: the names of files created in it, as they are created (microseconds later). A
    checkpoint of this small model is written in milliseconds, too fast for polling to catch."""
    IN_CREATE = 0x100

    def __init__(self, folder):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init()
        if self.fd < 0 or self.libc.inotify_add_watch(self.fd, str(folder).encode(), self.IN_CREATE) < 0:
            raise OSError(ctypes.get_errno(), "inotify")

    def created(self, timeout):
        """Names created since the last call, waiting up to ``timeout`` seconds for the first."""
        if not select.select([self.fd], [], [], timeout)[0]:
            return []
        data, names = os.read(self.fd, 65536), []
        while data:
            _, _, _, size = struct.unpack_from("iIII", data)
            names.append(data[16:16 + size].rstrip(b"\0").decode())
            data = data[16 + size:]
        return names

    def close(self):
        os.close(self.fd)


def run_and_kill_at_checkpoint_write(args, output, log, timeout=600):
    """Start training in the existing folder OUTPUT; SIGKILL it as soon as it starts writing a checkpoint."""
    watch = FileCreations(output)
    try:
        with open(log, "ab") as out:
            proc = start(args, output, out)
            deadline = time.time() + timeout
            while proc.poll() is None and time.time() < deadline:
                if any(".tmp" in name for name in watch.created(0.5)):
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    return True
            proc.kill()
            proc.wait()
    finally:
        watch.close()
    return False


def run_and_kill(args, output, log, when, timeout=600):
    """Start training, poll ``when(output)`` every millisecond, SIGKILL the process as soon as it holds."""
    with open(log, "ab") as out:
        proc = start(args, output, out)
        deadline = time.time() + timeout
        while proc.poll() is None and time.time() < deadline:
            if when(output):
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return True
            time.sleep(0.001)
        proc.kill()
        proc.wait()
    return False


def run_to_end(args, output, log, timeout=600):
    with open(log, "ab") as out:
        proc = start(args, output, out)
        assert proc.wait(timeout=timeout) == 0, Path(log).read_text()[-3000:]
    return json.loads((output / "metrics.json").read_text())


def weights(path):
    params = ms.load_checkpoint(str(path))
    return {k: v.asnumpy() for k, v in params.items() if not isinstance(v, str)}


def assert_same_run(straight_dir, resumed_dir, straight, resumed):
    """Final weights bit for bit, the history epoch by epoch (all but the timings)."""
    a, b = weights(straight_dir / "model.ckpt"), weights(resumed_dir / "model.ckpt")
    assert a.keys() == b.keys()
    differ = {k: float(np.abs(a[k] - b[k]).max()) for k in a if not np.array_equal(a[k], b[k])}
    assert not differ, f"{len(differ)} of {len(a)} tensors differ, max |diff| {max(differ.values()):.3e}"
    for x, y in zip(straight["history"], resumed["history"]):
        assert {k: x[k] for k in DETERMINISTIC} == {k: y[k] for k in DETERMINISTIC}
    assert len(straight["history"]) == len(resumed["history"])


def sigkill_twice_and_resume(args, tmp_path):
    """Straight run; then a run killed mid-epoch 2, resumed and killed while writing a checkpoint, resumed to the
    end. Returns the two output folders and their metrics."""
    straight_dir, resumed_dir, log = tmp_path / "straight", tmp_path / "resumed", tmp_path / "train.log"
    straight = run_to_end(args, straight_dir, log)

    started = []

    def mid_epoch_2(output):  # epoch 1 saved, epoch 2 under way for a moment
        if epochs_done(output) >= 1 and not writing(output):
            started.append(time.time())
        return bool(started) and time.time() - started[0] > 0.3
    assert run_and_kill(args, resumed_dir, log, mid_epoch_2), "the run ended before it could be killed"
    assert epochs_done(resumed_dir) == 1, "killed too late: epoch 2 had finished"

    assert run_and_kill_at_checkpoint_write([*args, "--resume"], resumed_dir, log), "no checkpoint write was caught"
    assert writing(resumed_dir), "the kill did not land while a checkpoint was being written"
    assert epochs_done(resumed_dir) <= 2

    resumed = run_to_end([*args, "--resume"], resumed_dir, log)
    assert not writing(resumed_dir)  # the next save replaced the half-written file
    return straight_dir, resumed_dir, straight, resumed


@pytest.mark.slow
def test_sigkill_mid_epoch_and_mid_checkpoint_resumes_bit_for_bit_with_cli_defaults(data, tmp_path):
    straight_dir, resumed_dir, straight, resumed = sigkill_twice_and_resume([*SMALL, "--data", data], tmp_path)
    assert straight["config"]["drop_path"] == 0.1  # the default: stochastic depth is on
    assert_same_run(straight_dir, resumed_dir, straight, resumed)


def recipe_args(name, data, tmp_path):
    """`train --config NAME`, scaled down by flags: small images, fewer blocks, 3 epochs, the sample data."""
    args = ["--config", name, "--data", data, "--image-size", "32", "--patch-size", "8", "--batch-size", "16",
            "--epochs", "3", "--num-workers", "2", "--device", "CPU"]
    if name == "course":  # ViT-B/16 fine-tuned from the course checkpoint: a small model and its own start weights
        import vit_ms
        from vit_ms.checkpoint import save_model

        small = dict(image_size=32, patch_size=8, depth=2, num_classes=10)
        save_model(vit_ms.create_model("vit_ti_16", **small), tmp_path / "start.ckpt")
        args += ["--model", "vit_ti_16", "--depth", "2", "--pretrained", tmp_path / "start.ckpt"]
    return args


@pytest.mark.slow
@pytest.mark.parametrize("name", ["course", "demo", "notebook"])
def test_sigkill_and_resume_is_bit_for_bit_for_each_shipped_recipe(name, data, tmp_path):
    """course: drop-path, random crops and flips; demo and notebook: random crops."""
    straight_dir, resumed_dir, straight, resumed = sigkill_twice_and_resume(recipe_args(name, data, tmp_path),
                                                                            tmp_path)
    assert_same_run(straight_dir, resumed_dir, straight, resumed)


@pytest.mark.slow
def test_sigkill_and_resume_is_bit_for_bit_with_mixup(data, tmp_path):
    straight_dir, resumed_dir, straight, resumed = sigkill_twice_and_resume([*SMALL, "--data", data, "--mixup", "0.8"],
                                                                            tmp_path)
    assert straight["config"]["mixup"] == 0.8
    assert_same_run(straight_dir, resumed_dir, straight, resumed)


def test_drop_path_noise_depends_only_on_seed_rank_and_step():
    from vit_ms.train import drop_path_noise

    first = drop_path_noise(7, 0, 12, depth=3, batch_size=5).asnumpy()
    assert first.shape == (3, 2, 5) and first.dtype == np.float32 and 0 <= first.min() and first.max() < 1
    np.testing.assert_array_equal(drop_path_noise(7, 0, 12, 3, 5).asnumpy(), first)
    for other in (drop_path_noise(7, 0, 13, 3, 5), drop_path_noise(7, 1, 12, 3, 5), drop_path_noise(8, 0, 12, 3, 5)):
        assert not np.array_equal(other.asnumpy(), first)


def test_resume_says_when_dropout_or_auto_augment_cannot_resume_exactly(data, tmp_path, capsys):
    from vit_ms.train import TrainConfig, train

    config = dict(model="vit_ti_16", image_size=32, patch_size=8, embed_dim=48, depth=1, num_heads=3, batch_size=32,
                  epochs=2, warmup_epochs=0, num_workers=1, device="CPU", data=str(data), output=str(tmp_path / "r"))

    def stop(epoch, record, model):
        raise KeyboardInterrupt

    for extra, flags in ((dict(), None), (dict(drop_rate=0.1), "--drop-rate"),
                         (dict(drop_rate=0.1, auto_augment="randaug-m9-mstd0.5"), "--drop-rate and --auto-augment")):
        with pytest.raises(KeyboardInterrupt):
            train(TrainConfig(**config, **extra), on_epoch_end=stop)
        capsys.readouterr()
        train(TrainConfig(**config, **extra, resume=True))
        notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note:")]
        assert notes == ([] if flags is None else [f"note: {flags} draw from random streams that start again in a new "
                                                   f"process (MindSpore's dropout kernel; Python's random in the data "
                                                   f"workers): from here this run differs from one that was not "
                                                   f"interrupted"])
