"""Time each CPU layer of vit_ms.kernels against the MindSpore layer it replaces, at ViT-B/16 sizes.

    python -m vit_ms.kernels.bench                 # batch 8, median of 5 runs, forward + backward of each layer
    python -m vit_ms.kernels.bench --batch-size 2 --runs 3 --json

Every pair is the same computation with the same parameters (the tests compare their values and gradients); only
the kernels differ. docs/performance.md gives the figures and where they were measured.
"""
if __name__ == "__main__":  # run as a script or with python -m: MindSpore quiet before it starts
    from vit_ms.runtime import quiet_mindspore

    quiet_mindspore()

import argparse
import json
import os
import statistics
import time

import mindspore as ms
import numpy as np
from mindspore import nn

from ..checks import check_int
from ..device import set_device
from ..runtime import cpu_name
from . import layers


def _time(fn, runs):
    """Median seconds of ``runs`` calls after one untimed call (which compiles)."""
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _forward_backward(cell, x):
    """A compiled forward + backward pass of ``cell`` on ``x`` (gradients for the input and every parameter)."""
    params = cell.trainable_params()

    def loss_fn(inputs):
        return cell(inputs).sum()

    step = ms.jit(ms.value_and_grad(loss_fn, 0, params) if params else ms.value_and_grad(loss_fn, 0))

    def run():
        loss, _ = step(x)
        loss.asnumpy()
    return run


def _pairs(batch_size):
    """(name, MindSpore layer, vit_ms.kernels layer, input) at ViT-B/16 sizes."""
    rng = np.random.default_rng(0)

    def tensor(*shape):
        return ms.Tensor(rng.standard_normal(shape, dtype=np.float32))

    tokens, wide = tensor(batch_size, 197, 768), tensor(batch_size, 197, 3072)
    conv = dict(kernel_size=16, stride=16, pad_mode="valid", has_bias=True)
    return [
        ("patch embedding Conv2d 16x16/16", nn.Conv2d(3, 768, **conv), layers.PatchConv2d(3, 768, **conv),
         tensor(batch_size, 3, 224, 224)),
        ("Dense 768 -> 3072 (fc1)", nn.Dense(768, 3072), layers.Dense(768, 3072), tokens),
        ("Dense 3072 -> 768 (fc2)", nn.Dense(3072, 768), layers.Dense(3072, 768), wide),
        ("LayerNorm 768", nn.LayerNorm((768,), epsilon=1e-6), layers.LayerNorm(768, epsilon=1e-6), tokens),
        ("exact GELU, 3072 wide", nn.GELU(approximate=False), layers.GELU(approximate=False), wide),
    ]


def run(batch_size=8, runs=5):
    """{"rows": [{layer, mindspore_ms, vit_ms_ms, speedup}], ...}: forward + backward time of each pair."""
    batch_size, runs = check_int(batch_size, "batch_size"), check_int(runs, "runs")
    set_device("CPU", verbose=False)
    rows = []
    for name, plain, fast, x in _pairs(batch_size):
        plain_s, fast_s = _time(_forward_backward(plain, x), runs), _time(_forward_backward(fast, x), runs)
        rows.append(dict(layer=name, mindspore_ms=plain_s * 1e3, vit_ms_ms=fast_s * 1e3, speedup=plain_s / fast_s))
    return dict(batch_size=batch_size, runs=runs, cpu=cpu_name(),
                cores=os.cpu_count(), mindspore=ms.__version__, rows=rows)


def format_table(report):
    lines = [f"forward + backward, ViT-B/16 sizes, batch {report['batch_size']}, median of {report['runs']} runs "
             f"(MindSpore {report['mindspore']}, {report['cpu']}, {report['cores']} cores)",
             f"{'layer':<34} {'MindSpore ms':>13} {'vit_ms ms':>10} {'speed-up':>9}"]
    for row in report["rows"]:
        lines.append(f"{row['layer']:<34} {row['mindspore_ms']:>13.1f} {row['vit_ms_ms']:>10.1f} "
                     f"{row['speedup']:>8.1f}x")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m vit_ms.kernels.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=8, help="images per batch (default: %(default)s)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per layer; the median is shown "
                                                             "(default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON (default: a table)")
    args = parser.parse_args(argv)
    return print_report(parser, lambda: run(args.batch_size, args.runs), format_table, args.json)


def print_report(parser, make_report, format_table, as_json):
    """Print make_report() as a table or as JSON; a ValueError it raises is one ``error:`` line and exit status 2."""
    try:
        report = make_report()
    except ValueError as err:
        parser.exit(2, f"error: {err}\n")
    print(json.dumps(report, indent=2) if as_json else format_table(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
