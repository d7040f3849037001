import json
import os
import re

import numpy as np
import pytest
from PIL import Image

from vit_ms.data import (CLASS_NAMES_FILE, IMAGENET_MEAN, IMAGENET_STD, _EncodedImages, class_names_for,
                         create_dataset, load_class_names, load_image, scan_image_folder)

CLASSES = ["zebra", "apple", "n01440764"]  # sorted: apple, n01440764 (an ImageNet WNID), zebra
SORTED = sorted(CLASSES)
SIZE = 32  # 40x48 images -> val: resize shorter side to 36, centre crop 32


def colour(label, index):
    """A distinct constant colour per image, so any crop of it tells which file it came from."""
    return 40 + 80 * label, 20 + 35 * index, 90


def make_folder(root, split, per_class, classes=CLASSES, extension=None):
    """per_class images of 40x48 px per class; alternating PNG and upper-case .JPEG unless extension is given."""
    for name in classes:
        folder = root / split / name
        folder.mkdir(parents=True)
        for j in range(per_class):
            ext = extension or (".png" if j % 2 == 0 else ".JPEG")
            pixels = np.zeros((40, 48, 3), np.uint8) + np.array(colour(SORTED.index(name), j), np.uint8)
            Image.fromarray(pixels).save(folder / f"img_{j}{ext}", quality=95)
    return root


def identify(image, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """(label, index) of a constant-colour image [3, S, S] from its normalised pixels."""
    rgb = (image.mean(axis=(1, 2)) * np.array(std) + np.array(mean)) * 255
    return int(round((rgb[0] - 40) / 80)), int(round((rgb[1] - 20) / 35))


def batches(data):
    return [(images.asnumpy(), labels.asnumpy()) for images, labels in data.dataset.create_tuple_iterator(num_epochs=1)]


def identities(data):
    return [identify(image) for images, _ in batches(data) for image in images]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("folder")
    make_folder(root, "train", 6)
    make_folder(root, "val", 2, extension=".png")
    return root


def test_scan_orders_classes_by_sorted_folder_name(root):
    samples, classes = scan_image_folder(root, "train")
    assert classes == SORTED
    assert len(samples) == 18
    for path, label in samples:
        assert f"/{SORTED[label]}/" in path
    assert [label for _, label in samples] == sorted(label for _, label in samples)


def test_val_batches_are_normalised_centre_crops(root):
    data = create_dataset(root, "val", image_size=SIZE, batch_size=4)
    assert data.classes == SORTED and data.class_names == ["apple", "tench", "zebra"]
    assert data.num_samples == 6 and data.steps_per_epoch == 2 and data.skipped == []
    got = batches(data)
    assert [images.shape for images, _ in got] == [(4, 3, SIZE, SIZE), (2, 3, SIZE, SIZE)]  # last batch kept
    images = np.concatenate([images for images, _ in got])
    labels = np.concatenate([labels for _, labels in got])
    assert images.dtype == np.float32 and labels.dtype == np.int32
    assert labels.tolist() == [0, 0, 1, 1, 2, 2]  # no shuffling for val
    for image, (path, label) in zip(images, data.samples):
        j = int(re.search(r"img_(\d)", path).group(1))
        expected = (np.array(colour(label, j)) / 255 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
        np.testing.assert_allclose(image, np.broadcast_to(expected[:, None, None], image.shape), atol=1e-5)


def test_train_batches_are_augmented_crops_with_matching_labels(root):
    data = create_dataset(root, "train", image_size=SIZE, batch_size=4)
    assert data.num_samples == 18 and data.steps_per_epoch == 4
    got = batches(data)
    assert len(got) == 4  # drop_remainder for training: 18 // 4
    seen = []
    for images, labels in got:
        assert images.shape == (4, 3, SIZE, SIZE) and images.dtype == np.float32 and labels.dtype == np.int32
        for image, label in zip(images, labels):
            assert identify(image)[0] == label
            seen.append(identify(image))
    assert len(set(seen)) == 16  # every image at most once per epoch


def test_randaugment_and_mixup(root):
    data = create_dataset(root, "train", image_size=SIZE, batch_size=6, auto_augment="randaug-m9-mstd0.5")
    images, labels = batches(data)[0]
    assert images.shape == (6, 3, SIZE, SIZE) and np.isfinite(images).all() and labels.dtype == np.int32

    data = create_dataset(root, "train", image_size=SIZE, batch_size=6, mixup=0.8, num_classes=5)
    for _, labels in batches(data):
        assert labels.shape == (6, 5) and labels.dtype == np.float32
        np.testing.assert_allclose(labels.sum(axis=1), 1.0, atol=1e-6)
        assert (labels[:, 3:] == 0).all()
    with pytest.raises(ValueError, match="training=False"):
        create_dataset(root, "val", mixup=0.8)
    with pytest.raises(ValueError, match="auto_augment"):
        create_dataset(root, "train", auto_augment="colorful")
    with pytest.raises(ValueError, match="crop_scale"):
        create_dataset(root, "train", crop_scale=(0.5, 0.2))


def test_seeded_shuffle_repeats(root):
    first = identities(create_dataset(root, "train", image_size=SIZE, batch_size=6, seed=3))
    again = identities(create_dataset(root, "train", image_size=SIZE, batch_size=6, seed=3))
    other = identities(create_dataset(root, "train", image_size=SIZE, batch_size=6, seed=4))
    assert first == again
    assert first != other
    assert first != sorted(first)  # shuffled at all
    assert sorted(first) == sorted(other) == [(c, j) for c in range(3) for j in range(6)]


def test_shards_split_the_samples(root):
    def shard(num_shards, shard_id):
        data = create_dataset(root, "train", image_size=SIZE, batch_size=4, drop_remainder=False, seed=1,
                              num_shards=num_shards, shard_id=shard_id)
        got = identities(data)
        assert len(got) == data.num_samples
        return got

    shards = [shard(3, i) for i in range(3)]
    assert [len(s) for s in shards] == [6, 6, 6]
    assert sorted(sum(shards, [])) == [(c, j) for c in range(3) for j in range(6)]  # disjoint and complete
    shards = [shard(4, i) for i in range(4)]
    assert [len(s) for s in shards] == [5, 5, 5, 5]  # ceil(18 / 4); 2 samples repeat to even the shards out
    assert len(set(sum(shards, []))) == 18
    with pytest.raises(ValueError, match="fewer than the 19 shards"):
        create_dataset(root, "train", num_shards=19, shard_id=0)
    with pytest.raises(ValueError, match="shard_id"):
        create_dataset(root, "train", num_shards=3, shard_id=3)
    with pytest.raises(ValueError, match="both num_shards and shard_id"):
        create_dataset(root, "train", num_shards=3)


def test_unreadable_images_are_skipped_and_named(tmp_path):
    root = make_folder(tmp_path, "train", 2, classes=["apple", "zebra"])
    good = (root / "train" / "apple" / "img_1.JPEG").read_bytes()
    truncated = root / "train" / "apple" / "truncated.JPEG"
    truncated.write_bytes(good[: len(good) // 2])
    text = root / "train" / "zebra" / "notanimage.JPEG"
    text.write_text("this is not an image")

    with pytest.warns(UserWarning, match=r"skipping 2 unreadable.*notanimage\.JPEG"):
        data = create_dataset(root, "train", image_size=SIZE, batch_size=2)
    assert sorted(data.skipped) == sorted([str(truncated), str(text)])
    assert data.num_samples == 4 and len(batches(data)) == 2
    with pytest.raises(ValueError, match=r"(?i)truncated\.JPEG \(.*truncated"):
        create_dataset(root, "train", strict=True)
    # headers only: the non-image file is still caught, the truncated JPEG is not
    with pytest.warns(UserWarning, match=r"skipping 1 unreadable.*notanimage\.JPEG \(not a JPEG"):
        data = create_dataset(root, "train", image_size=SIZE, batch_size=2, check_images=False)
    assert data.skipped == [str(text)] and data.num_samples == 5
    # a file that turns bad after the check is named by the reader instead of failing anonymously in Decode
    with pytest.raises(ValueError, match=r"notanimage\.JPEG is not a JPEG/PNG/BMP/TIFF image"):
        _EncodedImages([(str(text), 0)])[0]


def test_missing_or_empty_folders_are_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no 'train' folder.*train/<class>/<image>"):
        create_dataset(tmp_path, "train")
    (tmp_path / "train").mkdir()
    with pytest.raises(ValueError, match="has no class folders"):
        scan_image_folder(tmp_path, "train")
    (tmp_path / "train" / "empty_class").mkdir()
    (tmp_path / "train" / "empty_class" / ".DS_Store").write_bytes(b"x")  # hidden files do not count
    with pytest.raises(ValueError, match=r"hold no images: \['empty_class'\]"):
        scan_image_folder(tmp_path, "train")


def test_val_classes_use_train_indices(tmp_path):
    make_folder(tmp_path, "train", 1)
    make_folder(tmp_path, "val", 1, classes=["zebra"])
    (tmp_path / "val" / "zebra" / "notes.txt").write_text("not an image")
    with pytest.warns(UserWarning, match=r"ignored 1 file.*notes\.txt"):
        samples, classes = scan_image_folder(tmp_path, "val")
    assert classes == SORTED and [label for _, label in samples] == [2]
    (tmp_path / "val" / "mango").mkdir()
    (tmp_path / "val" / "zebra" / "img_0.png").rename(tmp_path / "val" / "mango" / "img_0.png")
    with pytest.raises(ValueError, match=r"class folder\(s\) that .*train lacks: \['mango'\]"):
        scan_image_folder(tmp_path, "val")


def test_imagenet_class_names_file():
    pairs = json.loads(CLASS_NAMES_FILE.read_text(encoding="utf-8"), object_pairs_hook=list)
    wnids = [wnid for wnid, _ in pairs]
    assert len(wnids) == 1000 and len(set(wnids)) == 1000  # no duplicate keys in the file
    assert wnids == sorted(wnids)  # file order = class index
    assert all(re.fullmatch(r"n\d{8}", w) for w in wnids)
    names = load_class_names()
    assert list(names) == wnids
    assert len(set(names.values())) == 1000
    assert names["n01440764"] == "tench"
    assert names["n02123045"] == "tabby"
    assert names["n15075141"] == "toilet tissue"  # last class
    assert class_names_for(["n02123045", "golden_retriever", "n99999999"]) == ["tabby", "golden retriever",
                                                                              "n99999999"]


def test_load_image_matches_val_pipeline(tmp_path):
    rng = np.random.default_rng(0)
    for name, ext in (("a", ".JPEG"), ("b", ".png")):
        (tmp_path / "val" / name).mkdir(parents=True)
        pixels = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)  # textured: the crop position matters
        Image.fromarray(pixels).save(tmp_path / "val" / name / f"x{ext}")
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.5, 1.0)
    data = create_dataset(tmp_path, "val", image_size=SIZE, batch_size=1, mean=mean, std=std)
    for (path, _), (images, _) in zip(data.samples, batches(data)):
        array, shown = load_image(path, SIZE, mean, std)
        assert array.shape == (1, 3, SIZE, SIZE) and array.dtype == np.float32
        assert shown.shape == (SIZE, SIZE, 3) and shown.dtype == np.uint8
        np.testing.assert_allclose(array, images, atol=1e-6)
        expected = (shown.transpose(2, 0, 1) / 255 - np.array(mean)[:, None, None]) / np.array(std)[:, None, None]
        np.testing.assert_allclose(array[0], expected, atol=1e-5)
        decoded = np.asarray(Image.open(path).convert("RGB"))
        if path.endswith(".png"):  # lossless: an array or PIL image gives the same as the file
            np.testing.assert_allclose(load_image(decoded, SIZE, mean, std)[0], array, atol=1e-6)
            np.testing.assert_allclose(load_image(Image.open(path), SIZE, mean, std)[0], array, atol=1e-6)


def test_load_image_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        load_image(tmp_path / "missing.jpg")
    (tmp_path / "bad.jpg").write_text("not an image")
    with pytest.raises(ValueError, match="bad.jpg"):
        load_image(tmp_path / "bad.jpg")
    with pytest.raises(ValueError, match=r"uint8 RGB \[H, W, 3\]"):
        load_image(np.zeros((8, 8), np.float32))
    with pytest.raises(TypeError, match="got int"):
        load_image(3)


def _fresh_decodes(monkeypatch):
    """Empty the process's caches of decoded images and of announced folders, for this test only."""
    import vit_ms.data as data_module

    monkeypatch.setattr(data_module, "_decoded", {})
    monkeypatch.setattr(data_module, "_streaming_said", set())


@pytest.mark.parametrize("split, kwargs", [("train", dict(seed=5, crop_scale=(0.3, 1.0), hflip=0.5)),
                                           ("val", dict())])
def test_in_memory_batches_equal_streamed_batches(tmp_path, monkeypatch, split, kwargs):
    # photo-like content (a gradient with noise), so that any difference in crop or decode shows in the pixels
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        for split_name in ("train", "val"):
            folder = tmp_path / split_name / name
            folder.mkdir(parents=True)
            for j in range(5):
                pixels = (np.linspace(0, 255, 60)[None, :, None] + rng.normal(0, 30, (44, 60, 3))).clip(0, 255)
                Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{j}.jpg", quality=85)
    _fresh_decodes(monkeypatch)
    streamed = create_dataset(tmp_path, split, image_size=SIZE, batch_size=4, in_memory=False, **kwargs)
    in_memory = create_dataset(tmp_path, split, image_size=SIZE, batch_size=4, **kwargs)
    assert not streamed.in_memory and in_memory.in_memory
    first, second = batches(streamed), batches(in_memory)
    assert len(first) == len(second) == (2 if split == "train" else 3)
    for (images_a, labels_a), (images_b, labels_b) in zip(first, second):
        np.testing.assert_array_equal(labels_a, labels_b)
        np.testing.assert_array_equal(images_a, images_b)
    if split == "train":  # another seed draws other crops, from memory as from disk
        other = batches(create_dataset(tmp_path, split, image_size=SIZE, batch_size=4, **dict(kwargs, seed=6)))
        assert not all(np.array_equal(a[0], b[0]) for a, b in zip(first, other))


def test_a_split_over_the_memory_limit_streams_and_says_so_once(root, monkeypatch, capsys):
    _fresh_decodes(monkeypatch)
    decoded_mb = 18 * 40 * 48 * 3 / (1 << 20)  # the fixture's 18 training images of 40x48
    kept = create_dataset(root, "train", image_size=SIZE, memory_limit_mb=decoded_mb * 1.01)
    assert kept.in_memory and capsys.readouterr().out == ""
    over = [create_dataset(root, "train", image_size=SIZE, memory_limit_mb=decoded_mb * 0.99) for _ in range(2)]
    assert not any(d.in_memory for d in over)
    said = capsys.readouterr().out
    assert said.count("decoded from disk every epoch") == 1 and str(root / "train") in said
    assert sorted(identities(over[1])) == sorted(identities(kept))


def test_decoded_images_are_kept_and_a_changed_file_is_decoded_again(tmp_path, monkeypatch):
    import vit_ms.data as data_module

    _fresh_decodes(monkeypatch)
    make_folder(tmp_path, "train", 2, classes=["apple"], extension=".png")
    paths = sorted(str(p) for p in (tmp_path / "train" / "apple").iterdir())
    first = data_module.decode_images(paths)
    assert [p.shape for p in first] == [(40, 48, 3)] * 2
    assert data_module.decode_images(paths)[0] is first[0]  # kept, not decoded again
    Image.fromarray(np.full((40, 48, 3), 7, np.uint8)).save(paths[0])
    os.utime(paths[0], ns=(1, 1))  # a different time stamp, whatever the file system's resolution
    again = data_module.decode_images(paths)
    assert again[0] is not first[0] and (again[0] == 7).all() and again[1] is first[1]


def test_images_of_other_folders_are_dropped_when_the_memory_limit_would_be_exceeded(tmp_path, monkeypatch):
    import vit_ms.data as data_module

    _fresh_decodes(monkeypatch)
    make_folder(tmp_path / "a", "train", 2, classes=["apple"], extension=".png")
    make_folder(tmp_path / "b", "train", 2, classes=["apple"], extension=".png")
    first = sorted(str(p) for p in (tmp_path / "a" / "train" / "apple").iterdir())
    second = sorted(str(p) for p in (tmp_path / "b" / "train" / "apple").iterdir())
    one_folder_mb = 2 * 40 * 48 * 3 / (1 << 20)
    data_module.decode_images(first, keep_mb=one_folder_mb * 3)
    data_module.decode_images(second, keep_mb=one_folder_mb * 3)
    assert set(data_module._decoded) == set(first + second)  # both fit: both kept
    data_module.decode_images(first, keep_mb=one_folder_mb * 1.5)  # kept already: nothing to decode, nothing dropped
    assert set(data_module._decoded) == set(first + second)
    Image.fromarray(np.full((40, 48, 3), 9, np.uint8)).save(first[0])
    os.utime(first[0], ns=(2, 2))
    data_module.decode_images(first, keep_mb=one_folder_mb * 1.5)  # one to decode again: the other folder goes
    assert set(data_module._decoded) == set(first)
