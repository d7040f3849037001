"""The command line: ``python -m vit_ms COMMAND ...`` (or ``vit-ms COMMAND ...``).

Every command's flags are defined here; the work is done by library functions that return values and raise
exceptions. This module prints their results and turns the errors a user can cause into one ``error: ...`` line and
exit status 2. It imports MindSpore only once a command runs, so ``--help`` answers at once.
"""
import argparse
import dataclasses
import json
import os
import sys

from .config import AMP_LEVELS, IN_MEMORY_LIMIT_MB, LAYOUTS, SUBSET_MODES, TrainConfig
from .recipes import load_recipe, recipe_names
from .runtime import quiet_mindspore

USAGE_ERRORS = (ValueError, TypeError, OSError)  # bad input, missing files, no network: an error line, no traceback
DEVICE_HELP = "auto (the best available), Ascend, GPU or CPU"


class _Formatter(argparse.HelpFormatter):
    """Every option's help ends with its default (unless the help text already gives it)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if not action.option_strings or "default" in text or action.default is argparse.SUPPRESS:
            return text
        if action.nargs == 0:  # a switch
            return f"{text} (default: off)"
        default = "none" if action.default is None else " ".join(map(str, action.default)) \
            if isinstance(action.default, (tuple, list)) else "%(default)s"
        return f"{text} (default: {default})"


def _command(subparsers, name, handler, help, description=None):
    parser = subparsers.add_parser(name, help=help, description=description or help, formatter_class=_Formatter)
    parser.set_defaults(func=handler)
    return parser


# ------------------------------------------------------------------------------------------------------- commands

def _demo(args):
    from .demo import run_demo

    result = run_demo(output=args.output, data=args.data, epochs=args.epochs, device=args.device,
                      num_workers=args.num_workers)
    summary = result["summary"]
    print(f"\ndemo finished in {summary['wall_seconds']:.0f}s on {summary['device']}: val top-1 "
          f"{summary['val_top1']:.3f}, top-5 {summary['val_top5']:.3f} after {summary['epochs']} epochs")
    print("position-embedding structure (cosine similarity vs patch-grid distance):")
    print(f"  {'':<16} {'corr. with distance':>20} {'row/column advantage':>21}")
    for name, numbers in summary["position_structure"].items():
        print(f"  {name:<16} {numbers['distance_correlation']:>20.3f} {numbers['row_column_advantage']:>21.3f}")
    probe = summary["figure7"]
    uniform = probe["uniform_px"]
    print(f"mean attention distance on {probe['images']} validation images (uniform attention: {uniform:.1f} px), "
          f"per block the nearest and farthest head:")
    for name, distances in probe["attention_distance_px"].items():
        blocks = "  ".join(f"{min(d):.1f}-{max(d):.1f}" for d in distances)
        low, high = min(map(min, distances)) / uniform, max(map(max, distances)) / uniform
        print(f"  {name:<16} {blocks}  px  ({low:.2f}-{high:.2f} x uniform)")
    print("wrote:")
    for path in result["files"]:
        print(f"  {path}")


def _add_demo(subparsers):
    p = _command(subparsers, "demo", _demo, "sample data -> train a small ViT -> evaluate -> plots (the main job)")
    p.add_argument("--output", default="runs/demo", help="folder for the checkpoint, metrics and figures")
    p.add_argument("--data", default="data/sample", help="dataset root; the sample data is generated there if missing")
    p.add_argument("--epochs", type=int, default=load_recipe("demo")["epochs"],
                   help="training epochs (default: the demo recipe's, vit_ms/recipes/demo.yaml)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--num-workers", type=int, default=2, help="data-pipeline workers")


# flag help texts of the train command, one per TrainConfig field (the defaults come from TrainConfig)
TRAIN_HELP = dict(
    data="dataset root with train/<class>/ and val/<class>/",
    model="model name (vit_ti_16, vit_s_16, vit_b_16, vit_b_32, vit_l_16, vit_l_32, vit_h_14)",
    image_size="input image size (pixels, square)",
    patch_size="patch size (default: the named model's)",
    embed_dim="token width D (default: the named model's)",
    depth="number of encoder blocks (default: the named model's)",
    num_heads="attention heads (default: the named model's)",
    epochs="training epochs",
    batch_size="images per device and step (the global batch is this x the number of devices)",
    lr="peak learning rate (after warm-up, for the global batch)",
    min_lr="learning rate at the end of the cosine decay",
    weight_decay="AdamW weight decay (not applied to norms, biases, class token, position embedding)",
    pos_embed_lr_scale="learning-rate multiplier of the position embedding (the demo and notebook recipes: "
                       "a short run from scratch learns positions only with a larger one)",
    pos_embed_weight_decay="weight decay of the position embedding, with its scaled rate (the demo and notebook "
                           "recipes: it damps the noise that a larger rate adds)",
    warmup_epochs="epochs of linear learning-rate warm-up",
    drop_path="stochastic-depth rate of the last block (rises linearly from 0)",
    drop_rate="dropout rate after the embeddings, in the MLPs and before the head",
    label_smoothing="label smoothing of the cross-entropy loss",
    clip_grad="global-norm gradient clipping (0 = off)",
    crop_scale="random-resized-crop area range, as fractions of the image",
    hflip="probability of a horizontal flip",
    auto_augment="mindcv auto-augment policy, e.g. randaug-m9-mstd0.5",
    mixup="mixup Beta alpha (0 = off)",
    seed="random seed (weights, data order, augmentation)",
    output="folder for model.ckpt, last.ckpt and metrics.json",
    resume="continue from OUTPUT/last.ckpt",
    pretrained="weights file to start from (any layout load_pretrained reads)",
    device=DEVICE_HELP,
    amp_level="mixed precision (default: O2 on Ascend/GPU, O0 = float32 on CPU)",
    num_workers="data-pipeline workers",
    log_interval="steps between loss read-backs on Ascend/GPU (each one waits for the device); on the CPU the "
                 "loss of every step is read",
    strict_data="stop on an unreadable image instead of skipping it",
    stream_data=f"read and decode the images from disk every epoch, even when the decoded split fits in memory "
                f"(by default a split of up to {IN_MEMORY_LIMIT_MB} MB decoded is decoded once)",
)


class _Given(argparse.Action):
    """Stores the value and records that the flag was typed (a default may be adjusted; a typed value is not)."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        namespace.given = getattr(namespace, "given", set()) | {self.dest}


def add_train_arguments(parser):
    """One flag per TrainConfig field, with its default and help text."""
    for field in dataclasses.fields(TrainConfig):
        flag, default = "--" + field.name.replace("_", "-"), field.default
        if field.type is bool or isinstance(default, bool):
            parser.add_argument(flag, action="store_true", help=TRAIN_HELP[field.name])
        elif field.name == "crop_scale":
            parser.add_argument(flag, type=float, nargs=2, default=default, metavar=("MIN", "MAX"),
                                help=TRAIN_HELP[field.name])
        elif field.name == "amp_level":
            parser.add_argument(flag, default=default, choices=AMP_LEVELS, help=TRAIN_HELP[field.name])
        else:
            kind = {int: int, float: float}.get(type(default), str)
            if default is None and field.name in ("patch_size", "embed_dim", "depth", "num_heads"):
                kind = int
            parser.add_argument(flag, type=kind, default=default, help=TRAIN_HELP[field.name],
                                action=_Given if field.name == "warmup_epochs" else "store")


def config_from_args(args):
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)}
    values["crop_scale"] = tuple(values["crop_scale"])
    return TrainConfig(**values)


def fit_warmup(config, given=()):
    """A default (or recipe) warm-up as long as the run or longer is shortened to epochs - 1, with one line saying
    so: a one-epoch run trains without warm-up. A --warmup-epochs typed on the command line is kept (train then
    refuses it with an error naming both values)."""
    if "warmup_epochs" in given or config.warmup_epochs < config.epochs:
        return config
    fitted = max(config.epochs - 1, 0)
    print(f"note: --epochs {config.epochs}: the warm-up is shortened from {config.warmup_epochs} to {fitted} epochs to "
          f"fit the run (--warmup-epochs sets it)")
    return dataclasses.replace(config, warmup_epochs=fitted)


def _train(args):
    from .train import TrainingDiverged, train, unfinished_run

    config = fit_warmup(config_from_args(args), getattr(args, "given", ()))
    stopped = None if config.resume else unfinished_run(config.output)
    if stopped:  # e.g. a worker under msrun was lost: starting over would throw the finished epochs away
        raise ValueError(f"{config.output} holds a run that stopped after epoch {stopped[0]} of {stopped[1]}; to "
                         f"continue it, type the same command with --resume added; to start over, remove "
                         f"{config.output} or choose another --output")
    try:
        train(config)
    except TrainingDiverged as err:
        raise ValueError(str(err)) from err


def _add_train(subparsers):
    p = _command(subparsers, "train", _train, "train a ViT on an image-folder dataset",
                 "Train a ViT. Under msrun (msrun ... scripts/train.py FLAGS) the same flags train data-parallel.")
    p.add_argument("--config", default=None, metavar="RECIPE",
                   help=f"a recipe: a shipped one ({', '.join(recipe_names())}) or a YAML file of the settings below "
                        f"(names with underscores); flags given as well override its values")
    add_train_arguments(p)


def _eval(args):
    from .evaluate import evaluate

    report = evaluate(args.checkpoint, args.data, split=args.split, batch_size=args.batch_size,
                      num_workers=args.num_workers, device=args.device, output=args.output, model=args.model)
    print(f"{report['num_samples']} images  top-1 {report['top1']:.4f}  top-5 {report['top5']:.4f}")
    width = max(len(n) for n in report["class_names"])
    for name, acc in zip(report["class_names"], report["per_class_accuracy"]):
        print(f"  {name:<{width}}  {'no samples' if acc is None else f'{acc:.3f}'}")
    if args.output:
        print(f"wrote {os.path.join(args.output, 'eval.json')} and {os.path.join(args.output, 'confusion_matrix.png')}")


def _add_eval(subparsers):
    p = _command(subparsers, "eval", _eval, "evaluate a checkpoint: top-1/top-5, per-class, confusion matrix")
    p.add_argument("--data", required=True, help="dataset root with <split>/<class>/ folders")
    p.add_argument("--checkpoint", required=True, help="model.ckpt from training, or published weights")
    p.add_argument("--split", default="val", help="the folder under --data to evaluate")
    p.add_argument("--model", default=None, help="architecture of published weights (default: vit_b_16)")
    p.add_argument("--batch-size", type=int, default=32, help="images per batch")
    p.add_argument("--num-workers", type=int, default=2, help="data-pipeline workers")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--output", default=None, help="folder for eval.json and confusion_matrix.png (default: none)")


def _predict(args):
    from .evaluate import predict

    for path, top in zip(args.images, predict(args.checkpoint, args.images, topk=args.topk, model=args.model,
                                              device=args.device)):
        print(path)
        for name, prob in top:
            print(f"  {prob:7.2%}  {name}")


def _add_predict(subparsers):
    p = _command(subparsers, "predict", _predict, "top-k class names and probabilities for images")
    p.add_argument("--checkpoint", required=True, help="model.ckpt from training, or published weights")
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--model", default=None, help="architecture of published weights (default: vit_b_16)")
    p.add_argument("--topk", type=int, default=5, help="classes to show per image")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)


def _make_sample_data(args):
    from .sample_data import make_sample_data

    summary = make_sample_data(args.root, image_size=args.image_size, train_per_class=args.train_per_class,
                               val_per_class=args.val_per_class, seed=args.seed, overwrite=args.force)
    if summary["existing"]:
        print(f"{summary['root']} already holds this sample dataset ({summary['train']} train + {summary['val']} "
              f"val images, made with the same arguments): nothing to do")
        return
    print(f"wrote {summary['train']} train + {summary['val']} val images ({len(summary['classes'])} classes, "
          f"{summary['image_size']}x{summary['image_size']}, {summary['bytes'] / 1e6:.1f} MB) to {summary['root']} "
          f"in {summary['seconds']:.1f}s")
    print("classes: " + ", ".join(summary["classes"]))


def _add_make_sample_data(subparsers):
    p = _command(subparsers, "make-sample-data", _make_sample_data,
                 "generate the offline sample dataset (shapes, no download)",
                 "Generate the offline sample dataset: 10 classes of shapes as an ImageNet-style folder "
                 "(DIR/train/<class>/, DIR/val/<class>/).")
    p.add_argument("root", metavar="DIR", help="output folder, e.g. data/sample")
    p.add_argument("--image-size", type=int, default=64, help="image size (pixels, square)")
    p.add_argument("--train-per-class", type=int, default=200, help="training images per class")
    p.add_argument("--val-per-class", type=int, default=50, help="validation images per class")
    p.add_argument("--seed", type=int, default=0, help="random seed (the same seed gives the same files)")
    p.add_argument("--force", action="store_true", help="replace DIR/train and DIR/val if they exist")


def _download(args):
    from . import download

    if args.what == "dataset":
        root = download.download_course_dataset(args.dest or "data", url=args.url or download.COURSE_DATASET_URL,
                                                sha256=args.sha256)
        print(f"dataset ready at {root} (train/ and val/ inside)")
    else:
        path = download.download_course_checkpoint(args.dest or "checkpoints",
                                                   url=args.url or download.COURSE_CHECKPOINT_URL, sha256=args.sha256)
        print(f"checkpoint ready at {path}")


def _add_download(subparsers):
    from .download import COURSE_CHECKPOINT_URL, COURSE_DATASET_URL

    p = _command(subparsers, "download", _download, "download the course dataset or the ViT-B/16 checkpoint",
                 f"Download the ImageNet subset of the MindSpore ViT tutorial ({COURSE_DATASET_URL}) or its "
                 f"checkpoint ({COURSE_CHECKPOINT_URL}). Partial downloads resume.")
    p.add_argument("what", choices=("dataset", "checkpoint"), help="what to download")
    p.add_argument("--dest", default=None,
                   help="folder to download into (default: data for the dataset, checkpoints for the checkpoint)")
    p.add_argument("--url", default=None, help="download from this URL instead, e.g. a mirror (default: the course's)")
    p.add_argument("--sha256", default=None, help="expected SHA-256 of the downloaded file (default: not checked)")


def _build_subset(args):
    from .subset import build_imagenet_subset

    summary = build_imagenet_subset(
        args.src, args.dst, num_classes=args.classes,
        wnids=[w.strip() for w in args.wnids.split(",") if w.strip()] if args.wnids else None,
        train_per_class=args.train_per_class, val_per_class=args.val_per_class, val_labels=args.val_labels,
        mode=args.mode, seed=args.seed, overwrite=args.force)
    print(f"wrote {summary['train']} train + {summary['val']} val images of {len(summary['classes'])} classes "
          f"({summary['mode']}) to {summary['root']}")


def _add_build_subset(subparsers):
    p = _command(subparsers, "build-subset", _build_subset, "build an ImageNet subset from a local ImageNet-1k copy",
                 "Build DST/train/<wnid>/ and DST/val/<wnid>/ from SRC/train and SRC/val (class folders, or flat "
                 "with --val-labels).")
    p.add_argument("src", metavar="SRC", help="ImageNet root holding train/ and val/")
    p.add_argument("dst", metavar="DST", help="output folder")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--classes", type=int, help="number of classes, drawn with --seed from the sorted wnids")
    which.add_argument("--wnids", help="comma-separated wnids, e.g. n01440764,n02102040")
    p.add_argument("--train-per-class", type=int, default=100, help="training images per class")
    p.add_argument("--val-per-class", type=int, default=50, help="validation images per class")
    p.add_argument("--val-labels", default=None,
                   help="ground truth for a flat val/ folder: LOC_val_solution.csv or 'filename wnid' lines")
    p.add_argument("--mode", choices=SUBSET_MODES, default="symlink",
                   help="how images are placed in DST")
    p.add_argument("--seed", type=int, default=0, help="seed of the class and image draw")
    p.add_argument("--force", action="store_true", help="replace DST/train and DST/val if they exist")


def _convert(args):
    from .weights import convert

    summary = convert(args.src, args.dst, layout=args.layout)
    record = summary["record"]
    numerics = (f"LayerNorm eps {record['norm_eps']:g}, {'tanh' if record['gelu_approximate'] else 'exact'} GELU, "
                f"mean {tuple(record['mean'])} std {tuple(record['std'])}" if "norm_eps" in record
                else "numerics not recorded in the source")
    print(f"wrote {summary['dst']}: {summary['tensors']} tensors from {summary['src']} (layout {summary['layout']}; "
          f"{numerics}; {summary['skipped_training_state']} optimizer/training entries dropped)")


def _add_convert(subparsers):
    p = _command(subparsers, "convert", _convert, "convert published ViT weights to a .ckpt/.safetensors in vit_ms names",
                 "Convert ViT weights (vit_ms, mindcv, MindSpore tutorial, timm, Hugging Face, Google .npz) to a "
                 "MindSpore .ckpt or a .safetensors file with vit_ms parameter names; the source's numerics are "
                 "recorded in it.")
    p.add_argument("src", help="weights file to read (.ckpt, .safetensors or .npz)")
    p.add_argument("dst", help="file to write: .ckpt (MindSpore) or .safetensors")
    p.add_argument("--layout", choices=LAYOUTS, default=None, help="source layout (default: detected from the names)")


def _bench(args):
    if args.recipe:
        return _bench_recipe(args)
    if args.stream_data or args.epochs is not None or args.data is not None:
        raise ValueError("--data, --epochs and --stream-data measure a recipe's training loop: give --recipe too")
    from .bench import format_table, run_benchmark

    report = run_benchmark(model=args.model, batch_size=args.batch_size, image_size=args.image_size, mode=args.mode,
                           steps=5 if args.steps is None else args.steps, warmup=args.warmup,
                           compare=tuple(args.compare), device=args.device,
                           num_classes=args.num_classes, amp_level=args.amp_level, patch_size=args.patch_size,
                           embed_dim=args.embed_dim, depth=args.depth, num_heads=args.num_heads,
                           rounds=args.rounds or (1 if args.in_process else 3), in_process=args.in_process)
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    return 1 if any("error" in r for results in report["rounds"] for r in results) else 0


def _bench_recipe(args):
    from .bench_loop import format_loop_table, run_loop_benchmark

    typed = [flag for flag, value, default in (("--model", args.model, "vit_b_16"), ("--image-size", args.image_size, 224),
                                               ("--batch-size", args.batch_size, 8), ("--mode", args.mode, "both"),
                                               ("--in-process", args.in_process, None), ("--rounds", args.rounds, None),
                                               ("--amp-level", args.amp_level, None))
             if value != default] + [f"--{name.replace('_', '-')}" for name in ("patch_size", "embed_dim", "depth",
                                                                              "num_heads") if getattr(args, name)]
    if typed:
        raise ValueError(f"--recipe measures the recipe's own model, batch and precision; {', '.join(typed)} cannot "
                         f"be given with it")
    report = run_loop_benchmark(args.recipe, data=args.data, epochs=1 if args.epochs is None else args.epochs,
                                steps=20 if args.steps is None else args.steps,
                                warmup=args.warmup, stream_data=args.stream_data, device=args.device,
                                num_workers=args.num_workers)
    print(json.dumps(report, indent=2) if args.json else format_loop_table(report))
    return 0


def _add_bench(subparsers):
    from .bench import FRAMEWORKS, MODES

    p = _command(subparsers, "bench", _bench, "images/s of vit_ms vs mindcv and timm (forward and training step)",
                 "Speed benchmark: forward (eval) and training-step images/s of vit_ms, mindcv's ViT and timm's ViT, "
                 "each in its own fresh process.")
    p.add_argument("--model", default="vit_b_16", help="vit_ms model name")
    p.add_argument("--image-size", type=int, default=224, help="input image size")
    p.add_argument("--patch-size", type=int, default=None, help="patch size (default: the named model's)")
    p.add_argument("--embed-dim", type=int, default=None, help="token width (default: the named model's)")
    p.add_argument("--depth", type=int, default=None, help="encoder blocks (default: the named model's)")
    p.add_argument("--num-heads", type=int, default=None, help="attention heads (default: the named model's)")
    p.add_argument("--num-classes", type=int, default=1000, help="classes of the head")
    p.add_argument("--batch-size", type=int, default=8, help="images per step")
    p.add_argument("--mode", choices=("both",) + MODES, default="both",
                   help="eval (forward), train (step) or both")
    p.add_argument("--steps", type=int, default=None,
                   help="timed steps; the median is reported (default: 5; with --recipe, 20 calls per timing)")
    p.add_argument("--rounds", type=int, default=None,
                   help="rounds, each measuring every framework in turn; the ratios are the median of the per-round "
                        "ones (default: 3)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps after the first call")
    p.add_argument("--compare", nargs="*", default=list(FRAMEWORKS[1:]), choices=FRAMEWORKS[1:],
                   help="frameworks to measure beside vit_ms (none: just vit_ms)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP + " (MindSpore models)")
    p.add_argument("--amp-level", default=None, choices=AMP_LEVELS,
                   help="MindSpore mixed precision (default: O0 on CPU, O2 on Ascend/GPU, as training)")
    p.add_argument("--in-process", choices=FRAMEWORKS, default=None, metavar="FRAMEWORK",
                   help="measure only this framework (vit_ms, mindcv or timm), once, in this process: a plain "
                        "process to check the spawned workers against")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    loop = p.add_argument_group("the training loop against its step (--recipe)")
    loop.add_argument("--recipe", default=None, metavar="RECIPE",
                      help=f"measure this recipe's training and eval loops against their compiled steps on a fixed "
                           f"batch, with its model and data ({', '.join(recipe_names())} or a YAML file)")
    loop.add_argument("--data", default=None, help="dataset root instead of the recipe's")
    loop.add_argument("--epochs", type=int, default=None, help="full passes over the data to time (default: 1)")
    loop.add_argument("--stream-data", action="store_true",
                      help="read and decode the images from disk every epoch (default: in memory when they fit)")
    loop.add_argument("--num-workers", type=int, default=2, help="data-pipeline workers")


def _doctor(args):
    from .doctor import diagnose, format_report

    checks = diagnose(args.root)
    print(format_report(checks))
    failed = [c["check"] for c in checks if c["status"] == "FAIL"]
    if failed:
        print(f"\nbroken: {', '.join(failed)} (see above)", file=sys.stderr)
        return 1
    if args.smoke:
        from .smoke import format_smoke, run_smoke

        print()
        result = run_smoke(device=args.device)
        print(format_smoke(result))
        if not result["passed"]:
            print("\nsmoke test failed (see above)", file=sys.stderr)
            return 1
    return 0


def _add_doctor(subparsers):
    p = _command(subparsers, "doctor", _doctor, "check this installation: MindSpore, device, numpy, kernels, course files",
                 "Print what a learner or a bug report needs: the MindSpore version (and whether it was tested), the "
                 "backend and devices with mindspore.run_check(), numpy, the C++ CPU kernels, flash attention, the course "
                 "dataset and checkpoint, threads; with --smoke, a short training and inference test. Exits with status "
                 "1 when something the course needs is broken.")
    p.add_argument("--root", default=".", help="the repository folder whose data/ and checkpoints/ the notebooks use")
    p.add_argument("--smoke", action="store_true",
                   help="then a smoke test on the device: compiled training steps of a small ViT-B-shaped model with "
                        "the default mixed precision (the loss must fall), an eval forward pass, and on Ascend the "
                        "flash attention against the plain one; prints pass/fail and img/s")
    p.add_argument("--device", default="auto", help=f"the smoke test's device: {DEVICE_HELP}")


COMMANDS = (_add_demo, _add_train, _add_eval, _add_predict, _add_make_sample_data, _add_download, _add_build_subset,
            _add_convert, _add_bench, _add_doctor)


def build_parser(train_recipe=None):
    """The parser of every command; ``train_recipe`` (a dict of settings) replaces the train command's defaults."""
    parser = argparse.ArgumentParser(prog="python -m vit_ms", description="Vision Transformer (ViT) in MindSpore")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in COMMANDS:
        add(subparsers)
    if train_recipe:
        subparsers.choices["train"].set_defaults(**train_recipe)
    return parser


def _train_recipe(argv):
    """The recipe named by ``train --config RECIPE``, or None. Its values become the defaults, so flags override."""
    if not argv or argv[0] != "train":
        return None
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv[1:])
    return load_recipe(known.config) if known.config else None


def main(argv=None):
    """Run one command; returns the exit status (0, 1 for a failed benchmark row, 2 for a usage error)."""
    quiet_mindspore()
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        parser = build_parser(_train_recipe(argv))
    except USAGE_ERRORS as err:  # a recipe that is missing or invalid
        print(f"error: {err}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
    except USAGE_ERRORS as err:
        message = str(err).strip() or type(err).__name__
        print(f"error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
