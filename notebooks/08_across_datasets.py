# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# (sec-08-across-datasets)=
# # Across datasets: when does CLPIPS help?
#
# One dataset answers the paper's question for one kind of similarity. This chapter runs the
# nested protocol of {numref}`fig-04-protocol` (`clpips.protocol`, both split modes) on every
# dataset the compendium has: `mur92`, 16 people's judgements of 92 object photographs, which
# people sort by category {cite:p}`kriegeskorte2008matching,mur2013human`; `zappos`, a crowd's
# judgements of 85 shoe photographs, which differ in shape and style
# {cite:p}`heim2015active,yu2014finegrained`; the simulated study with known ground truth
# ({doc}`/out/notebooks/01_dataset_exploration`); and, with `-p study_csv PATH`, a study of your
# own ({doc}`/book/own_data`). Then it asks what differs between the datasets where CLPIPS helps
# and those where it does not.

# %% tags=["parameters"]
from clpips.defaults import DEFAULTS

study_csv = ""                                # a study of your own, beside the built-in datasets
k = DEFAULTS.k
seed = DEFAULTS.seed
protocol_folds = DEFAULTS.protocol_folds
protocol_repeats = DEFAULTS.protocol_repeats
protocol_inner_folds = DEFAULTS.protocol_inner_folds
protocol_margins = DEFAULTS.protocol_margins
protocol_lrs = DEFAULTS.protocol_lrs
protocol_epochs = DEFAULTS.protocol_epochs
protocol_select = DEFAULTS.protocol_select
n_boot = DEFAULTS.n_boot
ci = DEFAULTS.ci

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib_inline.backend_inline import set_matplotlib_formats
from myst_nb import glue

from clpips import protocol
from clpips.book import paper
from clpips.book.personal import layer_shares
from clpips.book.plots import protocol as plots_protocol
from clpips.book.report import glue_all
from clpips.book.agreement import split_half
from clpips.book.summaries import noise_ceiling
from clpips.datasets import SPLIT_MODES, zappos
from clpips.experiment import load_every_dataset
from clpips.model import initial_weight_vector
from clpips.book.power import verdict

set_matplotlib_formats("png")  # figures display (and glue) as PNG under any backend
started = time.perf_counter()

# %% [markdown]
# ## The answer on every dataset
#
# Every dataset, split by target and by image, goes through the same nested protocol (its
# settings are the parameters above; chapter 04's runs of `mur92` are read from the cache):

# %%
studies = load_every_dataset(study_csv, k=k, seed=seed)
runs, summaries = {}, {}
for name, data in studies.items():
    for mode in SPLIT_MODES:
        res = protocol.crossval(data, protocol.Settings.from_parameters(globals(), mode=mode))
        runs[(name, mode)] = res
        summaries[(name, mode)] = res.summary(ci=ci, n_boot=n_boot, seed=seed)
glue_all({"n_datasets": len(studies), "datasets": ", ".join(studies)}, prefix="nb08_")  # plain names: not markdown
pd.Series({f"{name} by {mode}": len(res.folds) for (name, mode), res in runs.items()}, name="outer folds")

# %% [markdown]
# Each run's summary gives, per statistic, the mean Δ = CLPIPS − LPIPS over the outer folds with
# its corrected resampled $t$ interval. One function turns an interval of ΔICC(A,k) into a word,
# `clpips.book.power.verdict`: *helps* or *hurts* when the interval excludes zero; otherwise, against
# the gain one looks for (here the paper's ΔICC(A,k)), *equivalent* (any effect is smaller than
# it either way), *no gain shown* (a gain that large is ruled out, a loss is not) or
# *inconclusive* (zero and that gain both fit).

# %%
paper_delta = {"icc_A_k": paper.value("delta_icc"), "spearman_raw": paper.derived()["delta_spearman"]}
icc = pd.DataFrame({key: s.loc["icc_A_k", ["lpips", "clpips", "delta", "nb_low", "nb_high"]]
                    for key, s in summaries.items()}).T.rename_axis(["dataset", "split"])
icc["verdict"] = [verdict(lo, hi, paper_delta["icc_A_k"]) for lo, hi in zip(icc["nb_low"], icc["nb_high"])]
icc["rho_raw_delta"] = [s.at["spearman_raw", "delta"] for s in summaries.values()]
glue_all({f"nb08_{name}_{mode}_{column}": float(row[source])     # nb08_zappos_target_icc_delta, ...
          for (name, mode), row in icc.iterrows()
          for column, source in (("icc_delta", "delta"), ("icc_nb_low", "nb_low"), ("icc_nb_high", "nb_high"),
                                 ("icc_lpips", "lpips"), ("icc_clpips", "clpips"), ("rho_raw_delta", "rho_raw_delta"))})
for mode in SPLIT_MODES:                                          # nb08_target_helps, ...: lists of datasets
    said = icc.xs(mode, level="split")["verdict"]
    names = {"helps": said.index[said == "helps"], "hurts": said.index[said == "hurts"],
             "none": said.index[~said.isin(["helps", "hurts"])]}
    glue_all({f"{mode}_{word}": ", ".join(found) or "none" for word, found in names.items()}
             | {f"{mode}_n_helps": len(names["helps"])}, prefix="nb08_")
icc.round(3)

# %% tags=["hide-input"]
def answer_table(summaries, paper_delta) -> pd.DataFrame:
    """The summaries as one printed table (formatting only): per dataset, split and statistic, with the
    paper's values below."""
    rows = []
    for (name, mode), summary in summaries.items():
        for stat in ("icc_A_k", "spearman_raw", "spearman"):
            row = summary.loc[stat]
            rows.append({"dataset": name, "split": f"by {mode}",
                         "statistic": plots_protocol.TITLES[stat].lstrip("Δ").strip(),
                         "LPIPS": f"{row['lpips']:.3f}", "CLPIPS": f"{row['clpips']:.3f}",
                         "Δ": f"{row['delta']:+.3f}",
                         "corrected t 95%": f"[{row['nb_low']:+.3f}, {row['nb_high']:+.3f}]",
                         "target bootstrap 95%": (f"[{row['boot_low']:+.3f}, {row['boot_high']:+.3f}]"
                                                  if np.isfinite(row["boot_low"]) else "—"),
                         "folds Δ > 0": f"{int(round(row['positive_share'] * row['n_folds']))}/{int(row['n_folds'])}"})
    for stat, value in paper_delta.items():
        rows.append({"dataset": "paper (its data)", "split": "one split, by target",
                     "statistic": plots_protocol.TITLES[stat].lstrip("Δ").strip(), "LPIPS": "", "CLPIPS": "",
                     "Δ": f"{value:+.3f}", "corrected t 95%": "—",
                     "target bootstrap 95%": (f"[{paper.value('delta_icc_ci_low'):+.3f}, "
                                              f"{paper.value('delta_icc_ci_high'):+.3f}]" if stat == "icc_A_k" else "—"),
                     "folds Δ > 0": "—"})
    return pd.DataFrame(rows).set_index(["dataset", "split", "statistic"])


# %% tags=["remove-output"]
table = answer_table(summaries, paper_delta)
glue("nb08_table", table, display=False)
table

# %% tags=["remove-output"]
fig = plots_protocol.plot_fold_deltas(
    {f"{name}\nby {mode}": res.folds for (name, mode), res in runs.items()},
    {f"{name}\nby {mode}": summaries[(name, mode)] for (name, mode) in runs},
    statistics=("icc_A_k", "spearman_raw", "spearman"), reference=paper_delta, seed=seed)
glue("nb08_fig", fig, display=False)
plt.close(fig)  # shown once: below in JupyterLab, where the text pastes it in the book
fig

# %% [markdown]
# ```{glue:figure} nb08_fig
# :name: fig-08-across
#
# Held-out differences CLPIPS − LPIPS per outer fold (grey) with the mean and its corrected
# resampled $t$ interval (blue) and the out-of-fold target bootstrap (orange), for every dataset
# and split mode; dashed: the paper's value (its ΔICC from Table 4; its Δ$\rho$ from Table 3, raw
# distances pooled).
# ```
#
# ```{glue:figure} nb08_table
# :name: tbl-08-across
#
# The protocol's summary per dataset and split mode, as {numref}`tbl-04-protocol`, with the
# paper's values (from one split of its private data) for comparison.
# ```
#
# By the corrected interval of ΔICC(A,k), split by target CLPIPS helps on
# {glue:text}`nb08_target_helps`, shows no difference on {glue:text}`nb08_target_none` and hurts
# on {glue:text}`nb08_target_hurts`. Split by image, where no held-out image was trained on, it
# helps on {glue:text}`nb08_image_helps`, shows no difference on {glue:text}`nb08_image_none` and
# hurts on {glue:text}`nb08_image_hurts`; the verdicts above say more of each null result. On
# `zappos` ΔICC(A,k) is
# {glue:text}`nb08_zappos_target_icc_delta:+.3f` [{glue:text}`nb08_zappos_target_icc_nb_low:+.3f`,
# {glue:text}`nb08_zappos_target_icc_nb_high:+.3f`] split by target and
# {glue:text}`nb08_zappos_image_icc_delta:+.3f` [{glue:text}`nb08_zappos_image_icc_nb_low:+.3f`,
# {glue:text}`nb08_zappos_image_icc_nb_high:+.3f`] split by image; on `mur92`
# {glue:text}`nb08_mur92_target_icc_delta:+.3f` and {glue:text}`nb08_mur92_image_icc_delta:+.3f`;
# on the simulated study {glue:text}`nb08_simulated_target_icc_delta:+.3f` and
# {glue:text}`nb08_simulated_image_icc_delta:+.3f`. Where no image is ranked with two targets (the
# simulated study: every candidate is one person's own regeneration of one target), the split by
# image holds out exactly what the split by target does, and the two rows agree.
#
# ## What differs where CLPIPS helps
#
# Beside each dataset's gain: how well LPIPS starts, how well people agree with each other (what
# any one ranking per set can reach), how much training each fold has, and where the refitted
# weights went. People's agreement is measured as the data allow:

# %%
def agreement(name: str, data) -> tuple[float, str]:
    """People's agreement with each other as per-ranking Spearman rho, and how it was measured."""
    lower = noise_ceiling(data.table)
    if not lower.empty:
        return float(lower.set_index("rater").at["all", "rho"]), "leave one rater out (lower bound)"
    if name == "zappos":
        half = split_half(data.table, zappos.triplets(), seed=seed)
        return float(half["rho_spearman_brown"]), "split-half, Spearman–Brown"
    return float("nan"), "one rater per set: none"


# %%
w0 = initial_weight_vector(DEFAULTS.net, "lpips")
facts = []
for name, data in studies.items():
    res = runs[(name, "target")]
    bound, kind = agreement(name, data)
    shares = layer_shares({"LPIPS": w0, "CLPIPS": res.weights.mean(axis=0)})
    gain_layer = int(np.argmax(shares.loc["CLPIPS"].to_numpy() - shares.loc["LPIPS"].to_numpy()))
    facts.append({"dataset": name, "LPIPS ICC(A,k)": float(res.folds["lpips_icc_A_k"].mean()),
                  "ΔICC(A,k), by target": float(summaries[(name, "target")].at["icc_A_k", "delta"]),
                  "ΔICC(A,k), by image": float(summaries[(name, "image")].at["icc_A_k", "delta"]),
                  "people's agreement (ρ per ranking)": bound, "agreement measured by": kind,
                  "CLPIPS per-ranking ρ": float(res.folds["clpips_spearman"].mean()),
                  "training rankings per fold": float(res.folds["n_train_rankings"].mean()),
                  "training rows per fold": float(res.folds["n_train_rows"].mean()),
                  "layer gaining most weight": f"layer {gain_layer + 1}",
                  **{f"CLPIPS share, {c}": float(v) for c, v in shares.loc["CLPIPS"].items()}})
facts = pd.DataFrame(facts).set_index("dataset")

# %% tags=["remove-output"]
glue("nb08_facts", facts.T, display=False)
facts.T

# %%
order = facts["ΔICC(A,k), by target"].sort_values(ascending=False)
start_vs_gain = (float(np.corrcoef(facts["LPIPS ICC(A,k)"], facts["ΔICC(A,k), by target"])[0, 1])
                 if len(facts) >= 3 else float("nan"))
glue_all({"nb08_best": str(order.index[0]), "nb08_worst": str(order.index[-1]), "nb08_start_vs_gain": start_vs_gain,
          **{f"nb08_{name}_{key}": row[column]            # nb08_mur92_bound, nb08_zappos_rho, ...
             for name, row in facts.iterrows()
             for key, column in (("bound", "people's agreement (ρ per ranking)"), ("rho", "CLPIPS per-ranking ρ"),
                                 ("layer", "layer gaining most weight"),
                                 ("rankings", "training rankings per fold"))}})
order

# %% [markdown]
# ```{glue:figure} nb08_facts
# :name: tbl-08-facts
#
# What the datasets bring. LPIPS ICC(A,k): its mean held-out agreement (split by target);
# people's agreement: how well people (or the two halves of the crowd's triplets) agree with each
# other, as per-ranking Spearman $\rho$, against which CLPIPS's per-ranking $\rho$ can be set;
# training size per outer fold; the layer whose share of the total weight grew most, and each
# layer's share in the mean refitted CLPIPS weights.
# ```
#
# CLPIPS gains most on {glue:text}`nb08_best` and least on {glue:text}`nb08_worst` (split by
# target). Across the {glue:text}`nb08_n_datasets:d` datasets, the correlation of LPIPS's
# starting agreement with the gain is {glue:text}`nb08_start_vs_gain:+.2f` (over so few datasets
# a description, not a test). People's agreement with each other bounds what any single ranking
# per set can reach: on `mur92` the leave-one-out bound is {glue:text}`nb08_mur92_bound:.3f`
# against CLPIPS's {glue:text}`nb08_mur92_rho:.3f`; on `zappos` the split-half reliability of
# the crowd is {glue:text}`nb08_zappos_bound:.3f` against {glue:text}`nb08_zappos_rho:.3f`. The
# training weight moved most towards {glue:text}`nb08_mur92_layer` on `mur92`,
# {glue:text}`nb08_zappos_layer` on `zappos` and {glue:text}`nb08_simulated_layer` on the
# simulated study.
#
# `mur92` offers {glue:text}`nb08_mur92_rankings:,.0f` training rankings per fold and `zappos`
# {glue:text}`nb08_zappos_rankings:,.0f`, and they gain {glue:text}`nb08_mur92_target_icc_delta:+.3f`
# and {glue:text}`nb08_zappos_target_icc_delta:+.3f`. Where the dataset with more training
# rankings also gains more, training size and the kind of judgement cannot be told apart here;
# where it gains less, size does not explain the order. People judge the shape and style of one
# kind of object in `zappos` and sort objects by category in `mur92`: a larger gain on `zappos`
# would be consistent with re-weighting helping where LPIPS's channels already carry what people
# judge, and not where they do not.

# %%
glue("nb08_seconds", time.perf_counter() - started, display=False)

# %% [markdown]
# This chapter ran in {glue:text}`nb08_seconds:.0f` seconds.
