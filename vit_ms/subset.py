"""Build a small ImageNet subset (N classes x K train / M val images) from a local ImageNet-1k copy.

    python -m vit_ms build-subset /data/imagenet data/in10 --classes 10 --train-per-class 260 --val-per-class 50

Source layout: SRC/train/<wnid>/*.JPEG, and the validation images either in class folders (SRC/val/<wnid>/*)
or flat (SRC/val/ILSVRC2012_val_00000001.JPEG ...) with a ground-truth file (``val_labels``): Kaggle's
LOC_val_solution.csv (its SRC is ILSVRC/Data/CLS-LOC), or a text file of "filename wnid" lines. The devkit's
ILSVRC2012_validation_ground_truth.txt is refused: its numbers are ILSVRC2012_IDs, not sorted-wnid indices. Output: DST/train/<wnid>/ and DST/val/<wnid>/ as
symbolic links (default, no extra disk), hard links or copies. Classes and images are picked by a seeded draw, so
the same arguments give the same subset; a class with too few images is an error, never a smaller subset.
"""
import csv
import hashlib
import os
import shutil
from pathlib import Path

import numpy as np

from .data import IMAGE_EXTENSIONS
from .checks import check_int
from .config import SUBSET_MODES
from .sample_data import SPLITS, check_splits_absent, move_splits_into_place



def _images_in(folder):
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def read_val_labels(path):
    """{image name without extension: wnid} from LOC_val_solution.csv or a "filename wnid" text file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no validation label file at {path}")
    labels = {}
    with open(path, newline="") as f:
        first = f.readline()
        f.seek(0)
        if first.startswith("ImageId,PredictionString"):  # Kaggle: "ILSVRC2012_val_00008726,n02119789 255 142 ..."
            for number, row in enumerate(csv.DictReader(f), 2):
                boxes = (row["PredictionString"] or "").split()
                if not boxes:
                    raise ValueError(f"{path} line {number}: no wnid in PredictionString for {row['ImageId']}")
                labels[row["ImageId"]] = boxes[0]
            return labels
        for number, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) == 1 and fields[0].isdigit():
                raise ValueError(
                    f"{path} lists bare class numbers, like the devkit's ILSVRC2012_validation_ground_truth.txt; "
                    f"those are ILSVRC2012_IDs (the devkit's meta.mat order), not indices into the sorted wnids, "
                    f"so they cannot be used as they are. Give Kaggle's LOC_val_solution.csv or a file of "
                    f"'filename wnid' lines instead")
            if len(fields) != 2:
                raise ValueError(f"{path} line {number}: expected 'filename wnid', got {line.strip()!r}")
            labels[Path(fields[0]).stem] = fields[1]
    return labels


def _val_images(src, wnids, val_labels):
    """{wnid: sorted image paths} of the validation images of ``wnids``, from class folders or a label file."""
    val = src / "val"
    if not val.is_dir():
        raise FileNotFoundError(f"no validation folder at {val}")
    if val_labels is None:
        missing = [w for w in wnids if not (val / w).is_dir()]
        if missing:
            flat = any(p.suffix.lower() in IMAGE_EXTENSIONS for p in val.iterdir())
            hint = (" The images there are not in class folders: pass the ground truth with val_labels "
                    "(--val-labels), LOC_val_solution.csv or 'filename wnid' lines." if flat else "")
            raise FileNotFoundError(f"{val} has no folder for {', '.join(missing)}.{hint}")
        return {w: _images_in(val / w) for w in wnids}

    labels = read_val_labels(val_labels)
    by_stem = {p.stem: p for p in _images_in(val)}
    images = {w: [] for w in wnids}
    absent = []
    for stem, wnid in sorted(labels.items()):
        if wnid in images:
            if stem in by_stem:
                images[wnid].append(by_stem[stem])
            else:
                absent.append(stem)
    if absent:
        raise FileNotFoundError(f"{len(absent)} validation images of the chosen classes named in {val_labels} are "
                                f"not in {val}, e.g. {', '.join(absent[:5])}")
    return images


def _class_rng(seed, split, wnid):
    """Per-class Generator: a class gets the same images whichever other classes are chosen."""
    wnid_key = int.from_bytes(hashlib.sha256(wnid.encode()).digest()[:8], "little")
    return np.random.default_rng([seed, SPLITS.index(split), wnid_key])


def _choose(images, count, wnid, split, seed):
    if len(images) < count:
        raise ValueError(f"class {wnid} has {len(images)} {split} images, fewer than the {count} asked for")
    picks = _class_rng(seed, split, wnid).choice(len(images), size=count, replace=False)
    return [images[i] for i in sorted(picks)]


def _place(source, target, mode):
    if mode == "symlink":
        os.symlink(source.resolve(), target)
    elif mode == "hardlink":
        try:
            os.link(source, target)
        except OSError as err:
            raise OSError(f"cannot hard-link {source} to {target} ({err}); hard links need both on one "
                          f"filesystem: use mode 'symlink' or 'copy'") from err
    else:
        shutil.copy2(source, target)


def build_imagenet_subset(src, dst, num_classes=None, wnids=None, train_per_class=100, val_per_class=50,
                          val_labels=None, mode="symlink", seed=0, overwrite=False):
    """Write an ImageNet subset to DST/train/<wnid>/ and DST/val/<wnid>/; return a summary dict.

    Give either ``num_classes`` (a seeded draw from the sorted wnids of SRC/train) or ``wnids`` (a list).
    """
    from .runtime import progress_bar

    src, dst = Path(src), Path(dst)
    if not (src / "train").is_dir():
        raise FileNotFoundError(f"no ImageNet training folder at {src / 'train'} (expected SRC/train/<wnid>/*.JPEG)")
    if mode not in SUBSET_MODES:
        raise ValueError(f"mode must be one of {SUBSET_MODES}, got {mode!r}")
    check_int(train_per_class, "train_per_class", 1)
    check_int(val_per_class, "val_per_class", 1)
    check_int(seed, "seed", 0)
    available = sorted(p.name for p in (src / "train").iterdir() if p.is_dir())
    if (num_classes is None) == (wnids is None):
        raise ValueError(f"give exactly one of num_classes and wnids, got num_classes={num_classes!r}, "
                         f"wnids={wnids!r}")
    if wnids is not None:
        if isinstance(wnids, str) or not all(isinstance(w, str) for w in wnids) or not wnids:
            raise TypeError(f"wnids must be a non-empty list of strings like ['n01440764'], got {wnids!r}")
        unknown = sorted(set(wnids) - set(available))
        if unknown:
            raise ValueError(f"unknown wnids (no folder in {src / 'train'}): {', '.join(unknown)}")
        if len(set(wnids)) != len(wnids):
            raise ValueError(f"wnids has duplicates: {wnids}")
        chosen = sorted(wnids)
    else:
        check_int(num_classes, "num_classes", 1)
        if num_classes > len(available):
            raise ValueError(f"num_classes={num_classes} but {src / 'train'} has only {len(available)} classes")
        picks = np.random.default_rng(seed).choice(len(available), size=num_classes, replace=False)
        chosen = sorted(available[i] for i in picks)

    scratch = check_splits_absent(dst, overwrite)
    # pick everything before writing anything: any shortfall is reported before DST is touched
    val_images = _val_images(src, chosen, val_labels)
    plan = {"train": {w: _choose(_images_in(src / "train" / w), train_per_class, w, "train", seed) for w in chosen},
            "val": {w: _choose(val_images[w], val_per_class, w, "val", seed) for w in chosen}}
    total = len(chosen) * (train_per_class + val_per_class)
    with progress_bar(total=total, desc=f"subset ({mode})", unit="img") as bar:
        for split in SPLITS:
            for wnid, images in plan[split].items():
                folder = scratch / split / wnid
                folder.mkdir(parents=True)
                for image in images:
                    _place(image, folder / image.name, mode)
                    bar.update()
    move_splits_into_place(scratch, dst)
    return dict(root=str(dst), classes=chosen, train=len(chosen) * train_per_class,
                val=len(chosen) * val_per_class, mode=mode, seed=seed)
