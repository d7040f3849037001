"""What the notebooks share: where the course's files are, and the notebooks' own trained model.

The course files (MindSpore's ViT tutorial) are its ImageNet subset, DATA=ROOT/data/dataset, and the published
ViT-B/16 checkpoint; ``python -m vit_ms download dataset|checkpoint`` puts them where these functions look.
"""
import json
from pathlib import Path

from .recipes import load_recipe

DOWNLOAD_COMMANDS = ("python -m vit_ms download dataset", "python -m vit_ms download checkpoint")
CHECKPOINT_NAME = "vit_b_16_224.ckpt"


def course_dataset(root="."):
    """ROOT/data/dataset when it holds train/ and val/ (where `download dataset` extracts it), else None."""
    dataset = Path(root) / "data" / "dataset"
    return dataset if (dataset / "train").is_dir() and (dataset / "val").is_dir() else None


def checkpoint_places(root="."):
    """Where the published ViT-B/16 checkpoint is looked for, in order: ROOT/checkpoints (where `download checkpoint`
    saves it), ROOT/data, and the cache that create_model(..., pretrained=True) downloads into."""
    from .runtime import cache_dir

    root = Path(root)
    return [root / "checkpoints" / CHECKPOINT_NAME, root / "data" / CHECKPOINT_NAME,
            cache_dir() / "checkpoints" / CHECKPOINT_NAME]


def course_checkpoint_path(root="."):
    """The first place that holds the published ViT-B/16 checkpoint, or None."""
    return next((p for p in checkpoint_places(root) if p.is_file()), None)


def require_course_files(root="."):
    """(dataset folder, checkpoint path) for the course recipe; FileNotFoundError naming what is missing and the
    download commands otherwise (training ViT-B/16 from scratch on a few thousand images would teach nothing)."""
    dataset, checkpoint = course_dataset(root), course_checkpoint_path(root)
    missing = ([f"the course dataset (expected {Path(root) / 'data' / 'dataset'}/train and /val)"] if dataset is None
               else []) + ([f"the ViT-B/16 checkpoint (looked in {', '.join(map(str, checkpoint_places(root)))})"]
                           if checkpoint is None else [])
    if missing:
        raise FileNotFoundError(f"the course recipe needs {' and '.join(missing)}; get them with "
                                f"`{DOWNLOAD_COMMANDS[0]}` and `{DOWNLOAD_COMMANDS[1]}` (run from {Path(root)}), "
                                f"then run this again")
    return dataset, checkpoint


def notebook_model(root=".", device="auto", num_workers=2):
    """The notebooks' trained model: the notebook recipe (vit_ms/recipes/notebook.yaml) on the offline sample data.

    Read from ROOT/runs/notebook04 when a finished run of exactly this recipe is there (notebook 04 writes it). A run
    of this recipe that stopped part-way (a cell interrupted, a kernel restarted) is resumed from its last complete
    epoch; otherwise the model is trained now, with a progress bar, after making the sample data if it is not there.
    One line says which. So every notebook that shows a trained model runs on its own, in any order, and never
    takes a half-trained model for a finished one. Returns (model, class names, training metrics).
    """
    from .checkpoint import load_model
    from .config import TrainConfig
    from .runtime import shown_path
    from .sample_data import make_sample_data
    from .train import train

    root = Path(root)
    recipe = load_recipe("notebook")
    data, output = root / recipe["data"], root / recipe["output"]
    state, metrics = _run_state(output, recipe)
    if state != "finished":
        make_sample_data(data)  # keeps the same dataset; an older, different one is a FileExistsError
        config = TrainConfig(**dict(recipe, data=str(data), output=str(output), device=device,
                                    num_workers=num_workers, resume=state == "stopped"))
        if state == "stopped":
            print(f"resuming the notebook recipe's training in {output}: it stopped after epoch "
                  f"{metrics['epochs']} of {recipe['epochs']}")
        else:
            print(f"training the notebook recipe's model into {shown_path(output)} (it is not there yet)")
        metrics = train(config)
    model, classes = load_model(output / "model.ckpt")
    model.set_train(False)
    return model, classes, metrics


def _run_state(output, recipe):
    """("finished" | "stopped" | None, metrics) of the run in OUTPUT: finished the recipe (every setting but the
    paths equal, every epoch done), stopped part-way with a checkpoint to resume from, or neither."""
    from .train import unfinished_run

    path = output / "metrics.json"
    if not (path.is_file() and (output / "model.ckpt").is_file()):
        return None, None
    metrics = json.loads(path.read_text())
    used = metrics.get("config", {})
    if not all(used.get(k) == (list(v) if isinstance(v, tuple) else v) for k, v in recipe.items()
               if k not in ("data", "output")):
        return None, None
    if metrics.get("epochs") == recipe["epochs"]:
        return "finished", metrics
    return ("stopped", metrics) if unfinished_run(output) else (None, None)
