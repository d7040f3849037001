"""Training recipes (vit_ms/recipes/*.yaml): each one loads, trains through `train --config`, and flags override it."""
import dataclasses
import json
import os
import subprocess
import sys

import pytest

from vit_ms.cli import _train_recipe, build_parser, config_from_args
from vit_ms.config import TrainConfig
from vit_ms.recipes import load_recipe, recipe_names

# shrink any recipe to seconds on a CPU; "epochs" is the one value each test overrides on top
SCALE = ["--model", "vit_ti_16", "--image-size", "32", "--patch-size", "8", "--embed-dim", "48", "--depth", "1",
         "--num-heads", "3", "--batch-size", "16", "--warmup-epochs", "0", "--num-workers", "1", "--device", "CPU"]
SCALED_FIELDS = {"model", "image_size", "patch_size", "embed_dim", "depth", "num_heads", "batch_size",
                 "warmup_epochs", "num_workers", "device", "epochs"}


def test_shipped_recipes():
    assert recipe_names() == ["course", "demo", "notebook"]
    for name in recipe_names():
        TrainConfig(**load_recipe(name))  # every key is a TrainConfig field


@pytest.mark.parametrize("name", ["course", "demo", "notebook"])
def test_flag_overrides_one_value(name):
    argv = ["train", "--config", name, "--epochs", "2"]
    config = config_from_args(build_parser(_train_recipe(argv)).parse_args(argv))
    expected = dataclasses.replace(TrainConfig(**load_recipe(name)), epochs=2)
    assert config == expected
    assert load_recipe(name)["epochs"] != 2  # so the flag did change something


@pytest.mark.slow
@pytest.mark.parametrize("name", ["course", "demo", "notebook"])
def test_train_config_runs(name, tmp_path):
    """`python -m vit_ms train --config NAME` in a folder laid out like the repository, scaled down by flags: it
    reads the recipe's data, writes to the recipe's output, and keeps the recipe's values the flags do not set."""
    from vit_ms.sample_data import make_sample_data

    recipe = load_recipe(name)
    make_sample_data(tmp_path / recipe["data"], image_size=32, train_per_class=4, val_per_class=2)
    if recipe.get("pretrained"):  # the course checkpoint's place: a small model of the scaled-down architecture
        import vit_ms
        from vit_ms.checkpoint import save_model

        (tmp_path / recipe["pretrained"]).parent.mkdir(parents=True)
        small = vit_ms.create_model("vit_ti_16", image_size=32, patch_size=8, embed_dim=48, depth=1, num_heads=3,
                                    num_classes=10)
        save_model(small, tmp_path / recipe["pretrained"])
    env = dict(os.environ, GLOG_v="3")
    done = subprocess.run([sys.executable, "-m", "vit_ms", "train", "--config", name, "--epochs", "1", *SCALE],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / recipe["output"] / "metrics.json").read_text())
    assert metrics["epochs"] == 1
    used = metrics["config"]
    for key, value in recipe.items():
        if key not in SCALED_FIELDS:
            assert used[key] == (list(value) if isinstance(value, tuple) else value), key


@pytest.mark.parametrize("text, message", [
    ("epochz: 3\n", "unknown setting 'epochz'"),
    ("epochs: three\n", "epochs must be an integer, got 'three'"),
    ("lr: true\n", "lr must be a number"),
    ("crop_scale: [0.5]\n", "crop_scale must be a list of two numbers"),
    ("- epochs\n", "must be a mapping"),
    ("epochs: [\n", "not valid YAML"),
])
def test_bad_recipe_is_one_error_line(tmp_path, text, message):
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    done = subprocess.run([sys.executable, "-m", "vit_ms", "train", "--config", str(path)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and message in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr


def test_missing_recipe_names_the_choices(tmp_path):
    with pytest.raises(FileNotFoundError, match="course, demo, notebook"):
        load_recipe(tmp_path / "none.yaml")
