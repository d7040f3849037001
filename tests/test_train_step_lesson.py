"""Notebook 04's hand-written training step (its code cells tagged ``train-step-lesson``) is the package's step.

The slow test runs those cells as the notebook holds them, each from a file on disk (``ms.jit`` reads the source file
of a function it compiles; it cannot compile source read from stdin), in one module, given the names the notebook's
earlier cells define. Then it builds the package's run from the same TrainConfig with ``build_run`` (what
``train(config)`` runs: ``make_optimizer``, mindcv's schedule and loss, ``make_train_step``) and compares, on the same
batches, the loss and every weight after one update and after the lesson's loop.
"""
import ast
import json
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest

import vit_ms
from vit_ms.data import create_dataset
from vit_ms.runtime import keep_notebook_sources
from vit_ms.sample_data import make_sample_data
from vit_ms.train import TrainConfig, build_run

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "04_training.ipynb"
TAG = "train-step-lesson"
# a tiny model; no warm-up, so the first update already has the full learning rate (the notebook's first one is 0)
TINY = dict(model="vit_ti_16", image_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2, epochs=2,
            batch_size=8, lr=1e-3, warmup_epochs=0, weight_decay=0.05, pos_embed_lr_scale=30.0,
            pos_embed_weight_decay=0.5, drop_path=0.0, label_smoothing=0.1, crop_scale=(0.5, 1.0), hflip=0.5,
            clip_grad=0.5, num_workers=1, device="CPU", seed=3, amp_level="O0")
TOLERANCE = 1e-6


def lesson_cells():
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code" and TAG in c["metadata"].get("tags", [])]


def _weights(model):
    return {p.name: p.asnumpy().copy() for p in model.trainable_params()}


def _largest_difference(a, b):
    assert a.keys() == b.keys()
    return max(float(np.abs(a[name] - b[name]).max()) for name in a)


def test_lesson_writes_each_part_of_the_step_and_does_not_call_the_packages():
    source = "\n".join(lesson_cells())
    for part in ("create_dataset(", "create_tuple_iterator(", "create_loss(", "label_smoothing", "create_scheduler(",
                 "no_weight_decay()", "pos_embed_weight_decay", "pos_embed_lr_scale", "AdamW(", "def forward(",
                 "ms.value_and_grad(", "@ms.jit", "for step"):
        assert part in source, f"notebook 04's lesson cells lack {part!r}"
    called = {node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
              for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Call)}
    packaged = called & {"make_train_step", "build_run", "make_optimizer", "train", "train_one_epoch"}
    assert not packaged, f"the lesson must write the step, not call {sorted(packaged)}"


def run_lesson(config, folder):
    """Run the lesson cells in order in a fresh module; return (module namespace, snapshots taken between cells)."""
    module = types.ModuleType("train_step_lesson")  # ms.jit looks a function's globals up by its module's name
    module.__dict__.update(config=config, ms=ms, np=np, vit_ms=vit_ms, create_dataset=create_dataset, time=time)
    sys.modules[module.__name__] = module
    names, snapshots = module.__dict__, {}
    try:
        for k, source in enumerate(lesson_cells()):
            file = folder / f"lesson_cell_{k}.py"
            file.write_text(source, encoding="utf-8")
            exec(compile(source, str(file), "exec"), names)
            if "model" in names and "start" not in snapshots:
                snapshots["start"] = _weights(names["model"])
            if "images" in names and "first_batch" not in snapshots:
                snapshots["first_batch"] = (names["images"].asnumpy(), names["labels"].asnumpy())
            if "optimizer" in names and "one_update" not in snapshots and \
                    int(names["optimizer"].global_step.asnumpy().item()) == 1:
                snapshots["one_update"] = (float(names["loss"].asnumpy()), _weights(names["model"]))
    finally:
        del sys.modules[module.__name__]
    return names, snapshots


@pytest.mark.slow
def test_lesson_step_gives_the_loss_and_weights_of_make_train_step(tmp_path, capsys):
    data = tmp_path / "sample"
    make_sample_data(data, image_size=32, train_per_class=8, val_per_class=2)
    config = TrainConfig(**TINY, data=str(data), output=str(tmp_path / "run"))
    lesson, snapshots = run_lesson(config, tmp_path)
    assert {"start", "first_batch", "one_update"} <= snapshots.keys(), "a lesson cell must run exactly one step"
    lesson_losses = lesson["losses"]
    assert len(lesson_losses) >= 3 and int(lesson["optimizer"].global_step.asnumpy().item()) == len(lesson_losses)

    run = build_run(config)  # train(config)'s own parts; run.train_step is make_train_step's
    run.network.set_train(True)
    assert _largest_difference(_weights(run.model), snapshots["start"]) == 0.0  # same seeds, same starting model
    batches = run.first_train_data.dataset.create_tuple_iterator(num_epochs=1)
    images, labels = next(batches)
    assert np.array_equal(images.asnumpy(), snapshots["first_batch"][0])  # the same pipeline: the same crops, flips
    assert np.array_equal(labels.asnumpy(), snapshots["first_batch"][1])

    loss = float(run.train_step(images, labels).asnumpy())
    lesson_loss, lesson_weights = snapshots["one_update"]
    assert abs(loss - lesson_loss) <= TOLERANCE
    assert _largest_difference(_weights(run.model), lesson_weights) <= TOLERANCE
    assert _largest_difference(lesson_weights, snapshots["start"]) > 1e-3  # the update moved the weights

    package_losses = [loss]
    for images, labels in batches:
        if len(package_losses) == len(lesson_losses):
            break
        package_losses.append(float(run.train_step(images, labels).asnumpy()))
    np.testing.assert_allclose(package_losses, lesson_losses, rtol=0, atol=TOLERANCE)
    assert _largest_difference(_weights(run.model), _weights(lesson["model"])) <= TOLERANCE
    printed = capsys.readouterr().out
    assert f"step {len(lesson_losses):>2}: loss {lesson_losses[-1]:.4f}" in printed  # the loop prints each loss


KERNEL_LIKE_SHELL = """
import sys
from IPython.core.interactiveshell import InteractiveShell
from ipykernel.compiler import XCachingCompiler
from vit_ms.runtime import keep_notebook_sources

shell = InteractiveShell.instance(compiler_class=XCachingCompiler)  # names cells as ipykernel does
print(keep_notebook_sources(), keep_notebook_sources())
result = shell.run_cell(sys.argv[1])
print(result.success, shell.user_ns.get("on_disk"),
      sum(f.__qualname__.endswith("write_cell") for f in shell.events.callbacks["pre_run_cell"]))
"""


def test_keep_notebook_sources_writes_each_cell_where_the_kernel_compiles_it(tmp_path):
    """Under ipykernel a cell's code runs from /tmp/ipykernel_<pid>/<hash>.py, a file that does not exist: ms.jit
    then logs GetRealPath errors. After keep_notebook_sources() each cell's code is in that file when it runs.
    (In a child process: an IPython shell changes process-wide hooks.)"""
    pytest.importorskip("IPython")
    pytest.importorskip("ipykernel")
    cell_file = tmp_path / "kernel" / "cell.py"
    cell = "import os\ndef double(x):\n    return 2 * x\non_disk = os.path.isfile(double.__code__.co_filename)"
    env = dict(os.environ, IPYKERNEL_CELL_NAME=str(cell_file),  # ipykernel's own override of a cell's file name
               PYTHONPATH=os.pathsep.join([str(NOTEBOOK.parents[1]), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-c", KERNEL_LIKE_SHELL, cell], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    # on twice (one hook); the cell ran, and its code was on disk as it ran
    assert done.stdout.split() == ["True", "True", "True", "True", "1"], done.stdout
    assert "def double(x):" in cell_file.read_text()


def test_keep_notebook_sources_is_off_outside_a_kernel():
    assert keep_notebook_sources() is False  # plain Python (pytest): there is no cell to write
