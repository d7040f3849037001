"""vit_ms.course: where the course files are looked for, and the notebooks' train-or-reuse model."""
import json

import pytest

from vit_ms import course


def test_require_course_files_names_both_downloads(tmp_path, monkeypatch):
    monkeypatch.setenv("VIT_MS_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError) as err:
        course.require_course_files(tmp_path)
    text = str(err.value)
    assert "course dataset" in text and "ViT-B/16 checkpoint" in text
    assert "python -m vit_ms download dataset" in text and "python -m vit_ms download checkpoint" in text
    for split in ("train", "val"):
        (tmp_path / "data" / "dataset" / split).mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="checkpoint") as err:
        course.require_course_files(tmp_path)
    assert "course dataset" not in str(err.value)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "vit_b_16_224.ckpt").write_bytes(b"x")
    assert course.require_course_files(tmp_path) == (tmp_path / "data" / "dataset",
                                                     tmp_path / "checkpoints" / "vit_b_16_224.ckpt")


def test_checkpoint_found_in_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VIT_MS_CACHE", str(tmp_path / "cache"))
    assert course.course_checkpoint_path(tmp_path) is None
    cached = tmp_path / "cache" / "checkpoints" / "vit_b_16_224.ckpt"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    assert course.course_checkpoint_path(tmp_path) == cached


@pytest.mark.slow
def test_notebook_model_trains_once_then_reuses(tmp_path, monkeypatch):
    small = dict(course.load_recipe("notebook"), image_size=32, embed_dim=48, num_heads=3, depth=1, epochs=1,
                 warmup_epochs=0, batch_size=16)
    monkeypatch.setattr(course, "load_recipe", lambda name: dict(small))
    model, classes, metrics = course.notebook_model(tmp_path, device="CPU", num_workers=1)
    checkpoint = tmp_path / small["output"] / "model.ckpt"
    assert checkpoint.is_file() and metrics["epochs"] == 1 and len(classes) == 10
    assert (tmp_path / "data" / "sample" / "val" / "ring_top_left").is_dir()  # the sample data, made first
    assert model.embed_dim == 48 and len(model.blocks) == 1
    stamp = checkpoint.stat().st_mtime_ns
    again, _, metrics_again = course.notebook_model(tmp_path, device="CPU", num_workers=1)
    assert checkpoint.stat().st_mtime_ns == stamp and metrics_again == json.loads(
        (checkpoint.parent / "metrics.json").read_text())  # reused, not retrained
    # a run of another recipe in the same folder is not taken for the notebook recipe's model
    monkeypatch.setattr(course, "load_recipe", lambda name: dict(small, lr=small["lr"] / 2))
    course.notebook_model(tmp_path, device="CPU", num_workers=1)
    assert checkpoint.stat().st_mtime_ns != stamp
