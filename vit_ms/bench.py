"""Speed benchmark: forward (eval) and training-step images/s of vit_ms, mindcv's ViT and timm's ViT, side by side.

    python -m vit_ms bench                                  # ViT-B/16 at 224, batch 8, eval + train step
    python -m vit_ms bench --mode train --batch-size 16 --json

Each framework is measured in its own fresh process (so compile caches, thread pools and the peak-memory high-water
mark belong to that framework alone): one untimed first call (its time is reported as the compile time), further
warm-up calls, then the median over the timed steps. Every process starts with the thread settings the user started
the command with (MindSpore sets OMP_NUM_THREADS=1 in its own process's C-level environment, which a child would
inherit) and reports the threads it used. ``rounds`` repeats the frameworks in turn (vit_ms, mindcv, timm, vit_ms,
...): on a shared machine only the ratio within a round is meaningful, so the table gives the median of the
per-round ratios. All three get the same configuration, input batch size, loss
(cross-entropy with label smoothing 0.1), global-norm gradient clipping at 1.0 and AdamW; the two MindSpore models run
vit_ms's own compiled train step (vit_ms.train.make_train_step with vit_ms.optim.make_optimizer). PyTorch and timm are
optional: when they are not importable their row says so.
"""
import importlib.util
import json
import multiprocessing
import os
import platform
import statistics
import sys

from .checks import check_int
from .runtime import cpu_name, process_env

FRAMEWORKS = ("vit_ms", "mindcv", "timm")
MODES = ("eval", "train")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def _user_environment():
    """The thread variables as the command was started with them. os.environ is Python's copy, taken at start-up:
    it does not see the OMP_NUM_THREADS=1 that MindSpore's runtime writes into the C-level environment."""
    return {name: os.environ.get(name) for name in THREAD_VARIABLES}


def _restore_environment(env):
    """In a fresh worker, before any framework starts: the user's thread variables, not the ones inherited."""
    for name, value in env.items():
        if value is None:
            os.environ.pop(name, None)
            os.unsetenv(name)
        else:
            os.environ[name] = value


def _time_steps(step, sync, warmup, steps, batch_size):
    """Time ``step`` (sync() waits for its result): the first call, warm-up calls, then the timed steps."""
    import time

    from .runtime import progress_bar

    start = time.perf_counter()
    sync(step())
    first = time.perf_counter() - start
    for _ in range(warmup):
        sync(step())
    times = []
    for _ in progress_bar(range(steps), desc="timed steps", leave=False, disable=not sys.stderr.isatty()):
        start = time.perf_counter()
        sync(step())
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return dict(img_per_s=batch_size / median, median_step_s=median, min_step_s=min(times), compile_s=first,
                steps=steps)


def _peak_rss_mb():
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux, bytes on macOS
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


def random_batch(batch_size, image_size, num_classes):
    """The fixed input of every measured MindSpore step: seeded random images [B, 3, H, W] and labels."""
    import numpy as np

    import mindspore as ms

    rng = np.random.default_rng(0)
    images = ms.Tensor(rng.standard_normal((batch_size, 3, image_size, image_size), dtype=np.float32))
    return images, ms.Tensor(rng.integers(0, num_classes, batch_size).astype(np.int32))


def bench_train_step(model, network, loss_scaler):
    """The training step the bench times (and vit_ms.kernels.profile profiles): vit_ms's compiled step with AdamW
    (lr 1e-3, weight decay 0.05), cross-entropy with label smoothing 0.1 and clipping at 1.0. Sets NETWORK to train."""
    from mindcv.loss import create_loss

    from .optim import make_optimizer
    from .train import make_train_step

    network.set_train(True)
    loss_fn = create_loss(name="CE", label_smoothing=0.1)
    return make_train_step(network, loss_fn, make_optimizer(model, 1e-3, 0.05), 1.0, 1, loss_scaler)


def _mindspore_worker(framework, config):
    """Measure one MindSpore model (vit_ms or mindcv) in this process; returns the result dict."""
    import numpy as np

    import mindspore as ms

    from .device import set_device, to_numpy
    from .evaluate import make_eval_step
    from .train import mixed_precision

    target = set_device(config["device"], verbose=False)
    threads = dict(runtime_num_threads=ms.get_context("runtime_num_threads"))
    ms.set_seed(0)
    np.random.seed(0)
    arch = config["arch"]
    if framework == "vit_ms":
        from .factory import create_model
        model = create_model(config["model"], num_classes=config["num_classes"], image_size=config["image_size"],
                             **config["overrides"])
    else:
        from mindcv.models.vit import VisionTransformer as MindcvViT
        model = MindcvViT(image_size=config["image_size"], patch_size=arch["patch_size"],
                          embed_dim=arch["embed_dim"], depth=arch["depth"], num_heads=arch["num_heads"],
                          num_classes=config["num_classes"], weight_init=False)
    network, loss_scaler, amp_level = mixed_precision(model, config["amp_level"], target)
    batch = config["batch_size"]
    images, labels = random_batch(batch, config["image_size"], config["num_classes"])
    result = dict(framework=framework, device=target, amp_level=amp_level,
                  params=int(sum(int(np.prod(p.shape)) for p in model.trainable_params())))
    if "eval" in config["modes"]:
        network.set_train(False)
        eval_step = make_eval_step(network)
        result["eval"] = _time_steps(lambda: eval_step(images), to_numpy, config["warmup"],
                                     config["steps"], batch)
        result["eval"]["peak_rss_mb"] = _peak_rss_mb()
    if "train" in config["modes"]:
        train_step = bench_train_step(model, network, loss_scaler)
        result["train"] = _time_steps(lambda: train_step(images, labels), to_numpy,
                                      config["warmup"], config["steps"], batch)
        result["train"]["peak_rss_mb"] = _peak_rss_mb()
    if target != "CPU":
        result["device_peak_mb"] = ms.runtime.max_memory_allocated() / (1 << 20)
    result["threads"] = dict(threads, OMP_NUM_THREADS=process_env("OMP_NUM_THREADS"))
    return result


def _timm_worker(config):
    """Measure timm's VisionTransformer with the same configuration in PyTorch (CPU, float32)."""
    try:
        import torch
        from timm.models.vision_transformer import VisionTransformer as TimmViT
    except ImportError as err:
        return dict(framework="timm", skipped=f"PyTorch + timm cannot be imported ({err})")

    torch.manual_seed(0)
    arch = config["arch"]
    model = TimmViT(img_size=config["image_size"], patch_size=arch["patch_size"], embed_dim=arch["embed_dim"],
                    depth=arch["depth"], num_heads=arch["num_heads"], num_classes=config["num_classes"])
    batch, size = config["batch_size"], config["image_size"]
    images = torch.randn(batch, 3, size, size)
    labels = torch.randint(0, config["num_classes"], (batch,))
    result = dict(framework="timm", device="CPU", amp_level="fp32",
                  params=sum(p.numel() for p in model.parameters()),
                  threads=dict(torch_threads=torch.get_num_threads(),
                               torch_interop_threads=torch.get_num_interop_threads(),
                               OMP_NUM_THREADS=process_env("OMP_NUM_THREADS")))
    if "eval" in config["modes"]:
        model.eval()

        def eval_step():
            with torch.inference_mode():
                return model(images)

        result["eval"] = _time_steps(eval_step, lambda out: None, config["warmup"], config["steps"], batch)
        result["eval"]["peak_rss_mb"] = _peak_rss_mb()
    if "train" in config["modes"]:
        model.train()
        decay = [p for n, p in model.named_parameters() if p.ndim > 1 and n not in ("cls_token", "pos_embed")]
        no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1 or n in ("cls_token", "pos_embed")]
        optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05},
                                       {"params": no_decay, "weight_decay": 0.0}], lr=1e-3, eps=1e-8)
        loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)

        def train_step():
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(images), labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            return loss

        result["train"] = _time_steps(train_step, lambda loss: loss.item(), config["warmup"], config["steps"],
                                      batch)
        result["train"]["peak_rss_mb"] = _peak_rss_mb()
    return result


def _worker(framework, config, queue):
    _restore_environment(config["env"])
    queue.put(_measure(framework, config))


def _measure(framework, config):
    """Measure one framework in this process (a fresh one: the bench's workers, or a plain ``--in-process`` run)."""
    from .runtime import quiet_mindspore

    started_with = {name: process_env(name) for name in THREAD_VARIABLES}
    quiet_mindspore()
    load = _load_average()
    try:
        result = _timm_worker(config) if framework == "timm" else _mindspore_worker(framework, config)
    except Exception as err:  # reported in the table; the other frameworks still run
        result = dict(framework=framework, error=f"{type(err).__name__}: {str(err).strip().splitlines()[0]}")
    result["load_average"] = load  # 1-minute load when this framework's measurement started
    result["started_with"] = started_with  # the thread variables before the framework was imported
    return result


def _load_average():
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def _run_worker(context, framework, config):
    """Run _worker in a fresh process and wait for its result (or its death: e.g. killed when out of memory)."""
    import queue as queues

    queue = context.Queue()
    process = context.Process(target=_worker, args=(framework, config, queue))
    process.start()
    while True:
        try:
            result = queue.get(timeout=1.0)
            break
        except queues.Empty:
            if not process.is_alive():
                result = dict(framework=framework, error=f"the measuring process died (exit code "
                                                         f"{process.exitcode}; out of memory?)")
                break
    process.join()
    return result


def _versions():
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for package in ("mindspore", "mindcv", "numpy", "torch", "timm"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            pass
    return found


def _timm_available():
    return all(importlib.util.find_spec(name) is not None for name in ("torch", "timm"))


def run_benchmark(model="vit_b_16", batch_size=8, image_size=224, mode="both", steps=5, warmup=2,
                  compare=("mindcv", "timm"), device="auto", num_classes=1000, amp_level=None, rounds=3,
                  in_process=None, **overrides):
    """Measure vit_ms (and the frameworks in ``compare``) ``rounds`` times in turn and return the report dict that
    ``format_table`` prints and ``--json`` writes: every round's results, and per framework the medians with the
    median of the per-round ratios. ``overrides``: architecture changes of the named model (patch_size, embed_dim,
    depth, num_heads). ``in_process``: a framework name; measure only that one, once, in this process (a plain
    process, to check the spawned workers against)."""
    from .config import MODEL_CONFIGS

    if model not in MODEL_CONFIGS:
        raise ValueError(f"unknown model {model!r}; valid names: {', '.join(MODEL_CONFIGS)}")
    if mode not in ("both",) + MODES:
        raise ValueError(f"mode must be 'both', 'eval' or 'train', got {mode!r}")
    for name, value, least in (("batch_size", batch_size, 1), ("image_size", image_size, 1), ("steps", steps, 1),
                               ("warmup", warmup, 0), ("num_classes", num_classes, 1), ("rounds", rounds, 1)):
        check_int(value, name, least)
    unknown = set(compare) - set(FRAMEWORKS[1:])
    if unknown:
        raise ValueError(f"compare: unknown framework(s) {sorted(unknown)}; choose from mindcv, timm")
    unknown = set(overrides) - {"patch_size", "embed_dim", "depth", "num_heads"}
    if unknown:
        raise ValueError(f"unknown architecture override(s) {sorted(unknown)}; "
                         f"valid: patch_size, embed_dim, depth, num_heads")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    arch = {k: v for k, v in dict(MODEL_CONFIGS[model], **overrides).items()}
    if image_size % arch["patch_size"]:
        raise ValueError(f"image_size {image_size} is not divisible by the patch size {arch['patch_size']}")
    config = dict(model=model, arch=arch, overrides=overrides, batch_size=batch_size, image_size=image_size,
                  modes=MODES if mode == "both" else (mode,), steps=steps, warmup=warmup, device=device,
                  num_classes=num_classes, amp_level=amp_level, rounds=rounds, env=_user_environment())

    frameworks = ("vit_ms",) + tuple(f for f in FRAMEWORKS[1:] if f in compare)
    if in_process is not None:
        if in_process not in FRAMEWORKS:
            raise ValueError(f"in_process: unknown framework {in_process!r}; choose from {', '.join(FRAMEWORKS)}")
        if rounds != 1:
            raise ValueError(f"an in-process run measures once (rounds=1), got rounds={rounds}")
        frameworks = (in_process,)
    context = multiprocessing.get_context("spawn")  # a fresh interpreter per framework and round
    all_rounds = []
    for round_index in range(rounds):
        results = []
        for framework in frameworks:
            if framework == "timm" and not _timm_available():
                results.append(dict(framework="timm", skipped="PyTorch + timm are not importable (optional: "
                                                               "pip install torch timm to compare)"))
                continue
            print(f"bench: round {round_index + 1}/{rounds}, measuring {framework} ...", file=sys.stderr, flush=True)
            results.append(_measure(framework, config) if in_process else _run_worker(context, framework, config))
        all_rounds.append(results)
    summary = [_summarise([r[k] for r in all_rounds], config["modes"], batch_size, [r[0] for r in all_rounds])
               for k in range(len(frameworks))]
    return dict(config={k: v for k, v in config.items() if k != "modes"}, modes=list(config["modes"]),
                device=summary[0].get("device", device), cpu=cpu_name(), cpu_count=os.cpu_count(),
                versions=_versions(), results=summary, rounds=all_rounds)


def _summarise(results, modes, batch_size, ours):
    """One framework over the rounds: medians, and for the others vit_ms's speed-up as the median of the per-round
    ratios (each ratio from the same round, so the machine's load at that time cancels)."""
    measured = [r for r in results if "skipped" not in r and "error" not in r]
    if not measured:
        return results[-1]
    summary = {k: v for k, v in measured[-1].items() if k not in MODES}
    loads = [r["load_average"] for r in measured if r.get("load_average") is not None]
    summary.update(load_average=max(loads) if loads else None, rounds_measured=len(measured),
                   rounds_failed=[r.get("error") for r in results if "error" in r])
    for mode in modes:
        steps = [r[mode]["median_step_s"] for r in measured]
        median_step = statistics.median(steps)
        summary[mode] = dict(img_per_s=batch_size / median_step, median_step_s=median_step,
                             img_per_s_rounds=[batch_size / t for t in steps],
                             min_step_s=min(r[mode]["min_step_s"] for r in measured),
                             compile_s=statistics.median(r[mode]["compile_s"] for r in measured),
                             peak_rss_mb=max(r[mode]["peak_rss_mb"] for r in measured),
                             steps=measured[0][mode]["steps"])
        if summary["framework"] != "vit_ms":
            ratios = [o[mode]["img_per_s"] / r[mode]["img_per_s"] for o, r in zip(ours, results)
                      if mode in o and mode in r]  # > 1: vit_ms is faster
            if ratios:
                summary[mode].update(vit_ms_speedup=statistics.median(ratios), vit_ms_speedup_rounds=ratios)
    return summary


def format_table(report):
    """The report as a text table: one row per framework and mode, with vit_ms's speed-up over each."""
    cfg = report["config"]
    arch = cfg["arch"]
    lines = [f"ViT ({cfg['model']}: patch {arch['patch_size']}, dim {arch['embed_dim']}, depth {arch['depth']}, "
             f"heads {arch['num_heads']}) at {cfg['image_size']}x{cfg['image_size']}, batch {cfg['batch_size']}, "
             f"{cfg['num_classes']} classes; median of {cfg['steps']} steps after {cfg['warmup']} warm-up; "
             f"{cfg['rounds']} interleaved round(s)",
             f"device: {report['device']} ({report['cpu']}, {report['cpu_count']} cores)",
             "versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()), ""]
    header = f"{'framework':<8} {'mode':<6} {'img/s':>8} {'rounds min-max':>15} {'step ms':>9} {'compile s':>10} " \
             f"{'peak RSS MB':>12} {'vit_ms x':>9} {'load':>5}"
    lines += [header, "-" * len(header)]
    for result in report["results"]:
        name = result["framework"]
        if "skipped" in result or "error" in result:
            lines.append(f"{name:<8} {'-':<6} {result.get('skipped') or 'failed: ' + result['error']}")
            continue
        for mode in report["modes"]:
            r = result[mode]
            speedup = f"{r['vit_ms_speedup']:.2f}" if "vit_ms_speedup" in r else "-"
            load = "-" if result["load_average"] is None else f"{result['load_average']:.1f}"
            spread = f"{min(r['img_per_s_rounds']):.2f}-{max(r['img_per_s_rounds']):.2f}"
            lines.append(f"{name:<8} {mode:<6} {r['img_per_s']:>8.2f} {spread:>15} {r['median_step_s'] * 1e3:>9.0f} "
                         f"{r['compile_s']:>10.1f} {r['peak_rss_mb']:>12.0f} {speedup:>9} {load:>5}")
    lines.append("")
    for result in report["results"]:
        if "threads" in result:
            used = ", ".join(f"{k} {'not set' if v is None else v}" for k, v in result["threads"].items())
            lines.append(f"threads {result['framework']}: {used}")
    lines.append("")
    lines.append("img/s: the median over the rounds; column 'vit_ms x': the median over the rounds of vit_ms's img/s "
                 "divided by that row's in the same round (> 1: vit_ms is faster). Peak RSS is the process's "
                 "high-water mark (train includes eval). load: the highest 1-minute load average when that framework "
                 "started a round; other work on the machine slows every row.")
    return "\n".join(lines)
