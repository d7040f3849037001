"""Classification metrics in NumPy: top-k accuracy, confusion matrix, per-class accuracy."""
import numpy as np


class ClassificationMeter:
    """Accumulate logits/labels batch by batch; result() gives top-1, top-5, per-class accuracy, confusion matrix."""

    def __init__(self, num_classes):
        self.num_classes = int(num_classes)
        self.cm = np.zeros((self.num_classes, self.num_classes), np.int64)
        self.correct = {1: 0, 5: 0}
        self.count = 0

    def update(self, logits, labels):
        logits, labels = np.asarray(logits), np.asarray(labels).astype(np.int64).reshape(-1)
        order = np.argsort(-logits, axis=1, kind="stable")
        for k in self.correct:
            self.correct[k] += int((order[:, :k] == labels[:, None]).any(axis=1).sum())
        np.add.at(self.cm, (labels, order[:, 0]), 1)
        self.count += len(labels)

    def result(self):
        per_class = np.diag(self.cm) / np.maximum(self.cm.sum(axis=1), 1)
        return dict(top1=self.correct[1] / max(self.count, 1), top5=self.correct[5] / max(self.count, 1),
                    per_class_accuracy=per_class, confusion_matrix=self.cm.copy(), count=self.count)
