"""Invariance results across methods: one table and a grouped bar chart."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from vidssl.io import save_figure


def combine(tables: dict[str, pd.DataFrame], names: dict[str, str]) -> pd.DataFrame:
    """Stack per-method invariance tables, adding each method's display name."""
    frames = [t.assign(method=m, display_name=names.get(m, m)) for m, t in tables.items()]
    combined = pd.concat(frames, ignore_index=True)
    return combined[["method", "display_name", *[c for c in combined.columns if c not in ("method", "display_name")]]]


def plot_invariance(combined: pd.DataFrame, out_png: str) -> None:
    """One panel per (measure, top_k); datasets on the x axis, one bar per method."""
    panels = combined[["measure", "top_k"]].drop_duplicates().sort_values(["measure", "top_k"]).itertuples(index=False)
    panels = list(panels)
    methods = list(dict.fromkeys(combined.display_name))
    datasets = list(dict.fromkeys(combined.dataset))
    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    width = 0.8 / len(methods)
    for axis, (measure, top_k) in zip(axes[0], panels):
        panel = combined[(combined.measure == measure) & (combined.top_k == top_k)]
        for j, method in enumerate(methods):
            scores = panel[panel.display_name == method].set_index("dataset").score.reindex(datasets)
            axis.bar(np.arange(len(datasets)) + (j - (len(methods) - 1) / 2) * width, scores, width, label=method)
        axis.set_xticks(np.arange(len(datasets)), datasets, rotation=30, ha="right")
        axis.set_title(f"{measure}, top-{top_k}")
    axes[0][0].set_ylabel("invariance score")
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    save_figure(figure, out_png)
