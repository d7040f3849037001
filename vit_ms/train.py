"""Training: a visible loop (value_and_grad + ms.jit), a fused AdamW (optim.py), mindcv's schedule and loss.

Single process:  python -m vit_ms train --data DIR ...
Data parallel:   msrun --worker_num=N --local_worker_num=N --master_port=P --join=True scripts/train.py --data DIR ...
"""
import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import mindspore as ms
import numpy as np
from mindcv.loss import create_loss
from mindcv.scheduler import create_scheduler
from mindspore import nn

from .checkpoint import save_model
from .config import CLASSES_KEY, CONFIG_KEY, HISTORY_KEY, TrainConfig
from .data import create_dataset, list_classes
from .device import set_device, to_numpy
from .evaluate import evaluate_dataset, make_eval_step
from .factory import create_model
from .optim import GlobalNormClip, make_optimizer
from .runtime import progress_bar, shown_path
from .weights import atomic_save

__all__ = ["TrainConfig", "TrainingDiverged", "train"]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or Inf."""


def init_distributed():
    """(rank, world_size). Under msrun (MS_WORKER_NUM set) initialise communication for data parallelism."""
    world = int(os.environ.get("MS_WORKER_NUM", os.environ.get("RANK_SIZE", "1")))
    if world <= 1:
        return 0, 1
    from mindspore.communication import get_group_size, get_rank, init
    init()
    ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True)
    return get_rank(), get_group_size()


def mixed_precision(model, amp_level, target):
    """(network the steps run, loss scaler or None, amp level). amp_level None: O2 on Ascend/GPU, O0 (fp32) on CPU.
    ``model`` itself stays the unwrapped VisionTransformer: build the optimizer groups from it and save it."""
    amp_level = amp_level or ("O0" if target == "CPU" else "O2")
    if amp_level == "O0":
        return model, None, amp_level
    loss_scaler = ms.amp.DynamicLossScaler(scale_value=2 ** 16, scale_factor=2, scale_window=1000)
    return ms.amp.auto_mixed_precision(model, amp_level), loss_scaler, amp_level


def make_train_step(model, loss_fn, optimizer, clip_grad, world_size, loss_scaler=None):
    """One optimisation step, compiled to a graph with ms.jit."""
    def forward(images, labels, drop_path_noise):
        # other models (mindcv's, timed by the benchmark) take the images only
        logits = model(images) if drop_path_noise is None else model(images, drop_path_noise)
        loss = loss_fn(logits.astype(ms.float32), labels)
        return loss_scaler.scale(loss) if loss_scaler is not None else loss

    grad_fn = ms.value_and_grad(forward, None, optimizer.parameters)
    grad_reducer = (nn.DistributedGradReducer(optimizer.parameters, mean=True, degree=world_size)
                    if world_size > 1 else nn.Identity())
    clip = GlobalNormClip(clip_grad) if clip_grad > 0 else None

    def update(grads):  # clipping as a factor, which the optimizer applies as it reads each gradient
        if clip is None:
            return optimizer(grads)
        return optimizer(grads, clip(grads))

    @ms.jit
    def train_step(images, labels, drop_path_noise=None):
        loss, grads = grad_fn(images, labels, drop_path_noise)
        grads = grad_reducer(grads)
        if loss_scaler is not None:  # fp16 on Ascend/GPU: unscale, skip the update on overflow
            loss, grads = loss_scaler.unscale(loss), loss_scaler.unscale(grads)
            finite = ms.amp.all_finite(grads)
            loss_scaler.adjust(finite)
            if finite:
                update(grads)
            return loss
        update(grads)
        return loss

    return train_step


def drop_path_noise(seed, rank, step, depth, batch_size):
    """[depth, 2, batch] uniform numbers for the DropPaths of one training step, from a NumPy generator keyed by
    (seed, rank, global step). They depend on nothing else, so a resumed run draws exactly the masks the interrupted
    run would have drawn; a kernel's own stream would start again from its beginning in the new process."""
    rng = np.random.default_rng([seed, rank, step])
    return ms.Tensor(rng.random((depth, 2, batch_size), dtype=np.float32))


@dataclass
class Run:
    """Everything a training run is made of, built once by ``build_run``."""
    cfg: TrainConfig
    rank: int
    world_size: int
    device: str
    classes: list
    model: object             # the VisionTransformer (saved, and the source of the optimizer groups)
    network: object           # what the steps run: the model, or its mixed-precision wrapper
    optimizer: object
    lr_schedule: list         # one learning rate per step
    train_step: object
    eval_step: object
    first_train_data: object  # epoch 0's pipeline (it also gave the number of steps per epoch)
    val_data: object
    steps_per_epoch: int

    @property
    def is_main(self):
        return self.rank == 0

    @property
    def global_batch(self):
        return self.cfg.batch_size * self.world_size

    def path(self, name):
        return Path(self.cfg.output) / name

    def train_data(self, epoch):
        """A pipeline per epoch, seeded by (seed, epoch): resuming replays exactly the same batches."""
        if epoch == 0 and self.first_train_data is not None:
            return self.first_train_data
        return _train_data(self.cfg, epoch, self.model.mean, self.model.std, self.rank, self.world_size)


def _train_data(cfg, epoch, mean, std, rank, world_size):
    sharded = world_size > 1
    return create_dataset(cfg.data, "train", image_size=cfg.image_size, batch_size=cfg.batch_size, mean=mean,
                          std=std, crop_scale=cfg.crop_scale, hflip=cfg.hflip, auto_augment=cfg.auto_augment,
                          mixup=cfg.mixup, num_workers=cfg.num_workers, seed=cfg.seed + epoch,
                          num_shards=world_size if sharded else None, shard_id=rank if sharded else None,
                          strict=cfg.strict_data, in_memory=False if cfg.stream_data else None)


def _model_overrides(cfg, num_classes):
    overrides = dict(num_classes=num_classes, image_size=cfg.image_size, drop_path_rate=cfg.drop_path,
                     drop_rate=cfg.drop_rate)
    for key in ("patch_size", "embed_dim", "depth", "num_heads"):
        if getattr(cfg, key) is not None:
            overrides[key] = getattr(cfg, key)
    return overrides


def build_run(cfg: TrainConfig):
    """Device, seeds, model, data, optimizer and the compiled steps of a training run."""
    if cfg.warmup_epochs >= cfg.epochs:
        raise ValueError(f"--warmup-epochs ({cfg.warmup_epochs}) must be smaller than --epochs ({cfg.epochs})")
    rank, world_size = init_distributed()
    device = set_device(cfg.device, verbose=rank == 0)
    ms.set_seed(cfg.seed)
    np.random.seed(cfg.seed)
    if rank == 0:
        Path(cfg.output).mkdir(parents=True, exist_ok=True)

    # the classes first (the head's size), then the model, then the data normalised as the model's weights expect
    classes = list_classes(cfg.data)
    model = create_model(cfg.model, pretrained=cfg.pretrained, **_model_overrides(cfg, len(classes)))
    val_data = create_dataset(cfg.data, "val", image_size=cfg.image_size, batch_size=cfg.batch_size, mean=model.mean,
                              std=model.std, num_workers=cfg.num_workers, strict=cfg.strict_data,
                              in_memory=False if cfg.stream_data else None)
    train_data = _train_data(cfg, 0, model.mean, model.std, rank, world_size)
    steps_per_epoch = train_data.dataset.get_dataset_size()
    if steps_per_epoch == 0:
        raise ValueError(f"the training set has {train_data.num_samples} images per device, fewer than one batch of "
                         f"{cfg.batch_size}; lower --batch-size")

    network, loss_scaler, _ = mixed_precision(model, cfg.amp_level, device)
    lr_schedule = create_scheduler(steps_per_epoch, scheduler="warmup_cosine_decay", lr=cfg.lr, min_lr=cfg.min_lr,
                                   warmup_epochs=cfg.warmup_epochs, decay_epochs=cfg.epochs - cfg.warmup_epochs,
                                   num_epochs=cfg.epochs)
    # AdamW; no weight decay on norms, biases, class token and position embedding
    optimizer = make_optimizer(model, lr_schedule, cfg.weight_decay, cfg.pos_embed_lr_scale,
                               cfg.pos_embed_weight_decay)
    loss_fn = create_loss(name="CE", label_smoothing=cfg.label_smoothing)
    return Run(cfg=cfg, rank=rank, world_size=world_size, device=device, classes=classes, model=model,
               network=network, optimizer=optimizer, lr_schedule=lr_schedule,
               train_step=make_train_step(network, loss_fn, optimizer, cfg.clip_grad, world_size, loss_scaler),
               eval_step=make_eval_step(network), first_train_data=train_data, val_data=val_data,
               steps_per_epoch=steps_per_epoch)


def unfinished_run(output):
    """(epochs done, epochs planned) of a run in OUTPUT that stopped before its end and can be resumed (its
    last.ckpt and metrics.json were written after a complete epoch), else None."""
    output = Path(output)
    try:
        metrics = json.loads((output / "metrics.json").read_text())
        done, planned = int(metrics["epochs"]), int(metrics["config"]["epochs"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return (done, planned) if done < planned and (output / "last.ckpt").is_file() else None


def resume(run):
    """Load OUTPUT/last.ckpt (weights and optimizer state); return (epochs done, their history)."""
    cfg, last = run.cfg, run.path("last.ckpt")
    if not last.is_file():
        raise FileNotFoundError(f"--resume: no checkpoint to resume from at {last}")
    metrics = json.loads(run.path("metrics.json").read_text()) if run.path("metrics.json").is_file() else {}
    planned = metrics.get("config", {}).get("epochs", cfg.epochs)
    if planned != cfg.epochs:
        raise ValueError(f"--resume continues the run's learning-rate schedule, planned for {planned} epochs; "
                         f"got --epochs {cfg.epochs}. Resume with --epochs {planned}, or start a new run "
                         f"with --pretrained {run.path('model.ckpt')} to train longer")
    state = ms.load_checkpoint(str(last))
    done = int(state.pop("epoch"))
    # the history saved with these weights: metrics.json may be an epoch behind, if the run stopped between the two
    history = json.loads(str(state.pop(HISTORY_KEY))) if HISTORY_KEY in state else metrics.get("history", [])[:done]
    for key in ("step", CONFIG_KEY, CLASSES_KEY):
        state.pop(key, None)
    missing, _ = ms.load_param_into_net(run.optimizer, state, strict_load=True)
    if missing:
        raise ValueError(f"{last} does not match this run's model/optimizer; missing: {missing[:10]}")
    if run.is_main:
        print(f"resumed from {shown_path(last)} after epoch {done}")
        restarting = [flag for flag, on in (("--drop-rate", cfg.drop_rate > 0), ("--auto-augment", cfg.auto_augment))
                      if on]
        if restarting:  # DropPath, mixup, crops and flips resume exactly; these two streams cannot be restored
            print(f"note: {' and '.join(restarting)} draw from random streams that start again in a new process "
                  f"(MindSpore's dropout kernel; Python's random in the data workers): from here this run differs "
                  f"from one that was not interrupted")
    return done, history


def read_back_interval(run):
    """Steps between loss read-backs. On the CPU every step's loss is read before the next step starts: a step
    launched while the previous one still runs competes with it for the cores (1.4x slower measured on 2 cores,
    docs/performance.md). On a card, launching ahead hides the host's work, so losses are read every log_interval."""
    return 1 if run.device == "CPU" else run.cfg.log_interval


def train_one_epoch(run, epoch, resumed=False):
    """One pass over the training data; returns (mean training loss, seconds)."""
    cfg = run.cfg
    run.network.set_train(True)
    start, loss_sum, loss_count = time.time(), 0.0, 0
    bar = progress_bar(total=run.steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not run.is_main)
    pending = []  # losses not yet read back from the device (each read is a host sync)
    interval = read_back_interval(run)
    drop_path = run.model.config["drop_path_rate"] > 0
    for step, (images, labels) in enumerate(run.train_data(epoch).dataset.create_tuple_iterator(num_epochs=1)):
        if drop_path:
            noise = drop_path_noise(cfg.seed, run.rank, epoch * run.steps_per_epoch + step, len(run.model.blocks),
                                    images.shape[0])
            pending.append(run.train_step(images, labels, noise))
        else:
            pending.append(run.train_step(images, labels))
        if len(pending) == interval or step == run.steps_per_epoch - 1:
            values, pending = [float(to_numpy(v)) for v in pending], []
            if not all(math.isfinite(v) for v in values):
                bar.close()
                kept = run.path("last.ckpt") if epoch > 0 or resumed else "none yet"
                raise TrainingDiverged(f"loss became {values[-1]} in epoch {epoch + 1}, step {step + 1}; training "
                                       f"stopped. The last good checkpoint is kept: {kept}. Lower --lr or raise "
                                       f"--warmup-epochs.")
            loss_sum, loss_count = loss_sum + sum(values), loss_count + len(values)
            seen = (step + 1) * run.global_batch
            bar.set_postfix(loss=f"{values[-1]:.4f}", lr=f"{run.lr_schedule[epoch * run.steps_per_epoch + step]:.2e}",
                            img_s=f"{seen / (time.time() - start):.1f}", refresh=False)  # drawn by the next update
        bar.update(1)
    bar.close()
    return loss_sum / max(loss_count, 1), time.time() - start


def save_epoch(run, epoch, metrics):
    """model.ckpt (weights + architecture + classes), last.ckpt (+ optimizer state and history, to resume), then
    metrics.json: written last, so a metrics.json that counts every planned epoch means the run finished."""
    done = epoch + 1
    save_model(run.model, run.path("model.ckpt"), run.classes)
    atomic_save(run.optimizer, run.path("last.ckpt"), {"epoch": done, "step": done * run.steps_per_epoch,
                                                       CONFIG_KEY: json.dumps(run.model.config),
                                                       CLASSES_KEY: json.dumps(run.classes),
                                                       HISTORY_KEY: json.dumps(metrics["history"])})
    tmp = run.path("metrics.json.tmp")
    tmp.write_text(json.dumps(metrics, indent=2))
    os.replace(tmp, run.path("metrics.json"))


def train(cfg: TrainConfig, on_epoch_end=None):
    """Train (or resume) according to cfg; returns the metrics dict also written to OUTPUT/metrics.json.

    on_epoch_end(epoch, record, model) is called after each epoch's checkpoint is written (notebooks use it).
    """
    run = build_run(cfg)
    if run.is_main and not cfg.resume:  # a new run: an older run's metrics.json must not vouch for its checkpoints
        run.path("metrics.json").unlink(missing_ok=True)
    start_epoch, history = resume(run) if cfg.resume else (0, [])
    metrics = {}
    for epoch in range(start_epoch, cfg.epochs):
        train_loss, seconds = train_one_epoch(run, epoch, resumed=cfg.resume)
        run.network.set_train(False)
        val = evaluate_dataset(run.eval_step, run.val_data.dataset, len(run.classes), desc="val",
                               disable_bar=not run.is_main)
        last_lr = run.lr_schedule[min((epoch + 1) * run.steps_per_epoch, len(run.lr_schedule)) - 1]
        record = dict(epoch=epoch + 1, train_loss=train_loss, val_loss=val["loss"], val_top1=val["top1"],
                      val_top5=val["top5"], lr=float(last_lr), epoch_time=seconds,
                      img_per_s=run.steps_per_epoch * run.global_batch / seconds)
        history.append(record)
        metrics = dict(val_top1=val["top1"], val_top5=val["top5"], epochs=epoch + 1,
                       steps_per_epoch=run.steps_per_epoch, world_size=run.world_size, global_batch=run.global_batch,
                       num_classes=len(run.classes), classes=run.classes, device=run.device,
                       config=dataclasses.asdict(cfg), history=history,
                       lr_schedule=[float(lr) for lr in run.lr_schedule])  # every step's, the whole run planned
        if run.is_main:
            save_epoch(run, epoch, metrics)
            print(f"epoch {epoch + 1}/{cfg.epochs}: train loss {train_loss:.4f}  val loss {val['loss']:.4f}  "
                  f"top-1 {val['top1']:.4f}  top-5 {val['top5']:.4f}  ({seconds:.0f}s, {record['img_per_s']:.1f} img/s)")
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, record, run.model)
    return metrics
