"""Invariance results across methods: one long table, the paper's wide table, and a grouped bar chart."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from vidssl.core.io import atomic_path, save_figure
from vidssl.evaluation.table5 import markdown_table


def combine(tables: dict[str, pd.DataFrame], names: dict[str, str]) -> pd.DataFrame:
    """Stack per-method invariance tables, adding each method's display name."""
    frames = [t.assign(method=m, display_name=names.get(m, m)) for m, t in tables.items()]
    combined = pd.concat(frames, ignore_index=True)
    return combined[["method", "display_name", *[c for c in combined.columns if c not in ("method", "display_name")]]]


def invariance_table(combined: pd.DataFrame, titles: dict[str, str],
                     measure: str = "class_conditional") -> pd.DataFrame:
    """The paper's layout of `measure`: one row per method (in `combined`'s order), one column per invariance and
    top-K, the invariances in `titles`' order (datasets it does not name after them, under their own names)."""
    scores = combined[combined.measure == measure]
    present = list(dict.fromkeys(scores.dataset))
    datasets = [d for d in titles if d in present] + [d for d in present if d not in titles]
    top_ks = sorted(scores.top_k.unique())
    table = pd.DataFrame({"Method": list(dict.fromkeys(scores.display_name))})
    for dataset in datasets:
        for top_k in top_ks:
            cell = scores[(scores.dataset == dataset) & (scores.top_k == top_k)].set_index("display_name").score
            table[f"{titles.get(dataset, dataset)} top-{top_k}"] = table.Method.map(cell).astype(float)
    return table


def write_invariance_table(table: pd.DataFrame, md_path: str) -> None:
    with atomic_path(md_path) as tmp:
        tmp.write_text(markdown_table(table, decimals=2))


def plot_invariance(combined: pd.DataFrame, out_png: str) -> None:
    """One panel per (measure, top_k); datasets on the x axis, one bar per method, its 95% interval as a black line
    where the scores have one."""
    panels = combined[["measure", "top_k"]].drop_duplicates().sort_values(["measure", "top_k"]).itertuples(index=False)
    panels = list(panels)
    methods = list(dict.fromkeys(combined.display_name))
    datasets = list(dict.fromkeys(combined.dataset))
    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    width = 0.8 / len(methods)
    for axis, (measure, top_k) in zip(axes[0], panels):
        panel = combined[(combined.measure == measure) & (combined.top_k == top_k)]
        for j, method in enumerate(methods):
            rows = panel[panel.display_name == method].set_index("dataset").reindex(datasets)
            positions = np.arange(len(datasets)) + (j - (len(methods) - 1) / 2) * width
            axis.bar(positions, rows.score, width, label=method)
            if "ci_low" in rows:  # the interval itself, which may lie lopsided about the score
                axis.vlines(positions, rows.ci_low, rows.ci_high, colors="black", linewidth=0.8)
        axis.set_xticks(np.arange(len(datasets)), datasets, rotation=30, ha="right")
        axis.set_title(f"{measure}, top-{top_k}")
    axes[0][0].set_ylabel("invariance score")
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    save_figure(figure, out_png)
