"""The two-level bootstrap behind Table 5's intervals: its coverage, and what it marks as a difference."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vidssl.core.errors import UserError
from vidssl.evaluation import bootstrap
from vidssl.evaluation.table5_intervals import AVG, Counts, intervals

CLASSES = ["car", "bird"]


def synthetic_counts(rng, means, *, images=150, seeds=3, seed_sd=0.005, gains=None) -> Counts:
    """Per-image accuracies drawn around each class's true mean (images of 1-3 crops of 1,024 pixels), one shift per
    probe seed, binomial pixels; `gains` adds a method per entry, its accuracies shifted by the gain."""
    gains = [0.0] if gains is None else gains
    total = rng.integers(1, 4, (images, len(means))) * 1024
    image_accuracy = np.stack([rng.beta(8 * m, 8 * (1 - m), images) for m in means], axis=1)
    correct = []
    for gain in gains:
        shift = rng.normal(0, seed_sd, (seeds, 1, 1))
        correct.append(rng.binomial(total, np.clip(image_accuracy + gain + shift, 0, 1)))
    return Counts(methods=[f"m{i}" for i in range(len(gains))], classes=CLASSES, correct=np.stack(correct),
                  total=total)


def test_the_interval_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    means = np.array([0.6, 0.8])
    covered = {name: 0 for name in [*CLASSES, AVG]}
    for draw in range(200):
        ci = intervals(synthetic_counts(rng, means), reference="m0", resamples=500, seed=draw).set_index("class")
        for name, truth in zip([*CLASSES, AVG], [*means, means.mean()]):
            covered[name] += ci.loc[name, "ci_low"] <= 100 * truth <= ci.loc[name, "ci_high"]
    rates = {name: hits / 200 for name, hits in covered.items()}
    assert all(0.90 <= rate <= 0.99 for rate in rates.values()), rates


def test_identical_methods_are_never_marked_different():
    rng = np.random.default_rng(1)
    for draw in range(20):
        counts = synthetic_counts(rng, [0.7, 0.75])
        twins = Counts(methods=["a", "b"], classes=CLASSES, correct=np.concatenate([counts.correct] * 2),
                       total=counts.total)
        ci = intervals(twins, reference="a", resamples=200, seed=draw)
        assert not ci.differs.any()
        assert (ci[["diff", "diff_low", "diff_high"]] == 0).all().all()


def test_a_clearly_better_method_is_marked_and_the_reference_is_not():
    counts = synthetic_counts(np.random.default_rng(2), [0.6, 0.7], gains=[0.0, 0.03, 0.0005])
    ci = intervals(counts, reference="m0", resamples=1000, seed=0)
    average = ci[ci["class"] == AVG].set_index("method")
    assert average.differs.tolist() == [False, True, False]
    assert average.loc["m1", "diff"] == pytest.approx(3.0, abs=0.5) and average.loc["m1", "diff_low"] > 0
    # the interval of a difference is narrower than those of the means it compares: the resamples are paired
    assert (average.loc["m2", "diff_high"] - average.loc["m2", "diff_low"]
            < average.loc["m2", "ci_high"] - average.loc["m2", "ci_low"])


def test_the_point_estimates_are_the_seed_means():
    counts = synthetic_counts(np.random.default_rng(3), [0.6, 0.7], seeds=4)
    ci = intervals(counts, reference="m0", resamples=50, seed=0).set_index("class")
    per_seed = 100 * counts.correct[0].sum(axis=1) / counts.total.sum(axis=0)  # (seeds, classes)
    assert ci.loc[CLASSES, "mean"].to_numpy() == pytest.approx(per_seed.mean(axis=0))
    assert ci.loc[CLASSES, "std"].to_numpy() == pytest.approx(per_seed.std(axis=0, ddof=1))
    assert ci.loc[AVG, "mean"] == pytest.approx(per_seed.mean())
    assert (ci.ci_low < ci["mean"]).all() and (ci["mean"] < ci.ci_high).all()


def test_one_seed_has_no_seed_spread_and_a_class_without_test_pixels_is_left_out():
    counts = synthetic_counts(np.random.default_rng(4), [0.6, 0.7], seeds=1)
    counts.total[:, 1] = 0
    counts.correct[:, :, :, 1] = 0
    ci = intervals(counts, reference="m0", resamples=50, seed=0).set_index("class")
    assert np.isnan(ci.loc["car", "std"]) and ci.loc["car", "ci_low"] < ci.loc["car", "ci_high"]
    assert ci.loc["bird", ["mean", "ci_low", "ci_high"]].isna().all()
    assert ci.loc[AVG, "mean"] == ci.loc["car", "mean"]


def test_the_same_seed_gives_the_same_intervals_and_a_bad_reference_is_refused():
    counts = synthetic_counts(np.random.default_rng(5), [0.6, 0.7])
    first, second = (intervals(counts, reference="m0", resamples=100, seed=7) for _ in range(2))
    pd.testing.assert_frame_equal(first, second)
    with pytest.raises(UserError, match="table5.reference"):
        intervals(counts, reference="moco", resamples=100, seed=7)
    with pytest.raises(UserError, match="resamples"):
        bootstrap.draw(10, 3, 0, seed=0)


def test_resample_weights_draw_every_unit_count_times_in_all():
    weights = bootstrap.resample_weights(7, 1000, np.random.default_rng(0))
    assert weights.shape == (1000, 7) and (weights.sum(axis=1) == 7).all()
    assert weights.mean() == pytest.approx(1.0, abs=0.05)


CENTRED_CASES = {  # estimate, replicates, of a measure ranging over 0-3
    "all equal": (3.0, np.full(200, 3.0)),
    # the tiny config's 3.0 [3.00025, 3.00025]: a few resamples below pulled the mean, not the interval, off 3.0
    "a few outliers below": (3.0, np.r_[np.full(196, 3.0), np.full(4, 2.9875)]),
    "a few outliers above, at 0": (0.0, np.r_[np.full(195, 0.0), np.full(5, 0.5)]),
    "NaN resamples": (1.0, np.r_[np.full(50, np.nan), np.linspace(1.1, 1.3, 150)]),
    "a spread reaching past the ceiling": (3.0, np.linspace(2.8, 3.0, 200)),
}


@pytest.mark.parametrize("estimate, replicates", CENTRED_CASES.values(), ids=CENTRED_CASES)
def test_a_centred_interval_holds_its_estimate_within_the_range(estimate, replicates):
    low, high = bootstrap.centred_interval(estimate, replicates, (0.0, 3.0))
    assert 0.0 <= low <= estimate <= high <= 3.0


def test_a_centred_interval_keeps_the_resamples_spread_and_has_none_without_resamples():
    low, high = bootstrap.centred_interval(2.0, np.linspace(2.5, 2.9, 401), (0.0, 3.0))  # lifted by the resampling
    assert [low, high] == pytest.approx([2.0 - 0.19, 2.0 + 0.19])
    assert np.isnan(bootstrap.centred_interval(1.0, np.full(10, np.nan), (0.0, 3.0))).all()


def alike_images(counts: Counts) -> Counts:
    """Every test image the same: 1,024 pixels of each class, 512 (m0) and 700 (m1) right on every seed."""
    total = np.full_like(counts.total, 1024)
    correct = np.broadcast_to(np.array([512, 700])[:, None, None, None], counts.correct.shape).copy()
    return Counts(methods=counts.methods, classes=CLASSES, correct=correct, total=total)


def one_image_holds_bird(counts: Counts) -> Counts:
    """Only the first test image shows a bird: a third of the resamples hold no bird pixel (NaN resamples)."""
    counts.total[1:, 1] = 0
    counts.correct[:, :, 1:, 1] = 0
    return counts


def outlying_seed(counts: Counts) -> Counts:
    """Three seeds, the last one far below the other two."""
    counts.correct[:, 2] = counts.total // 10
    return counts


TABLE5_CASES = {  # how to turn synthetic counts (two methods, seeds as given) into a degenerate table
    "two seeds": (2, lambda counts: counts),
    "an outlying seed": (3, outlying_seed),
    "all images alike": (3, alike_images),
    "NaN resamples": (2, one_image_holds_bird),
}


@pytest.mark.parametrize("seeds, degenerate", TABLE5_CASES.values(), ids=TABLE5_CASES)
def test_every_table5_interval_holds_its_estimate_within_the_range(seeds, degenerate):
    rng = np.random.default_rng(6)
    counts = degenerate(synthetic_counts(rng, [0.3, 0.9], seeds=seeds, seed_sd=0.1, gains=[0.0, 0.05]))
    ci = intervals(counts, reference="m0", resamples=500, seed=0)
    assert ci[["mean", "ci_low", "ci_high", "diff", "diff_low", "diff_high"]].notna().all().all()
    assert ((0 <= ci.ci_low) & (ci.ci_low <= ci["mean"]) & (ci["mean"] <= ci.ci_high) & (ci.ci_high <= 100)).all()
    assert ((-100 <= ci.diff_low) & (ci.diff_low <= ci["diff"]) & (ci["diff"] <= ci.diff_high)
            & (ci.diff_high <= 100)).all()


def distinct_share(drawn: np.ndarray) -> float:
    """Percent of the 50 images a resample holds: 100 on all of them, about 63 on any resample."""
    return 100 * len(np.unique(drawn)) / 50


def first_image_mean(drawn: np.ndarray) -> float:
    """The mean right/wrong of a resample, NaN where it misses image 0."""
    return 100 * float(np.mean(drawn % 3 == 0)) if 0 in drawn else float("nan")


@pytest.mark.parametrize("statistic", [distinct_share, first_image_mean])
def test_a_test_set_statistic_interval_holds_its_value_within_0_to_100(statistic):
    value = statistic(np.arange(50))
    low, high = bootstrap.statistic_interval(50, statistic, bounds=(0.0, 100.0), resamples=300, seed=0)
    assert 0 <= low <= value <= high <= 100


@pytest.mark.parametrize("right", [np.full(40, 100.0), np.r_[np.full(39, 100.0), 0.0], np.r_[np.zeros(39), 100.0]],
                         ids=["all right", "one wrong", "one right"])
def test_a_mean_interval_holds_the_mean_within_0_to_100(right):
    (low, high), = bootstrap.mean_intervals({"top1": right}, bounds=(0.0, 100.0), resamples=300, seed=0).values()
    assert 0 <= low <= right.mean() <= high <= 100
