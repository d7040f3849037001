import numpy as np
import pytest
from PIL import Image

from vit_ms.__main__ import main
from vit_ms.sample_data import CLASSES, image_rng, make_sample_data, render_shape, shape_alpha


def _files(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_counts_and_images(tmp_path):
    summary = make_sample_data(tmp_path, image_size=64, train_per_class=3, val_per_class=2)
    assert summary["classes"] == list(CLASSES) and len(set(CLASSES)) == 10
    assert (summary["train"], summary["val"]) == (30, 20)
    for split, count in (("train", 3), ("val", 2)):
        assert sorted(p.name for p in (tmp_path / split).iterdir()) == sorted(CLASSES)
        for name in CLASSES:
            files = sorted((tmp_path / split / name).iterdir())
            assert [f.name for f in files] == [f"{name}_{i:05d}.JPEG" for i in range(count)]
            for f in files:
                with Image.open(f) as im:
                    assert (im.format, im.mode, im.size) == ("JPEG", "RGB", (64, 64))
    assert summary["bytes"] == sum(len(b) for b in _files(tmp_path).values())
    assert not (tmp_path / ".partial").exists()


def test_byte_identical_and_independent_of_count(tmp_path):
    a = make_sample_data(tmp_path / "a", train_per_class=3, val_per_class=2, seed=7)
    b = make_sample_data(tmp_path / "b", train_per_class=3, val_per_class=2, seed=7)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert a["bytes"] == b["bytes"]
    # more images per class: the first ones are unchanged (each image has its own seeded generator)
    make_sample_data(tmp_path / "c", train_per_class=5, val_per_class=3, seed=7)
    more = _files(tmp_path / "c")
    assert all(more[k] == v for k, v in _files(tmp_path / "a").items())
    make_sample_data(tmp_path / "d", train_per_class=3, val_per_class=2, seed=8)
    assert _files(tmp_path / "d") != _files(tmp_path / "a")


def test_render_does_not_depend_on_order():
    keys = [(split, c, i) for split in ("train", "val") for c in range(len(CLASSES)) for i in range(2)]
    forward = {k: render_shape(CLASSES[k[1]], 64, image_rng(0, *k)) for k in keys}
    backward = {k: render_shape(CLASSES[k[1]], 64, image_rng(0, *k)) for k in reversed(keys)}
    assert all(np.array_equal(forward[k], backward[k]) for k in keys)
    assert not np.array_equal(forward[("train", 0, 0)], forward[("val", 0, 0)])


def _bbox(alpha):
    rows, cols = np.nonzero(alpha > 0.5)
    return rows.min(), rows.max(), cols.min(), cols.max()


@pytest.mark.parametrize("name", CLASSES)
def test_shapes_keep_their_class(name):
    size = 64
    for i in range(40):
        alpha = shape_alpha(name, size, image_rng(0, "train", CLASSES.index(name), i))
        top, bottom, left, right = _bbox(alpha)
        assert max(bottom - top, right - left) + 1 >= 1.5 * 8            # spans more than one 8x8 patch
        height, width = bottom - top + 1, right - left + 1
        if name in ("hbar", "dots_h"):
            assert width > 1.5 * height
        if name in ("vbar", "dots_v"):
            assert height > 1.5 * width
        rows, cols = np.nonzero(alpha > 0.5)
        row, col = int(round(rows.mean())), int(round(cols.mean()))
        if name.startswith("ring_"):
            assert alpha[row, col] == 0.0  # hollow middle
            # the quarter its name gives, its centre at least 0.3 half-widths (15% of the image) from the middle
            # lines, so crops of >= 85% of the area and evaluation's centre crop keep the class
            centre_x, centre_y = (left + right + 1) / size - 1.0, (top + bottom + 1) / size - 1.0
            assert (centre_x < -0.25) if name.endswith("_left") else (centre_x > 0.25)
            assert (centre_y < -0.25) if "_top_" in name else (centre_y > 0.25)
        if name in ("disc", "plus"):
            assert alpha[row, col] == 1.0
        if name in ("dots_h", "dots_v"):  # four separate dots along the row (column) through the centre
            line = alpha[row] if name == "dots_h" else alpha[:, col]
            assert np.count_nonzero(np.diff((line > 0.5).astype(int)) == 1) == 4


def test_shapes_appear_anywhere_at_varied_scales():
    """Every class's shapes reach every third of the image in both directions, and their sizes vary by > 1.5x:
    the content is not centred, so every patch position sees shapes (the rings, by design, each one quarter)."""
    size = 64
    for c, name in enumerate(CLASSES):
        boxes = [_bbox(shape_alpha(name, size, image_rng(0, "train", c, i))) for i in range(60)]
        centres_x = [(left + right) / 2 / size for _, _, left, right in boxes]
        centres_y = [(top + bottom) / 2 / size for top, bottom, _, _ in boxes]
        extents = [max(bottom - top, right - left) for top, bottom, left, right in boxes]
        assert max(extents) > 1.5 * min(extents), name
        if not name.startswith("ring_"):
            for centres in (centres_x, centres_y):
                assert min(centres) < 1 / 3 and max(centres) > 2 / 3 and \
                    any(1 / 3 <= v <= 2 / 3 for v in centres), name
    covered = np.zeros((size, size), bool)
    for c, name in enumerate(CLASSES):
        for i in range(40):
            covered |= shape_alpha(name, size, image_rng(0, "train", c, i)) > 0.5
    # together the shapes reach every 8x8 patch of the 64x64 image, the border patches included
    assert covered.reshape(8, 8, 8, 8).any(axis=(1, 3)).all()


def test_contrast_between_shape_and_background():
    for c, name in enumerate(CLASSES):
        for i in range(10):
            rng_args = (0, "train", c, i)
            alpha = shape_alpha(name, 64, image_rng(*rng_args))
            image = render_shape(name, 64, image_rng(*rng_args)).astype(float) @ [0.299, 0.587, 0.114]
            assert abs(image[alpha == 1].mean() - image[alpha == 0].mean()) > 0.25 * 255


def test_default_size_is_small(tmp_path):
    summary = make_sample_data(tmp_path, train_per_class=10, val_per_class=10)
    per_image = summary["bytes"] / (summary["train"] + summary["val"])
    assert per_image * 10 * (200 + 50) < 10e6  # the default 2500 images stay under 10 MB


def test_refuses_to_overwrite_unless_asked(tmp_path):
    make_sample_data(tmp_path, train_per_class=1, val_per_class=1)
    (tmp_path / "train" / "stale.txt").write_text("old")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        make_sample_data(tmp_path, train_per_class=2, val_per_class=1)
    make_sample_data(tmp_path, train_per_class=2, val_per_class=1, overwrite=True)
    assert not (tmp_path / "train" / "stale.txt").exists()
    assert len(list((tmp_path / "train").rglob("*.JPEG"))) == 20


def test_the_same_dataset_again_is_kept_as_it_is(tmp_path, capsys):
    first = make_sample_data(tmp_path, image_size=32, train_per_class=2, val_per_class=1)
    stamps = {f: f.stat().st_mtime_ns for f in tmp_path.rglob("*.JPEG")}
    again = make_sample_data(tmp_path, image_size=32, train_per_class=2, val_per_class=1)
    assert not first["existing"] and again["existing"]
    assert {k: v for k, v in again.items() if k not in ("existing", "seconds")} == \
        {k: v for k, v in first.items() if k not in ("existing", "seconds")}
    assert {f: f.stat().st_mtime_ns for f in tmp_path.rglob("*.JPEG")} == stamps     # nothing rewritten
    assert main(["make-sample-data", str(tmp_path), "--image-size", "32", "--train-per-class", "2",
                 "--val-per-class", "1"]) == 0
    assert "already holds this sample dataset" in capsys.readouterr().out


@pytest.mark.parametrize("kwargs, match", [(dict(image_size=16), "image_size"), (dict(train_per_class=0),
                                           "train_per_class"), (dict(val_per_class=1.5), "val_per_class"),
                                           (dict(seed=-1), "seed")])
def test_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_sample_data(tmp_path, **kwargs)
    assert not any(tmp_path.iterdir())


def test_cli(tmp_path, capsys):
    code = main(["make-sample-data", str(tmp_path / "s"), "--image-size", "32", "--train-per-class", "2",
                 "--val-per-class", "1", "--seed", "3"])
    assert code == 0
    assert "20 train + 10 val" in capsys.readouterr().out
    with Image.open(tmp_path / "s" / "val" / "ring_top_left" / "ring_top_left_00000.JPEG") as im:
        assert im.size == (32, 32)
    assert main(["make-sample-data", str(tmp_path / "s"), "--train-per-class", "1", "--val-per-class", "1",
                 "--force"]) == 0
