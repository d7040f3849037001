"""The loop benchmark (bench --recipe): the training and eval loops against their steps, on a tiny sample dataset.
No timing assertions: speed depends on the machine and its load."""
import json
import os
import subprocess
import sys

import pytest

from vit_ms.bench_loop import format_loop_table, run_loop_benchmark
from vit_ms.sample_data import make_sample_data


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("loop") / "sample"
    make_sample_data(root, image_size=64, train_per_class=7, val_per_class=2)  # 70 images: 2 steps of 32
    return root


def _check_figures(figures, passes, images):
    assert figures["images_per_pass"] == images and len(figures["pass_s"]) == passes
    assert len(figures["step_s"]) == passes + 1  # timed before the first pass and after each one
    assert figures["loop_img_per_s"] > 0 and figures["step_img_per_s"] > 0
    assert figures["loop_over_step"] == pytest.approx(figures["loop_img_per_s"] / figures["step_img_per_s"])


@pytest.mark.slow
def test_cli_json_holds_the_loop_the_step_and_their_ratio(data, tmp_path):
    done = subprocess.run([sys.executable, "-m", "vit_ms", "bench", "--recipe", "demo", "--data", str(data),
                           "--epochs", "2", "--steps", "2", "--warmup", "1", "--json"], capture_output=True, text=True,
                          timeout=600, cwd=tmp_path, env=dict(os.environ, GLOG_v="3"))
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["recipe"] == "demo" and report["batch_size"] == 32 and report["train_in_memory"]
    assert report["model"] == dict(image_size=64, patch_size=8, embed_dim=128, depth=3, num_heads=4, num_classes=10)
    _check_figures(report["train"], 2, 64)  # 70 training images, whole batches of 32
    _check_figures(report["eval"], 2, 20)
    assert not list(tmp_path.iterdir())  # nothing written where it ran


@pytest.mark.slow
def test_streamed_data_and_the_table(data):
    report = run_loop_benchmark("demo", data=data, steps=1, warmup=0, stream_data=True)
    assert not report["train_in_memory"] and not report["val_in_memory"]
    table = format_loop_table(report)
    assert "streamed from disk" in table
    for name in ("train", "eval"):
        row = next(line for line in table.splitlines() if line.startswith(name))
        assert f"{report[name]['loop_over_step']:.2f}" in row and f"{report[name]['step_img_per_s']:.1f}" in row


def test_bad_arguments_are_clear_errors(tmp_path):
    for flags, message in ((["--recipe", "demo", "--model", "vit_s_16"], "--model cannot be given with it"),
                           (["--recipe", "demo", "--depth", "2"], "--depth cannot be given with it"),
                           (["--stream-data"], "give --recipe too"),
                           (["--recipe", "demo", "--epochs", "0", "--data", str(tmp_path)],
                            "epochs must be a positive integer, got 0")):
        done = subprocess.run([sys.executable, "-m", "vit_ms", "bench", *flags], capture_output=True, text=True,
                              timeout=120, env=dict(os.environ, GLOG_v="3"))
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip().splitlines()[-1].startswith("error: ") and message in done.stderr, done.stderr
