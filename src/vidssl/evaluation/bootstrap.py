"""Bootstrap intervals for the evaluation tables: resampling weights, a two-level (test image x probe seed) bootstrap of
pixel and top-1 accuracies, and percentile intervals.

A resample draws the test images with replacement (as multinomial counts, one weight per image), so an accuracy on it
is a weighted ratio of per-image correct and total counts; every method of a table shares the same draws, which makes
differences between methods paired. A handful of probe seeds is too few to resample, so the seed part of a replicate is
parametric: the standard error over the S seeds (on that image resample) times a Student t draw with S - 1 degrees of
freedom, which widens the interval as few seeds warrant (with one seed there is no seed part).

Every interval holds its point estimate and stays inside its measure's range (`bounded`): a replicate or an interval end
beyond the range is a value the measure cannot take, and an interval beside its estimate says nothing about it.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np

from vidssl.core.errors import UserError

LEVEL = 0.95


def resample_weights(count: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(resamples, count) multinomial counts: how often each of `count` units is drawn in each resample."""
    if count == 0:
        return np.zeros((resamples, 0), dtype=np.int64)
    return rng.multinomial(count, np.full(count, 1.0 / count), size=resamples)


@dataclass(frozen=True)
class Draws:
    """The random part of `resamples` two-level resamples, shared by every method of a table."""

    image_weights: np.ndarray  # (resamples, images) multinomial counts
    seed_t: np.ndarray  # (resamples,) Student t draws with seeds - 1 degrees of freedom (zeros for one seed)


def draw(images: int, seeds: int, resamples: int, seed: int) -> Draws:
    _check_resamples(resamples)
    rng = np.random.default_rng(seed)
    weights = resample_weights(images, resamples, rng)
    seed_t = rng.standard_t(seeds - 1, resamples) if seeds > 1 else np.zeros(resamples)
    return Draws(image_weights=weights, seed_t=seed_t)


def seed_accuracies(correct: np.ndarray, total: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per resample, seed and column, sum(w * correct) / sum(w * total): correct is (seeds, images, columns), total
    (images, columns), weights (resamples, images); NaN where a resample holds no pixel of a column."""
    drawn_total = weights @ total.astype(np.float64)
    drawn_correct = np.einsum("ri,sic->rsc", weights.astype(np.float64), correct.astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        return drawn_correct / np.where(drawn_total > 0, drawn_total, np.nan)[:, None, :]


def two_level(per_seed: np.ndarray, draws: Draws, bounds: tuple[float, float]) -> np.ndarray:
    """(resamples, columns) replicates of a seed mean from its per-seed values on each image resample
    (resamples, seeds, columns): the seed mean plus the standard error over seeds times the resample's t draw, clipped
    to the measure's range `bounds`. The t draw has heavy tails with few seeds (with two, a Cauchy draw: its 97.5th
    percentile is 12.7 standard errors), so unclipped replicates of an accuracy reach far beyond 0-100; clipped, a seed
    mean that two disagreeing seeds leave open reads as the whole range, not as values it cannot take."""
    seeds = per_seed.shape[1]
    mean = per_seed.mean(axis=1)
    if seeds == 1:
        return mean
    standard_error = per_seed.std(axis=1, ddof=1) / math.sqrt(seeds)
    return np.clip(mean + standard_error * draws.seed_t[:, None], *bounds)


def interval(replicates: np.ndarray, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """The percentile interval of `replicates` along axis 0, ignoring NaN replicates (NaN where all are)."""
    tail = 100 * (1 - level) / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column gives NaN, which is what it should
        low, high = np.nanpercentile(replicates, [tail, 100 - tail], axis=0)
    return low, high


def bounded(estimate, low, high, bounds: tuple[float, float]):
    """The interval [low, high] inside the measure's range `bounds` and holding `estimate` (which lies in the range):
    each end clipped to the range, then moved out to the estimate where it lay on the estimate's wrong side. Works
    elementwise on arrays; a NaN end (no interval) stays NaN."""
    lower, upper = bounds
    return np.minimum(np.clip(low, lower, upper), estimate), np.maximum(np.clip(high, lower, upper), estimate)


def centred_interval(estimate: float, replicates: np.ndarray, bounds: tuple[float, float],
                     level: float = LEVEL) -> tuple[float, float]:
    """The percentile interval of `replicates` moved by their median's offset from `estimate`, then `bounded` to the
    measure's range: for a statistic that the resampling itself biases, such as a mean of the top-K of noisy unit rates
    (a resample's extra noise lifts its top-K), the spread of the resamples without their bias. The median, not the
    mean, measures the lift: it lies inside the percentile interval whatever the resamples are, so the moved interval
    holds the estimate (a mean pulled off by a few outlying resamples moved a zero-width interval off its estimate).
    NaN resamples are left out; NaN bounds when all are NaN."""
    low, high = interval(replicates, level)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN resamples: no interval
        offset = float(np.nanmedian(replicates)) - estimate
    low, high = bounded(estimate, low - offset, high - offset, bounds)
    return float(low), float(high)


def excludes_zero(low, high) -> np.ndarray:
    """Whether an interval of a difference lies strictly on one side of 0."""
    return (np.asarray(low) > 0) | (np.asarray(high) < 0)



def _check_resamples(resamples) -> None:
    if isinstance(resamples, bool) or not isinstance(resamples, (int, np.integer)) or resamples < 1:
        raise UserError(f"bootstrap: resamples must be a positive integer, got {resamples!r}")


def mean_intervals(per_image: dict[str, np.ndarray], *, bounds: tuple[float, float], resamples: int,
                   seed: int) -> dict[str, tuple[float, float]]:
    """The 95% interval of the mean of each per-image score (e.g. 100 where a prediction is right, `bounds` its range),
    every score over the same draws of the test images, so that the intervals of two predictors on one set are paired;
    each `bounded` to hold the mean of all images."""
    _check_resamples(resamples)
    count = len(next(iter(per_image.values())))
    weights = resample_weights(count, resamples, np.random.default_rng(seed)).astype(np.float64)
    intervals = {}
    for name, values in per_image.items():
        values = np.asarray(values, np.float64)
        low, high = bounded(float(values.mean()), *interval(weights @ values / count), bounds)
        intervals[name] = (float(low), float(high))
    return intervals


def statistic_interval(count: int, statistic: Callable[[np.ndarray], float], *, bounds: tuple[float, float],
                       resamples: int, seed: int) -> tuple[float, float]:
    """The 95% interval of a statistic of `count` test images that is not a mean (mAP ranks them): statistic(indices
    of the drawn images) once per resample (NaN resamples left out), `bounded` to hold statistic(all images) and stay in
    the statistic's range `bounds`: a statistic the resampling biases (repeated images tie in a ranking) can have
    every resample on one side of its value."""
    _check_resamples(resamples)
    rng = np.random.default_rng(seed)
    values = np.array([statistic(rng.integers(0, count, count)) for _ in range(resamples)])
    low, high = bounded(statistic(np.arange(count)), *interval(values), bounds)
    return float(low), float(high)
