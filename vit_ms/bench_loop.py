"""The training loop against its own step: how much of the compiled step's speed a recipe's loop keeps.

    python -m vit_ms bench --recipe demo               # the demo recipe's model and data, one full epoch
    python -m vit_ms bench --recipe demo --stream-data --json

For a recipe's model, data and optimizer (built by vit_ms.train.build_run, as training builds them) it measures:

- train: the loop (``train_one_epoch``: the data pipeline, the step, the loss read-backs, the progress bar) over full
  epochs, and the same compiled step called back to back on one fixed batch of the training data;
- eval: ``evaluate_dataset`` over the validation split, and the eval step on one fixed validation batch.

The step is timed before the first epoch and after each one (interleaved with the loop, so a change in the machine's
load shows in both), waiting for its result as often as the loop does (every step on the CPU); the ratio loop / step
is the loop's share of the step's speed (1.0: the loop adds nothing). Eval runs one untimed pass first, which
compiles the step for the last, smaller batch.
"""
import contextlib
import os
import statistics
import sys
import tempfile
import time

from .checks import check_int
from .runtime import cpu_name


def _timed_calls(call, sync, calls, every=1):
    """Seconds per call, over ``calls`` calls, waiting for every ``every``-th result (as the loop reads its losses)
    and for the last."""
    start = time.perf_counter()
    for index in range(calls):
        result = call()
        if (index + 1) % every == 0:
            sync(result)
    sync(result)
    return (time.perf_counter() - start) / calls


def _first_batch(dataset):
    return next(iter(dataset.create_tuple_iterator(num_epochs=1)))


def run_loop_benchmark(recipe="demo", data=None, epochs=1, steps=20, warmup=3, stream_data=False, device="auto",
                       num_workers=2):
    """Measure a recipe's training loop and eval loop against their compiled steps; returns the report dict that
    ``format_loop_table`` prints and ``bench --recipe ... --json`` writes. ``data``: another dataset root than the
    recipe's (the sample data is generated when the recipe's default folder is missing)."""
    from .config import TrainConfig
    from .device import to_numpy
    from .evaluate import evaluate_dataset
    from .recipes import load_recipe
    from .sample_data import make_sample_data
    from .train import build_run, read_back_interval, train_one_epoch

    for name, value, least in (("epochs", epochs, 1), ("steps", steps, 1), ("warmup", warmup, 0)):
        check_int(value, name, least)
    settings = load_recipe(recipe)
    if data is None:
        data = settings["data"]
        if data == TrainConfig.data:
            make_sample_data(data)  # as the demo does: the sample folder is made, or checked to be this version's
    # what training prints (the device line) goes to stderr: stdout holds the report alone (--json)
    with tempfile.TemporaryDirectory() as output, contextlib.redirect_stdout(sys.stderr):
        started = time.perf_counter()
        cfg = TrainConfig(**dict(settings, data=str(data), output=output, device=device, num_workers=num_workers,
                                 stream_data=stream_data, epochs=max(settings["epochs"], epochs + 1)))
        run = build_run(cfg)
        setup_s = time.perf_counter() - started
        if run.model.config["drop_path_rate"] > 0:
            raise ValueError(f"recipe {recipe!r} uses drop-path, whose per-step noise the fixed-batch step does not "
                             f"draw; measure a recipe without it")
        images, labels = _first_batch(run.first_train_data.dataset)
        started = time.perf_counter()
        to_numpy(run.train_step(images, labels))
        compile_s = time.perf_counter() - started
        every = read_back_interval(run)
        _timed_calls(lambda: run.train_step(images, labels), to_numpy, max(warmup, 1), every)

        def step_time():
            return _timed_calls(lambda: run.train_step(images, labels), to_numpy, steps, every)

        step_s, loop_s = [step_time()], []
        for epoch in range(epochs):
            loop_s.append(train_one_epoch(run, epoch)[1])
            step_s.append(step_time())

        run.network.set_train(False)
        val_images, _ = _first_batch(run.val_data.dataset)
        # a first pass compiles the step for every batch shape (the last batch may be smaller)
        evaluate_dataset(run.eval_step, run.val_data.dataset, len(run.classes), desc="val", disable_bar=True)
        eval_step_s, eval_loop_s = [], []
        for _ in range(epochs):
            eval_step_s.append(_timed_calls(lambda: run.eval_step(val_images), to_numpy, steps))
            started = time.perf_counter()
            evaluate_dataset(run.eval_step, run.val_data.dataset, len(run.classes), desc="val", disable_bar=True)
            eval_loop_s.append(time.perf_counter() - started)
        eval_step_s.append(_timed_calls(lambda: run.eval_step(val_images), to_numpy, steps))

    batch, val_batch = int(images.shape[0]), int(val_images.shape[0])
    train_images = run.steps_per_epoch * batch
    val_count = run.val_data.num_samples
    report = dict(recipe=recipe, data=str(data), device=run.device, cpu=cpu_name(), cpu_count=os.cpu_count(),
                  train_in_memory=run.first_train_data.in_memory, val_in_memory=run.val_data.in_memory,
                  batch_size=batch, steps=steps, warmup=warmup, epochs=epochs, setup_s=setup_s, compile_s=compile_s,
                  model={k: run.model.config[k] for k in ("image_size", "patch_size", "embed_dim", "depth",
                                                           "num_heads", "num_classes")},
                  train=_figures(train_images, loop_s, batch, step_s),
                  eval=_figures(val_count, eval_loop_s, val_batch, eval_step_s))
    return report


def _figures(images_per_pass, pass_s, batch, step_s):
    """img/s of the loop (median over its passes) and of the step (median of its timings), and their ratio."""
    loop = images_per_pass / statistics.median(pass_s)
    step = batch / statistics.median(step_s)
    return dict(loop_img_per_s=loop, step_img_per_s=step, loop_over_step=loop / step, images_per_pass=images_per_pass,
                pass_s=pass_s, step_s=step_s)


def format_loop_table(report):
    """The report as text: the loop's and the step's img/s and their ratio, for training and evaluation."""
    model = report["model"]
    where = "in memory" if report["train_in_memory"] else "streamed from disk"
    lines = [f"recipe {report['recipe']}: {report['data']} ({where}), {model['image_size']}x{model['image_size']} in "
             f"{model['patch_size']}x{model['patch_size']} patches, width {model['embed_dim']}, depth "
             f"{model['depth']}, {model['num_heads']} heads, batch {report['batch_size']}",
             f"device: {report['device']} ({report['cpu']}, {report['cpu_count']} cores); set-up "
             f"{report['setup_s']:.1f} s, first step (compile) {report['compile_s']:.1f} s", "",
             f"{'':<6} {'loop img/s':>11} {'step img/s':>11} {'loop/step':>10}   passes",
             "-" * 60]
    for name in ("train", "eval"):
        r = report[name]
        lines.append(f"{name:<6} {r['loop_img_per_s']:>11.1f} {r['step_img_per_s']:>11.1f} {r['loop_over_step']:>10.2f}"
                     f"   {len(r['pass_s'])} x {r['images_per_pass']} images")
    lines += ["", f"loop: {report['epochs']} full pass(es) over the split (median); step: the same compiled step on "
                  f"one fixed batch, {report['steps']} calls, timed before and after each pass (median)"]
    return "\n".join(lines)
