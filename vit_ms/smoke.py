"""``python -m vit_ms doctor --smoke``: does training and inference work on this device? A check to quote in a bug
report, in well under a minute: a small model with ViT-B/16's width (768, 12 heads, 16x16 patches) and two blocks,
trained a few compiled steps on one fixed batch with the default mixed precision (the loss must fall), then a
forward pass in eval mode; where the model takes ``ops.flash_attention_score`` (Ascend), the same forward pass with
the plain attention, compared.
"""
import time

import mindspore as ms
import numpy as np
from mindcv.loss import create_loss

from .device import flash_attention_support, set_device, to_numpy
from .evaluate import make_eval_step
from .factory import create_model
from .optim import make_optimizer
from .train import make_train_step, mixed_precision

NUM_CLASSES = 10
FLASH_TOLERANCE = 2e-2   # max |flash - plain| of the logits, relative to their largest magnitude (float16 rounding)


def _timed(fn, *args):
    start = time.perf_counter()
    out = to_numpy(fn(*args))
    return out, time.perf_counter() - start


def run_smoke(device="auto", steps=6, batch_size=8, image_size=64, depth=2, seed=0):
    """Run the smoke test; returns a dict with the device, the checks ({name, passed, detail}) and ``passed``."""
    target = set_device(device, verbose=False)
    np.random.seed(seed)
    ms.set_seed(seed)
    model = create_model("vit_b_16", depth=depth, image_size=image_size, num_classes=NUM_CLASSES)
    network, loss_scaler, amp_level = mixed_precision(model, None, target)
    rng = np.random.default_rng(seed)
    images = ms.Tensor(rng.standard_normal((batch_size, 3, image_size, image_size), dtype=np.float32))
    labels = ms.Tensor(rng.integers(0, NUM_CLASSES, batch_size).astype(np.int32))
    checks = []

    model.set_train(True)
    step = make_train_step(network, create_loss(name="CE"), make_optimizer(model, 1e-4, 0.05), 1.0, 1, loss_scaler)
    losses, seconds = [], []
    for _ in range(steps):
        loss, took = _timed(step, images, labels)
        losses.append(float(loss))
        seconds.append(took)
    falling = bool(np.all(np.isfinite(losses))) and losses[-1] < losses[0]
    train_rate = batch_size * (steps - 1) / sum(seconds[1:])
    checks.append(dict(name="train", passed=falling, images_per_second=train_rate,
                       detail=f"{steps} compiled steps (first, with compilation: {seconds[0]:.1f} s), loss "
                              f"{' -> '.join(f'{v:.3f}' for v in losses)} ({'falling' if falling else 'NOT falling'}); "
                              f"{train_rate:.1f} img/s"))

    model.set_train(False)
    forward = make_eval_step(network)
    logits, _ = _timed(forward, images)
    logits, took = _timed(forward, images)
    finite = logits.shape == (batch_size, NUM_CLASSES) and bool(np.isfinite(logits).all())
    eval_rate = batch_size / took
    checks.append(dict(name="eval", passed=finite, images_per_second=eval_rate,
                       detail=f"logits {list(logits.shape)}, {'finite' if finite else 'NOT finite'}; "
                              f"{eval_rate:.1f} img/s"))

    if model.flash_attention:
        flash = network(images).astype(ms.float32).asnumpy()        # PyNative: reads the attention switch each call
        for block in model.blocks:
            block.attn.flash_attention = False
        plain = network(images).astype(ms.float32).asnumpy()
        for block in model.blocks:
            block.attn.flash_attention = True
        gap = float(np.abs(flash - plain).max() / max(np.abs(plain).max(), 1e-6))
        checks.append(dict(name="flash attention", passed=gap <= FLASH_TOLERANCE,
                           detail=f"ops.flash_attention_score vs the plain attention: max difference {gap:.2e} of "
                                  f"the largest logit (allowed {FLASH_TOLERANCE:g})"))
    else:
        checks.append(dict(name="flash attention", passed=True,
                           detail=f"not used: {flash_attention_support()[1]}"))
    return dict(device=target, mindspore=ms.__version__, amp_level=amp_level, batch_size=batch_size,
                image_size=image_size, depth=depth, checks=checks, passed=all(c["passed"] for c in checks))


def format_smoke(result):
    lines = [f"smoke test on {result['device']} (MindSpore {result['mindspore']}, mixed precision "
             f"{result['amp_level']}): ViT-B/16 width, {result['depth']} blocks, {result['image_size']}x"
             f"{result['image_size']} images, batch {result['batch_size']}"]
    width = max(len(c["name"]) for c in result["checks"])
    for check in result["checks"]:
        lines.append(f"{'pass' if check['passed'] else 'FAIL':>4}  {check['name']:<{width}}  {check['detail']}")
    lines.append(f"smoke test: {'PASS' if result['passed'] else 'FAIL'}")
    return "\n".join(lines)
