"""Classification metrics in NumPy: top-k accuracy, confusion matrix, per-class accuracy, and a streaming meter.

Conventions (the same everywhere in this module):

- ``logits`` are scores [N, C] (logits or probabilities: only their order matters); ``labels`` are class indices [N].
- Ties: classes are ranked by score, and among equal scores the lower class index ranks first (what a stable
  sort gives). So the top-1 prediction is ``argmax`` (first maximum), and a sample counts as top-k correct when its
  true class is among the first k of that ranking. The result never depends on the sort algorithm.
- k larger than the number of classes C is clipped to C: with 3 classes, "top-5" is top-3, which is always 1.0.
"""
import numpy as np

from .checks import check_int


def _as_numpy(x):
    return x.asnumpy() if hasattr(x, "asnumpy") else np.asarray(x)  # MindSpore Tensors too


def _check_labels(labels, num_classes, name="labels"):
    labels = _as_numpy(labels)
    if labels.ndim != 1:
        hint = " (one-hot or soft labels? pass labels.argmax(-1))" if labels.ndim == 2 else ""
        raise ValueError(f"{name} must be class indices of shape [N], got shape {labels.shape}{hint}")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"{name} must be integer class indices, got dtype {labels.dtype}")
    labels = labels.astype(np.int64)
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        raise ValueError(f"{name} must lie in [0, {num_classes - 1}] for {num_classes} classes; "
                         f"got {labels[bad][0]} at position {int(np.flatnonzero(bad)[0])}")
    return labels


def _check_logits_labels(logits, labels):
    logits = _as_numpy(logits)
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape [N, num_classes], got shape {logits.shape}")
    if logits.shape[1] == 0:
        raise ValueError("logits have 0 classes (shape [N, 0])")
    if np.isnan(logits).any():
        raise ValueError(f"logits contain NaN ({int(np.isnan(logits).any(axis=1).sum())} of {len(logits)} rows): "
                         f"the model diverged or its input is broken")
    labels = _check_labels(labels, logits.shape[1])
    if len(labels) != len(logits):
        raise ValueError(f"logits and labels disagree on the batch size: {len(logits)} rows of logits, "
                         f"{len(labels)} labels")
    return logits, labels


def _check_ks(ks):
    ks = (ks,) if np.isscalar(ks) else tuple(ks)
    if not ks:
        raise ValueError("ks must name at least one k, e.g. (1, 5)")
    return tuple(check_int(k, "each k in ks") for k in ks)


def log_softmax(logits):
    """log softmax over the last axis, in the input's precision (stable: the row maximum is subtracted first)."""
    logits = np.asarray(logits)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def softmax(logits):
    """Probabilities over the last axis, in the input's precision."""
    return np.exp(log_softmax(logits))


def ranked(scores, k):
    """Indices of the k highest scores of a vector, best first; ties: the lower class index first."""
    return np.argsort(-np.asarray(scores), kind="stable")[:k]


def label_rank(logits, labels):
    """0-based rank of each sample's true class in its row of scores (0 = top-1), ties to the lower class index."""
    logits, labels = _check_logits_labels(logits, labels)
    rows = np.arange(len(labels))
    true_score = logits[rows, labels][:, None]
    lower_index = np.arange(logits.shape[1])[None, :] < labels[:, None]
    # classes ranked above the true one: strictly higher scores, and equal scores at a lower index
    return ((logits > true_score) | ((logits == true_score) & lower_index)).sum(axis=1)


def topk_correct(logits, labels, ks=(1, 5)):
    """{k: number of samples whose true class is among the k highest scores}; k is clipped to the class count."""
    ks = _check_ks(ks)
    rank = label_rank(logits, labels)
    return {k: int((rank < k).sum()) for k in ks}


def accuracy_topk(logits, labels, ks=(1, 5)):
    """{"top1": fraction, "top5": fraction} (one key "top{k}" per k) for one batch of scores [N, C]."""
    counts = topk_correct(logits, labels, ks)
    n = len(_as_numpy(labels))
    if n == 0:
        raise ValueError("accuracy of an empty batch is undefined: logits and labels have 0 samples")
    return {f"top{k}": c / n for k, c in counts.items()}


def confusion_matrix(labels, preds, num_classes):
    """[C, C] int64 counts: row = true class, column = predicted class."""
    num_classes = check_int(num_classes, "num_classes")
    labels = _check_labels(labels, num_classes, "labels")
    preds = _check_labels(preds, num_classes, "preds")
    if len(labels) != len(preds):
        raise ValueError(f"labels and preds differ in length: {len(labels)} vs {len(preds)}")
    counts = np.bincount(labels * num_classes + preds, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def per_class_accuracy(cm):
    """Per class, the fraction of its samples predicted correctly (recall): diagonal / row sum.

    A class with no samples gets NaN: there is nothing to be right or wrong about (0 would read as "always wrong").
    """
    cm = _as_numpy(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"expected a square confusion matrix [C, C], got shape {cm.shape}")
    totals = cm.sum(axis=1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(cm) / totals, np.nan)


class ClassificationMeter:
    """Accumulate scores and labels batch by batch (evaluation runs it once per epoch).

    ``result()`` equals the one-shot metrics over all samples seen: top-k accuracies ("top1", "top5"),
    "per_class_accuracy" [C], "confusion_matrix" [C, C] and "count".
    """

    def __init__(self, num_classes, ks=(1, 5)):
        self.num_classes = check_int(num_classes, "num_classes")
        self.ks = _check_ks(ks)
        self.reset()

    def reset(self):
        self.confusion = np.zeros((self.num_classes, self.num_classes), np.int64)
        self.correct = {k: 0 for k in self.ks}
        self.count = 0

    def update(self, logits, labels):
        logits, labels = _check_logits_labels(logits, labels)
        if logits.shape[1] != self.num_classes:
            raise ValueError(f"this meter counts {self.num_classes} classes but the logits have {logits.shape[1]}")
        for k, c in topk_correct(logits, labels, self.ks).items():
            self.correct[k] += c
        self.confusion += confusion_matrix(labels, logits.argmax(axis=1), self.num_classes)
        self.count += len(labels)

    def result(self):
        if self.count == 0:
            raise ValueError("ClassificationMeter.result() before any sample was added (update() was never "
                             "called, or only with empty batches): is the dataset empty?")
        out = {f"top{k}": self.correct[k] / self.count for k in self.ks}
        out.update(per_class_accuracy=per_class_accuracy(self.confusion), confusion_matrix=self.confusion.copy(),
                   count=self.count)
        return out
