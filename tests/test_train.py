"""Training: the loss goes down, resume is exact, a NaN stops cleanly, outputs are complete."""
import json
import os
import subprocess
import sys

import mindspore as ms
import numpy as np
import pytest

from vit_ms.checkpoint import load_model
from vit_ms.sample_data import make_sample_data
from vit_ms.train import TrainConfig, TrainingDiverged, train

TINY = dict(model="vit_ti_16", image_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3, batch_size=16,
            lr=2e-3, warmup_epochs=0, drop_path=0.0, label_smoothing=0.0, crop_scale=(0.5, 1.0), num_workers=1,
            log_interval=1, device="CPU", seed=7)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("train") / "sample"
    make_sample_data(root, image_size=32, train_per_class=8, val_per_class=2)
    return root


def _weights(path):
    model, _ = load_model(path)
    return {p.name: p.asnumpy() for p in model.get_parameters()}


def test_outputs_and_loss_goes_down(data, tmp_path):
    out = tmp_path / "run"
    metrics = train(TrainConfig(**TINY, data=str(data), output=str(out), epochs=3))
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["epochs"] == 3 and saved["world_size"] == 1 and saved["steps_per_epoch"] == 80 // 16
    assert {"val_top1", "val_top5", "history"} <= saved.keys()
    assert [h["epoch"] for h in saved["history"]] == [1, 2, 3]
    for key in ("train_loss", "val_loss", "val_top1", "val_top5", "lr", "epoch_time"):
        assert all(np.isfinite(h[key]) for h in saved["history"]), key
    losses = [h["train_loss"] for h in metrics["history"]]
    assert losses[-1] < losses[0] < np.log(10) + 0.3  # starts near chance (ln 10) and goes down
    assert metrics["val_top5"] >= metrics["val_top1"]
    model, classes = load_model(out / "model.ckpt")
    assert classes == saved["classes"] and len(classes) == 10
    assert model.image_size == 32 and model.num_classes == 10
    assert not list(out.glob("*.tmp*"))  # atomic writes leave no temporary files


@pytest.mark.slow
def test_resume_equals_straight_run(data, tmp_path):
    cfg = dict(TINY, data=str(data), epochs=2)
    train(TrainConfig(**cfg, output=str(tmp_path / "straight")))

    def interrupt(epoch, record, model):  # e.g. the kernel died after the first epoch
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(**cfg, output=str(tmp_path / "resumed")), on_epoch_end=interrupt)
    assert json.loads((tmp_path / "resumed" / "metrics.json").read_text())["epochs"] == 1
    metrics = train(TrainConfig(**cfg, output=str(tmp_path / "resumed"), resume=True))
    assert metrics["epochs"] == 2 and len(metrics["history"]) == 2
    straight, resumed = _weights(tmp_path / "straight" / "model.ckpt"), _weights(tmp_path / "resumed" / "model.ckpt")
    assert straight.keys() == resumed.keys()
    for name in straight:
        np.testing.assert_array_equal(straight[name], resumed[name], err_msg=name)


def test_nan_stops_and_keeps_last_good_checkpoint(data, tmp_path):
    out = tmp_path / "nan"

    def poison(epoch, record, model):  # after epoch 1 is saved, break the weights
        ms.ops.assign(model.head.weight, ms.Tensor(np.full(model.head.weight.shape, np.nan, np.float32)))

    with pytest.raises(TrainingDiverged, match=r"loss became nan in epoch 2.*last good checkpoint.*last.ckpt"):
        train(TrainConfig(**TINY, data=str(data), output=str(out), epochs=3), on_epoch_end=poison)
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 1
    weights = _weights(out / "model.ckpt")
    assert all(np.isfinite(w).all() for w in weights.values())
    state = ms.load_checkpoint(str(out / "last.ckpt"))
    assert int(state["epoch"]) == 1


def test_bad_configuration_errors(data, tmp_path):
    with pytest.raises(ValueError, match="fewer than one batch"):
        train(TrainConfig(**dict(TINY, batch_size=512), data=str(data), output=str(tmp_path / "a"), epochs=1))
    with pytest.raises(ValueError, match="warmup-epochs"):
        train(TrainConfig(**dict(TINY, warmup_epochs=2), data=str(data), output=str(tmp_path / "b"), epochs=2))
    with pytest.raises(FileNotFoundError, match="no checkpoint to resume"):
        train(TrainConfig(**TINY, data=str(data), output=str(tmp_path / "c"), epochs=1, resume=True))


def test_resume_with_other_epochs_is_a_clear_error(data, tmp_path):
    cfg = dict(TINY, data=str(data), output=str(tmp_path / "r"))
    train(TrainConfig(**cfg, epochs=1))
    with pytest.raises(ValueError, match=r"planned for 1 epochs; got --epochs 3"):
        train(TrainConfig(**cfg, epochs=3, resume=True))


@pytest.mark.slow
def test_same_seed_same_weights_across_processes_with_drop_path(tmp_path):
    """Drop-path masks repeat with the seed while the data pipeline runs beside training (nn.Dropout's did not)."""
    root = tmp_path / "sample"
    make_sample_data(root, image_size=32, train_per_class=64, val_per_class=2)  # 20 steps: a few were not enough
    config = dict(TINY, seed=0, drop_path=0.3, epochs=1, batch_size=32, data=str(root))

    def run(name):
        args = [sys.executable, "-m", "vit_ms", "train", "--output", str(tmp_path / name)]
        for key, value in config.items():
            if key not in ("log_interval",):
                flag = f"--{key.replace('_', '-')}"
                args += [flag, *map(str, value)] if isinstance(value, tuple) else [flag, str(value)]
        done = subprocess.run(args, capture_output=True, text=True, timeout=300, env=dict(os.environ, GLOG_v="3"))
        assert done.returncode == 0, done.stderr[-3000:]
        return _weights(tmp_path / name / "model.ckpt")

    first, second = run("a"), run("b")
    assert first.keys() == second.keys()
    for name, value in first.items():
        np.testing.assert_array_equal(value, second[name], err_msg=name)


def test_mixed_precision_o2_trains_and_saves_float32_weights(data, tmp_path):
    """The loss-scaled O2 step Ascend and GPU take by default, run here on CPU."""
    out = tmp_path / "o2"
    metrics = train(TrainConfig(**dict(TINY, amp_level="O2"), data=str(data), output=str(out), epochs=3))
    losses = [h["train_loss"] for h in metrics["history"]]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert {str(w.dtype) for w in _weights(out / "model.ckpt").values()} == {"float32"}


def test_training_from_memory_equals_training_from_disk(data, tmp_path):
    # augmented crops (random scale, flips): the two pipelines must draw the same ones from the same seed
    cfg = dict(TINY, data=str(data), epochs=1, hflip=0.5, crop_scale=(0.3, 1.0))
    seen = {}

    def pipeline_kind(name):
        return lambda epoch, record, model: seen.update({name: record})

    train(TrainConfig(**cfg, output=str(tmp_path / "memory")), on_epoch_end=pipeline_kind("memory"))
    train(TrainConfig(**cfg, output=str(tmp_path / "disk"), stream_data=True), on_epoch_end=pipeline_kind("disk"))
    assert seen["memory"]["train_loss"] == seen["disk"]["train_loss"]
    memory, disk = _weights(tmp_path / "memory" / "model.ckpt"), _weights(tmp_path / "disk" / "model.ckpt")
    assert memory.keys() == disk.keys()
    for name in memory:
        np.testing.assert_array_equal(memory[name], disk[name], err_msg=name)
    used = json.loads((tmp_path / "disk" / "metrics.json").read_text())["config"]
    assert used["stream_data"] is True


def test_build_run_decodes_the_sample_data_into_memory_and_streams_when_asked(data, tmp_path):
    from vit_ms.train import build_run

    run = build_run(TrainConfig(**TINY, data=str(data), output=str(tmp_path / "a"), epochs=2))
    assert run.first_train_data.in_memory and run.val_data.in_memory
    assert run.train_data(1).in_memory
    run = build_run(TrainConfig(**TINY, data=str(data), output=str(tmp_path / "b"), epochs=2, stream_data=True))
    assert not run.first_train_data.in_memory and not run.val_data.in_memory
