"""Downstream classification on frozen pooled features: a temperature-weighted cosine kNN and a linear probe (top-1),
and Pascal VOC 2007 multi-label classification with one linear SVM per class (mAP, the protocol of Goyal et al. 2019
that PIRL and VISSL report).

The predictors are pure functions of (train features, train targets, test features) returning one prediction or score
per test image, so per-image correctness stays available for resampling the test images without refitting.
"""
from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from vidssl.contracts import EVAL_INDEX, SPLIT, TARGET_PREFIX, read_features
from vidssl.core.errors import UserError
from vidssl.evaluation import bootstrap
from vidssl.evaluation.knn import knn_predict

METRICS = ("knn_top1", "linear_top1", "voc07_map")
PROBE_COSTS = tuple(10.0 ** np.arange(-3, 4))  # the inverse regularisation strengths the held-out part chooses among
PROBE_HELD_OUT = 0.2
PERCENT = (0.0, 100.0)  # the range of top-1 and of mAP, both in percent
# Goyal et al.'s VOC07 cost list: their ten given costs, to which their parser appends 0.5 ** 4 ... 0.5 ** 19.
SVM_COSTS = (1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0, *(0.5 ** n for n in range(4, 20)))
SVM_FOLDS = 3


def _probe(cost: float):
    return make_pipeline(StandardScaler(), LogisticRegression(C=cost, max_iter=1000))


def linear_probe_predict(train_x, train_y, test_x, *, seed: int, costs=PROBE_COSTS,
                         held_out: float = PROBE_HELD_OUT) -> np.ndarray:
    """Multinomial logistic regression on standardised frozen features: the cost that scores best on a seeded,
    stratified held-out part of the training rows (the smallest on a tie) is refit on all of them."""
    train_x, train_y = np.asarray(train_x), np.asarray(train_y)
    counts = np.unique(train_y, return_counts=True)[1]
    if counts.size < 2:
        raise UserError("linear probe: the training split holds a single class")
    checked = max(math.ceil(held_out * len(train_y)), counts.size)  # stratifying needs a row of every class
    stratified = counts.min() >= 2 and len(train_y) - checked >= counts.size
    fit, check = train_test_split(np.arange(len(train_y)), test_size=checked, random_state=seed,
                                  stratify=train_y if stratified else None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a cost too weak to converge simply scores lower
        accuracy = [_probe(cost).fit(train_x[fit], train_y[fit]).score(train_x[check], train_y[check])
                    for cost in costs]
        return _probe(costs[int(np.argmax(accuracy))]).fit(train_x, train_y).predict(np.asarray(test_x))


def _svm(cost: float) -> LinearSVC:
    return LinearSVC(C=cost, class_weight={1: 2, -1: 1}, intercept_scaling=1.0, penalty="l2", loss="squared_hinge",
                     tol=1e-4, dual=True, max_iter=2000)


def svm_scores(train_x, train_marks, test_x, *, costs=SVM_COSTS, folds: int = SVM_FOLDS) -> np.ndarray:
    """Goyal et al.'s VOC07 SVMs: features divided by (L2 norm + 1e-5); per class, targets 1 where the image is marked
    present and -1 otherwise (difficult images train as negatives, as in their training script); the cost with the
    best `folds`-fold cross-validated average precision is refit on all training rows. Returns the decision values,
    test rows x classes."""
    def normalised(x):
        x = np.asarray(x, dtype=np.float64)
        return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-5)

    train, test = normalised(train_x), normalised(test_x)
    train_marks = np.asarray(train_marks)
    scores = np.empty((len(test), train_marks.shape[1]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # their max_iter; unconverged costs score lower
        for column in range(train_marks.shape[1]):
            targets = np.where(train_marks[:, column] == 1, 1, -1)
            if len(np.unique(targets)) < 2:
                raise UserError(f"VOC07 SVM: class {column} has no positive or no negative training image")
            average_precision = [
                cross_val_score(_svm(cost), train, targets, cv=folds, scoring="average_precision").mean()
                for cost in costs]
            best = costs[int(np.argmax(average_precision))]
            scores[:, column] = _svm(best).fit(train, targets).decision_function(test)
    return scores


def voc_average_precision(marks, scores) -> float:
    """Goyal et al.'s AP of one class: difficult images (mark 0) left out, positives marked 1, images ranked by
    descending score as their argsort does; the area under the precision envelope at each recall step (VOC's
    all-point interpolation). NaN when no test image is positive."""
    marks, scores = np.asarray(marks), np.asarray(scores, dtype=np.float64)
    kept = marks != 0
    positive = (marks[kept] == 1)[np.argsort(scores[kept])[::-1]]
    if not positive.any():
        return float("nan")
    hits = np.cumsum(positive)
    precision = hits / np.arange(1, len(positive) + 1)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    return float(envelope[positive].sum() / positive.sum())


def voc07_map(test_marks, scores) -> float:
    """Mean over classes of `voc_average_precision`, in percent."""
    test_marks = np.asarray(test_marks)
    return 100 * float(np.mean([voc_average_precision(test_marks[:, c], scores[:, c]) for c in range(scores.shape[1])]))


def top1(predicted, labels) -> float:
    """Percent of test images whose prediction is their label."""
    return 100 * float(np.mean(np.asarray(predicted) == np.asarray(labels)))


def _split_rows(features_path: str, index_path: str) -> tuple[np.ndarray, pd.DataFrame]:
    features, labels, _ = read_features(features_path)
    index = EVAL_INDEX.read(index_path)
    if len(index) != len(features) or not np.array_equal(index.label.to_numpy(), labels):
        raise UserError(f"{features_path}: does not match {index_path} row for row; delete it and rerun")
    for split in ("train", "test"):
        if not (index[SPLIT] == split).any():
            raise UserError(f"{index_path}: no {split} images")
    return features, index


def score_dataset(features_path: str, index_path: str, *, seed: int, resamples: int = 0) -> list[dict]:
    """The metrics of one classification set: VOC07 mAP when its list carries per-class marks, else kNN and
    linear-probe top-1, as rows {metric, value, ci_low, ci_high}: the 95% interval over `resamples` bootstrap draws of
    the test images (seeded; both top-1s over the same draws), holding the value and within 0-100, NaN when
    `resamples` is 0. The predictors are fit once: the interval is that of the test set's sampling, not of refitting."""
    features, index = _split_rows(features_path, index_path)
    train, test = (index[SPLIT] == "train").to_numpy(), (index[SPLIT] == "test").to_numpy()
    mark_columns = [column for column in index.columns if column.startswith(TARGET_PREFIX)]
    if mark_columns:
        marks = index[mark_columns].to_numpy()
        scores, test_marks = svm_scores(features[train], marks[train], features[test]), marks[test]
        low, high = (bootstrap.statistic_interval(len(scores), lambda drawn: voc07_map(test_marks[drawn], scores[drawn]),
                                                  bounds=PERCENT, resamples=resamples, seed=seed)
                     if resamples else (math.nan, math.nan))
        return [{"metric": "voc07_map", "value": voc07_map(test_marks, scores), "ci_low": low, "ci_high": high}]
    labels = index.label.to_numpy()
    predicted = {
        "knn_top1": knn_predict(features[train], labels[train], features[test]),
        "linear_top1": linear_probe_predict(features[train], labels[train], features[test], seed=seed),
    }
    intervals = bootstrap.mean_intervals({metric: 100 * (guess == labels[test]) for metric, guess in predicted.items()},
                                         bounds=PERCENT, resamples=resamples, seed=seed) if resamples else {}
    rows = []
    for metric, guess in predicted.items():
        low, high = intervals.get(metric, (math.nan, math.nan))
        rows.append({"metric": metric, "value": top1(guess, labels[test]), "ci_low": low, "ci_high": high})
    return rows


SCORE_COLUMNS = ["dataset", "metric", "value", "ci_low", "ci_high"]


def score_method(features_paths: list[str], index_paths: list[str], *, seed: int, resamples: int = 0,
                 log: logging.Logger | None = None) -> pd.DataFrame:
    """Every classification set of one method (features and lists in the same order): dataset, metric, value and its
    interval."""
    log = log or logging.getLogger(__name__)
    rows = []
    for features_path, index_path in zip(features_paths, index_paths):
        for row in score_dataset(features_path, index_path, seed=seed, resamples=resamples):
            rows.append({"dataset": Path(index_path).stem, **row})
            log.info("%s %s: %.2f [%.2f, %.2f]", rows[-1]["dataset"], row["metric"], row["value"], row["ci_low"],
                     row["ci_high"])
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)


def stack_methods(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per-method tables -> one table: method, dataset, metric, value (percent)."""
    frames = [table.assign(method=method) for method, table in tables.items()]
    combined = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=SCORE_COLUMNS)
    return combined.reindex(columns=["method", *SCORE_COLUMNS])
