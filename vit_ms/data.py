"""ImageNet-style image folders -> MindSpore datasets, plus the single-image loader used for predictions and plots.

Layout (the one torchvision's ImageFolder and mindcv expect)::

    ROOT/train/<class>/<image>      e.g. ROOT/train/n01440764/n01440764_10026.JPEG
    ROOT/val/<class>/<image>

Class index = position of the folder name in the sorted list of train's class folders. Other splits (val, test)
use train's indices, so a val folder may hold a subset of the classes but none that train lacks.

A folder whose decoded images fit in IN_MEMORY_LIMIT_MB (the sample data, a small subset) is decoded once per
process, by MindSpore's Decode, and every epoch augments the kept pixels. A larger folder streams: a Python source
reads each file's bytes and the pipeline decodes them every epoch. Both run the same ops after Decode with the same
seeds, so they give the same batches. A broken file would fail inside the pipeline without its name, so every file
is checked up front (decoded once with ``check_images=True``) and the broken ones are skipped with a warning naming
them, or reported as an error with ``strict=True``.
"""
import json
import math
import os
import re
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from .checks import check_int
from .config import CROP_PCT, IMAGENET_MEAN, IMAGENET_STD, IN_MEMORY_LIMIT_MB
# what mindspore.dataset.vision.Decode reads (GIF and WebP need PIL there, so they are not used)
IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png", ".bmp", ".tif", ".tiff")
AUTO_AUGMENT_POLICIES = ("randaug", "autoaug", "3a", "trivialaugwide", "augmix")  # mindcv's policy name prefixes
# 1000 ImageNet-1k classes keyed by WordNet ID, in sorted-wnid (= class index) order. WNIDs from timm's
# imagenet_synsets.txt, names from torchvision's _IMAGENET_CATEGORIES (Keras' imagenet_class_index.json names with
# spaces, the two duplicates made unique: 134 "crane bird" / 517 "crane", 638 "maillot" / 639 "maillot tank suit").
CLASS_NAMES_FILE = Path(__file__).resolve().with_name("imagenet_class_names.json")  # package data
_WNID = re.compile(r"n\d{8}")


def _layout(root):
    return (f"expected the ImageNet folder layout {root}/train/<class>/<image> and {root}/val/<class>/<image> "
            f"(images: {', '.join(IMAGE_EXTENSIONS)})")


@lru_cache(maxsize=1)
def _class_names_table():
    if not CLASS_NAMES_FILE.is_file():
        raise FileNotFoundError(f"ImageNet class names not found at {CLASS_NAMES_FILE}; the file ships inside the "
                                f"vit_ms package: reinstall it (pip install -e . in a checkout)")
    return json.loads(CLASS_NAMES_FILE.read_text(encoding="utf-8"))


def load_class_names():
    """{wnid: readable name} for the 1000 ImageNet-1k classes, in class-index order."""
    return dict(_class_names_table())


def class_names_for(classes):
    """Readable names for class folder names: ImageNet WNIDs become their names, others have '_' -> ' '."""
    table = _class_names_table() if any(_WNID.fullmatch(name) for name in classes) else {}
    return [table.get(name, name.replace("_", " ")) for name in classes]


def _visible_subdirs(folder):
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))


def _class_folders(root, split):
    split_dir = Path(root) / split
    if not split_dir.is_dir():
        raise FileNotFoundError(f"no '{split}' folder at {split_dir}; {_layout(root)}")
    present = _visible_subdirs(split_dir)
    if not present:
        raise ValueError(f"{split_dir} has no class folders; {_layout(root)}")
    return present


def list_classes(root):
    """The class folder names of ROOT/train, sorted: label i is the i-th (without reading any image)."""
    return _class_folders(root, "train")


def scan_image_folder(root, split="train"):
    """([(path, label)], classes) for ROOT/split/<class>/<image>; files sorted, labels index train's classes.

    Hidden files are ignored; other files whose extension is not an image's are listed in a warning.
    """
    root = Path(root)
    split_dir = root / split
    present = _class_folders(root, split)
    classes = present
    train_dir = root / "train"
    if split != "train" and train_dir.is_dir():
        classes = _visible_subdirs(train_dir)
        unknown = sorted(set(present) - set(classes))
        if unknown:
            raise ValueError(f"{split_dir} has {len(unknown)} class folder(s) that {train_dir} lacks: {unknown[:5]}; "
                             f"the {split} classes must be a subset of the training classes")
    label_of = {name: i for i, name in enumerate(classes)}
    samples, empty, other = [], [], []
    for name in present:
        files = []
        for folder, dirs, names in os.walk(split_dir / name, followlinks=True):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for file in names:
                if file.startswith("."):
                    continue
                (files if file.lower().endswith(IMAGE_EXTENSIONS) else other).append(os.path.join(folder, file))
        if not files:
            empty.append(name)
        samples += [(path, label_of[name]) for path in sorted(files)]
    if empty:
        raise ValueError(f"{len(empty)} class folder(s) of {split_dir} hold no images: {empty[:5]}; {_layout(root)}")
    if other:
        warnings.warn(f"ignored {len(other)} file(s) in {split_dir} that are not {'/'.join(IMAGE_EXTENSIONS)} "
                      f"images, e.g. {sorted(other)[:3]}")
    return samples, classes


def _sniff_format(head):
    """The image format from a file's first bytes, or None; only the formats the pipeline's Decode reads."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"BM"):
        return "BMP"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "TIFF"
    return None


def _image_problem(path, decode=True):
    """Why ``path`` cannot be used as an image, or None. ``decode``: decode it fully, as a truncated JPEG passes
    PIL's verify() and MindSpore decodes it without error into grey rows; otherwise only its header is read."""
    from PIL import Image

    try:
        with open(path, "rb") as f:
            head = f.read(16)
        if _sniff_format(head) is None:
            return "not a JPEG/PNG/BMP/TIFF file"
        if not decode:
            return None
        with Image.open(path) as image:
            image.draft("RGB", (1, 1))  # JPEG: decode at 1/8 scale, which still reads every byte
            image.load()
    except Exception as error:  # PIL raises many types (OSError, SyntaxError, DecompressionBombError, ...)
        return f"{type(error).__name__}: {error}"
    return None


_checked = {}  # (path, decode) -> ((mtime_ns, size), problem): a pipeline rebuilt every epoch checks nothing again


def find_bad_images(paths, num_workers=2, decode=True):
    """[(path, reason)] for the files among ``paths`` that are not images the pipeline can decode, with a tqdm
    bar. ``decode=False`` only reads each file's header: fast, but blind to truncated or damaged image data."""
    from functools import partial

    from .runtime import progress_bar

    todo = []
    for path in paths:
        cached = _checked.get((path, decode))
        if cached is None or cached[0] != _file_stamp(path):
            todo.append(path)
    if todo:
        with ThreadPoolExecutor(max(1, num_workers)) as pool:  # PIL releases the GIL while decoding
            problems = list(progress_bar(pool.map(partial(_image_problem, decode=decode), todo), total=len(todo),
                                 desc="checking images" if decode else "checking image headers", unit="img"))
        for path, problem in zip(todo, problems):
            _checked[(path, decode)] = (_file_stamp(path), problem)
    return [(path, _checked[(path, decode)][1]) for path in paths if _checked[(path, decode)][1] is not None]


def _rgb_255(values, what):
    values = tuple(float(v) for v in values)
    if len(values) != 3:
        raise ValueError(f"{what} must have 3 values (R, G, B in 0-1 units), got {values}")
    if what == "std" and min(values) <= 0:
        raise ValueError(f"std must be positive, got {values}")
    return [v * 255.0 for v in values]  # MindSpore's Normalize works on 0-255 pixels


def _center_crop_ops(image_size):
    from mindspore.dataset import vision

    return [vision.Resize(int(image_size / CROP_PCT), vision.Inter.BILINEAR), vision.CenterCrop(image_size)]


def _normalize_ops(mean, std):
    from mindspore.dataset import vision

    return [vision.Normalize(mean=_rgb_255(mean, "mean"), std=_rgb_255(std, "std")), vision.HWC2CHW()]


def val_transforms(image_size, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """Decode -> resize shorter side to int(image_size / 0.875) -> centre crop -> normalise -> CHW (mindcv's eval)."""
    from mindspore.dataset import vision

    return [vision.Decode()] + _center_crop_ops(image_size) + _normalize_ops(mean, std)


def train_transforms(image_size, mean=IMAGENET_MEAN, std=IMAGENET_STD, crop_scale=(0.08, 1.0), hflip=0.5,
                     auto_augment=None):
    """mindcv's ImageNet training transforms: decode, random resized crop, flip, [auto-augment], normalise, CHW.

    mindcv fuses the first two (RandomCropDecodeResize, which decodes only the crop and so differs from a crop of the
    decoded image at its edges); here they are two ops, so that a folder decoded once in memory gives the same
    crops as one decoded every epoch."""
    from mindcv.data import create_transforms
    from mindspore.dataset import vision

    lo, hi = (float(s) for s in crop_scale)
    if not 0 < lo <= hi <= 1:
        raise ValueError(f"crop_scale must be (min, max) with 0 < min <= max <= 1, got {tuple(crop_scale)}")
    if not 0 <= hflip <= 1:
        raise ValueError(f"hflip is a probability in [0, 1], got {hflip}")
    if auto_augment is not None and not str(auto_augment).startswith(AUTO_AUGMENT_POLICIES):
        raise ValueError(f"auto_augment must be a mindcv policy name starting with one of {AUTO_AUGMENT_POLICIES} "
                         f"(e.g. 'randaug-m9-mstd0.5'), got {auto_augment!r}")
    ops = create_transforms("imagenet", image_size, is_training=True, auto_augment=auto_augment, scale=(lo, hi),
                            hflip=hflip, mean=_rgb_255(mean, "mean"), std=_rgb_255(std, "std"),
                            interpolation="bilinear")
    fused = ops[0]
    if not isinstance(fused, vision.RandomCropDecodeResize):
        raise RuntimeError(f"mindcv's training transforms changed: expected RandomCropDecodeResize first, got "
                           f"{type(fused).__name__}")
    crop = vision.RandomResizedCrop(fused.size, scale=fused.scale, ratio=fused.ratio,
                                    interpolation=fused.interpolation, max_attempts=fused.max_attempts)
    return [vision.Decode(), crop] + ops[1:]


class _EncodedImages:
    """Random-access source of (encoded bytes, label). The bytes are checked here, where the path is still known."""

    def __init__(self, samples):
        self.samples = samples

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        path, label = self.samples[index]
        data = np.fromfile(path, dtype=np.uint8)
        if _sniff_format(data[:16].tobytes()) is None:
            raise ValueError(f"{path} is not a JPEG/PNG/BMP/TIFF image (it changed after create_dataset checked it)")
        return data, np.array(label, dtype=np.int32)


class _DecodedImages:
    """Random-access source of (decoded RGB pixels uint8 [H, W, 3], label), kept in memory."""

    def __init__(self, samples, pixels):
        self.samples, self.pixels = samples, pixels

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        return self.pixels[index], np.array(self.samples[index][1], dtype=np.int32)


def _file_stamp(path):
    st = os.stat(path)
    return st.st_mtime_ns, st.st_size


_decoded = {}  # path -> ((mtime_ns, size), pixels): each file decoded once per process, while it stays unchanged
_streaming_said = set()  # folders already announced as streaming


def decoded_size(paths, limit_bytes=None):
    """(bytes of RGB uint8 pixels of ``paths`` once decoded, from the image headers, nothing decoded; the first path
    whose header cannot be read, or None). With ``limit_bytes`` the count stops as soon as it is exceeded (a large
    folder is not read to its end)."""
    from PIL import Image

    total = 0
    for path in paths:
        try:
            with Image.open(path) as image:
                width, height = image.size
        except Exception:  # PIL raises many types; only check_images=False lets such a file through
            return total, path
        total += width * height * 3
        if limit_bytes is not None and total > limit_bytes:
            break
    return total, None


def decode_images(paths, num_workers=2, keep_mb=IN_MEMORY_LIMIT_MB):
    """[uint8 [H, W, 3]] for ``paths``, decoded by MindSpore's Decode in a pipeline (with a tqdm bar) and kept for
    the process: a later call decodes only the files that are new or changed. Images of other paths are dropped
    when keeping them too would take more than ``keep_mb``."""
    import mindspore.dataset as ds
    from mindspore.dataset import vision

    from .runtime import progress_bar

    todo = [path for path in paths if path not in _decoded or _decoded[path][0] != _file_stamp(path)]
    wanted = set(paths)
    kept = sum(pixels.nbytes for _, pixels in _decoded.values())
    if todo and kept + decoded_size(todo)[0] > keep_mb * (1 << 20):
        for path in [path for path in _decoded if path not in wanted]:
            del _decoded[path]
    if todo:
        source = ds.GeneratorDataset(_EncodedImages([(path, 0) for path in todo]), ["image", "label"], shuffle=False,
                                     num_parallel_workers=1, python_multiprocessing=False)
        source = source.map(vision.Decode(), "image", num_parallel_workers=max(1, num_workers))
        rows = source.create_tuple_iterator(num_epochs=1, output_numpy=True)
        for index, (pixels, _) in enumerate(progress_bar(rows, total=len(todo), desc="decoding images", unit="img")):
            _decoded[todo[index]] = (_file_stamp(todo[index]), pixels)
    return [_decoded[path][1] for path in paths]


def _fits_in_memory(samples, where, in_memory, limit_mb):
    """Whether to decode ``samples`` into memory: ``in_memory`` True/False, or None for "when the decoded pixels
    fit in ``limit_mb``" (a folder that does not is announced once per process, then streams)."""
    if in_memory is not None:
        return bool(in_memory)
    limit = limit_mb * (1 << 20)
    size, unreadable = decoded_size([path for path, _ in samples], limit)
    if size <= limit and unreadable is None:
        return True
    if str(where) not in _streaming_said:
        _streaming_said.add(str(where))
        why = (f"the header of {unreadable} cannot be read" if unreadable else
               f"its decoded images take more than {limit_mb:g} MB, the in-memory limit")
        print(f"{where}: {why}; the images are read and decoded from disk every epoch")
    return False


@dataclass
class FolderData:
    """A batched pipeline over one split of an image folder, with what describes it."""
    dataset: object  # mindspore.dataset pipeline of (image float32 [B,3,S,S], label int32 [B] or float32 [B,C])
    classes: list  # class folder names; label i is classes[i]
    class_names: list  # readable names (ImageNet WNIDs -> names)
    samples: list  # [(path, label)] of the whole split, bad files removed (the pipeline reads its shard of these)
    num_samples: int  # samples this shard yields per epoch
    batch_size: int
    drop_remainder: bool
    skipped: list = field(default_factory=list)  # paths of files that did not decode
    in_memory: bool = False  # decoded once and augmented from memory (else read and decoded every epoch)

    @property
    def steps_per_epoch(self):
        return self.num_samples // self.batch_size if self.drop_remainder else -(-self.num_samples // self.batch_size)


def create_dataset(root, split="train", image_size=224, batch_size=32, training=None, mean=IMAGENET_MEAN,
                   std=IMAGENET_STD, crop_scale=(0.08, 1.0), hflip=0.5, auto_augment=None, mixup=0.0, num_classes=None,
                   num_workers=2, seed=0, shuffle=None, num_shards=None, shard_id=None, drop_remainder=None,
                   strict=False, check_images=True, in_memory=None, memory_limit_mb=IN_MEMORY_LIMIT_MB):
    """A MindSpore pipeline over ROOT/split/<class>/<image> (see the module docstring for the layout).

    training (default: split == "train") picks the transforms: mindcv's random resized crop with scale
    ``crop_scale``, horizontal flip with probability ``hflip``, optional ``auto_augment`` policy (e.g.
    "randaug-m9-mstd0.5") and, with ``mixup`` > 0 (the Beta alpha), MindSpore's MixUpBatch, which turns labels into
    float32 [B, num_classes] soft labels. Otherwise: resize the shorter side to int(image_size / 0.875), centre crop.
    Both normalise with ``mean``/``std`` (0-1 units) and give float32 [B, 3, S, S].

    shuffle and drop_remainder default to ``training``. ``seed`` seeds the shuffle and the random crops/flips
    (mindspore.dataset.config.set_seed, a global setting), so the same seed gives the same batches; the auto_augment
    policies draw from Python's ``random`` and are not reproducible. With ``num_shards``/``shard_id`` (data
    parallelism) each shard reads ceil(N / num_shards) samples; the last ones repeat a few samples so that every
    shard runs the same number of steps. Every shard must use the same seed.

    Every file is checked before the pipeline starts (results cached per file between calls): unreadable ones are
    skipped with a warning naming them and listed in ``.skipped``, or, with ``strict=True``, raise ValueError.
    ``check_images=True`` decodes each file once (about 1 ms per ImageNet JPEG per worker); False only reads the
    headers, for large datasets known to be clean: a truncated JPEG then decodes silently with grey rows.

    ``in_memory`` (default None: when the split's decoded pixels fit in ``memory_limit_mb``) decodes every file once
    per process and augments the kept pixels each epoch; False streams from disk. Both give the same batches.
    """
    import mindspore as ms
    import mindspore.dataset as ds
    from mindspore.dataset import transforms, vision

    training = split == "train" if training is None else bool(training)
    shuffle = training if shuffle is None else bool(shuffle)
    drop_remainder = training if drop_remainder is None else bool(drop_remainder)
    image_size = check_int(image_size, "image_size")
    batch_size = check_int(batch_size, "batch_size")
    num_workers = check_int(num_workers, "num_workers")
    if mixup < 0:
        raise ValueError(f"mixup is the Beta distribution's alpha and must be >= 0, got {mixup}")
    if mixup > 0 and not training:
        raise ValueError("mixup mixes training batches; it cannot be used with training=False")
    if (num_shards is None) != (shard_id is None):
        raise ValueError(f"give both num_shards and shard_id or neither, got num_shards={num_shards}, "
                         f"shard_id={shard_id}")
    if num_shards is not None:
        num_shards = check_int(num_shards, "num_shards")
        if not 0 <= shard_id < num_shards:
            raise ValueError(f"shard_id must be in [0, {num_shards}), got {shard_id}")
    ops = (train_transforms(image_size, mean, std, crop_scale, hflip, auto_augment) if training
           else val_transforms(image_size, mean, std))

    samples, classes = scan_image_folder(root, split)
    # bad files must not reach the pipeline: MindSpore's error there names no file (Decode) or can crash the process
    bad = find_bad_images([path for path, _ in samples], num_workers, decode=check_images)
    skipped = [path for path, _ in bad]
    if bad:
        listing = "; ".join(f"{path} ({why})" for path, why in bad[:5])
        listing += f"; and {len(bad) - 5} more" if len(bad) > 5 else ""
        if strict:
            raise ValueError(f"{len(bad)} unreadable image(s) in {Path(root) / split}: {listing}")
        warnings.warn(f"skipping {len(bad)} unreadable image(s) in {Path(root) / split}: {listing} "
                      f"(strict=True makes this an error)")
        bad_paths = set(skipped)
        samples = [s for s in samples if s[0] not in bad_paths]
        if not samples:
            raise ValueError(f"no readable image left in {Path(root) / split}")
    num_samples = len(samples)
    if num_shards is not None:
        if num_samples < num_shards:
            raise ValueError(f"{Path(root) / split} has {num_samples} images, fewer than the {num_shards} shards")
        num_samples = math.ceil(num_samples / num_shards)
    if num_classes is None:
        num_classes = len(classes)
    elif check_int(num_classes, "num_classes") < len(classes):
        raise ValueError(f"num_classes={num_classes} is smaller than the {len(classes)} class folders")

    in_memory = _fits_in_memory(samples, Path(root) / split, in_memory, memory_limit_mb)
    if in_memory:  # the pixels Decode would give, so the pipeline starts after it
        pixels = decode_images([path for path, _ in samples], num_workers, memory_limit_mb)
        source, ops = _DecodedImages(samples, pixels), ops[1:]
    else:
        source = _EncodedImages(samples)

    ds.config.set_seed(int(seed))
    # one reader thread: reading bytes is cheap, and MindSpore 2.10 crashes more often when a multi-threaded Python
    # source raises; decoding, the expensive part, runs in parallel in the map
    dataset = ds.GeneratorDataset(source, ["image", "label"], shuffle=shuffle, num_shards=num_shards,
                                  shard_id=shard_id, num_parallel_workers=1, python_multiprocessing=False)
    dataset = dataset.map(ops, "image", num_parallel_workers=num_workers)
    if mixup > 0:
        dataset = dataset.map([transforms.OneHot(num_classes), transforms.TypeCast(ms.float32)], "label")
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    if mixup > 0:
        dataset = dataset.map(vision.MixUpBatch(float(mixup)), ["image", "label"])
    return FolderData(dataset=dataset, classes=classes, class_names=class_names_for(classes), samples=samples,
                      num_samples=num_samples, batch_size=batch_size, drop_remainder=drop_remainder, skipped=skipped,
                      in_memory=in_memory)


def load_image(image, image_size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """(float32 [1, 3, S, S] model input, uint8 [S, S, 3] RGB crop to display), with the validation transform.

    ``image``: a file path, a PIL image, or a uint8 RGB array [H, W, 3]. A file gives exactly what the validation
    pipeline of create_dataset gives for it (same MindSpore ops).
    """
    from mindspore.dataset import vision
    from PIL import Image

    image_size = check_int(image_size, "image_size")
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(f"no image file at {path}")
        problem = _image_problem(path)
        if problem is not None:
            raise ValueError(f"cannot read {path} as an image: {problem}")
        pixels = vision.Decode()(np.fromfile(path, dtype=np.uint8))
    elif isinstance(image, Image.Image):
        pixels = np.asarray(image.convert("RGB"))
    elif isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"an image array must be uint8 RGB [H, W, 3], got {image.dtype} {list(image.shape)}")
        pixels = image
    else:
        raise TypeError(f"image must be a path, a PIL image or a uint8 [H, W, 3] array, got {type(image).__name__}")
    for op in _center_crop_ops(image_size):
        pixels = op(pixels)
    shown = np.asarray(pixels, dtype=np.uint8)
    array = shown
    for op in _normalize_ops(mean, std):
        array = op(array)
    return np.asarray(array, dtype=np.float32)[None], shown
