"""Where the time of vit_ms's compiled training step goes on the CPU, by kernel class, from MindSpore's profiler.

    python -m vit_ms.kernels.profile                  # ViT-B/16 at 224, batch 8: 1 warm-up step, 2 profiled steps
    python -m vit_ms.kernels.profile --model vit_ti_16 --image-size 32 --patch-size 8 --depth 1 --json

The step is the one ``python -m vit_ms bench --mode train`` times (make_train_step, make_optimizer: AdamW, clipping at
1.0). After ``--warmup`` steps (the first compiles) and ``--steps`` timed without the profiler,
``mindspore.profiler.profile(activities=[ProfilerActivity.CPU])`` runs one warm-up step of its own and records
``--steps`` more: each kernel launch's duration (FRAMEWORK/cpu_op_execute_timestamp_0.txt) and input shapes
(cpu_framework_0.txt). Kernel class by op type; vit_ms's ``Custom`` kernels by their inputs (a [B, T, 3, H, d] first
input: attention; else 1 or 3 inputs: GELU, 4 or 5: LayerNorm, 6 or 7: AdamW's update; 1 input shaped as a parameter:
clipping's sum of squares); clipping: also Square, the ReduceSums right after one, element-wise ops on the
[1]-shaped global norm. Wall time
minus kernel sum is time outside kernels. The profiler's files are deleted unless ``--output DIR`` keeps them.
"""
if __name__ == "__main__":  # run as a script or with python -m: MindSpore quiet before it starts
    from vit_ms.runtime import quiet_mindspore

    quiet_mindspore()

import argparse
import contextlib
import json
import re
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from ..checks import check_int
from .bench import print_report

CLASSES = {name: kind for kind, names in {  # op type -> kernel class; types not listed here are "other"
    "matmul": "MatMul Dense Conv2D Conv2DBackpropInput Conv2DBackpropFilter",
    "attention": "BatchMatMul Softmax SoftmaxGrad", "layer norm": "LayerNorm LayerNormGrad",
    "GELU": "GeLU GeLUGrad FastGeLU FastGeLUGrad", "optimizer": "Adam ApplyGradientDescent Assign AssignAdd",
    "element-wise": "Add AddN BiasAdd Sub Mul Div RealDiv Neg Exp Log Sqrt Rsqrt Square Reciprocal Maximum Minimum "
                    "Cast Equal Select MaskedFill",
    "reshape/transpose/copy": "Reshape Transpose TensorMove Concat Stack Unstack Slice StridedSlice StridedSliceGrad "
                              "Split Tile BroadcastTo ExpandDims Squeeze Gather GatherD GatherDGradV2 Identity",
    "reductions": "ReduceSum ReduceMean ReduceMax ArgMax BiasAddGrad"}.items() for name in names.split()}
CUSTOM = {1: ("GeluForward", "GELU"), 3: ("GeluBackward", "GELU"), 4: ("LayerNormForward", "layer norm"),
          5: ("LayerNormGrad", "layer norm"), 6: ("AdamWUpdate", "optimizer"),
          7: ("AdamWUpdate", "optimizer")}  # by inputs (AdamWUpdate: 6, and MindSpore's side-effect marker)
CUSTOM_ON_PARAMETERS = {1: ("SumOfSquares", "clipping")}  # by inputs, the first one shaped as a trainable parameter
CUSTOM_ATTENTION = {1: "AttentionForward", 3: "AttentionBackward"}  # by inputs, the first one [B, T, 3, H, d]


def _launches(folder):
    """[(start ns, ms, full name, op type, input shapes or None)] of every recorded kernel launch, in time order."""
    found = sorted(Path(folder).glob("*_ascend_ms/FRAMEWORK"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise RuntimeError(f"the profiler wrote no FRAMEWORK folder under {folder}")
    launches = sorted((int(start), float(ms), name, re.sub(r"-op\d+$", "", name.rsplit("/", 1)[-1]))
                      for name, _, times in (line.split(";") for line in
                                             (found[-1] / "cpu_op_execute_timestamp_0.txt").read_text().splitlines())
                      for start, ms, _ in (t.split(",") for t in times.split()))
    info = [line.split(";") for line in (found[-1] / "cpu_framework_0.txt").read_text().splitlines()]
    if len(info) != len(launches) or any(i[1] != name.rsplit("/", 1)[-1]
                                         for i, (*_, name, _) in zip(info, launches)):
        return [(*launch, None) for launch in launches]  # one line per launch in launch order, else no shapes
    return [(*launch, [s.split(":", 1)[1] for s in i[3:] if s]) for launch, i in zip(launches, info)]


def _classify(launches, param_shapes=()):
    """(op type, class) per launch. Clipping sums a matrix's squares as Square, ReduceSum (rows), ReduceSum (all), or
    with one SumOfSquares kernel, told from GELU's forward kernel by its input: a gradient, shaped as a parameter
    (``param_shapes``: the trainable parameters' shapes, as lists), where GELU's input has batch and token axes."""
    named, previous = [], (None, None, None)  # the previous launch's op type, class and first input's dims
    for _, _, name, op, shapes in launches:
        kind = CLASSES.get(op, "other")
        dims = json.loads(shapes[0]) if shapes and shapes[0].startswith("[") else None
        if op == "Custom" and dims is not None and len(dims) == 5 and dims[2] == 3 and len(shapes) in CUSTOM_ATTENTION:
            op, kind = "Custom " + CUSTOM_ATTENTION[len(shapes)], "attention"
        elif op == "Custom" and dims in param_shapes and len(shapes) in CUSTOM_ON_PARAMETERS:
            op, kind = "Custom " + CUSTOM_ON_PARAMETERS[len(shapes)][0], CUSTOM_ON_PARAMETERS[len(shapes)][1]
        elif op == "Custom" and shapes is not None and len(shapes) in CUSTOM:
            op, kind = "Custom " + CUSTOM[len(shapes)][0], CUSTOM[len(shapes)][1]
        elif "_SoftmaxBackward" in name:
            kind = "attention"
        elif op == "Square" or (shapes and "[1]" in shapes and kind == "element-wise") or (
                op == "ReduceSum" and previous[1] == "clipping" and (previous[0] == "Square" or (
                    previous[0] == "ReduceSum" and len(previous[2] or ()) == 2 and dims == previous[2][:1]))):
            kind = "clipping"
        named.append((op, kind))
        previous = (op, kind, dims)
    return named


def _train_step(model_name, image_size, batch_size, num_classes, **overrides):
    """The training step ``python -m vit_ms bench --mode train`` times, on the CPU; and the trainable parameters'
    shapes."""
    import mindspore as ms
    import numpy as np

    from ..bench import bench_train_step, random_batch
    from ..device import set_device, to_numpy
    from ..factory import create_model
    from ..train import mixed_precision

    target = set_device("CPU", verbose=False)
    ms.set_seed(0)
    np.random.seed(0)
    model = create_model(model_name, num_classes=num_classes, image_size=image_size, **overrides)
    network, loss_scaler, _ = mixed_precision(model, None, target)
    step = bench_train_step(model, network, loss_scaler)
    images, labels = random_batch(batch_size, image_size, num_classes)
    return lambda: to_numpy(step(images, labels)), [list(p.shape) for p in model.trainable_params()]


def _timed(step, count, after=lambda: None):
    """Seconds per call of ``step`` over ``count`` calls, each followed by ``after()`` (not timed)."""
    total = 0.0
    for _ in range(count):
        start = time.perf_counter()
        step()
        total += time.perf_counter() - start
        after()
    return total / count


def run(model="vit_b_16", image_size=224, batch_size=8, steps=2, warmup=1, output=None, num_classes=1000, **overrides):
    """The report: per kernel class and op type, ms and launches per step; the step's wall time with and without."""
    from mindspore.profiler import ProfilerActivity, profile, schedule, tensorboard_trace_handler

    from ..config import MODEL_CONFIGS

    if model not in MODEL_CONFIGS:
        raise ValueError(f"unknown model {model!r}; valid names: {', '.join(MODEL_CONFIGS)}")
    for name, value in (("image_size", image_size), ("batch_size", batch_size), ("steps", steps), ("warmup", warmup),
                        ("num_classes", num_classes)) + tuple((k, v) for k, v in overrides.items() if v is not None):
        check_int(value, name)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if image_size % dict(MODEL_CONFIGS[model], **overrides)["patch_size"]:
        raise ValueError(f"image_size {image_size} is not divisible by the patch size")
    step, param_shapes = _train_step(model, image_size, batch_size, num_classes, **overrides)
    _timed(step, warmup)
    plain_s = _timed(step, steps)
    with contextlib.ExitStack() as stack:
        folder = output or stack.enter_context(tempfile.TemporaryDirectory(prefix="vit_ms_profile_"))
        with contextlib.redirect_stdout(sys.stderr), profile(  # its progress lines: to stderr
                activities=[ProfilerActivity.CPU], schedule=schedule(wait=0, warmup=1, active=steps, repeat=1),
                on_trace_ready=tensorboard_trace_handler(folder)) as prof:
            _timed(step, 1, prof.step)  # the profiler's warm-up step
            wall_ms = _timed(step, steps, prof.step) * 1e3  # the last prof.step() stops it and runs the analysis
        launches = _launches(folder)
    ops, classes = defaultdict(lambda: [0.0, 0, {}]), defaultdict(lambda: [0.0, 0])
    for (_, t, *_), (op, kind) in zip(launches, _classify(launches, param_shapes)):
        ops[op][:] = ops[op][0] + t / steps, ops[op][1] + 1 / steps, {**ops[op][2], kind: None}
        classes[kind][:] = classes[kind][0] + t / steps, classes[kind][1] + 1 / steps
    kernel_ms = sum(t for t, _ in classes.values())
    rows = [dict(name=name, ms=t, kernel_pct=100 * t / kernel_ms, step_pct=100 * t / wall_ms, launches=round(n, 2))
            for name, (t, n) in sorted(classes.items(), key=lambda kv: -kv[1][0])]
    ops = [dict(op=op, kind=" + ".join(kinds), ms=t, kernel_pct=100 * t / kernel_ms, launches=round(n, 2))
           for op, (t, n, kinds) in sorted(ops.items(), key=lambda kv: -kv[1][0])]
    return dict(model=model, image_size=image_size, batch_size=batch_size, overrides=overrides, steps=steps,
                warmup=warmup, trainable_params=len(param_shapes), wall_ms=wall_ms, unprofiled_wall_ms=plain_s * 1e3,
                kernel_ms=kernel_ms, outside_kernels_ms=wall_ms - kernel_ms, shapes_matched=launches[0][4] is not None,
                classes=rows, ops=ops, output=output)


def format_table(r):
    arch = "".join(f", {k.replace('_', ' ')} {v}" for k, v in r["overrides"].items())
    lines = [f"{r['model']}{arch} at {r['image_size']}, batch {r['batch_size']}: training step, mean of {r['steps']} "
             f"profiled step(s)", f"wall time {r['wall_ms']:.1f} ms per step ({r['unprofiled_wall_ms']:.1f} ms "
             f"unprofiled); kernels {r['kernel_ms']:.1f} ms; outside kernels {r['outside_kernels_ms']:.1f} ms", "",
             f"{'kernel class':<24} {'ms/step':>9} {'% kernels':>10} {'% step':>7} {'launches':>9}"]
    lines += [f"{c['name']:<24} {c['ms']:>9.2f} {c['kernel_pct']:>10.1f} {c['step_pct']:>7.1f} {c['launches']:>9g}"
              for c in r["classes"]]
    lines += ["", f"{'top 10 op types':<24} {'ms/step':>9} {'% kernels':>10} {'launches':>9}  class(es)"]
    return "\n".join(lines + [f"{o['op']:<24} {o['ms']:>9.2f} {o['kernel_pct']:>10.1f} {o['launches']:>9g}  "
                              f"{o['kind']}" for o in r["ops"][:10]])


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m vit_ms.kernels.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="vit_b_16", help="vit_ms model name (default: %(default)s)")
    for flag, default, text in (("--image-size", 224, "input height and width"),
                                ("--batch-size", 8, "images per batch"),
                                ("--steps", 2, "profiled steps, and as many timed without the profiler"),
                                ("--warmup", 1, "steps first, unprofiled; the first compiles"),
                                ("--num-classes", 1000, "classes of the head")):
        parser.add_argument(flag, type=int, default=default, help=f"{text} (default: %(default)s)")
    for flag in ("--patch-size", "--embed-dim", "--depth", "--num-heads"):
        parser.add_argument(flag, type=int, default=None, help="architecture override (default: the named model's)")
    parser.add_argument("--output", default=None, help="keep the profiler's files in this folder (default: deleted)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON (default: a table)")
    args = parser.parse_args(argv)
    return print_report(parser, lambda: run(args.model, args.image_size, args.batch_size, args.steps, args.warmup,
                                            args.output, args.num_classes, patch_size=args.patch_size,
                                            embed_dim=args.embed_dim, depth=args.depth, num_heads=args.num_heads),
                        format_table, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
