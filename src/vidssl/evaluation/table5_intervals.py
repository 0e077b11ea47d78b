"""Table 5's intervals: per method and class (and Avg) the mean over probe seeds, their spread, a 95% interval from a
two-level bootstrap over test images and probe seeds (`vidssl.evaluation.bootstrap`), and the paired difference from a reference
row, from the per-image scores that `vidssl.evaluation.partseg_probe.probe_all` writes beside each seed's accuracies."""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vidssl.core.errors import UserError
from vidssl.evaluation import bootstrap

AVG = "Avg"
CI_COLUMNS = ["method", "class", "mean", "std", "ci_low", "ci_high", "reference", "diff", "diff_low", "diff_high",
              "differs"]
KEY = ["image", "class_name", "pixels"]
PERCENT = (0.0, 100.0)  # the range of a pixel accuracy in percent
DIFFERENCE = (-100.0, 100.0)  # the range of the difference of two


@dataclass(frozen=True)
class Counts:
    """Correct pixels per method, seed, test image and class, and the test pixels per image and class."""

    methods: list[str]
    classes: list[str]
    correct: np.ndarray  # (methods, seeds, images, classes)
    total: np.ndarray  # (images, classes)


def stack_counts(per_seed: dict[str, list[pd.DataFrame]], classes: list[str], column: str = "correct") -> Counts:
    """`per_seed`: method -> its seeds' per-image frames (image, class_name, pixels, correct, floor_correct), every
    one over the same test images; `column` is the count to read (floor_correct: the majority-label floor)."""
    frames = [frame for seeds in per_seed.values() for frame in seeds]
    keys = frames[0][KEY].sort_values(KEY[:2]).reset_index(drop=True)
    images = sorted(set(keys.image))
    row, col = keys.image.map({name: i for i, name in enumerate(images)}), keys.class_name.map(
        {name: j for j, name in enumerate(classes)})
    if col.isna().any():
        raise UserError(f"table5: per-image scores name classes {sorted(set(keys.class_name) - set(classes))} "
                        "that partseg.classes does not")
    total = np.zeros((len(images), len(classes)), np.int64)
    total[row, col] = keys.pixels
    seeds = {len(s) for s in per_seed.values()}
    if len(seeds) != 1:
        raise UserError(f"table5: methods have different numbers of probe seeds ({sorted(seeds)})")
    correct = np.zeros((len(per_seed), seeds.pop(), len(images), len(classes)), np.int64)
    for m, (method, seed_frames) in enumerate(per_seed.items()):
        for s, frame in enumerate(seed_frames):
            frame = frame.sort_values(KEY[:2]).reset_index(drop=True)
            if not frame[KEY].equals(keys):
                raise UserError(f"table5: the per-image scores of {method} (seed {s}) cover other test crops than "
                                f"those of {next(iter(per_seed))}; rerun the part probes on one crops.h5")
            correct[m, s, row, col] = frame[column]
    return Counts(methods=list(per_seed), classes=list(classes), correct=correct, total=total)


def _with_average(per_class: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Append the mean over the classes present as a last column (NaN classes of a resample left out)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a resample with no pixel at all averages to NaN
        average = np.nanmean(np.where(present, per_class, np.nan), axis=-1, keepdims=True)
    return np.concatenate([per_class, average], axis=-1)


def _point_estimates(counts: Counts, present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per method and column (classes, Avg): the mean over seeds and the standard deviation over seeds, in percent."""
    with np.errstate(invalid="ignore", divide="ignore"):
        per_seed = counts.correct / np.where(counts.total.sum(axis=0) > 0, counts.total.sum(axis=0), np.nan)
    per_seed = _with_average(100 * per_seed.sum(axis=2), present)  # (methods, seeds, columns)
    seeds = per_seed.shape[1]
    spread = per_seed.std(axis=1, ddof=1) if seeds > 1 else np.full(per_seed[:, 0].shape, math.nan)
    return per_seed.mean(axis=1), spread


def intervals(counts: Counts, *, reference: str, resamples: int, seed: int) -> pd.DataFrame:
    """The long table of CI_COLUMNS, one row per method and class with Avg last, in percent.

    ci_low / ci_high: the 95% percentile interval of `bootstrap.two_level` (replicates clipped to 0-100). diff: the
    mean's difference from the `reference` method's, diff_low / diff_high its 95% interval from the same resamples
    (images and seeds paired, replicates clipped to -100-100), differs: that interval excludes 0. Every interval is
    `bootstrap.bounded`: it holds its mean (or diff) and stays in its range.
    """
    if reference not in counts.methods:
        raise UserError(f"table5.reference {reference!r} is not one of table5.methods {counts.methods}")
    present = counts.total.sum(axis=0) > 0
    means, spread = _point_estimates(counts, present)
    draws = bootstrap.draw(counts.total.shape[0], counts.correct.shape[1], resamples, seed)
    per_seed = np.stack([  # (methods, resamples, seeds, columns)
        _with_average(100 * bootstrap.seed_accuracies(correct, counts.total, draws.image_weights), present)
        for correct in counts.correct])
    replicates = np.stack([bootstrap.two_level(values, draws, PERCENT) for values in per_seed], axis=1)
    low, high = bootstrap.bounded(means, *bootstrap.interval(replicates), PERCENT)
    ref = counts.methods.index(reference)
    differences = np.stack([bootstrap.two_level(values - per_seed[ref], draws, DIFFERENCE) for values in per_seed],
                           axis=1)
    diff_low, diff_high = bootstrap.bounded(means - means[ref], *bootstrap.interval(differences), DIFFERENCE)
    columns = [*counts.classes, AVG]
    rows = [
        [method, column, means[m, c], spread[m, c], low[m, c], high[m, c], reference, means[m, c] - means[ref, c],
         diff_low[m, c], diff_high[m, c], bool(bootstrap.excludes_zero(diff_low[m, c], diff_high[m, c]))]
        for m, method in enumerate(counts.methods) for c, column in enumerate(columns)
    ]
    return pd.DataFrame(rows, columns=CI_COLUMNS)


def _plus_minus(value: float, low: float, high: float) -> str:
    """The value and its distance to each end of its interval: `± d` where the two read alike, else `+up/−down` (an
    interval at a bound of its range, or a skewed one, is not the value plus and minus its half-width)."""
    if math.isnan(value):
        return "n/a"
    if math.isnan(low):
        return f"{value:.1f}"
    up, down = f"{high - value:.1f}", f"{value - low:.1f}"
    return f"{value:.1f} ± {up}" if up == down else f"{value:.1f} +{up}/−{down}"


def annotated_table(ci: pd.DataFrame, names: dict[str, str]) -> pd.DataFrame:
    """Table 5 as text cells: each mean with its distance to the ends of its interval, and a last column with the Avg's
    difference from the reference row, starred where its paired interval excludes 0."""
    reference = ci.reference.iloc[0]
    columns = list(dict.fromkeys(ci["class"]))
    rows = []
    for method, group in ci.groupby("method", sort=False):
        cells = group.set_index("class")
        average = cells.loc[AVG]
        difference = ("" if method == reference else
                      _plus_minus(average["diff"], average.diff_low, average.diff_high) + (" *" if average.differs else ""))
        rows.append([names.get(method, method), *[_plus_minus(cells.loc[c, "mean"], cells.loc[c, "ci_low"],
                                                                cells.loc[c, "ci_high"]) for c in columns], difference])
    return pd.DataFrame(rows, columns=["Method", *columns, f"Avg − {names.get(reference, reference)}"])


def legend(seeds: int, resamples: int, reference_name: str) -> str:
    """The lines under the Markdown table that say what ± and * mean."""
    return (f"\nMean over {seeds} probe seed{'s' if seeds != 1 else ''}; ± is the distance from the mean to either "
            f"end of its 95% interval, +up/−down where the two differ ({resamples} bootstrap resamples of the test "
            f"images and the probe seeds, within 0-100, docs/results.md). "
            f"* : the paired 95% interval of the Avg difference from {reference_name} excludes 0.\n")


def mean_over_seeds(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """One probe_all class frame whose pixel_accuracy is the mean over the seeds' frames (NaN where all are NaN)."""
    accuracy = pd.concat(frames).groupby("class_name", sort=False)["pixel_accuracy"].mean()
    return accuracy.reset_index()
