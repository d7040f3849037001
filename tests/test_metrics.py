"""Metrics on hand-computed cases: top-k with ties and clipping, confusion matrix, per-class accuracy, the meter."""
import numpy as np
import pytest

from vit_ms.metrics import (ClassificationMeter, accuracy_topk, confusion_matrix, label_rank, per_class_accuracy,
                            topk_correct)

# 4 samples, 6 classes. Where each true class ranks, worked out by hand:
LOGITS = np.array([
    [0.1, 2.0, 0.3, 0.0, -1.0, 0.5],   # label 1: highest score                          -> rank 0
    [3.0, 0.2, 1.0, 2.5, 0.0, 0.1],    # label 2: 3.0 and 2.5 are higher                 -> rank 2
    [0.0, 0.1, 0.2, 0.3, 0.4, 0.5],    # label 0: all five others are higher             -> rank 5
    [1.0, 1.0, 0.0, 0.0, 0.0, 0.0],    # label 1: tied with class 0, the lower index wins -> rank 1
])
LABELS = np.array([1, 2, 0, 1])


def test_hand_computed_ranks_and_topk():
    assert label_rank(LOGITS, LABELS).tolist() == [0, 2, 5, 1]
    assert topk_correct(LOGITS, LABELS, ks=(1, 2, 3, 5, 6)) == {1: 1, 2: 2, 3: 3, 5: 3, 6: 4}
    assert accuracy_topk(LOGITS, LABELS) == {"top1": 0.25, "top5": 0.75}
    assert accuracy_topk(LOGITS, LABELS, ks=3) == {"top3": 0.75}


def test_ties_go_to_the_lower_class_index():
    tied = np.array([[2.0, 5.0, 5.0, 5.0]] * 3)
    assert label_rank(tied, np.array([1, 2, 3])).tolist() == [0, 1, 2]
    assert accuracy_topk(tied, np.array([1, 2, 3]), ks=(1, 2)) == {"top1": 1 / 3, "top2": 2 / 3}
    # the meter's top-1 prediction (confusion matrix) follows the same rule: class 1 for every row
    meter = ClassificationMeter(4)
    meter.update(tied, np.array([1, 2, 3]))
    assert meter.result()["confusion_matrix"][:, 1].tolist() == [0, 1, 1, 1]


def test_ranking_matches_a_stable_sort_with_many_ties():
    rng = np.random.default_rng(0)
    logits = rng.integers(0, 3, size=(200, 7)).astype(np.float32)  # few distinct values: ties everywhere
    labels = rng.integers(0, 7, size=200)
    order = np.argsort(-logits, axis=1, kind="stable")
    for k in (1, 2, 5):
        expected = int((order[:, :k] == labels[:, None]).any(axis=1).sum())
        assert topk_correct(logits, labels, ks=(k,))[k] == expected


def test_k_is_clipped_to_the_number_of_classes():
    logits = np.array([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]])
    labels = np.array([0, 0])  # ranks 2 and 0
    assert accuracy_topk(logits, labels, ks=(1, 3, 5, 100)) == {"top1": 0.5, "top3": 1.0, "top5": 1.0, "top100": 1.0}


def test_confusion_matrix_and_per_class_accuracy_by_hand():
    labels = np.array([0, 0, 1, 2, 2, 2])
    preds = np.array([0, 1, 1, 2, 0, 2])
    cm = confusion_matrix(labels, preds, num_classes=4)
    assert cm.dtype == np.int64
    assert cm.tolist() == [[1, 1, 0, 0],
                           [0, 1, 0, 0],
                           [1, 0, 2, 0],
                           [0, 0, 0, 0]]
    acc = per_class_accuracy(cm)
    np.testing.assert_allclose(acc[:3], [0.5, 1.0, 2 / 3])
    assert np.isnan(acc[3])  # class 3 has no samples: undefined, not 0


def test_meter_over_uneven_batches_equals_the_one_shot_result():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(50, 7))
    labels = rng.integers(0, 7, size=50)
    meter = ClassificationMeter(7)
    for start, stop in ((0, 13), (13, 13), (13, 40), (40, 50)):  # includes an empty batch
        meter.update(logits[start:stop], labels[start:stop])
    result = meter.result()
    one_shot = accuracy_topk(logits, labels)
    assert result["count"] == 50
    assert result["top1"] == one_shot["top1"] and result["top5"] == one_shot["top5"]
    cm = confusion_matrix(labels, logits.argmax(axis=1), 7)
    np.testing.assert_array_equal(result["confusion_matrix"], cm)
    np.testing.assert_array_equal(result["per_class_accuracy"], per_class_accuracy(cm))
    assert result["confusion_matrix"].sum() == 50
    meter.reset()  # the next epoch starts from zero
    meter.update(logits[:10], labels[:10])
    assert meter.result()["count"] == 10
    assert meter.result()["top1"] == accuracy_topk(logits[:10], labels[:10])["top1"]


def test_meter_hand_case_per_class():
    meter = ClassificationMeter(6)
    meter.update(LOGITS[:2], LABELS[:2])
    meter.update(LOGITS[2:], LABELS[2:])
    result = meter.result()
    assert (result["top1"], result["top5"]) == (0.25, 0.75)
    # top-1 predictions by hand: 1, 0, 5, 0 -> class 1 right once in two; classes 0 and 2 wrong
    np.testing.assert_allclose(result["per_class_accuracy"][:3], [0.0, 0.5, 0.0])
    assert np.isnan(result["per_class_accuracy"][3:]).all()


@pytest.mark.parametrize("logits, labels, error, match", [
    (LOGITS, LABELS[:3], ValueError, "batch size: 4 rows of logits, 3 labels"),
    (LOGITS[0], LABELS[:1], ValueError, r"logits must have shape \[N, num_classes\]"),
    (LOGITS, np.eye(6)[LABELS], ValueError, "one-hot"),
    (LOGITS, np.array([1, 2, 6, 0]), ValueError, r"\[0, 5\] for 6 classes; got 6 at position 2"),
    (LOGITS, np.array([1, -1, 0, 0]), ValueError, "got -1 at position 1"),
    (LOGITS, LABELS.astype(np.float32), TypeError, "integer class indices"),
    (np.where(LOGITS > 2.9, np.nan, LOGITS), LABELS, ValueError, "NaN"),
])
def test_bad_inputs_are_rejected(logits, labels, error, match):
    with pytest.raises(error, match=match):
        accuracy_topk(logits, labels)
    with pytest.raises(error, match=match):
        ClassificationMeter(6).update(logits, labels)


def test_other_errors():
    with pytest.raises(ValueError, match="each k in ks must be a positive integer, got 0"):
        accuracy_topk(LOGITS, LABELS, ks=(0, 5))
    with pytest.raises(ValueError, match="empty batch"):
        accuracy_topk(np.zeros((0, 6)), np.zeros(0, dtype=int))
    with pytest.raises(ValueError, match="counts 10 classes but the logits have 6"):
        ClassificationMeter(10).update(LOGITS, LABELS)
    with pytest.raises(ValueError, match="before any sample"):
        ClassificationMeter(3).result()
    with pytest.raises(ValueError, match="num_classes must be a positive integer"):
        ClassificationMeter(0)
    with pytest.raises(ValueError, match="differ in length: 2 vs 3"):
        confusion_matrix([0, 1], [0, 1, 1], 2)
    with pytest.raises(ValueError, match=r"preds must lie in \[0, 1\]"):
        confusion_matrix([0, 1], [0, 2], 2)
    with pytest.raises(ValueError, match="square confusion matrix"):
        per_class_accuracy(np.zeros((2, 3)))
