"""Table 5 of the paper: part-segmentation pixel accuracy (percent), one row per method, one column per
object class, `Avg` last; each cell the mean over the probe seeds (the intervals: `vidssl.evaluation.table5_intervals`)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from vidssl.core.io import atomic_path


def build_table(results: dict[str, pd.DataFrame], names: dict[str, str], classes: list[str]) -> pd.DataFrame:
    """`results`: method -> probe_all frame, in row order. `names`: method -> display name (default: the key).

    Cells are percentages rounded to one decimal; Avg is the mean of the unrounded cells present.
    """
    rows = []
    for method, frame in results.items():
        accuracy = frame.set_index("class_name")["pixel_accuracy"]
        percent = [100 * float(accuracy[name]) if name in accuracy.index else math.nan for name in classes]
        present = [value for value in percent if not math.isnan(value)]
        average = float(np.mean(present)) if present else math.nan
        rows.append([names.get(method, method), *[round(value, 1) for value in percent], round(average, 1)])
    return pd.DataFrame(rows, columns=["Method", *classes, "Avg"])


def markdown_table(table: pd.DataFrame, decimals: int = 1) -> str:
    """A pipe table: the first column left-aligned, the rest right-aligned, floats to `decimals` places, NaN as n/a."""
    def cell(value: object) -> str:
        if isinstance(value, float):
            return "n/a" if math.isnan(value) else f"{value:.{decimals}f}"
        return str(value)

    header = "| " + " | ".join(table.columns) + " |"
    rule = "|" + "|".join([" --- "] + [" ---: "] * (len(table.columns) - 1)) + "|"
    body = ["| " + " | ".join(cell(value) for value in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body]) + "\n"


def write_table(table: pd.DataFrame, csv_path: str | Path, md_path: str | Path, *,
                annotated: pd.DataFrame | None = None, legend: str = "") -> None:
    """Write the table as CSV (empty cells for missing values) and as a Markdown pipe table, atomically; the Markdown
    shows `annotated` (text cells: the means with their intervals) instead when given, then `legend`."""
    with atomic_path(csv_path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.1f")
    with atomic_path(md_path) as tmp:
        tmp.write_text(markdown_table(table if annotated is None else annotated) + legend)
