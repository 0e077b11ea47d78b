"""Table 5: percent cells, Avg over the classes present, display names and column order; the per-image scores it
reads and the Markdown with intervals."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from vidssl.core.errors import UserError
from vidssl.evaluation.table5 import build_table, write_table
from vidssl.evaluation.table5_intervals import (
    CI_COLUMNS,
    Counts,
    annotated_table,
    intervals,
    legend,
    mean_over_seeds,
    stack_counts,
)


def probe_frame(accuracies: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame({
        "class_name": list(accuracies), "parts": 2, "train_crops": 10, "test_crops": 5,
        "pixel_accuracy": list(accuracies.values()), "floor": 0.5,
    })


@pytest.fixture
def table():
    results = {
        "moco": probe_frame({"car": 0.41, "aeroplane": 0.579, "bird": 0.498}),
        "region_tracker": probe_frame({"aeroplane": 0.62749, "bird": 0.51234}),  # no car row
        "random": probe_frame({"aeroplane": 0.30, "car": float("nan"), "bird": 0.20}),  # car probe had no test crops
    }
    names = {"moco": "ImageNet MOCOv2", "region_tracker": "Ours Region Tracker"}
    return build_table(results, names, ["aeroplane", "bird", "car"])


def test_build_table(table):
    assert list(table.columns) == ["Method", "aeroplane", "bird", "car", "Avg"]
    assert table["Method"].tolist() == ["ImageNet MOCOv2", "Ours Region Tracker", "random"]
    moco = table.iloc[0]
    assert [moco["aeroplane"], moco["bird"], moco["car"]] == [57.9, 49.8, 41.0]
    assert moco["Avg"] == pytest.approx(round((57.9 + 49.8 + 41.0) / 3, 1))
    tracker = table.iloc[1]
    assert tracker["aeroplane"] == 62.7 and tracker["bird"] == 51.2 and math.isnan(tracker["car"])
    # Avg of the unrounded values: (62.749 + 51.234) / 2 = 56.9915 -> 57.0 (the rounded cells would give 56.95)
    assert tracker["Avg"] == 57.0
    assert math.isnan(table.iloc[2]["car"]) and table.iloc[2]["Avg"] == 25.0


def test_write_table(table, tmp_path):
    csv_path, md_path = tmp_path / "out" / "table5.csv", tmp_path / "out" / "table5.md"
    write_table(table, csv_path, md_path)
    back = pd.read_csv(csv_path)
    assert list(back.columns) == list(table.columns)
    assert back["Avg"].tolist() == table["Avg"].tolist()
    assert math.isnan(back.loc[1, "car"])
    lines = md_path.read_text().splitlines()
    assert lines[0] == "| Method | aeroplane | bird | car | Avg |"
    assert lines[1].startswith("| --- |") and lines[1].count("---:") == 4
    assert lines[2] == "| ImageNet MOCOv2 | 57.9 | 49.8 | 41.0 | 49.6 |"
    assert lines[3] == "| Ours Region Tracker | 62.7 | 51.2 | n/a | 57.0 |"
    assert len(lines) == 5
    assert sorted(p.name for p in csv_path.parent.iterdir()) == ["table5.csv", "table5.md"]  # no temp files left


def image_frame(correct, pixels=(100, 100, 50), classes=("car", "car", "bird"), images=("b", "a", "a")):
    return pd.DataFrame({"image": list(images), "class_name": list(classes), "pixels": list(pixels),
                         "correct": list(correct), "floor_correct": [50, 50, 25]})


def test_stack_counts_aligns_images_and_classes_across_methods_and_seeds():
    counts = stack_counts({"moco": [image_frame([90, 80, 40]), image_frame([91, 81, 41])],
                           "fti": [image_frame([10, 20, 30]), image_frame([11, 21, 31])]}, ["bird", "car"])
    assert counts.methods == ["moco", "fti"] and counts.correct.shape == (2, 2, 2, 2)
    assert counts.total.tolist() == [[50, 100], [0, 100]]  # images a, b; classes bird, car
    assert counts.correct[0, 1].tolist() == [[41, 81], [0, 91]]
    floors = stack_counts({"moco": [image_frame([0, 0, 0])]}, ["bird", "car"], column="floor_correct")
    assert floors.correct[0, 0].tolist() == [[25, 50], [0, 50]]


@pytest.mark.parametrize("per_seed, message", [
    ({"moco": [image_frame([1, 2, 3])], "fti": [image_frame([1, 2, 3], pixels=(100, 99, 50))]}, "other test crops"),
    ({"moco": [image_frame([1, 2, 3])], "fti": [image_frame([1, 2, 3])] * 2}, "numbers of probe seeds"),
    ({"moco": [image_frame([1, 2, 3], classes=("car", "cow", "bird"))]}, "partseg.classes"),
])
def test_stack_counts_refuses_scores_that_do_not_line_up(per_seed, message):
    with pytest.raises(UserError, match=message):
        stack_counts(per_seed, ["bird", "car"])


def test_mean_over_seeds_keeps_the_class_order():
    frames = [probe_frame({"car": 0.4, "bird": 0.6}), probe_frame({"car": 0.5, "bird": float("nan")})]
    means = mean_over_seeds(frames)
    assert means.class_name.tolist() == ["car", "bird"] and means.pixel_accuracy.tolist() == [0.45, 0.6]


def test_the_markdown_shows_the_distance_to_each_end_and_stars_real_differences(tmp_path):
    ci = pd.DataFrame(
        [["random", "car", 80.0, 0.1, 79.0, 81.0, "random", 0.0, 0.0, 0.0, False],
         ["random", "Avg", 80.0, 0.1, 79.5, 80.5, "random", 0.0, 0.0, 0.0, False],
         ["moco", "car", 77.04, 0.2, 76.0, 78.2, "random", -2.96, -3.5, -2.3, True],
         ["moco", "Avg", 77.04, 0.2, 76.5, 77.5, "random", -2.96, -3.5, -2.3, True],
         ["fti", "car", 80.2, float("nan"), 79.0, 81.4, "random", 0.2, -0.3, 0.6, False],
         ["fti", "Avg", 80.2, float("nan"), 79.2, 81.2, "random", 0.2, -0.3, 0.6, False]],
        columns=CI_COLUMNS)
    names = {"random": "Random init", "moco": "MoCo v2"}
    annotated = annotated_table(ci, names)
    table = build_table({m: probe_frame({"car": 0.8}) for m in ("random", "moco", "fti")}, names, ["car"])
    write_table(table, tmp_path / "t.csv", tmp_path / "t.md", annotated=annotated,
                legend=legend(3, 1000, "Random init"))
    lines = (tmp_path / "t.md").read_text().splitlines()
    assert lines[0] == "| Method | car | Avg | Avg − Random init |"
    assert lines[2] == "| Random init | 80.0 ± 1.0 | 80.0 ± 0.5 |  |"
    assert lines[3] == "| MoCo v2 | 77.0 +1.2/−1.0 | 77.0 ± 0.5 | -3.0 +0.7/−0.5 * |"  # 76.0-78.2, -3.5 to -2.3
    assert lines[4] == "| fti | 80.2 ± 1.2 | 80.2 ± 1.0 | 0.2 +0.4/−0.5 |"
    assert "3 probe seeds" in lines[-1] and "* : the paired 95% interval" in lines[-1] and "+up/−down" in lines[-1]
    assert pd.read_csv(tmp_path / "t.csv").columns.tolist() == ["Method", "car", "Avg"]  # the CSV keeps its layout


def test_two_disagreeing_seeds_give_cells_that_read_within_0_to_100():
    # two probe seeds 30 points apart on every image: the t draw with one degree of freedom put the car cell at
    # 45.0 ± 242.2, an interval no accuracy can take
    rng = np.random.default_rng(0)
    total = rng.integers(1, 4, (60, 2)) * 1024
    correct = np.stack([[total * 0.3, total * 0.6], [total * 0.5, total * 0.5]]).astype(np.int64)
    counts = Counts(methods=["random", "moco"], classes=["car", "bird"], correct=correct, total=total)
    annotated = annotated_table(intervals(counts, reference="random", resamples=300, seed=0), {})
    for cell in annotated[["car", "bird", "Avg"]].to_numpy().ravel():
        value, spread = cell.split(" ", 1)
        up, down = spread.split("/−") if "/" in spread else (spread.removeprefix("± "),) * 2
        assert 0 <= float(value) - float(down) and float(value) + float(up.removeprefix("+")) <= 100, cell
    assert annotated.loc[0, "car"] == "45.0 +55.0/−45.0"  # the whole range: two such seeds leave it open
