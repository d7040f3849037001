"""Evaluation (top-1/top-5, per-class accuracy, confusion matrix) and prediction with class names."""
import json
from pathlib import Path

import mindspore as ms
import numpy as np

from .checkpoint import load_model, read_model_info
from .data import class_names_for, create_dataset, load_class_names, load_image
from .device import set_device, to_numpy
from .factory import create_model
from .metrics import ClassificationMeter, log_softmax, ranked, softmax
from .runtime import progress_bar


def make_eval_step(model):
    """The forward pass compiled to a graph; float32 logits even under mixed precision."""
    @ms.jit
    def eval_step(images):
        return model(images).astype(ms.float32)

    return eval_step


def evaluate_dataset(eval_step, dataset, num_classes, desc="eval", disable_bar=False):
    """Run eval_step over a dataset; return a metrics.ClassificationMeter result plus the mean loss."""
    meter = ClassificationMeter(num_classes)
    loss_sum, count = 0.0, 0
    for images, labels in progress_bar(dataset.create_tuple_iterator(num_epochs=1), total=dataset.get_dataset_size(),
                               desc=desc, leave=False, disable=disable_bar):
        logits = to_numpy(eval_step(images))
        labels = labels.asnumpy()
        meter.update(logits, labels)
        loss_sum += float(-log_softmax(logits)[np.arange(len(labels)), labels].sum())
        count += len(labels)
    result = meter.result()
    result["loss"] = loss_sum / max(count, 1)
    return result


def load_for_inference(checkpoint, model=None, image_size=None, num_classes=None):
    """(model in eval mode, class names) from a checkpoint.

    A checkpoint written by vit_ms training rebuilds its own architecture; any other (published weights) needs
    the model name (default vit_b_16). Class names: those stored in the checkpoint, else ImageNet's for 1000 classes.
    """
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
    """Evaluate a checkpoint on DATA/split; return the report dict. Writes eval.json and confusion_matrix.png to
    ``output`` if given."""
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
                  class_names=list(names),
                  per_class_accuracy=[None if np.isnan(a) else float(a) for a in result["per_class_accuracy"]],
                  confusion_matrix=np.asarray(result["confusion_matrix"]).astype(int).tolist(),
                  skipped=list(getattr(dataset, "skipped", [])))
    if output is not None:
        import matplotlib.pyplot as plt

        from .plots import plot_confusion_matrix

        output = Path(output)
        output.mkdir(parents=True, exist_ok=True)
        (output / "eval.json").write_text(json.dumps(report, indent=2))
        fig = plot_confusion_matrix(np.asarray(report["confusion_matrix"]), names)
        fig.savefig(output / "confusion_matrix.png", dpi=120, bbox_inches="tight")
        plt.close(fig)
    return report


def predict(checkpoint, images, topk=5, model=None, device="auto", net=None, classes=None):
    """Top-k (class name, probability) for each image path. Pass ``net``/``classes`` to reuse a loaded model."""
    if net is None:
        set_device(device, verbose=False)
        net, classes = load_for_inference(checkpoint, model=model)
    if not images:
        raise ValueError("predict needs at least one image path")
    results = []
    for path in images:
        array, _ = load_image(path, net.image_size, net.mean, net.std)
        probs = softmax(net(ms.Tensor(array)).asnumpy()[0].astype(np.float64))
        results.append([(classes[i], float(probs[i])) for i in ranked(probs, min(topk, len(probs)))])
    return results
