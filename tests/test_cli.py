"""Command-line smoke tests: each command runs as a user would type it and writes what it promises."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--model", "vit_ti_16", "--image-size", "32", "--patch-size", "8", "--embed-dim", "48", "--depth", "1",
         "--num-heads", "3", "--batch-size", "16", "--warmup-epochs", "0", "--num-workers", "1", "--device", "CPU"]


def cli_env():
    """The environment a user's shell gives, with this checkout importable from any folder (CI does not install it)."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return dict(os.environ, GLOG_v="3", PYTHONPATH=path)


def run(*args, cwd=None):
    env = cli_env()
    done = subprocess.run([sys.executable, "-m", "vit_ms", *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, f"exit {done.returncode}\nstdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    base = tmp_path_factory.mktemp("cli")
    data, out = base / "sample", base / "run"
    done = run("make-sample-data", data, "--image-size", "32", "--train-per-class", "8", "--val-per-class", "2")
    assert "10 classes" in done.stdout
    run("train", "--data", data, "--output", out, "--epochs", "1", *SMALL)
    return data, out


def test_train_writes_outputs(trained):
    data, out = trained
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == 1 and metrics["steps_per_epoch"] == 5
    assert (out / "model.ckpt").is_file() and (out / "last.ckpt").is_file()


def test_eval_writes_report(trained, tmp_path):
    data, out = trained
    done = run("eval", "--data", data, "--checkpoint", out / "model.ckpt", "--output", tmp_path, "--num-workers", "1")
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["num_samples"] == 20 and len(report["confusion_matrix"]) == 10
    assert sum(map(sum, report["confusion_matrix"])) == 20
    assert f"top-1 {report['top1']:.4f}" in done.stdout
    assert (tmp_path / "confusion_matrix.png").stat().st_size > 0


def test_predict_prints_top5(trained):
    data, out = trained
    image = sorted((data / "val" / "ring_top_left").iterdir())[0]
    done = run("predict", "--checkpoint", out / "model.ckpt", image)
    lines = done.stdout.strip().splitlines()
    assert lines[0].endswith(image.name) or str(image) in lines[0]
    probs = [float(line.split("%")[0]) for line in lines[1:6]]
    assert len(probs) == 5 and probs == sorted(probs, reverse=True) and sum(probs) <= 100.01


def test_one_epoch_with_the_default_warmup_trains_and_says_the_warmup_was_shortened(trained, tmp_path):
    data, _ = trained
    small = [a for a in SMALL if a not in ("--warmup-epochs", "0")]  # the default warm-up (1 epoch) stays
    done = run("train", "--data", data, "--output", tmp_path / "one", "--epochs", "1", *small)
    notes = [line for line in done.stdout.splitlines() if "warm-up" in line]
    assert notes == ["note: --epochs 1: the warm-up is shortened from 1 to 0 epochs to fit the run "
                     "(--warmup-epochs sets it)"]
    metrics = json.loads((tmp_path / "one" / "metrics.json").read_text())
    assert metrics["epochs"] == 1 and metrics["config"]["warmup_epochs"] == 0


def test_one_epoch_with_a_typed_warmup_of_one_epoch_is_an_error_line(trained, tmp_path):
    data, _ = trained
    small = [a for a in SMALL if a not in ("--warmup-epochs", "0")]
    done = subprocess.run([sys.executable, "-m", "vit_ms", "train", "--data", str(data), "--output", str(tmp_path),
                           "--epochs", "1", "--warmup-epochs", "1", *small], env=cli_env(), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip() == "error: --warmup-epochs (1) must be smaller than --epochs (1)", done.stderr


def test_errors_are_clear(tmp_path):
    env = dict(os.environ, GLOG_v="3")
    done = subprocess.run([sys.executable, "-m", "vit_ms", "train", "--data", str(tmp_path / "nothing"), *SMALL,
                           "--output", str(tmp_path / "o")], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "nothing" in done.stderr and "train" in done.stderr


def test_demo_refuses_an_older_sample_dataset_in_its_default_folder(tmp_path):
    # data/sample made by another version (here: other arguments) is not silently trained on
    run("make-sample-data", tmp_path / "data" / "sample", "--train-per-class", "3", "--val-per-class", "1",
        cwd=tmp_path)
    done = subprocess.run([sys.executable, "-m", "vit_ms", "demo", "--epochs", "2"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env=cli_env())
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and "make-sample-data data/sample --force" in lines[-1]
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_demo_short(tmp_path):
    data = tmp_path / "sample"
    run("make-sample-data", data, "--train-per-class", "8", "--val-per-class", "2")
    done = run("demo", "--data", data, "--output", tmp_path / "demo", "--epochs", "2", "--num-workers", "1")
    for name in ("metrics.json", "model.ckpt", "curves.png", "pos_embed_similarity.png", "predictions.png",
                 "attention.png", "confusion_matrix.png", "eval.json", "figure7.png"):
        assert (tmp_path / "demo" / name).is_file(), name
        assert str(tmp_path / "demo" / name) in done.stdout
    structure = json.loads((tmp_path / "demo" / "metrics.json").read_text())["position_structure"]
    assert set(structure) == {"random init", "2-D sin-cos", "trained (demo)"}
    assert structure["2-D sin-cos"]["distance_correlation"] == pytest.approx(-0.90, abs=0.01)   # 8x8 grid
    for name, numbers in structure.items():
        assert f"{numbers['distance_correlation']:.3f}" in done.stdout, name
    # Figure 7's numbers: every head's attention distance [depth x heads] and the filters' singular values
    probe = json.loads((tmp_path / "demo" / "demo_summary.json").read_text())["figure7"]
    assert probe["images"] == 2 * 10 and probe["uniform_px"] == pytest.approx(33.09, abs=0.01)  # 8x8 grid, 8 px
    for name in ("random init", "trained (demo)"):
        distances = np.array(probe["attention_distance_px"][name])
        assert distances.shape == (3, 4)                                   # the demo recipe: 3 blocks of 4 heads
        assert np.all((distances > 0) & (distances < 2 * probe["uniform_px"]))
        singular = np.array(probe["embedding_singular_values"][name])
        assert singular.shape == (min(128, 3 * 8 * 8),) and np.all(np.diff(singular) <= 1e-6)  # width 128, 8x8x3 patches
        assert "  ".join(f"{min(d):.1f}-{max(d):.1f}" for d in distances) in done.stdout


def test_predict_with_published_layout_checkpoint(tmp_path):
    """A checkpoint without vit_ms metadata (published weights) needs --model and gets ImageNet class names."""
    import mindspore as ms
    import numpy as np
    from PIL import Image

    import vit_ms

    model = vit_ms.create_model("vit_ti_16", image_size=32)
    ms.save_checkpoint(model, str(tmp_path / "plain.ckpt"))
    image = tmp_path / "x.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(image)
    from vit_ms.evaluate import load_for_inference
    net, classes = load_for_inference(tmp_path / "plain.ckpt", model="vit_ti_16", image_size=32)
    assert net.num_classes == 1000 and len(classes) == 1000 and classes[0] == "tench"
