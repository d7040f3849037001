"""Trained-model files: weights plus what is needed to rebuild the model (architecture and class names)."""
import json
from pathlib import Path

import mindspore as ms

from .config import CLASSES_KEY, CONFIG_KEY
from .model import VisionTransformer
from .weights import atomic_save, load_pretrained


def save_model(model, path, classes=None):
    """Save weights with the model's constructor arguments and (optionally) the class names, atomically."""
    extra = {CONFIG_KEY: json.dumps(model.config)}
    if classes is not None:
        extra[CLASSES_KEY] = json.dumps(list(classes))
    atomic_save(model, path, extra)


def read_model_info(path):
    """(config dict or None, class names or None) stored in a vit_ms checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        params = ms.load_checkpoint(str(path), choice_func=lambda name: name in (CONFIG_KEY, CLASSES_KEY))
    except Exception as err:
        if "empty" in str(err):  # a readable checkpoint without vit_ms entries (published weights)
            return None, None
        raise ValueError(f"cannot read checkpoint {path}: {err}") from err  # truncated or not a checkpoint
    config = json.loads(str(params[CONFIG_KEY])) if CONFIG_KEY in params else None
    classes = json.loads(str(params[CLASSES_KEY])) if CLASSES_KEY in params else None
    if config is not None:
        config["mean"], config["std"] = tuple(config["mean"]), tuple(config["std"])
    return config, classes


def load_model(path, **overrides):
    """Rebuild a model saved by training (``model.ckpt``/``last.ckpt``) and load its weights strictly.

    Returns (model, class names or None). ``overrides`` change constructor arguments (e.g. drop rates).
    """
    config, classes = read_model_info(path)
    if config is None:
        raise ValueError(f"{path} has no vit_ms model configuration (it was not written by vit_ms training); "
                         f"use vit_ms.create_model(name, pretrained=PATH) with the matching architecture instead")
    model = VisionTransformer(**dict(config, **overrides))
    load_pretrained(model, path)
    return model, classes
