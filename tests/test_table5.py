"""Table 5: percent cells, Avg over the classes present, display names and column order."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from vidssl.table5 import build_table, write_table


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
