"""An offline sample dataset of shapes, generated deterministically in seconds (no download), made to teach position.

Ten classes, each shape anywhere in the image and at varied scales (so neighbouring patches carry related content
everywhere, not only in the middle), and classes that only spatial relations separate:

- ``disc``, ``plus``: one shape, recognised from its form wherever it is;
- ``hbar`` / ``vbar``, ``dots_h`` / ``dots_v``: a bar, or four dots, lying along a row or along a column. The parts
  look the same in both classes; only how they are arranged on the patch grid differs;
- ``ring_top_left``, ``ring_top_right``, ``ring_bottom_left``, ``ring_bottom_right``: a ring whose class is the
  quarter of the image it lies in (left or right, above or below). The ring itself looks the same in all four: the
  only way to tell them apart is the position embedding.

The ring classes are not mirror-symmetric: train without horizontal flips (the demo and notebook recipes do). Their
centres keep 0.3 half-widths from the middle lines, so crops of at least 85% of the area and evaluation's resize +
centre crop keep the class.

Written as an ImageNet-style image folder, so every loader that reads ImageNet reads it:

    ROOT/train/<class>/<class>_00000.JPEG ...    ROOT/val/<class>/<class>_00000.JPEG ...

Each image is drawn from its own numpy Generator seeded by (seed, split, class, index), so the bytes do not depend
on the order images are made in; the per-pixel arithmetic is IEEE-exact (+, *, sqrt, min/max) and the JPEG quality
fixed, so the same numpy and Pillow give the same bytes.
"""
import io
import math
import shutil
import time
from pathlib import Path

import numpy as np

from .checks import check_int

CLASSES = ("disc", "plus", "hbar", "vbar", "dots_h", "dots_v",
           "ring_top_left", "ring_top_right", "ring_bottom_left", "ring_bottom_right")
SPLITS = ("train", "val")
JPEG_QUALITY = 90
MIN_CONTRAST = 0.4      # least luminance(foreground) - luminance(background), on a 0..1 scale
ANGLE_JITTER = 10.0     # degrees of rotation that never change the class of an oriented shape
MARGIN = 0.95           # shapes stay inside [-MARGIN, MARGIN] (the image spans [-1, 1])
RING_OFFSET = 0.3       # a ring's centre is at least this far from the image's middle lines


def _rotate(x, y, degrees):
    """Coordinates of (x, y) in a frame rotated by ``degrees`` (the shape's own frame)."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return c * x + s * y, -s * x + c * y


def _sd_box(x, y, half_w, half_h):
    """Signed distance to an axis-aligned box (negative inside)."""
    qx, qy = np.abs(x) - half_w, np.abs(y) - half_h
    outside = np.sqrt(np.maximum(qx, 0.0) ** 2 + np.maximum(qy, 0.0) ** 2)
    return outside + np.minimum(np.maximum(qx, qy), 0.0)


def _sd_circle(x, y, r):
    return np.sqrt(x * x + y * y) - r


def _place(rng, half_width, half_height):
    """A centre that keeps a shape of these half-extents inside the image, uniformly anywhere it fits."""
    return (rng.uniform(-MARGIN + half_width, MARGIN - half_width),
            rng.uniform(-MARGIN + half_height, MARGIN - half_height))


def _shape_distance(name, x, y, rng):
    """Signed distance field of one random instance of class ``name``; the image spans [-1, 1] in x and y (y grows
    downwards, like image rows). Sizes are fractions of the half-width, so the data scales with image_size."""
    size = rng.uniform(0.3, 0.55)
    jitter = rng.uniform(-ANGLE_JITTER, ANGLE_JITTER)
    if name == "disc":
        cx, cy = _place(rng, size, size)
        return _sd_circle(x - cx, y - cy, size)
    if name == "plus":
        cx, cy = _place(rng, size, size)
        u, v = _rotate(x - cx, y - cy, jitter)
        half_thick = size * rng.uniform(0.18, 0.28)
        return np.minimum(_sd_box(u, v, size, half_thick), _sd_box(u, v, half_thick, size))
    if name in ("hbar", "vbar"):
        half_length, half_thick = size * 1.1, size * rng.uniform(0.2, 0.3)
        along_x = name == "hbar"
        cx, cy = _place(rng, half_length if along_x else half_thick, half_thick if along_x else half_length)
        u, v = _rotate(x - cx, y - cy, jitter + (0.0 if along_x else 90.0))
        return _sd_box(u, v, half_length, half_thick)
    if name in ("dots_h", "dots_v"):
        radius, step = size * 0.26, size * 0.66  # four dots with a visible gap between them
        along_x, reach = name == "dots_h", 1.5 * step + radius
        cx, cy = _place(rng, reach if along_x else radius, radius if along_x else reach)
        u, v = _rotate(x - cx, y - cy, jitter + (0.0 if along_x else 90.0))
        return np.min([_sd_circle(u - k * step, v, radius) for k in (-1.5, -0.5, 0.5, 1.5)], axis=0)
    if name.startswith("ring_"):
        radius = rng.uniform(0.22, 0.4)
        width = radius * rng.uniform(0.3, 0.45)
        sign_x = -1.0 if name.endswith("_left") else 1.0
        sign_y = -1.0 if "_top_" in name else 1.0
        cx = sign_x * rng.uniform(RING_OFFSET, MARGIN - radius)
        cy = sign_y * rng.uniform(RING_OFFSET, MARGIN - radius)
        return np.abs(_sd_circle(x - cx, y - cy, radius - width / 2.0)) - width / 2.0
    raise ValueError(f"unknown shape class {name!r}; expected one of {CLASSES}")


def _luminance(rgb):
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def _colours(rng):
    """Random background and foreground colours (RGB in 0..1), the shape always at least MIN_CONTRAST brighter.

    One polarity (light shape, darker ground) whatever the hues: the patch embedding learns one edge detector
    instead of two, which a ViT trained from scratch on a few thousand images needs."""
    while True:  # rejection sampling; the rng is the image's own, so this stays deterministic
        background, foreground = rng.uniform(0.0, 0.6, size=3), rng.uniform(0.3, 1.0, size=3)
        if _luminance(foreground) - _luminance(background) >= MIN_CONTRAST:
            return background, foreground


def _grid(image_size):
    coords = (np.arange(image_size, dtype=np.float64) + 0.5) * (2.0 / image_size) - 1.0
    return np.meshgrid(coords, coords)  # x, y in [-1, 1]; y grows downwards, like image rows


def shape_alpha(name, image_size, rng):
    """Coverage (0..1, anti-aliased over one pixel) of one random instance of class ``name``, [size, size]."""
    x, y = _grid(image_size)
    distance = _shape_distance(name, x, y, rng)
    return np.clip(0.5 - distance * (image_size / 2.0), 0.0, 1.0)


def render_shape(name, image_size=64, rng=None):
    """One image of class ``name`` as a uint8 array [image_size, image_size, 3]."""
    rng = np.random.default_rng() if rng is None else rng
    alpha = shape_alpha(name, image_size, rng)[..., None]
    x, y = _grid(image_size)
    background, foreground = _colours(rng)
    slope = rng.uniform(-0.06, 0.06, size=2)  # a mild linear gradient over the background
    shade = (slope[0] * x + slope[1] * y)[..., None]
    image = (background + shade) * (1.0 - alpha) + foreground * alpha
    image = image + rng.normal(0.0, rng.uniform(0.01, 0.03), size=image.shape)
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def image_rng(seed, split, class_index, index):
    """The Generator of one image: seeded by its identity, so images can be made in any order."""
    return np.random.default_rng([seed, SPLITS.index(split), class_index, index])


def check_splits_absent(root, overwrite=False):
    """Refuse to write over ROOT/train or ROOT/val unless overwrite; return the scratch folder to build in."""
    existing = [root / split for split in SPLITS if (root / split).exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{', '.join(map(str, existing))} already exists; pass overwrite=True "
                              f"(--force on the command line) to replace it")
    scratch = root / ".partial"
    shutil.rmtree(scratch, ignore_errors=True)
    return scratch


def move_splits_into_place(scratch, root):
    """Move the finished SCRATCH/train and SCRATCH/val to ROOT: a split folder only ever appears complete."""
    for split in SPLITS:
        if (root / split).exists():
            shutil.rmtree(root / split)
        (scratch / split).replace(root / split)
    scratch.rmdir()


def make_sample_data(root, image_size=64, train_per_class=200, val_per_class=50, seed=0, overwrite=False):
    """Write the sample dataset under ``root`` and return a summary dict (counts, classes, size on disk).

    The same arguments give byte-identical files, so a dataset already made with the same arguments is kept as it is
    (``summary["existing"]`` is True). Any other existing ROOT/train or ROOT/val is an error unless ``overwrite``;
    the new splits are built in a scratch folder and moved into place only when complete.
    """
    from .runtime import progress_bar

    check_int(image_size, "image_size", 32)
    check_int(train_per_class, "train_per_class", 1)
    check_int(val_per_class, "val_per_class", 1)
    check_int(seed, "seed", 0)
    root = Path(root)
    made_with = dict(image_size=image_size, train_per_class=train_per_class, val_per_class=val_per_class, seed=seed,
                     classes=list(CLASSES))
    if not overwrite and _already_made(root, made_with):
        return _summary(root, made_with, seconds=0.0, existing=True)
    scratch = check_splits_absent(root, overwrite)
    started = time.time()
    counts = {"train": train_per_class, "val": val_per_class}
    total = len(CLASSES) * (train_per_class + val_per_class)
    with progress_bar(total=total, desc="sample data", unit="img") as bar:
        for split in SPLITS:
            for class_index, name in enumerate(CLASSES):
                folder = scratch / split / name
                folder.mkdir(parents=True)
                for i in range(counts[split]):
                    (folder / _file_name(name, i)).write_bytes(_jpeg(name, image_size, seed, split, class_index, i))
                    bar.update()
    move_splits_into_place(scratch, root)
    return _summary(root, made_with, seconds=time.time() - started, existing=False)


def _file_name(name, index):
    return f"{name}_{index:05d}.JPEG"


def _jpeg(name, image_size, seed, split, class_index, index):
    """One image's file bytes: fixed quality and no metadata, so the bytes depend on the pixels only."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(render_shape(name, image_size, image_rng(seed, split, class_index, index))).save(
        buffer, format="JPEG", quality=JPEG_QUALITY, optimize=False)
    return buffer.getvalue()


def _already_made(root, made_with):
    """Whether ROOT holds exactly the dataset these arguments make: the same file names in every class folder, and
    the same bytes in each folder's first and last image (the files are deterministic)."""
    counts = {"train": made_with["train_per_class"], "val": made_with["val_per_class"]}
    for split in SPLITS:
        if not (root / split).is_dir() or sorted(p.name for p in (root / split).iterdir()) != sorted(CLASSES):
            return False
        for class_index, name in enumerate(CLASSES):
            folder = root / split / name
            if sorted(p.name for p in folder.iterdir()) != [_file_name(name, i) for i in range(counts[split])]:
                return False
            for i in {0, counts[split] - 1}:
                args = (name, made_with["image_size"], made_with["seed"], split, class_index, i)
                if (folder / _file_name(name, i)).read_bytes() != _jpeg(*args):
                    return False
    return True


def _summary(root, made_with, seconds, existing):
    num_bytes = sum(f.stat().st_size for split in SPLITS for f in (root / split).rglob("*.JPEG"))
    classes, train, val = made_with["classes"], made_with["train_per_class"], made_with["val_per_class"]
    return dict(root=str(root), classes=classes, image_size=made_with["image_size"], seed=made_with["seed"],
                train=len(classes) * train, val=len(classes) * val, train_per_class=train, val_per_class=val,
                bytes=num_bytes, seconds=round(seconds, 2), existing=existing)
