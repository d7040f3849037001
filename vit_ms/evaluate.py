"""Evaluation (top-1/top-5, per-class accuracy, confusion matrix) and prediction with class names."""
import json
from pathlib import Path

import numpy as np


def load_for_inference(checkpoint, model=None, image_size=None, num_classes=None):
    """(model in eval mode, class names) from a checkpoint.

    A checkpoint written by vit_ms training rebuilds its own architecture; any other (published weights) needs
    the model name (default vit_b_16). Class names: those stored in the checkpoint, else ImageNet's for 1000 classes.
    """
    from .checkpoint import load_model, read_model_info
    from .data import load_class_names
    from .factory import create_model

    config, classes = read_model_info(checkpoint)
    if config is not None:
        net, classes = load_model(checkpoint)
    else:
        overrides = {k: v for k, v in (("image_size", image_size), ("num_classes", num_classes)) if v is not None}
        net = create_model(model or "vit_b_16", pretrained=checkpoint, **overrides)
    if classes is None and net.num_classes == 1000:
        classes = [name for _, name in sorted(load_class_names().items())]
    if classes is None:
        classes = [f"class {i}" for i in range(net.num_classes)]
    net.set_train(False)
    return net, list(classes)


def evaluate(checkpoint, data, split="val", batch_size=32, num_workers=2, device="auto", output=None, model=None):
    """Evaluate a checkpoint on DATA/split. Writes eval.json and confusion_matrix.png to ``output`` if given."""
    from .data import class_names_for, create_dataset
    from .device import set_device
    from .train import evaluate_dataset, make_eval_step

    set_device(device)
    net, classes = load_for_inference(checkpoint, model=model)
    dataset = create_dataset(data, split, image_size=net.image_size, batch_size=batch_size, training=False,
                             mean=net.mean, std=net.std, num_workers=num_workers)
    if len(dataset.classes) != net.num_classes:
        raise ValueError(f"{data}/{split} has {len(dataset.classes)} classes but the checkpoint's head has "
                         f"{net.num_classes}; evaluate on the dataset the model was trained on")
    if classes and list(dataset.classes) != list(classes) and len(classes) == len(dataset.classes):
        # a trained checkpoint stores its class folders: the dataset must use the same order
        if set(classes) == set(dataset.classes):
            raise ValueError(f"class folders of {data}/{split} are ordered differently from the checkpoint's")
    result = evaluate_dataset(make_eval_step(net), dataset.dataset, net.num_classes, desc=f"eval {split}")
    names = dataset.class_names if hasattr(dataset, "class_names") else class_names_for(dataset.classes)
    report = dict(checkpoint=str(checkpoint), data=str(data), split=split, num_samples=int(result["count"]),
                  top1=result["top1"], top5=result["top5"], loss=result["loss"], classes=list(dataset.classes),
                  class_names=list(names), per_class_accuracy=[None if np.isnan(a) else float(a) for a in result["per_class_accuracy"]],
                  confusion_matrix=np.asarray(result["confusion_matrix"]).astype(int).tolist(),
                  skipped=list(getattr(dataset, "skipped", [])))
    if output is not None:
        from .plots import plot_confusion_matrix

        output = Path(output)
        output.mkdir(parents=True, exist_ok=True)
        (output / "eval.json").write_text(json.dumps(report, indent=2))
        fig = plot_confusion_matrix(np.asarray(report["confusion_matrix"]), names)
        fig.savefig(output / "confusion_matrix.png", dpi=120, bbox_inches="tight")
        import matplotlib.pyplot as plt
        plt.close(fig)
    return report


def predict(checkpoint, images, topk=5, model=None, device="auto", net=None, classes=None):
    """Top-k (class name, probability) for each image path. Pass ``net``/``classes`` to reuse a loaded model."""
    import mindspore as ms

    from .data import load_image
    from .device import set_device

    if net is None:
        set_device(device, verbose=False)
        net, classes = load_for_inference(checkpoint, model=model)
    if not images:
        raise ValueError("predict needs at least one image path")
    results = []
    for path in images:
        array, _ = load_image(path, net.image_size, net.mean, net.std)
        logits = net(ms.Tensor(array)).asnumpy()[0].astype(np.float64)
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        order = np.argsort(-probs, kind="stable")[:min(topk, len(probs))]
        results.append([(classes[i], float(probs[i])) for i in order])
    return results


def _eval_cli(args):
    report = evaluate(args.checkpoint, args.data, split=args.split, batch_size=args.batch_size,
                      num_workers=args.num_workers, device=args.device, output=args.output, model=args.model)
    print(f"{report['num_samples']} images  top-1 {report['top1']:.4f}  top-5 {report['top5']:.4f}")
    width = max(len(n) for n in report["class_names"])
    for name, acc in zip(report["class_names"], report["per_class_accuracy"]):
        print(f"  {name:<{width}}  {'no samples' if acc is None else f'{acc:.3f}'}")
    if args.output:
        print(f"wrote {Path(args.output) / 'eval.json'} and {Path(args.output) / 'confusion_matrix.png'}")


def _predict_cli(args):
    for path, top in zip(args.images, predict(args.checkpoint, args.images, topk=args.topk, model=args.model,
                                              device=args.device)):
        print(path)
        for name, prob in top:
            print(f"  {prob:7.2%}  {name}")


def add_cli(subparsers):
    p = subparsers.add_parser("eval", help="evaluate a checkpoint: top-1/top-5, per-class, confusion matrix")
    p.add_argument("--data", required=True, help="dataset root with <split>/<class>/ folders")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--split", default="val")
    p.add_argument("--model", default=None, help="architecture for published weights (default vit_b_16)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--num-workers", type=int, default=2)
    p.add_argument("--device", default="auto")
    p.add_argument("--output", default=None, help="folder for eval.json and confusion_matrix.png")
    p.set_defaults(func=_eval_cli)

    p = subparsers.add_parser("predict", help="top-k class names and probabilities for images")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--model", default=None, help="architecture for published weights (default vit_b_16)")
    p.add_argument("--topk", type=int, default=5)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_predict_cli)
