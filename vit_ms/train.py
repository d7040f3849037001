"""Training: a visible functional loop (value_and_grad + ms.jit), a fused AdamW (optim.py), mindcv's schedule and loss.

Single process:  python -m vit_ms train --data DIR ...
Data parallel:   msrun --worker_num=N --local_worker_num=N --master_port=P --join=True vit_ms/train.py --data DIR ...
"""
import argparse
import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Tuple

if __name__ == "__main__":  # run as a script (msrun): make the package importable and quiet
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    os.environ.setdefault("GLOG_v", "3")

import numpy as np


class TrainingDiverged(RuntimeError):
    """The loss became NaN or Inf."""


@dataclass
class TrainConfig:
    """Everything a training run depends on; the CLI flags map one to one onto these fields."""
    data: str = "data/sample"
    model: str = "vit_b_16"
    image_size: int = 224
    patch_size: Optional[int] = None        # None: the named model's
    embed_dim: Optional[int] = None
    depth: Optional[int] = None
    num_heads: Optional[int] = None
    epochs: int = 10
    batch_size: int = 16                    # per device; the global batch is batch_size x world size
    lr: float = 1e-3                        # peak learning rate for the global batch
    min_lr: float = 1e-6
    weight_decay: float = 0.05
    warmup_epochs: int = 1
    drop_path: float = 0.1
    drop_rate: float = 0.0
    label_smoothing: float = 0.1
    clip_grad: float = 1.0                  # global-norm gradient clipping (0 = off)
    crop_scale: Tuple[float, float] = (0.08, 1.0)
    hflip: float = 0.5
    auto_augment: Optional[str] = None      # e.g. "randaug-m9-mstd0.5"
    mixup: float = 0.0
    seed: int = 0
    output: str = "runs/vit"
    resume: bool = False
    pretrained: Optional[str] = None
    device: str = "auto"
    amp_level: Optional[str] = None         # None: O2 on Ascend/GPU, O0 (fp32) on CPU
    num_workers: int = 2
    log_interval: int = 10                  # steps between loss read-backs (each one is a host sync)
    strict_data: bool = False


def _model_overrides(cfg, num_classes):
    overrides = dict(num_classes=num_classes, image_size=cfg.image_size, drop_path_rate=cfg.drop_path,
                     drop_rate=cfg.drop_rate)
    for key in ("patch_size", "embed_dim", "depth", "num_heads"):
        if getattr(cfg, key) is not None:
            overrides[key] = getattr(cfg, key)
    return overrides


def init_distributed():
    """(rank, world_size). Under msrun (MS_WORKER_NUM set) initialise communication for data parallelism."""
    world = int(os.environ.get("MS_WORKER_NUM", os.environ.get("RANK_SIZE", "1")))
    if world <= 1:
        return 0, 1
    import mindspore as ms
    from mindspore.communication import get_group_size, get_rank, init
    init()
    ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True)
    return get_rank(), get_group_size()


def mixed_precision(model, amp_level, target):
    """(network the steps run, loss scaler or None, amp level). amp_level None: O2 on Ascend/GPU, O0 (fp32) on CPU.
    ``model`` itself stays the unwrapped VisionTransformer: build the optimizer groups from it and save it."""
    import mindspore as ms

    amp_level = amp_level or ("O0" if target == "CPU" else "O2")
    if amp_level == "O0":
        return model, None, amp_level
    loss_scaler = ms.amp.DynamicLossScaler(scale_value=2 ** 16, scale_factor=2, scale_window=1000)
    return ms.amp.auto_mixed_precision(model, amp_level), loss_scaler, amp_level


def make_train_step(model, loss_fn, optimizer, clip_grad, world_size, loss_scaler=None):
    """One optimisation step, compiled to a graph with ms.jit."""
    import mindspore as ms
    from mindspore import nn

    from .optim import clip_by_global_norm

    def forward(images, labels):
        loss = loss_fn(model(images).astype(ms.float32), labels)
        return loss_scaler.scale(loss) if loss_scaler is not None else loss

    grad_fn = ms.value_and_grad(forward, None, optimizer.parameters)
    grad_reducer = (nn.DistributedGradReducer(optimizer.parameters, mean=True, degree=world_size)
                    if world_size > 1 else nn.Identity())

    @ms.jit
    def train_step(images, labels):
        loss, grads = grad_fn(images, labels)
        grads = grad_reducer(grads)
        if loss_scaler is not None:  # fp16 on Ascend/GPU: unscale, skip the update on overflow
            loss, grads = loss_scaler.unscale(loss), loss_scaler.unscale(grads)
            finite = ms.amp.all_finite(grads)
            loss_scaler.adjust(finite)
            if finite:
                if clip_grad > 0:
                    grads = clip_by_global_norm(grads, clip_grad)
                optimizer(grads)
            return loss
        if clip_grad > 0:
            grads = clip_by_global_norm(grads, clip_grad)
        optimizer(grads)
        return loss

    return train_step


def make_eval_step(model):
    import mindspore as ms

    @ms.jit
    def eval_step(images):
        return model(images).astype(ms.float32)

    return eval_step


def evaluate_dataset(eval_step, dataset, num_classes, desc="eval", disable_bar=False):
    """Run eval_step over a dataset; return a metrics.ClassificationMeter result plus the mean loss."""
    from tqdm.auto import tqdm

    from .device import to_numpy
    from .metrics import ClassificationMeter

    meter = ClassificationMeter(num_classes)
    loss_sum, count = 0.0, 0
    for images, labels in tqdm(dataset.create_tuple_iterator(num_epochs=1), total=dataset.get_dataset_size(),
                               desc=desc, leave=False, disable=disable_bar):
        logits = to_numpy(eval_step(images))
        labels = labels.asnumpy()
        meter.update(logits, labels)
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        loss_sum += float(-log_probs[np.arange(len(labels)), labels].sum())
        count += len(labels)
    result = meter.result()
    result["loss"] = loss_sum / max(count, 1)
    return result


def _write_json(path, obj):
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    os.replace(tmp, path)


def train(cfg: TrainConfig, on_epoch_end=None):
    """Train (or resume) according to cfg; returns the metrics dict also written to OUTPUT/metrics.json.

    on_epoch_end(epoch, record, model) is called after each epoch's checkpoint is written (notebooks use it).
    """
    import mindspore as ms
    from mindcv.loss import create_loss
    from mindcv.scheduler import create_scheduler
    from tqdm.auto import tqdm

    from .checkpoint import atomic_save, save_model
    from .data import create_dataset
    from .device import set_device, to_numpy
    from .factory import create_model
    from .optim import make_optimizer

    rank, world_size = init_distributed()
    is_main = rank == 0
    target = set_device(cfg.device, verbose=is_main)
    ms.set_seed(cfg.seed)
    np.random.seed(cfg.seed)
    output = Path(cfg.output)
    if is_main:
        output.mkdir(parents=True, exist_ok=True)

    def make_train_data(epoch):
        # a fresh pipeline per epoch, seeded by (seed, epoch): resuming replays exactly the same batches
        return create_dataset(cfg.data, "train", image_size=cfg.image_size, batch_size=cfg.batch_size,
                              mean=mean, std=std, crop_scale=cfg.crop_scale, hflip=cfg.hflip,
                              auto_augment=cfg.auto_augment, mixup=cfg.mixup, num_workers=cfg.num_workers,
                              seed=cfg.seed + epoch, num_shards=world_size if world_size > 1 else None,
                              shard_id=rank if world_size > 1 else None, strict=cfg.strict_data)

    # class list first (the model's head size depends on it), then the model, then its normalisation
    probe = create_dataset(cfg.data, "val", image_size=cfg.image_size, batch_size=cfg.batch_size,
                           num_workers=cfg.num_workers, strict=cfg.strict_data)
    classes, num_classes = probe.classes, len(probe.classes)
    model = create_model(cfg.model, pretrained=cfg.pretrained, **_model_overrides(cfg, num_classes))
    mean, std = model.mean, model.std
    val = create_dataset(cfg.data, "val", image_size=cfg.image_size, batch_size=cfg.batch_size, mean=mean, std=std,
                         num_workers=cfg.num_workers, strict=cfg.strict_data)
    train_data = make_train_data(0)
    steps_per_epoch = train_data.dataset.get_dataset_size()
    if steps_per_epoch == 0:
        raise ValueError(f"the training set has {train_data.num_samples} images per device, fewer than one batch of "
                         f"{cfg.batch_size}; lower --batch-size")

    network, loss_scaler, _ = mixed_precision(model, cfg.amp_level, target)

    lr_schedule = create_scheduler(steps_per_epoch, scheduler="warmup_cosine_decay", lr=cfg.lr, min_lr=cfg.min_lr,
                                   warmup_epochs=cfg.warmup_epochs, decay_epochs=cfg.epochs - cfg.warmup_epochs,
                                   num_epochs=cfg.epochs) if cfg.warmup_epochs < cfg.epochs else None
    if lr_schedule is None:
        raise ValueError(f"--warmup-epochs ({cfg.warmup_epochs}) must be smaller than --epochs ({cfg.epochs})")
    # AdamW as one fused kernel per parameter; no weight decay on norms, biases, class token and position embedding
    optimizer = make_optimizer(model, lr_schedule, cfg.weight_decay)
    loss_fn = create_loss(name="CE", label_smoothing=cfg.label_smoothing)

    history, start_epoch = [], 0
    last_path, model_path, metrics_path = output / "last.ckpt", output / "model.ckpt", output / "metrics.json"
    if cfg.resume:
        if not last_path.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint to resume from at {last_path}")
        if metrics_path.is_file():
            planned = json.loads(metrics_path.read_text()).get("config", {}).get("epochs", cfg.epochs)
            if planned != cfg.epochs:
                raise ValueError(f"--resume continues the run's learning-rate schedule, planned for {planned} epochs; "
                                 f"got --epochs {cfg.epochs}. Resume with --epochs {planned}, or start a new run "
                                 f"with --pretrained {model_path} to train longer")
        state = ms.load_checkpoint(str(last_path))
        start_epoch = int(state.pop("epoch"))
        for key in ("step", "vit_ms_config", "vit_ms_classes"):
            state.pop(key, None)
        missing, _ = ms.load_param_into_net(optimizer, state, strict_load=True)
        if missing:
            raise ValueError(f"{last_path} does not match this run's model/optimizer; missing: {missing[:10]}")
        if metrics_path.is_file():
            history = json.loads(metrics_path.read_text()).get("history", [])[:start_epoch]
        if is_main:
            print(f"resumed from {last_path} after epoch {start_epoch}")

    train_step = make_train_step(network, loss_fn, optimizer, cfg.clip_grad, world_size, loss_scaler)
    eval_step = make_eval_step(network)
    global_batch = cfg.batch_size * world_size
    metrics = {}
    for epoch in range(start_epoch, cfg.epochs):
        if epoch > 0:
            train_data = make_train_data(epoch)
        network.set_train(True)
        start, loss_sum, loss_count = time.time(), 0.0, 0
        bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not is_main)
        pending = []  # losses not yet read back from the device
        for step, (images, labels) in enumerate(train_data.dataset.create_tuple_iterator(num_epochs=1)):
            pending.append(train_step(images, labels))
            if len(pending) == cfg.log_interval or step == steps_per_epoch - 1:
                values = [float(to_numpy(v)) for v in pending]
                pending = []
                if not all(math.isfinite(v) for v in values):
                    bar.close()
                    raise TrainingDiverged(
                        f"loss became {values[-1]} in epoch {epoch + 1}, step {step + 1}; training stopped. "
                        f"The last good checkpoint is kept: {last_path if epoch > start_epoch or cfg.resume else 'none yet'}"
                        f". Lower --lr or raise --warmup-epochs.")
                loss_sum += sum(values)
                loss_count += len(values)
                seen = (step + 1) * global_batch
                bar.set_postfix(loss=f"{values[-1]:.4f}", lr=f"{lr_schedule[epoch * steps_per_epoch + step]:.2e}",
                                img_s=f"{seen / (time.time() - start):.1f}")
            bar.update(1)
        bar.close()
        train_time = time.time() - start
        network.set_train(False)
        result = evaluate_dataset(eval_step, val.dataset, num_classes, desc="val", disable_bar=not is_main)
        record = dict(epoch=epoch + 1, train_loss=loss_sum / max(loss_count, 1), val_loss=result["loss"],
                      val_top1=result["top1"], val_top5=result["top5"],
                      lr=float(lr_schedule[min((epoch + 1) * steps_per_epoch, len(lr_schedule)) - 1]),
                      epoch_time=train_time, img_per_s=steps_per_epoch * global_batch / train_time)
        history.append(record)
        metrics = dict(val_top1=result["top1"], val_top5=result["top5"], epochs=epoch + 1,
                       steps_per_epoch=steps_per_epoch, world_size=world_size, global_batch=global_batch,
                       num_classes=num_classes, classes=classes, device=target, config=dataclasses.asdict(cfg),
                       history=history)
        if is_main:
            save_model(model, model_path, classes)
            atomic_save(optimizer, last_path, {"epoch": epoch + 1, "step": (epoch + 1) * steps_per_epoch,
                                               "vit_ms_config": json.dumps(model.config),
                                               "vit_ms_classes": json.dumps(classes)})
            _write_json(metrics_path, metrics)
            print(f"epoch {epoch + 1}/{cfg.epochs}: train loss {record['train_loss']:.4f}  "
                  f"val loss {record['val_loss']:.4f}  top-1 {record['val_top1']:.4f}  "
                  f"top-5 {record['val_top5']:.4f}  ({train_time:.0f}s, {record['img_per_s']:.1f} img/s)")
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, record, model)
    return metrics


def add_train_arguments(parser):
    """The train flags (shared by `python -m vit_ms train` and `vit_ms/train.py` under msrun)."""
    d = TrainConfig()
    a = parser.add_argument
    a("--data", default=d.data, help="dataset root with train/<class>/ and val/<class>/ (default: %(default)s)")
    a("--model", default=d.model, help="model name, see vit_ms.list_models() (default: %(default)s)")
    a("--image-size", type=int, default=d.image_size)
    a("--patch-size", type=int, default=None)
    a("--embed-dim", type=int, default=None)
    a("--depth", type=int, default=None)
    a("--num-heads", type=int, default=None)
    a("--epochs", type=int, default=d.epochs)
    a("--batch-size", type=int, default=d.batch_size, help="per device (global batch = this x number of devices)")
    a("--lr", type=float, default=d.lr)
    a("--min-lr", type=float, default=d.min_lr)
    a("--weight-decay", type=float, default=d.weight_decay)
    a("--warmup-epochs", type=int, default=d.warmup_epochs)
    a("--drop-path", type=float, default=d.drop_path)
    a("--drop-rate", type=float, default=d.drop_rate)
    a("--label-smoothing", type=float, default=d.label_smoothing)
    a("--clip-grad", type=float, default=d.clip_grad)
    a("--crop-scale", type=float, nargs=2, default=d.crop_scale, metavar=("MIN", "MAX"))
    a("--hflip", type=float, default=d.hflip)
    a("--auto-augment", default=None, help="mindcv auto-augment policy, e.g. randaug-m9-mstd0.5")
    a("--mixup", type=float, default=d.mixup)
    a("--seed", type=int, default=d.seed)
    a("--output", default=d.output)
    a("--resume", action="store_true", help="continue from OUTPUT/last.ckpt")
    a("--pretrained", default=None, help="checkpoint to fine-tune from")
    a("--device", default=d.device, help="auto, Ascend, GPU or CPU")
    a("--amp-level", default=None, choices=["O0", "O1", "O2", "O3"])
    a("--num-workers", type=int, default=d.num_workers)
    a("--log-interval", type=int, default=d.log_interval)
    a("--strict-data", action="store_true", help="stop on an unreadable image instead of skipping it")


def config_from_args(args):
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)}
    values["crop_scale"] = tuple(values["crop_scale"])
    return TrainConfig(**values)


def run_cli(args):
    try:
        train(config_from_args(args))
    except TrainingDiverged as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def add_cli(subparsers):
    p = subparsers.add_parser("train", help="train a ViT on an image-folder dataset",
                              description="Train a ViT. Under msrun the same flags train data-parallel.")
    add_train_arguments(p)
    p.set_defaults(func=run_cli)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="vit_ms/train.py", description="Train a ViT (msrun-friendly entry point)")
    add_train_arguments(parser)
    sys.exit(run_cli(parser.parse_args()))
