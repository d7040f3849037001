"""The main job: make the offline sample data, train a small ViT on it, evaluate, and draw what it learned."""
import json
import logging
import time
from pathlib import Path

from .config import TrainConfig
from .recipes import load_recipe

_logger = logging.getLogger(__name__)


def run_demo(output="runs/demo", data="data/sample", epochs=None, device="auto", num_workers=2):
    """Run the demo end to end and return {"metrics": ..., "files": [...]}."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mindspore as ms
    import numpy as np

    from . import plots
    from .checkpoint import load_model
    from .data import create_dataset, load_image
    from .evaluate import evaluate, predict
    from .model import VisionTransformer
    from .pos_embed import pos_embed_similarity, position_structure, sincos_2d_pos_embed
    from .probe import attention_distance, embedding_filters, uniform_attention_distance
    from .sample_data import make_sample_data
    from .train import train

    started = time.time()
    data, output = Path(data), Path(output)
    if data == Path(load_recipe("demo")["data"]) or not (data / "train").is_dir():
        # the default folder must hold this version's sample data: an older one is an error, never trained on
        try:
            if not make_sample_data(data)["existing"]:
                _logger.warning("generated the offline sample data in %s", data)
        except FileExistsError:
            raise FileExistsError(f"{data} holds another dataset than this version of vit_ms's sample data (an "
                                  f"older vit_ms made it?); replace it with `python -m vit_ms make-sample-data "
                                  f"{data} --force`, or name another folder with --data") from None
    config = dict(load_recipe("demo"), data=str(data), output=str(output), device=device, num_workers=num_workers)
    if epochs is not None:  # a shorter run keeps at least one epoch after the warm-up
        config.update(epochs=epochs, warmup_epochs=min(config["warmup_epochs"], max(epochs - 1, 0)))
    metrics = train(TrainConfig(**config))

    files = [output / "metrics.json", output / "model.ckpt", output / "last.ckpt"]

    def save(fig, name):
        fig.savefig(output / name, dpi=110, bbox_inches="tight")
        plt.close(fig)
        files.append(output / name)

    save(plots.plot_training_curves(metrics["history"], metrics["lr_schedule"], metrics["steps_per_epoch"]),
         "curves.png")

    model, classes = load_model(output / "model.ckpt")
    model.set_train(False)
    ms.set_seed(0)
    untrained = VisionTransformer(**model.config)
    embeddings = {"random init": untrained, "2-D sin-cos": sincos_2d_pos_embed(model.embed_dim, model.grid_size),
                  "trained (demo)": model}
    sims = {name: pos_embed_similarity(source) for name, source in embeddings.items()}
    save(plots.plot_pos_embed_comparison(sims), "pos_embed_similarity.png")
    # the structure of each as numbers (correlation with grid distance, row/column advantage), kept with the metrics
    structure = {name: position_structure(source) for name, source in embeddings.items()}
    metrics["position_structure"] = structure
    (output / "metrics.json").write_text(json.dumps(metrics, indent=2))

    report = evaluate(output / "model.ckpt", data, device=device, num_workers=num_workers, output=output)
    files += [output / "eval.json", output / "confusion_matrix.png"]

    val = create_dataset(data, "val", image_size=model.image_size, batch_size=1, training=False)
    by_class = {}
    for path, label in val.samples if hasattr(val, "samples") else []:
        by_class.setdefault(label, path)
    paths = [by_class[k] for k in sorted(by_class)][:12]
    labels = sorted(by_class)[:12]
    top = predict(None, paths, topk=3, net=model, classes=val.class_names)
    images = [load_image(p, model.image_size, model.mean, model.std)[1] for p in paths]
    save(plots.plot_predictions(images, top, val.class_names, labels=labels, k=3), "predictions.png")

    array, shown = load_image(paths[0], model.image_size, model.mean, model.std)
    maps = [m.asnumpy()[0] for m in model.attention_maps(ms.Tensor(array))]
    save(plots.plot_attention_maps(shown, maps), "attention.png")

    # Figure 7 (filters, position similarity, attention distance) on 2 validation images of each class
    probe_paths = [path for k in sorted(by_class) for path in [p for p, y in val.samples if y == k][:2]]
    probe_images = np.concatenate([load_image(p, model.image_size, model.mean, model.std)[0] for p in probe_paths])
    probed = {"random init": untrained, "trained (demo)": model}
    distances = {name: attention_distance(net, probe_images) for name, net in probed.items()}
    save(plots.plot_figure7(probed, probe_images, distances=distances), "figure7.png")
    probe = dict(images=len(probe_paths), uniform_px=uniform_attention_distance(model.grid_size, model.patch_size),
                 attention_distance_px={name: d.round(2).tolist() for name, d in distances.items()},
                 embedding_singular_values={name: embedding_filters(net)[1].round(4).tolist()
                                            for name, net in probed.items()})
    metrics["figure7"] = probe
    (output / "metrics.json").write_text(json.dumps(metrics, indent=2))

    summary = dict(val_top1=metrics["val_top1"], val_top5=metrics["val_top5"], epochs=metrics["epochs"],
                   device=metrics["device"], wall_seconds=round(time.time() - started, 1),
                   eval_top1=report["top1"], position_structure=structure, figure7=probe)
    (output / "demo_summary.json").write_text(json.dumps(summary, indent=2))
    files.append(output / "demo_summary.json")
    return dict(metrics=metrics, files=[str(f) for f in files], summary=summary)
