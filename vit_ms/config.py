"""Facts and settings shared across the package and its command line, each written once.

Imports nothing heavy: the command line reads its defaults from here without starting MindSpore.
"""
from dataclasses import dataclass
from typing import Optional, Tuple

# input normalisation (RGB, 0-1 units): ImageNet statistics (MindSpore tutorial, mindcv, vit_ms training) and the
# 0.5/0.5 of Google's, timm's and Hugging Face's ViT weights
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
HALF_MEAN, HALF_STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
CROP_PCT = 0.875  # evaluation: resize the shorter side to image_size / 0.875, then centre-crop image_size
# a split whose decoded pixels fit in this many MB is decoded once and augmented from memory (the sample data: 30 MB;
# the course's ImageNet subset, about 2 GB decoded, streams); a learner's 2-core laptop has 8 GB or more
IN_MEMORY_LIMIT_MB = 1024

# the named ViT sizes (the paper's Ti/S/B/L/H, patch size in the name); constructor arguments of VisionTransformer
MODEL_CONFIGS = {
    "vit_ti_16": dict(patch_size=16, embed_dim=192, depth=12, num_heads=3),
    "vit_s_16": dict(patch_size=16, embed_dim=384, depth=12, num_heads=6),
    "vit_b_16": dict(patch_size=16, embed_dim=768, depth=12, num_heads=12),
    "vit_b_32": dict(patch_size=32, embed_dim=768, depth=12, num_heads=12),
    "vit_l_16": dict(patch_size=16, embed_dim=1024, depth=24, num_heads=16),
    "vit_l_32": dict(patch_size=32, embed_dim=1024, depth=24, num_heads=16),
    "vit_h_14": dict(patch_size=14, embed_dim=1280, depth=32, num_heads=16),
}

# metadata entries of the checkpoints vit_ms writes
CONFIG_KEY = "vit_ms_config"    # the model's constructor arguments (JSON)
CLASSES_KEY = "vit_ms_classes"  # the class folder names (JSON list)
HISTORY_KEY = "vit_ms_history"  # last.ckpt: the history of the epochs it holds (JSON list), so a resume needs no other file
SOURCE_KEY = "vit_ms_source"    # a converted file's origin: layout, numerics, number of heads (JSON)

# the weight layouts vit_ms.load_pretrained reads (see vit_ms/weights/layouts.py)
LAYOUTS = ("vit_ms", "mindcv", "tutorial", "timm", "huggingface", "google")
BACKENDS = ("Ascend", "GPU", "CPU")
AMP_LEVELS = ("O0", "O1", "O2", "O3")
SUBSET_MODES = ("symlink", "hardlink", "copy")  # how build-subset places images


@dataclass
class TrainConfig:
    """Everything a training run depends on; the train command's flags map one to one onto these fields."""
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
    pos_embed_lr_scale: float = 1.0         # the position embedding learns with this multiple of lr
    pos_embed_weight_decay: float = 0.0     # its own weight decay (it has none by default, as in timm and mindcv)
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
    log_interval: int = 10                  # steps between loss read-backs on a card (CPU: every step)
    strict_data: bool = False
    stream_data: bool = False               # read and decode every image each epoch, even when the split fits in memory

