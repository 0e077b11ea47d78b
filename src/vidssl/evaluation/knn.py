"""The one weighted cosine kNN classifier: the downstream classification protocol and the training run's kNN monitor
both call `knn_predict`."""
from __future__ import annotations

import numpy as np

KNN_K = 200
KNN_TEMPERATURE = 0.07
_KNN_BATCH = 1024  # test rows per similarity block: bounds memory at 1024 x n_train floats


def _unit_rows(features: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; an all-zero row stays zero (cosine 0 to everything)."""
    features = np.asarray(features, dtype=np.float64)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.maximum(norms, 1e-12)


def knn_k(n_train: int, k: int = KNN_K) -> int:
    """`k` neighbours, or a tenth of the training set when that is smaller (200 would outvote a small bank)."""
    return max(1, min(k, n_train // 10))


def knn_predict(train_x, train_y, test_x, *, k: int | None = None, temperature: float = KNN_TEMPERATURE) -> np.ndarray:
    """The label of each test row by the k most cosine-similar training rows, each voting exp(similarity / T)
    (MoCo's kNN monitor); k None: `knn_k`."""
    train, test = _unit_rows(train_x), _unit_rows(test_x)
    classes, train_class = np.unique(np.asarray(train_y), return_inverse=True)
    k = min(knn_k(len(train)) if k is None else k, len(train))
    predicted = np.empty(len(test), dtype=np.int64)
    for start in range(0, len(test), _KNN_BATCH):
        similarity = test[start:start + _KNN_BATCH] @ train.T
        neighbours = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        weights = np.exp(np.take_along_axis(similarity, neighbours, axis=1) / temperature)
        votes = np.zeros((len(similarity), len(classes)))
        np.add.at(votes, (np.arange(len(similarity))[:, None], train_class[neighbours]), weights)
        predicted[start:start + len(similarity)] = votes.argmax(axis=1)
    return classes[predicted]
