import os

import pytest

from vit_ms.__main__ import main
from vit_ms.subset import build_imagenet_subset, read_val_labels

WNIDS = [f"n0{i:07d}" for i in range(1, 9)]  # 8 classes


def fake_imagenet(root, train=6, val=4, flat_val=False):
    """SRC/train/<wnid>/<wnid>_<i>.JPEG; val in class folders or flat ILSVRC2012_val_*.JPEG, plus both label files.

    Every file's content names its class, so a test can tell where an image came from."""
    csv_rows, txt_lines, n = ["ImageId,PredictionString"], [], 0
    for wnid in WNIDS:
        (root / "train" / wnid).mkdir(parents=True)
        for i in range(train):
            (root / "train" / wnid / f"{wnid}_{i}.JPEG").write_text(f"{wnid} train {i}")
        for i in range(val):
            n += 1
            name = f"ILSVRC2012_val_{n:08d}"
            folder = root / "val" if flat_val else root / "val" / wnid
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{name}.JPEG").write_text(f"{wnid} val {i}")
            csv_rows.append(f"{name},{wnid} 10 20 30 40 {wnid} 1 2 3 4")
            txt_lines.append(f"{name}.JPEG {wnid}")
    (root / "LOC_val_solution.csv").write_text("\n".join(csv_rows) + "\n")
    (root / "val_labels.txt").write_text("\n".join(txt_lines) + "\n")
    return root


def listing(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def class_of(path):
    return path.read_text().split()[0]


def test_counts_layout_and_symlinks(tmp_path):
    src = fake_imagenet(tmp_path / "src")
    summary = build_imagenet_subset(src, tmp_path / "dst", num_classes=3, train_per_class=4, val_per_class=2)
    dst = tmp_path / "dst"
    assert (summary["train"], summary["val"], len(summary["classes"])) == (12, 6, 3)
    assert summary["classes"] == sorted(summary["classes"]) and set(summary["classes"]) <= set(WNIDS)
    for split, count in (("train", 4), ("val", 2)):
        assert sorted(p.name for p in (dst / split).iterdir()) == summary["classes"]
        for wnid in summary["classes"]:
            files = list((dst / split / wnid).iterdir())
            assert len(files) == count
            for f in files:
                assert f.is_symlink() and os.path.isabs(os.readlink(f))
                assert class_of(f) == wnid and f.resolve().parent == (src / split / wnid).resolve()
    assert sorted(p.name for p in dst.iterdir()) == ["train", "val"]  # no scratch folder left


def test_deterministic_and_seeded(tmp_path):
    src = fake_imagenet(tmp_path / "src")
    kwargs = dict(num_classes=3, train_per_class=3, val_per_class=2)
    build_imagenet_subset(src, tmp_path / "a", seed=0, **kwargs)
    build_imagenet_subset(src, tmp_path / "b", seed=0, **kwargs)
    assert listing(tmp_path / "a") == listing(tmp_path / "b")
    for seed in (1, 2, 3):
        build_imagenet_subset(src, tmp_path / f"s{seed}", seed=seed, **kwargs)
    assert any(listing(tmp_path / f"s{seed}") != listing(tmp_path / "a") for seed in (1, 2, 3))


def test_a_class_gets_the_same_images_whatever_else_is_chosen(tmp_path):
    src = fake_imagenet(tmp_path / "src")
    build_imagenet_subset(src, tmp_path / "one", wnids=[WNIDS[2]], train_per_class=3, val_per_class=2)
    build_imagenet_subset(src, tmp_path / "two", wnids=[WNIDS[5], WNIDS[2]], train_per_class=3, val_per_class=2)
    for split in ("train", "val"):
        one = sorted(p.name for p in (tmp_path / "one" / split / WNIDS[2]).iterdir())
        two = sorted(p.name for p in (tmp_path / "two" / split / WNIDS[2]).iterdir())
        assert one == two
    assert sorted(p.name for p in (tmp_path / "two" / "train").iterdir()) == sorted([WNIDS[2], WNIDS[5]])


@pytest.mark.parametrize("labels", ["LOC_val_solution.csv", "val_labels.txt"])
def test_flat_val_with_ground_truth(tmp_path, labels):
    src = fake_imagenet(tmp_path / "src", flat_val=True)
    summary = build_imagenet_subset(src, tmp_path / "dst", wnids=WNIDS[:4], train_per_class=2, val_per_class=3,
                                    val_labels=src / labels)
    assert summary["classes"] == WNIDS[:4]
    for wnid in WNIDS[:4]:
        files = sorted((tmp_path / "dst" / "val" / wnid).iterdir())
        assert len(files) == 3 and all(class_of(f) == wnid for f in files)
        assert all(f.name.startswith("ILSVRC2012_val_") for f in files)


def test_read_val_labels_formats(tmp_path):
    src = fake_imagenet(tmp_path / "src", flat_val=True)
    from_csv, from_txt = read_val_labels(src / "LOC_val_solution.csv"), read_val_labels(src / "val_labels.txt")
    assert from_csv == from_txt and len(from_csv) == 8 * 4
    assert from_csv["ILSVRC2012_val_00000001"] == WNIDS[0]


def test_devkit_ground_truth_is_refused(tmp_path):
    src = fake_imagenet(tmp_path / "src", flat_val=True)
    (src / "ILSVRC2012_validation_ground_truth.txt").write_text("490\n361\n171\n")
    with pytest.raises(ValueError, match="ILSVRC2012_IDs"):
        build_imagenet_subset(src, tmp_path / "dst", num_classes=2, train_per_class=1, val_per_class=1,
                              val_labels=src / "ILSVRC2012_validation_ground_truth.txt")
    assert not (tmp_path / "dst").exists()


def test_flat_val_without_labels_says_what_is_needed(tmp_path):
    src = fake_imagenet(tmp_path / "src", flat_val=True)
    with pytest.raises(FileNotFoundError, match="val_labels"):
        build_imagenet_subset(src, tmp_path / "dst", num_classes=2, train_per_class=1, val_per_class=1)


def test_labelled_images_missing_from_val(tmp_path):
    src = fake_imagenet(tmp_path / "src", flat_val=True)
    (src / "val" / "ILSVRC2012_val_00000002.JPEG").unlink()  # an image of WNIDS[0]
    with pytest.raises(FileNotFoundError, match="ILSVRC2012_val_00000002"):
        build_imagenet_subset(src, tmp_path / "dst", wnids=WNIDS[:1], train_per_class=1, val_per_class=1,
                              val_labels=src / "val_labels.txt")


def test_too_few_images_is_an_error(tmp_path):
    src = fake_imagenet(tmp_path / "src", train=6, val=4)
    with pytest.raises(ValueError, match="has 6 train images, fewer than the 7"):
        build_imagenet_subset(src, tmp_path / "dst", num_classes=2, train_per_class=7, val_per_class=1)
    with pytest.raises(ValueError, match="has 4 val images, fewer than the 5"):
        build_imagenet_subset(src, tmp_path / "dst", num_classes=2, train_per_class=1, val_per_class=5)
    assert not (tmp_path / "dst").exists()  # checked before anything is written


def test_class_selection_errors(tmp_path):
    src = fake_imagenet(tmp_path / "src")
    with pytest.raises(ValueError, match="n99999999"):
        build_imagenet_subset(src, tmp_path / "d", wnids=[WNIDS[0], "n99999999"])
    with pytest.raises(ValueError, match="exactly one of num_classes and wnids"):
        build_imagenet_subset(src, tmp_path / "d", num_classes=2, wnids=[WNIDS[0]])
    with pytest.raises(ValueError, match="exactly one of num_classes and wnids"):
        build_imagenet_subset(src, tmp_path / "d")
    with pytest.raises(ValueError, match="only 8 classes"):
        build_imagenet_subset(src, tmp_path / "d", num_classes=9)
    with pytest.raises(TypeError, match="list of strings"):
        build_imagenet_subset(src, tmp_path / "d", wnids=WNIDS[0])
    with pytest.raises(ValueError, match="duplicates"):
        build_imagenet_subset(src, tmp_path / "d", wnids=[WNIDS[0], WNIDS[0]], train_per_class=1, val_per_class=1)
    with pytest.raises(ValueError, match="mode"):
        build_imagenet_subset(src, tmp_path / "d", num_classes=1, mode="move")
    with pytest.raises(FileNotFoundError, match="train"):
        build_imagenet_subset(tmp_path / "nowhere", tmp_path / "d", num_classes=1)


@pytest.mark.parametrize("mode", ["hardlink", "copy"])
def test_hardlink_and_copy(tmp_path, mode):
    src = fake_imagenet(tmp_path / "src")
    build_imagenet_subset(src, tmp_path / "dst", wnids=WNIDS[:1], train_per_class=2, val_per_class=1, mode=mode)
    for f in (tmp_path / "dst").rglob("*.JPEG"):
        original = src / f.relative_to(tmp_path / "dst")
        assert not f.is_symlink() and f.read_bytes() == original.read_bytes()
        assert os.path.samefile(f, original) == (mode == "hardlink")


def test_existing_output_needs_overwrite(tmp_path):
    src = fake_imagenet(tmp_path / "src")
    build_imagenet_subset(src, tmp_path / "dst", num_classes=1, train_per_class=1, val_per_class=1)
    with pytest.raises(FileExistsError, match="overwrite"):
        build_imagenet_subset(src, tmp_path / "dst", num_classes=2, train_per_class=1, val_per_class=1)
    build_imagenet_subset(src, tmp_path / "dst", num_classes=2, train_per_class=1, val_per_class=1, overwrite=True)
    assert len(list((tmp_path / "dst" / "train").iterdir())) == 2


def test_cli(tmp_path, capsys):
    src = fake_imagenet(tmp_path / "src", flat_val=True)
    code = main(["build-subset", str(src), str(tmp_path / "dst"), "--wnids", f"{WNIDS[3]},{WNIDS[1]}",
                 "--train-per-class", "2", "--val-per-class", "1", "--val-labels", str(src / "LOC_val_solution.csv"),
                 "--mode", "copy"])
    assert code == 0 and "4 train + 2 val images of 2 classes" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "dst" / "val").iterdir()) == [WNIDS[1], WNIDS[3]]
    with pytest.raises(SystemExit):  # --classes and --wnids are exclusive
        main(["build-subset", str(src), str(tmp_path / "x"), "--classes", "2", "--wnids", WNIDS[0]])
