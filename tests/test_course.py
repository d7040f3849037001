"""vit_ms.course: where the course files are looked for, and the notebooks' train-or-reuse model."""
import json
import os

import numpy as np
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


def _small_recipe(monkeypatch, epochs=2):
    small = dict(course.load_recipe("notebook"), image_size=32, embed_dim=48, num_heads=3, depth=1, epochs=epochs,
                 warmup_epochs=0, batch_size=16)
    monkeypatch.setattr(course, "load_recipe", lambda name: dict(small))
    return small


def _weights(path):
    import mindspore as ms

    return {k: v.asnumpy() for k, v in ms.load_checkpoint(str(path)).items() if not isinstance(v, str)}


@pytest.mark.slow
def test_a_retraining_interrupted_after_its_first_model_save_is_not_taken_for_the_finished_model(
        tmp_path, monkeypatch, capsys):
    """Notebook 04 retrains into the folder of a finished run; the stop button lands after epoch 1's model.ckpt is
    written and before the rest: that half-trained model.ckpt must not pass for the finished run's."""
    import vit_ms.train
    from vit_ms.config import TrainConfig

    small = _small_recipe(monkeypatch)
    course.notebook_model(tmp_path, device="CPU", num_workers=1)          # a finished run
    output = tmp_path / small["output"]
    real_save = vit_ms.train.atomic_save

    def stop_at_last_ckpt(cell, path, extra=None):
        if str(path).endswith("last.ckpt"):
            raise KeyboardInterrupt  # what Jupyter's stop button raises
        return real_save(cell, path, extra)

    monkeypatch.setattr(vit_ms.train, "atomic_save", stop_at_last_ckpt)
    with pytest.raises(KeyboardInterrupt):
        vit_ms.train.train(TrainConfig(**dict(small, data=str(tmp_path / small["data"]), output=str(output),
                                              device="CPU", num_workers=1, seed=1)))
    monkeypatch.setattr(vit_ms.train, "atomic_save", real_save)
    half_trained = _weights(output / "model.ckpt")
    capsys.readouterr()

    model, _, metrics = course.notebook_model(tmp_path, device="CPU", num_workers=1)
    assert "training the notebook recipe's model into" in capsys.readouterr().out  # retrained, and said so
    assert metrics["epochs"] == 2 and [h["epoch"] for h in metrics["history"]] == [1, 2]
    final = _weights(output / "model.ckpt")
    assert any(not np.array_equal(final[k], half_trained[k]) for k in final)
    for p in model.get_parameters():
        np.testing.assert_array_equal(p.asnumpy(), final[p.name])


@pytest.mark.slow
def test_an_interrupted_notebook_model_run_is_resumed_and_says_so(tmp_path, monkeypatch, capsys):
    import vit_ms.train
    from vit_ms.config import TrainConfig

    small = _small_recipe(monkeypatch, epochs=3)
    config = dict(small, data=str(tmp_path / small["data"]), output=str(tmp_path / small["output"]), device="CPU",
                  num_workers=1)
    from vit_ms.sample_data import make_sample_data

    make_sample_data(tmp_path / small["data"])
    straight = vit_ms.train.train(TrainConfig(**dict(config, output=str(tmp_path / "straight"))))

    def stop(epoch, record, model):  # the stop button after epoch 1
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        vit_ms.train.train(TrainConfig(**config), on_epoch_end=stop)
    capsys.readouterr()
    model, _, metrics = course.notebook_model(tmp_path, device="CPU", num_workers=1)
    out = capsys.readouterr().out
    assert f"resuming the notebook recipe's training in {tmp_path / small['output']}: it stopped after epoch 1 of 3" \
        in out, out
    assert [h["epoch"] for h in metrics["history"]] == [1, 2, 3]
    assert [h["val_loss"] for h in metrics["history"]] == [h["val_loss"] for h in straight["history"]]
    expected = _weights(tmp_path / "straight" / "model.ckpt")
    for p in model.get_parameters():
        np.testing.assert_array_equal(p.asnumpy(), expected[p.name])


def test_messages_show_the_repository_paths_relative_to_a_notebook(tmp_path, monkeypatch):
    from vit_ms.runtime import shown_path

    (tmp_path / "repo" / "notebooks").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "repo" / "notebooks")
    assert shown_path(tmp_path / "repo" / "runs" / "notebook04") == os.path.join("..", "runs", "notebook04")
    assert shown_path(tmp_path / "repo" / "notebooks" / "x.png") == "x.png"
    elsewhere = tmp_path / "other" / "run"  # two folders up and more: as given
    assert shown_path(elsewhere) == str(elsewhere)
