"""Chapter 09's figure: the race of the metrics beyond CLPIPS, against LPIPS and against CLPIPS.

* :data:`TITLES`: what each metric of :data:`clpips.protocol.METRICS` is, in a few words;
* :func:`plot_race`: each comparison's mean fold difference of ΔICC(A,k) with its corrected resampled
  t interval, one panel per reference (LPIPS, CLPIPS).
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

#: what each metric is (:data:`clpips.protocol.METRICS`), short enough for a table's index: CLPIPS's weights
#: on features pooled over space; a low-rank transform of the pooled representation; CLPIPS taught by it
TITLES = {"clpips": "CLPIPS", "global": "pooled re-weighting", "transform": "pooled low-rank transform",
          "teacher": "taught CLPIPS"}


def plot_race(tests: pd.DataFrame) -> Figure:
    """One panel per reference (``tests["against"]``: LPIPS, CLPIPS): per case (``tests["case"]``, along
    x) each metric's mean difference ``delta`` with its interval ``low``-``high``, the metrics side by
    side in the order of :data:`TITLES`. The intervals are the comparisons' own (not adjusted for the
    number of comparisons)."""
    cases = list(dict.fromkeys(tests["case"]))
    against = list(dict.fromkeys(tests["against"]))
    metrics = [m for m in TITLES if m in set(tests["metric"])]
    width = 0.8 / len(metrics)
    fig, axes = plt.subplots(len(against), 1, figsize=(6.4, 2.6 * len(against)), sharex=True, squeeze=False)
    for ax, reference in zip(axes[:, 0], against):
        part = tests[tests["against"] == reference]
        for k, metric in enumerate(metrics):
            rows = part[part["metric"] == metric]
            at = [cases.index(c) - 0.4 + width * (k + 0.5) for c in rows["case"]]
            ax.errorbar(at, rows["delta"], yerr=[rows["delta"] - rows["low"], rows["high"] - rows["delta"]],
                        fmt="o", ms=4, color=f"C{k}", capsize=2, label=TITLES[metric])
        ax.axhline(0, color="k", lw=0.8)
        ax.set_ylabel(f"ICC(A,k): metric − {reference}", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    axes[-1, 0].set_xticks(range(len(cases)), [c.replace(" by ", "\nby ") for c in cases], fontsize=8)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig
