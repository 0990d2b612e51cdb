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
# {cite:p}`heim2015active,yu2014finegrained`; `alien_eggs`, a crowd's judgements of 30 drawn
# shapes that vary in one known parameter, their smoothness {cite:p}`jamieson2015next,sievert2023efficiently`, so that
# people, LPIPS and CLPIPS can each be held against a ground truth; the simulated study with known
# ground truth ({doc}`/out/notebooks/01_dataset_exploration`); and, with `-p dataset PATH` (a CSV), a
# study of your own ({doc}`/book/own_data`). Both crowd datasets were gathered by *active*
# samplers, which choose the next question from the answers so far: their rankings are fitted to
# every answer of a target (Bradley–Terry), not read from one person. Then the chapter asks what
# differs between the datasets where CLPIPS helps and those where it does not.

# %% tags=["parameters"]
from clpips.book.defaults import DEFAULTS

dataset = DEFAULTS.dataset                    # a CSV path: your study, beside the built-in datasets
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
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib_inline.backend_inline import set_matplotlib_formats
from myst_nb import glue

from clpips import experiment, protocol
from clpips.book import paper
from clpips.book.personal import layer_shares
from clpips.book.plots import protocol as plots_protocol
from clpips.book.agreement import reliability
from clpips.book.egg_truth import against_truth, truth_table
from clpips.book.report import (glue_all, grid_edge_table, in_words, statistic_table, verdict_groups,
                                verdict_sentence, view)
from clpips.datasets import SPLIT_MODES
from clpips.datasets.splits import split_modes_coincide
from clpips.book.studies import load_every_dataset
from clpips.model import initial_weight_vector
from clpips.stats import percentile_interval
from clpips.book.power import verdict

set_matplotlib_formats("png")  # figures display (and glue) as PNG under any backend
warnings.simplefilter("ignore", protocol.GridEdgeWarning)  # the runs' grid edges are a table below them
started = time.perf_counter()

# %% [markdown]
# ## The answer on every dataset
#
# Every dataset, split by target and by image, goes through the same nested protocol (its
# settings are the parameters above; chapter 04's runs of `mur92` are read from the cache):

# %%
studies = load_every_dataset(dataset, k=k, seed=seed)
runs, summaries = {}, {}
for name, data in studies.items():
    for mode in SPLIT_MODES:
        res = protocol.crossval(data, protocol.Settings.from_parameters(globals(), mode=mode))
        runs[(name, mode)] = res
        summaries[(name, mode)] = res.summary(ci=ci, n_boot=n_boot, seed=seed)
# where no image is ranked with two targets the split by image holds out exactly what the split by target
# does: the protocol runs it once (the same folds), and it is counted once below
same_folds = [name for name, data in studies.items()
              if getattr(data, "within", None) is None and split_modes_coincide(data.table)]
glue_all({"n_datasets": len(studies), "datasets": in_words(studies), "same_folds": in_words(same_folds)},
         prefix="nb08_")
pd.Series({f"{name} by {mode}": len(res.folds) for (name, mode), res in runs.items()}, name="outer folds")

# %% [markdown]
# A value the inner folds chose at an edge of its grid in most outer folds may have a better one
# beyond the grid: that run's result holds for the grid offered, and a wider grid might find more.
# Cases (a run and a tuned parameter) at an edge in most folds: {glue:text}`nb08_n_edges:d` of the
# {glue:text}`nb08_n_tuned:d` tuned, listed under the cell (a split by image that repeats the split
# by target is listed once).

# %%
distinct = {key: res for key, res in runs.items() if res.settings.get("same_folds_as") != "target"}
edges = grid_edge_table(distinct, names=["dataset", "split"])
tuned = sum(len(protocol.grid_edges(res.folds, res.inner, warn=False)) for res in distinct.values())
glue_all({"n_edges": len(edges), "n_tuned": tuned}, prefix="nb08_")
view(edges, decimals={"folds there (share)": 2})

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
for mode in SPLIT_MODES:                       # nb08_target_said: the verdicts as one clause; nb08_target_helps, ...
    said = icc.xs(mode, level="split")["verdict"]
    if mode != "target":                                          # a dataset whose two splits are one: once
        said = said.drop(same_folds, errors="ignore")
    names = verdict_groups(said.to_dict())
    glue_all({f"{mode}_{word}": in_words(found) for word, found in names.items()}
             | {f"{mode}_n_helps": len(names["helps"]), f"{mode}_said": verdict_sentence(said.to_dict())},
             prefix="nb08_")
view(icc, decimals={c: 3 for c in ("lpips", "clpips", "delta", "nb_low", "nb_high", "rho_raw_delta")},
     names={"lpips": "LPIPS", "clpips": "CLPIPS", "delta": "ΔICC(A,k)", "nb_low": "interval low",
            "nb_high": "interval high", "rho_raw_delta": "Δρ (paper's)"})

# %% tags=["remove-output"]
paper_rows = {stat: {"Δ": f"{delta:+.3f}"} for stat, delta in paper_delta.items()}  # what the paper reports
paper_rows["icc_A_k"]["target bootstrap 95%"] = (f"[{paper.value('delta_icc_ci_low'):+.3f}, "
                                                 f"{paper.value('delta_icc_ci_high'):+.3f}]")
tables = {stat: view(statistic_table(summaries, stat, paper_rows.get(stat)))
          for stat in ("icc_A_k", "spearman_raw", "spearman")}
glue_all({"nb08_table": tables["icc_A_k"], "nb08_table_rho_raw": tables["spearman_raw"],
          "nb08_table_rho": tables["spearman"]})
display(*tables.values())   # in JupyterLab; in the book, where the text pastes them

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
# ΔICC(A,k): the protocol's summary per dataset and split mode, as {numref}`tbl-04-protocol`,
# with the paper's value (from one split of its private data) for comparison.
# ```
#
# ```{glue:figure} nb08_table_rho_raw
# :name: tbl-08-across-rho-raw
#
# Δ$\rho$ with raw distances pooled across sets (the paper's definition), as {numref}`tbl-08-across`.
# ```
#
# ```{glue:figure} nb08_table_rho
# :name: tbl-08-across-rho
#
# Δ$\rho$ on within-ranking ranks, as {numref}`tbl-08-across`.
# ```
#
# By the corrected interval of ΔICC(A,k), split by target CLPIPS {glue:text}`nb08_target_said`.
# Split by image, where no held-out image was trained on, it {glue:text}`nb08_image_said`; the
# verdicts above say more of each null result. On
# `zappos` ΔICC(A,k) is
# {glue:text}`nb08_zappos_target_icc_delta:+.3f` [{glue:text}`nb08_zappos_target_icc_nb_low:+.3f`,
# {glue:text}`nb08_zappos_target_icc_nb_high:+.3f`] split by target and
# {glue:text}`nb08_zappos_image_icc_delta:+.3f` [{glue:text}`nb08_zappos_image_icc_nb_low:+.3f`,
# {glue:text}`nb08_zappos_image_icc_nb_high:+.3f`] split by image; on `mur92`
# {glue:text}`nb08_mur92_target_icc_delta:+.3f` and {glue:text}`nb08_mur92_image_icc_delta:+.3f`;
# on `alien_eggs` {glue:text}`nb08_alien_eggs_target_icc_delta:+.3f` and
# {glue:text}`nb08_alien_eggs_image_icc_delta:+.3f`; on the simulated study
# {glue:text}`nb08_simulated_target_icc_delta:+.3f`. Where no image is ranked with two targets (on
# {glue:text}`nb08_same_folds` here; the simulated study's candidates are each one person's own
# regeneration of one target), the split by image holds out exactly what the split by target does:
# the protocol runs those folds once, and the verdicts above count them once, by target.
#
# ## What differs where CLPIPS helps
#
# Beside each dataset's gain: how well LPIPS starts, how reproducible people's rankings are, how
# much training each fold has, and where the refitted weights went. People's agreement is measured
# the same way on every dataset (`clpips.book.agreement.reliability`): the judgements are cut into
# two random halves (the raters of `mur92`; each target's triplets of a crowd dataset), each half
# ranks every set, and the Spearman $\rho$ of the two rankings is stepped up to all the judgements
# (Spearman–Brown). Where each set has one ranking (the simulated study) there is nothing to halve.

# %%
w0 = initial_weight_vector(DEFAULTS.net, "lpips")
facts = []
for name, data in studies.items():
    res = runs[(name, "target")]
    agree = reliability(data, seed=seed)
    shares = layer_shares({"LPIPS": w0, "CLPIPS": res.weights.mean(axis=0)})
    gain_layer = int(np.argmax(shares.loc["CLPIPS"].to_numpy() - shares.loc["LPIPS"].to_numpy()))
    facts.append({"dataset": name, "LPIPS ICC(A,k)": float(res.folds["lpips_icc_A_k"].mean()),
                  "ΔICC(A,k), by target": float(summaries[(name, "target")].at["icc_A_k", "delta"]),
                  "ΔICC(A,k), by image": float(summaries[(name, "image")].at["icc_A_k", "delta"]),
                  "people's split-half reliability": agree["rho_spearman_brown"], "halves of": agree["halves"],
                  "CLPIPS per-ranking ρ": float(res.folds["clpips_spearman"].mean()),
                  "training rankings per fold": float(res.folds["n_train_rankings"].mean()),
                  "training rows per fold": float(res.folds["n_train_rows"].mean()),
                  "layer gaining most weight": f"layer {gain_layer + 1}",
                  **{f"CLPIPS share, {c}": float(v) for c, v in shares.loc["CLPIPS"].items()}})
facts = pd.DataFrame(facts).set_index("dataset")

# %% tags=["remove-output"]
shown = view(facts.T.rename_axis("what"), digits=3)                # one column per dataset
glue("nb08_facts", shown, display=False)
shown

# %%
order = facts["ΔICC(A,k), by target"].sort_values(ascending=False)
glue_all({"nb08_best": str(order.index[0]), "nb08_worst": str(order.index[-1]),
          **{f"nb08_{name}_{key}": row[column]            # nb08_mur92_reliability, nb08_zappos_layer, ...
             for name, row in facts.iterrows()
             for key, column in (("reliability", "people's split-half reliability"),
                                 ("layer", "layer gaining most weight"),
                                 ("rankings", "training rankings per fold"))}})
order

# %% [markdown]
# ```{glue:figure} nb08_facts
# :name: tbl-08-facts
#
# What the datasets bring. LPIPS ICC(A,k): its mean held-out agreement (split by target);
# people's split-half reliability: the Spearman–Brown step-up of the $\rho$ between two random
# halves of the judgements (— where a set has one ranking); CLPIPS's per-ranking $\rho$ (with a
# person's ranking on `mur92`, with the crowd's fitted ranking on the crowd datasets); training
# size per outer fold; the layer whose share of the total weight grew most, and each layer's share
# in the mean refitted CLPIPS weights.
# ```
#
# CLPIPS gains most on {glue:text}`nb08_best` and least on {glue:text}`nb08_worst` (split by
# target). With {glue:text}`nb08_n_datasets:d` datasets, how the gain varies with LPIPS's starting
# agreement, with people's reliability or with training size can be described, dataset by dataset
# in the table, but not tested. People's rankings are reproducible to a split-half reliability of
# {glue:text}`nb08_mur92_reliability:.3f` on `mur92` (halves of the 16 people),
# {glue:text}`nb08_zappos_reliability:.3f` on `zappos` and {glue:text}`nb08_alien_eggs_reliability:.3f`
# on `alien_eggs` (halves of each target's triplets). The training weight moved most towards
# {glue:text}`nb08_mur92_layer` on `mur92`, {glue:text}`nb08_zappos_layer` on `zappos`,
# {glue:text}`nb08_alien_eggs_layer` on `alien_eggs` and {glue:text}`nb08_simulated_layer` on the
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

# %% [markdown]
# ## A ground truth: `alien_eggs`
#
# The 30 shapes of `alien_eggs` differ in one drawn parameter, their smoothness. A judge who saw
# only smoothness would rank a set's candidates by how far each one's smoothness is from the
# target's, $|\Delta\text{smoothness}|$ (`clpips.book.egg_truth.truth_table`). How closely do
# people (the crowd's fitted rankings), LPIPS and CLPIPS follow that order? LPIPS and CLPIPS are
# scored on the protocol's out-of-fold distances split by target, so every set is scored by a model
# that never saw its target; each repeat of the split gives one such table, and the numbers are
# means over the repeats.

# %%
eggs = runs[("alien_eggs", "target")].oof
per_repeat = [against_truth(part, part[["lpips", "clpips"]].to_numpy(), ["LPIPS", "CLPIPS"])
              for _, part in eggs.groupby("repeat")]
truth = sum(per_repeat) / len(per_repeat)
view(truth[["spearman", "spearman_per_ranking", "kendall", "icc_A_k"]], decimals=3,
     names={"spearman": "ρ, pooled", "spearman_per_ranking": "ρ per ranking", "kendall": "Kendall τ",
            "icc_A_k": "ICC(A,k)"})

# %% [markdown]
# Does CLPIPS follow the ground truth more closely than LPIPS, beyond what the choice of targets
# explains? The paired bootstrap over targets of chapter 05, with the smoothness order in place of
# people's, on each repeat's out-of-fold table, the repeats' distributions averaged draw by draw
# (as `CrossvalResult.target_bootstrap` does). It varies the targets only, given the fitted models.

# %%
boots = [experiment.bootstrap_result(truth_table(part), "lpips", "clpips", unit="target", n_boot=n_boot,
                                     seed=seed, ci=ci) for _, part in eggs.groupby("repeat")]
draws = np.mean([b.distribution[["delta_icc", "delta_rho"]].to_numpy(float) for b in boots], axis=0)
observed = np.mean([b.observed["delta"].to_numpy(float)[:2] for b in boots], axis=0)
truth_low, truth_high = percentile_interval(draws[:, 1], ci)


def closer(low: float, high: float) -> str:
    """CLPIPS against LPIPS, by the interval of their difference in agreement with the ground truth."""
    if low > 0:
        return "closer to the ground truth than LPIPS"
    if high < 0:
        return "further from the ground truth than LPIPS"
    return "not distinguishable from LPIPS"


glue_all({"truth_crowd_rho": truth.at["crowd", "spearman"], "truth_lpips_rho": truth.at["LPIPS", "spearman"],
          "truth_clpips_rho": truth.at["CLPIPS", "spearman"], "truth_delta_rho": observed[1],
          "truth_delta_low": truth_low, "truth_delta_high": truth_high, "truth_verdict": closer(truth_low, truth_high),
          "truth_repeats": len(boots)}, prefix="nb08_")
pd.Series({"Δρ (CLPIPS − LPIPS) with the ground truth": observed[1], "interval low": truth_low,
           "interval high": truth_high, "verdict": closer(truth_low, truth_high)})

# %% [markdown]
# Against the smoothness order, the crowd's own rankings reach a pooled Spearman $\rho$ of
# {glue:text}`nb08_truth_crowd_rho:.3f`, LPIPS {glue:text}`nb08_truth_lpips_rho:.3f` and CLPIPS
# {glue:text}`nb08_truth_clpips_rho:.3f` (means over {glue:text}`nb08_truth_repeats:d` repeats).
# CLPIPS minus LPIPS is {glue:text}`nb08_truth_delta_rho:+.3f`
# [{glue:text}`nb08_truth_delta_low:+.3f`, {glue:text}`nb08_truth_delta_high:+.3f`]: CLPIPS is
# {glue:text}`nb08_truth_verdict`. The crowd's rankings are fitted to every answer for a target,
# answers that an active sampler chose and that people gave with errors; a metric fitted to them
# can follow smoothness more closely than they do where it averages those errors out over many
# sets. Smoothness is the one parameter the shapes were drawn with, not necessarily all that
# people see in them, so a crowd that departs from it is not simply wrong.
#
# ## The answer, dataset by dataset
#
# One table for the book's opening pages: per dataset and split, the mean ΔICC(A,k) with its
# corrected resampled $t$ interval and the verdict of `clpips.book.power.verdict` against the
# paper's effect. A split by image that holds out exactly what the split by target does is shown
# once.

# %%
def answer(row) -> str:
    return f"{row['delta']:+.3f} [{row['nb_low']:+.3f}, {row['nb_high']:+.3f}] {row['verdict']}"


up_front = icc.apply(answer, axis=1).unstack("split").reindex(index=list(studies), columns=list(SPLIT_MODES))
up_front.loc[up_front.index.isin(same_folds), "image"] = "the same folds as by target"
up_front.columns = [f"ΔICC(A,k), split by {mode}" for mode in up_front.columns]
glue("nb08_answer", view(up_front), display=False)
view(up_front)

# %%
glue("nb08_seconds", time.perf_counter() - started, display=False)

# %% [markdown]
# This chapter ran in {glue:text}`nb08_seconds:.0f` seconds.
