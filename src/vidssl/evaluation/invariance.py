"""Invariance of a representation's units over local trajectories (sets of transformed views).

Three measures, all built from firing rates (a unit "fires" on a sample when its value passes a
threshold): the global rate G over all samples, the local rate L inside each set, and their
ratio I = L / G, averaged over the top-K units.

- ``class_conditional`` (Purushwalkam & Gupta 2020, supplementary A, the default): thresholds,
  local rates and the top-K are chosen per class, then averaged over classes.
- ``goodfellow`` (Goodfellow et al. 2009): one threshold per unit giving a global firing rate of
  ``firing_rate``; one local rate over all sets; the top-K units.
- ``official``: the procedure published with the paper (percentile thresholds on both tails,
  sets of at least 3 members, the score scaled by 100 - p).

Everything is vectorised: one column-blocked sort yields every threshold and its exact global
firing count (ties included), and samples are grouped by (class, set size, set) so that the
per-set counts of each run of equal-sized sets are a single reshape-and-sum.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from vidssl.contracts import read_features, require_finite
from vidssl.core.errors import UserError
from vidssl.evaluation import bootstrap as resampling

MEASURES = ("class_conditional", "goodfellow", "official")
OFFICIAL_MIN_SET_SIZE = 3  # fixed in the published procedure, whatever min_set_size says
_SORT_BLOCK = 16  # columns transposed and sorted at a time: small blocks keep the transpose in cache


@dataclass(frozen=True)
class _Layout:
    """Samples ordered by (class, set size, set), with the runs of equal-sized sets of each class."""

    order: np.ndarray  # sample indices in (class, size, set) order
    class_bounds: np.ndarray  # class c occupies order[class_bounds[c]:class_bounds[c + 1]]
    class_counts: np.ndarray  # n_y per class
    runs: list[list[tuple[int, int, int]]]  # per class: (offset in class block, number of sets, set size)


def _validate(features, labels, sets) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    features = np.asarray(features)
    labels = np.asarray(labels)
    sets = np.asarray(sets)
    if features.ndim != 2 or features.shape[0] == 0 or features.shape[1] == 0:
        raise UserError(f"invariance: features must be a non-empty N x D array, got shape {features.shape}")
    if features.dtype.kind not in "fiu":
        raise UserError(f"invariance: features must be numeric, got dtype {features.dtype}")
    count = features.shape[0]
    for name, values in (("labels", labels), ("sets", sets)):
        if values.shape != (count,):
            raise UserError(f"invariance: {name} must have one entry per feature row ({count}), got shape {values.shape}")
        if values.dtype.kind not in "iu":
            raise UserError(f"invariance: {name} must be integers, got dtype {values.dtype}")
    return require_finite(features, "invariance"), labels, sets


def _layout(labels: np.ndarray, sets: np.ndarray) -> _Layout:
    class_ids, class_of = np.unique(labels, return_inverse=True)
    set_ids, set_of, set_sizes = np.unique(sets, return_inverse=True, return_counts=True)
    set_class = np.empty(set_ids.size, dtype=np.int64)
    set_class[set_of] = class_of  # any member's class; a mismatch below means the set mixes classes
    mixed = np.unique(set_ids[set_of[set_class[set_of] != class_of]])
    if mixed.size:
        raise UserError(
            f"invariance: {mixed.size} sets mix classes (set ids {mixed[:10].tolist()}"
            f"{' ...' if mixed.size > 10 else ''}); every set must hold views of one class"
        )
    size_of = set_sizes[set_of]
    order = np.lexsort((set_of, size_of, class_of))
    class_counts = np.bincount(class_of, minlength=class_ids.size)
    class_bounds = np.concatenate([[0], np.cumsum(class_counts)])

    # (class, size) pairs in the same order as the samples: each is a run of equal-sized sets
    pairs, sets_in_run = np.unique(np.stack([set_class, set_sizes], axis=1), axis=0, return_counts=True)
    runs: list[list[tuple[int, int, int]]] = [[] for _ in class_ids]
    offsets = np.zeros(class_ids.size, dtype=np.int64)
    for (cls, size), set_count in zip(pairs.tolist(), sets_in_run.tolist()):
        runs[cls].append((int(offsets[cls]), set_count, size))
        offsets[cls] += set_count * size
    return _Layout(order=order, class_bounds=class_bounds, class_counts=class_counts, runs=runs)


def _order_statistics(features: np.ndarray, ascending_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per unit, the values at `ascending_index` of its sorted column and how many samples are >= each.

    Returns (thresholds, at_least) both of shape (len(ascending_index), D).
    """
    count, units = features.shape
    thresholds = np.empty((ascending_index.size, units), dtype=features.dtype)
    at_least = np.empty((ascending_index.size, units), dtype=np.int64)
    for start in tqdm(range(0, units, _SORT_BLOCK), desc="invariance thresholds", leave=False):
        block = features[:, start : start + _SORT_BLOCK].copy().T.copy()
        block.sort(axis=1)
        values = block[:, ascending_index]  # (block units, thresholds)
        thresholds[:, start : start + block.shape[0]] = values.T
        for column, (sorted_column, column_values) in enumerate(zip(block, values)):
            at_least[:, start + column] = count - np.searchsorted(sorted_column, column_values, side="left")
    return thresholds, at_least


def _official_index(count: int, classes: int) -> tuple[int, float]:
    """floor(N p / 100) with p = min((1 - 1/C) 100, 95), in exact integer arithmetic, and 100 - p."""
    if 20 * (classes - 1) < 19 * classes:  # (1 - 1/C) < 0.95
        index, multiplier = count * (classes - 1) // classes, 100.0 / classes
    else:
        index, multiplier = count * 95 // 100, 5.0
    return min(index, count - 1), multiplier


def _count_per_set(mask: np.ndarray, set_count: int, size: int) -> np.ndarray:
    """Members of each of `set_count` consecutive sets of `size` rows where `mask` holds: (set_count, D)."""
    return mask.reshape(set_count, size, -1).sum(axis=1, dtype=np.int32)


def _local_sums(block, runs, min_size, firing_per_set, weights) -> tuple[np.ndarray, np.ndarray]:
    """Over the sets of >= min_size members: per unit, the sum of firing / set size and the number of sets with
    firing > 0, where firing_per_set(members, set_count, size) counts firing per set. Row 0 counts every set once;
    each further row weighs the sets by one resample's row of `weights` (resamples x the class's sets, float32)."""
    fraction_sum = np.zeros((1 + len(weights), block.shape[1]))
    active = np.zeros((1 + len(weights), block.shape[1]))
    fractions, fired, columns = [], [], []
    for offset, set_count, size, first_set in runs:
        if size < min_size:
            continue
        firing = firing_per_set(block[offset : offset + set_count * size], set_count, size)
        fraction_sum[0] += firing.sum(axis=0) / size
        active[0] += np.count_nonzero(firing, axis=0)
        if len(weights):  # the per-set counts do not change between resamples: only their weights do
            fractions.append(firing.astype(np.float32) / size)
            fired.append(firing > 0)
            columns.append(np.arange(first_set, first_set + set_count))
    if fractions:  # one contiguous product per class: BLAS, where a strided slice per run is not
        drawn = np.ascontiguousarray(weights[:, np.concatenate(columns)])
        fraction_sum[1:] = drawn @ np.concatenate(fractions)
        active[1:] = drawn @ np.concatenate(fired).astype(np.float32)
    return fraction_sum, active


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator with 0 where the denominator is 0."""
    out = np.zeros(np.broadcast(numerator, denominator).shape)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def _class_block(features: np.ndarray, layout: _Layout, cls: int, smallest: int) -> tuple[np.ndarray, list[tuple]]:
    """The rows of class `cls` that lie in sets of at least `smallest` members, and their runs as (offset in those rows,
    set count, size, index of the run's first set among the class's sets)."""
    runs = layout.runs[cls]
    first_sets = np.cumsum([0] + [set_count for _, set_count, _ in runs])
    # sizes ascend inside a class block, so only its tail of large-enough sets is gathered
    skip = sum(set_count * size for _, set_count, size in runs if size < smallest)
    kept = [(offset - skip, set_count, size, first) for (offset, set_count, size), first in zip(runs, first_sets)
            if size >= smallest]
    return features[layout.order[layout.class_bounds[cls] + skip : layout.class_bounds[cls + 1]]], kept


def _unit_invariances(
    features: np.ndarray,
    labels: np.ndarray,
    sets: np.ndarray,
    measures: tuple[str, ...],
    firing_rate: float,
    min_set_size: int,
    resamples: int = 0,
    seed: int = 0,
) -> dict[str, tuple[np.ndarray, float]]:
    """Per measure: unit invariances, (1 + resamples) x classes x D (one class row for goodfellow), the score
    multiplier and the unit invariances' ceilings (`_ceilings`). Row 0 is the data as they are; row r > 0 resamples the
    sets within each class (`_set_weights`)."""
    layout = _layout(labels, sets)
    count = features.shape[0]
    classes = layout.class_counts.size

    # every threshold any measure needs, as ascending indices into each unit's sorted values
    class_index = count - layout.class_counts  # the n_y-th largest, i.e. ceil(P(y) N) with P(y) = n_y / N
    goodfellow_k = min(max(math.ceil(round(firing_rate * count, 9)), 1), count)
    official_index, official_multiplier = _official_index(count, classes)
    wanted = np.concatenate([class_index, [count - goodfellow_k, official_index, count - 1 - official_index]])
    thresholds, global_counts = _order_statistics(features, wanted)
    goodfellow_row, upper_row, lower_row = classes, classes + 1, classes + 2

    rows = (classes, 1 + resamples, features.shape[1])
    class_sums = {measure: np.zeros(rows) for measure in measures}
    class_active = {measure: np.zeros(rows) for measure in measures}
    upper, lower = thresholds[upper_row], thresholds[lower_row]

    def at_least(threshold):
        return lambda rows, set_count, size: _count_per_set(rows >= threshold, set_count, size)

    def beyond_either_tail(rows, set_count, size):
        return np.maximum(_count_per_set(rows > upper, set_count, size), _count_per_set(rows < lower, set_count, size))

    smallest = min(OFFICIAL_MIN_SET_SIZE if measure == "official" else min_set_size for measure in measures)
    rng = np.random.default_rng(seed)
    for cls in tqdm(range(classes), desc="invariance classes", leave=False):
        weights = _set_weights(sum(set_count for _, set_count, _ in layout.runs[cls]), resamples, rng)
        block, runs = _class_block(features, layout, cls, smallest)
        rules = {
            "class_conditional": (min_set_size, at_least(thresholds[cls])),
            "goodfellow": (min_set_size, at_least(thresholds[goodfellow_row])),
            "official": (OFFICIAL_MIN_SET_SIZE, beyond_either_tail),
        }
        for measure in measures:
            min_size, firing_per_set = rules[measure]
            class_sums[measure][cls], class_active[measure][cls] = _local_sums(
                block, runs, min_size, firing_per_set, weights)

    global_rates = {"class_conditional": global_counts[:classes, None] / count,
                    "goodfellow": global_counts[goodfellow_row] / count, "official": global_counts[upper_row] / count}
    multipliers = {"class_conditional": 1.0, "goodfellow": 1.0, "official": official_multiplier}
    return {measure: (_invariances(measure, class_sums[measure], class_active[measure], global_rates[measure]),
                      multipliers[measure], _ceilings(measure, class_sums[measure], global_rates[measure]))
            for measure in measures}


def _ceilings(measure: str, sums: np.ndarray, global_rate: np.ndarray) -> np.ndarray:
    """The largest unit invariances the thresholds and global rates G allow (1 x classes x D, as `_invariances`): a
    local rate is a fraction of a set's members, at most 1, so I = L / G is at most 1 / G, which a resample keeps."""
    ones = np.ones_like(sums[:, :1])
    return _invariances(measure, ones, ones, global_rate)


def _invariances(measure: str, sums: np.ndarray, active: np.ndarray, global_rate: np.ndarray) -> np.ndarray:
    """I = L / G from the local sums (classes x rows x D), as rows x classes x D; goodfellow pools its classes' sets
    into one local rate."""
    if measure == "goodfellow":
        return _ratio(_ratio(sums.sum(axis=0), active.sum(axis=0)), global_rate)[:, None, :]
    return _ratio(_ratio(sums, active), global_rate).swapaxes(0, 1)


def _set_weights(set_count: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """How often each of a class's sets is drawn in each resample (resamples x sets, float32 for the matrix products).

    A resample draws the class's trajectories with replacement and keeps the thresholds and global rates G of the whole
    data: those are quantiles over all N samples, far more precise than the local rates L, which average over a few
    sets per class and carry the uncertainty of the score. The top-K units are chosen afresh in every resample."""
    return resampling.resample_weights(set_count, resamples, rng).astype(np.float32)


def _top_k_mean(unit_scores: np.ndarray, top_k: int | None) -> np.ndarray:
    """Per resample row, the mean over classes of the mean of each class's top_k unit values (unit_scores: rows x
    classes x D); None: the top ceil(20% of D)."""
    units = unit_scores.shape[-1]
    k = math.ceil(0.2 * units) if top_k is None else min(top_k, units)
    top = np.partition(unit_scores, units - k, axis=-1)[..., units - k :]
    return top.mean(axis=-1).mean(axis=-1)


def _check_parameters(measures, top_ks, firing_rate, min_set_size) -> None:
    for measure in measures:
        if measure not in MEASURES:
            raise UserError(f"invariance: unknown method {measure!r}; choose one of {', '.join(MEASURES)}")
    for top_k in top_ks:
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1):
            raise UserError(f"invariance: top_k must be a positive integer or None, got {top_k!r}")
    if not 0 < firing_rate <= 1:
        raise UserError(f"invariance: firing_rate must be in (0, 1], got {firing_rate!r}")
    if isinstance(min_set_size, bool) or not isinstance(min_set_size, (int, np.integer)) or min_set_size < 1:
        raise UserError(f"invariance: min_set_size must be a positive integer, got {min_set_size!r}")


def invariance_score(
    features: np.ndarray,
    labels: np.ndarray,
    sets: np.ndarray,
    *,
    method: str = "class_conditional",
    top_k: int | None,
    firing_rate: float,
    min_set_size: int,
) -> float:
    """Invariance score of `features` (N x D) over the local trajectories `sets` (N set ids) of classes `labels`.

    ``class_conditional``: for each class y (n_y samples, P(y) = n_y / N) unit i fires on x when
    h_i(x) >= the n_y-th largest value of unit i over all N samples (= ceil(P(y) N)); G_y(i) is the
    measured fraction of all samples on which it fires (ties at the threshold all fire, so G_y can
    exceed P(y)); over the sets of class y with at least `min_set_size` members, L_y(i) is the mean,
    over the sets where unit i fires on at least one member, of the fraction of members it fires on
    (0 when there is none, including a class without such sets); I_y = L_y / G_y. The score is the
    mean over classes of the mean of the top_k values of I_y.

    ``goodfellow``: one threshold per unit, the ceil(firing_rate N)-th largest value; G and L as above
    over every set of every class; the mean of the top_k values of I = L / G.

    ``official``: p = min((1 - 1/C) 100, 95) with C classes, index = floor(N p / 100) (exact
    integer arithmetic, clipped to N - 1); upper threshold = the value at `index` of each unit's
    ascending values, lower threshold = the value at `index` of its descending values;
    G(i) = fraction of samples >= upper. Sets of fewer than 3 members are skipped (`min_set_size`
    is not used); firing(i) = max(members > upper, members < lower) per set; L_y = mean of
    firing / size over the class's sets with firing > 0 (0 when none); the score is the mean over
    classes of the mean top_k of L_y / G, times (100 - p).

    top_k larger than D uses every unit; top_k None averages the top ceil(0.2 D) units (Goodfellow
    et al.'s top 20%), for any method. A zero global rate gives I = 0.
    Raises UserError for sets that mix classes (naming them), NaN/inf features or bad parameters.
    """
    _check_parameters((method,), (top_k,), firing_rate, min_set_size)
    features, labels, sets = _validate(features, labels, sets)
    unit_scores, multiplier, _ = _unit_invariances(features, labels, sets, (method,), firing_rate, min_set_size)[method]
    return float(_top_k_mean(unit_scores, top_k)[0] * multiplier)


def score_all(
    features: np.ndarray,
    labels: np.ndarray,
    sets: np.ndarray,
    *,
    top_ks: tuple[int | None, ...],
    firing_rate: float,
    min_set_size: int,
    bootstrap: int,
    seed: int,
) -> list[dict]:
    """Every measure at every top_k, as rows {measure, top_k, score, ci_low, ci_high} (measures in MEASURES order).

    Same definitions as `invariance_score`, computed from one shared pass over the features. ci_low and ci_high: the
    95% interval over `bootstrap` resamples of the sets within each class, seeded by `seed` (the thresholds and
    global rates kept, see `_set_weights`), centred on the score (`bootstrap.centred_interval`: re-choosing the top-K
    units in noisier resamples lifts them all) and kept between 0 and the score's ceiling, the top-K mean of 1 / G (the
    score if every local rate were 1; never above the mean over classes of N / n_y for class_conditional,
    N / ceil(firing_rate N) for goodfellow, 100 for official); NaN when `bootstrap` is 0.
    """
    _check_parameters(MEASURES, top_ks, firing_rate, min_set_size)
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, (int, np.integer)) or bootstrap < 0:
        raise UserError(f"invariance: bootstrap must be a number of resamples >= 0, got {bootstrap!r}")
    features, labels, sets = _validate(features, labels, sets)
    per_measure = _unit_invariances(features, labels, sets, MEASURES, firing_rate, min_set_size, bootstrap, seed)
    rows = []
    for measure, (unit_scores, multiplier, ceilings) in per_measure.items():
        for top_k in top_ks:
            scores = _top_k_mean(unit_scores, top_k) * multiplier
            bounds = (0.0, float(_top_k_mean(ceilings, top_k)[0] * multiplier))
            low, high = (resampling.centred_interval(scores[0], scores[1:], bounds) if bootstrap
                         else (math.nan, math.nan))
            rows.append({"measure": measure, "top_k": top_k, "score": float(scores[0]), "ci_low": float(low),
                         "ci_high": float(high)})
    return rows


SCORE_COLUMNS = ["dataset", "measure", "top_k", "score", "ci_low", "ci_high"]


def score_feature_files(paths: list[str], *, top_k: list[int], firing_rate: float, min_set_size: int,
                        bootstrap: int, seed: int) -> pd.DataFrame:
    """`score_all` of every feature file (the `invariance` config keys and the master seed as arguments), one row per
    dataset (the file's stem), measure and top_k."""
    rows = []
    for path in paths:
        features, labels, sets = read_features(path)
        try:
            scores = score_all(features, labels, sets, top_ks=tuple(top_k), firing_rate=firing_rate,
                               min_set_size=min_set_size, bootstrap=bootstrap, seed=seed)
        except UserError as error:  # NaN features, a set mixing classes: say which file
            raise UserError(f"{path}: {error}") from error
        rows += [{"dataset": Path(path).stem, **row} for row in scores]
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)
