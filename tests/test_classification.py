"""The downstream classification protocols: kNN and linear probe top-1, VOC07 SVMs and their mAP, and a method's
scores from real feature files and image lists."""
import h5py
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score

from vidssl.core.errors import UserError
from vidssl.core.io import write_parquet
from vidssl.datasets.eval_sets import WHOLE_IMAGE
from vidssl.evaluation import classification, knn

CLASSES, PER_CLASS, TEST_PER_CLASS = 4, 40, 10


def balanced_split():
    """Labels of a balanced set and a balanced test split (the last 10 images of each class)."""
    labels = np.repeat(np.arange(CLASSES), PER_CLASS)
    test = np.tile(np.arange(PER_CLASS) >= PER_CLASS - TEST_PER_CLASS, CLASSES)
    return labels, test


def one_hot(labels, width=16):
    features = np.zeros((len(labels), width))
    features[np.arange(len(labels)), labels] = 1.0
    return features


def test_knn_k_is_200_or_a_tenth_of_the_training_split():
    assert knn.knn_k(5000) == 200 and knn.knn_k(120) == 12 and knn.knn_k(3) == 1


@pytest.mark.parametrize("predict", ["knn", "linear"])
def test_one_hot_labels_score_100_and_constant_features_score_chance(predict):
    labels, test = balanced_split()

    def top1(features):
        train_x, test_x, train_y = features[~test], features[test], labels[~test]
        if predict == "knn":
            predicted = knn.knn_predict(train_x, train_y, test_x)
        else:
            predicted = classification.linear_probe_predict(train_x, train_y, test_x, seed=0)
        return classification.top1(predicted, labels[test])

    assert top1(one_hot(labels)) == 100.0
    # every test image gets the same prediction, right for one class in four
    assert top1(np.full((len(labels), 16), 0.5)) == pytest.approx(100 / CLASSES)
    assert top1(np.zeros((len(labels), 16))) == pytest.approx(100 / CLASSES)


def test_knn_votes_are_temperature_weighted():
    # two far neighbours of class 0 against one near neighbour of class 1: at T = 0.07 the near one wins, at a high
    # temperature the votes are nearly equal and the majority wins
    train = np.array([[1.0, 0.0], [1.0, 0.0], [0.6, 0.8]])
    query = np.array([[0.5, 0.866]])
    assert knn.knn_predict(train, [0, 0, 1], query, k=3).tolist() == [1]
    assert knn.knn_predict(train, [0, 0, 1], query, k=3, temperature=100.0).tolist() == [0]


def test_voc_average_precision_equals_sklearn_when_precision_only_falls():
    marks = np.array([1, 1, -1, 1, -1, -1, 1])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])
    expected = average_precision_score(marks == 1, scores)
    assert classification.voc_average_precision(marks, scores) == pytest.approx(expected)


def test_voc_average_precision_interpolates_and_leaves_out_difficult():
    # ranked: +, -, +, + : precision at the positives 1, 2/3, 3/4; the envelope lifts 2/3 to 3/4
    marks = np.array([1, -1, 1, 1, 0])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.95])  # the difficult image ranks first and is ignored
    assert classification.voc_average_precision(marks, scores) == pytest.approx((1 + 0.75 + 0.75) / 3)
    assert average_precision_score(marks[:4] == 1, scores[:4]) == pytest.approx((1 + 2 / 3 + 0.75) / 3)
    assert np.isnan(classification.voc_average_precision(np.array([-1, 0]), np.array([0.1, 0.2])))


def test_voc07_svms_on_separable_features_reach_100_map():
    rng = np.random.default_rng(0)
    marks = np.where(rng.random((60, 3)) < 0.4, 1, -1)
    marks[:3] = [[1, 1, 1], [-1, -1, -1], [1, -1, 1]]
    marks[5, 0] = 0  # difficult: a negative in training
    features = np.hstack([(marks == 1).astype(float), rng.normal(0, 0.01, (60, 5))])
    train, test = np.arange(60) < 40, np.arange(60) >= 40
    scores = classification.svm_scores(features[train], marks[train], features[test], costs=(0.1, 1.0))
    assert scores.shape == (20, 3)
    assert classification.voc07_map(marks[test], scores) == 100.0


def write_set(tmp_path, name, features, labels, split, marks=None):
    """A feature file as vidssl.evaluation.features.extract writes it, and its image list with splits (and VOC marks)."""
    rows = [{"dataset": name, "path": f"/x/{i:04d}.jpg", "label": int(label), "class_name": str(label), "set": -1,
             **WHOLE_IMAGE, "split": s} for i, (label, s) in enumerate(zip(labels, split))]
    index = pd.DataFrame(rows)
    if marks is not None:
        for column in range(marks.shape[1]):
            index[f"target_c{column}"] = marks[:, column]
    write_parquet(index, tmp_path / f"{name}.parquet", sort_by=["set", "path"])
    with h5py.File(tmp_path / f"{name}.h5", "w") as h5:
        h5["features"], h5["label"], h5["set"] = features.astype("float32"), labels, np.full(len(labels), -1)
    return str(tmp_path / f"{name}.h5"), str(tmp_path / f"{name}.parquet")


def test_score_method_reads_feature_files_and_lists(tmp_path):
    labels, test = balanced_split()
    split = np.where(test, "test", "train")
    single = write_set(tmp_path, "labelled", one_hot(labels), labels, split)
    marks = np.where(one_hot(labels, CLASSES) == 1, 1, -1)
    voc = write_set(tmp_path, "voc07", one_hot(labels), np.full(len(labels), -1), split, marks)
    table = classification.score_method([single[0], voc[0]], [single[1], voc[1]], seed=0)
    assert table[["dataset", "metric", "value"]].to_dict("records") == [
        {"dataset": "labelled", "metric": "knn_top1", "value": 100.0},
        {"dataset": "labelled", "metric": "linear_top1", "value": 100.0},
        {"dataset": "voc07", "metric": "voc07_map", "value": 100.0}]
    assert table[["ci_low", "ci_high"]].isna().all().all()  # no resamples: no intervals
    stacked = classification.stack_methods({"moco": table, "random": table})
    assert stacked.columns.tolist() == ["method", "dataset", "metric", "value", "ci_low", "ci_high"]
    assert stacked.method.tolist() == ["moco"] * 3 + ["random"] * 3


def test_score_method_refuses_mismatched_or_unsplit_inputs(tmp_path):
    labels, test = balanced_split()
    features, index = write_set(tmp_path, "a", one_hot(labels), labels, np.where(test, "test", "train"))
    _, other = write_set(tmp_path, "b", one_hot(labels[:-1]), labels[:-1], np.where(test[:-1], "test", "train"))
    with pytest.raises(UserError, match="row for row"):
        classification.score_method([features], [other], seed=0)
    features, index = write_set(tmp_path, "c", one_hot(labels), labels, np.full(len(labels), "train"))
    with pytest.raises(UserError, match="no test images"):
        classification.score_method([features], [index], seed=0)


def test_linear_probe_on_a_training_split_smaller_than_its_held_out_share_needs():
    # 6 training rows of 3 classes: 20% would hold out 2 rows, fewer than the classes; a row of each is held out
    train_x = one_hot(np.array([0, 0, 1, 1, 2, 2]))
    predicted = classification.linear_probe_predict(train_x, [0, 0, 1, 1, 2, 2], one_hot(np.array([2, 1, 0])), seed=0)
    assert predicted.tolist() == [2, 1, 0]
    with pytest.raises(UserError, match="single class"):
        classification.linear_probe_predict(train_x[:2], [0, 0], train_x[:1], seed=0)


def test_intervals_resample_the_test_images(tmp_path):
    labels, test = balanced_split()
    split = np.where(test, "test", "train")
    noisy = one_hot(labels) + np.random.default_rng(0).normal(scale=0.6, size=(len(labels), 16))  # some go wrong
    single = write_set(tmp_path, "labelled", noisy, labels, split)
    first, again = (classification.score_method([single[0]], [single[1]], seed=3, resamples=300) for _ in range(2))
    pd.testing.assert_frame_equal(first, again)
    for row in first.itertuples():
        assert row.ci_low < row.value < row.ci_high and row.ci_high - row.ci_low < 40, row
    # a perfect predictor is right on every resample; mAP of a perfect ranking likewise
    marks = np.where(one_hot(labels, CLASSES) == 1, 1, -1)
    voc = write_set(tmp_path, "voc07", one_hot(labels), np.full(len(labels), -1), split, marks)
    (row,) = classification.score_method([voc[0]], [voc[1]], seed=0, resamples=50).itertuples()
    assert row.value == row.ci_low == row.ci_high == 100.0
