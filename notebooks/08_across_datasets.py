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

study_csv = ""
k = DEFAULTS.k
candidates = DEFAULTS.candidates
seed = DEFAULTS.seed
net = DEFAULTS.net
loss = DEFAULTS.loss
batch_size = DEFAULTS.batch_size
init = DEFAULTS.init
layers = DEFAULTS.layers
project = DEFAULTS.project
protocol_folds = DEFAULTS.protocol_folds
protocol_repeats = DEFAULTS.protocol_repeats
protocol_inner_folds = DEFAULTS.protocol_inner_folds
protocol_margins = DEFAULTS.protocol_margins
protocol_lrs = DEFAULTS.protocol_lrs
protocol_epochs = DEFAULTS.protocol_epochs
protocol_select = DEFAULTS.protocol_select
n_boot = DEFAULTS.n_boot
ci = DEFAULTS.ci

# %% tags=["hide-input"]
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display
from matplotlib_inline.backend_inline import set_matplotlib_formats
from myst_nb import glue

from clpips import protocol
from clpips.book import paper
from clpips.datasets import SPLIT_MODES, zappos
from clpips.book.summaries import noise_ceiling
from clpips.experiment import load_every_dataset
from clpips.model import initial_weight_vector
from clpips.book.personal import layer_shares
from clpips.book.plots import protocol as plots_protocol

set_matplotlib_formats("png")  # glued figures carry a PNG even under MPLBACKEND=Agg
started = time.perf_counter()

studies = load_every_dataset(study_csv, k=k, candidates=candidates, seed=seed)
runs, summaries = {}, {}
for name, data in studies.items():
    for mode in SPLIT_MODES:
        res = protocol.crossval(data, mode=mode, **protocol.options(globals()))
        runs[(name, mode)] = res
        summaries[(name, mode)] = res.summary(ci=ci, n_boot=n_boot, seed=seed)

used = pd.DataFrame([{"datasets": ", ".join(studies), "folds": protocol_folds, "repeats": protocol_repeats,
                      "inner folds": protocol_inner_folds, "margins": protocol_margins, "lrs": protocol_lrs,
                      "epochs": protocol_epochs, "select": protocol_select, "seed": seed}])
display(used.set_index("datasets"))
glue("nb08_n_datasets", len(studies), display=False)
glue("nb08_datasets", ", ".join(studies), display=False)  # glued text is not markdown: plain names

# %% [markdown]
# ## The answer on every dataset

# %% tags=["hide-input"]
paper_delta = {"icc_A_k": paper.value("delta_icc"), "spearman_raw": paper.derived()["delta_spearman"]}
rows = []
for (name, mode), summary in summaries.items():
    for stat in ("icc_A_k", "spearman_raw", "spearman"):
        row = summary.loc[stat]
        rows.append({"dataset": name, "split": f"by {mode}",
                     "statistic": plots_protocol.TITLES[stat].lstrip("Δ").strip(),
                     "LPIPS": f"{row['lpips']:.3f}", "CLPIPS": f"{row['clpips']:.3f}", "Δ": f"{row['delta']:+.3f}",
                     "corrected t 95%": f"[{row['nb_low']:+.3f}, {row['nb_high']:+.3f}]",
                     "target bootstrap 95%": (f"[{row['boot_low']:+.3f}, {row['boot_high']:+.3f}]"
                                              if np.isfinite(row["boot_low"]) else "—"),
                     "folds Δ > 0": f"{int(round(row['positive_share'] * row['n_folds']))}/{int(row['n_folds'])}"})
for stat, value in paper_delta.items():
    rows.append({"dataset": "paper (its data)", "split": "one split, by target",
                 "statistic": plots_protocol.TITLES[stat].lstrip("Δ").strip(), "LPIPS": "", "CLPIPS": "",
                 "Δ": f"{value:+.3f}",
                 "corrected t 95%": "—",
                 "target bootstrap 95%": (f"[{paper.value('delta_icc_ci_low'):+.3f}, "
                                          f"{paper.value('delta_icc_ci_high'):+.3f}]" if stat == "icc_A_k" else "—"),
                 "folds Δ > 0": "—"})
table = pd.DataFrame(rows).set_index(["dataset", "split", "statistic"])
glue("nb08_table", table, display=False)
labels = {f"{name}\nby {mode}": runs[(name, mode)].folds for (name, mode) in runs}
fig = plots_protocol.plot_fold_deltas(
    labels, {f"{name}\nby {mode}": summaries[(name, mode)] for (name, mode) in runs},
    statistics=("icc_A_k", "spearman_raw", "spearman"), reference=paper_delta, seed=seed)
glue("nb08_fig", fig, display=False)
plt.close(fig)  # shown where the text pastes it, not also under this cell


def verdict(row) -> str:
    return "helps" if row["nb_low"] > 0 else "hurts" if row["nb_high"] < 0 else "no difference shown"


verdicts = {key: verdict(s.loc["icc_A_k"]) for key, s in summaries.items()}
# where no image is ranked with two targets (the simulated study: every candidate is one person's own
# regeneration of one target), the split by image holds out exactly what the split by target does
same = [name for name in studies
        if runs[(name, "target")].oof[["repeat", "set_id", "candidate", "rater"]].equals(
            runs[(name, "image")].oof[["repeat", "set_id", "candidate", "rater"]])]
glue("nb08_same_splits", ("On " + ", ".join(same) + " the two split modes hold out the same "
                          "rankings, since no image there is ranked with two targets; their rows agree.")
     if same else "", display=False)
for mode in SPLIT_MODES:
    helps = [n for (n, m), v in verdicts.items() if m == mode and v == "helps"]
    none = [n for (n, m), v in verdicts.items() if m == mode and v == "no difference shown"]
    hurts = [n for (n, m), v in verdicts.items() if m == mode and v == "hurts"]
    words = lambda xs: ", ".join(xs) if xs else "none"  # noqa: E731
    glue(f"nb08_{mode}_helps", words(helps), display=False)
    glue(f"nb08_{mode}_none", words(none), display=False)
    glue(f"nb08_{mode}_hurts", words(hurts), display=False)
    glue(f"nb08_{mode}_n_helps", len(helps), display=False)
for (name, mode), s in summaries.items():
    for col in ("delta", "nb_low", "nb_high", "lpips", "clpips"):
        glue(f"nb08_{name}_{mode}_icc_{col}", float(s.at["icc_A_k", col]), display=False)
    glue(f"nb08_{name}_{mode}_rho_raw_delta", float(s.at["spearman_raw", "delta"]), display=False)

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
# hurts on {glue:text}`nb08_image_hurts`. On `zappos` ΔICC(A,k) is
# {glue:text}`nb08_zappos_target_icc_delta:+.3f` [{glue:text}`nb08_zappos_target_icc_nb_low:+.3f`,
# {glue:text}`nb08_zappos_target_icc_nb_high:+.3f`] split by target and
# {glue:text}`nb08_zappos_image_icc_delta:+.3f` [{glue:text}`nb08_zappos_image_icc_nb_low:+.3f`,
# {glue:text}`nb08_zappos_image_icc_nb_high:+.3f`] split by image; on `mur92`
# {glue:text}`nb08_mur92_target_icc_delta:+.3f` and {glue:text}`nb08_mur92_image_icc_delta:+.3f`;
# on the simulated study {glue:text}`nb08_simulated_target_icc_delta:+.3f` and
# {glue:text}`nb08_simulated_image_icc_delta:+.3f`. {glue:text}`nb08_same_splits`
#
# ## What differs where CLPIPS helps

# %% tags=["hide-input"]
w0 = initial_weight_vector(net, "lpips")
facts = []
for name, data in studies.items():
    res = runs[(name, "target")]
    lower = noise_ceiling(data.table)
    if not lower.empty:
        bound, kind = float(lower.set_index("rater").at["all", "rho"]), "leave one rater out (lower bound)"
    elif name == "zappos":
        half = zappos.split_half(data.table, zappos.triplets(), seed=seed)
        bound, kind = float(half["rho_spearman_brown"]), "split-half, Spearman–Brown"
    else:
        bound, kind = float("nan"), "one rater per set: none"
    shares = layer_shares({"LPIPS": w0, "CLPIPS": res.weights.mean(axis=0)}, net=net)
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
glue("nb08_facts", facts.T, display=False)
order = facts.sort_values("ΔICC(A,k), by target", ascending=False)
glue("nb08_best", str(order.index[0]), display=False)
glue("nb08_worst", str(order.index[-1]), display=False)
start_corr = float(np.corrcoef(facts["LPIPS ICC(A,k)"], facts["ΔICC(A,k), by target"])[0, 1]) \
    if len(facts) >= 3 else float("nan")
glue("nb08_start_vs_gain", start_corr, display=False)
glue("nb08_start_vs_gain_words", "higher" if start_corr > 0 else "lower", display=False)
zg, mg = facts.at["zappos", "ΔICC(A,k), by target"], facts.at["mur92", "ΔICC(A,k), by target"]
zr, mr = facts.at["zappos", "training rankings per fold"], facts.at["mur92", "training rankings per fold"]
if (zg > mg) == (zr > mr):
    size_md = ("The dataset with more training rankings per fold also gained more, so training size and the kind "
               "of judgement cannot be told apart here.")
else:
    size_md = (f"The number of training rankings does not explain the order: {'mur92' if mr > zr else 'zappos'} "
               f"has more of them per fold ({max(mr, zr):,.0f} against {min(mr, zr):,.0f}) and gained less.")
if zg > mg:
    kind_md = ("The gain is larger on zappos, where people judge the shape and style of one kind of object, than "
               "on mur92, where they sort objects by category: a reading consistent with re-weighting helping "
               "where LPIPS's channels already carry what people judge, and not where they do not.")
else:
    kind_md = ("The gain is not larger on zappos, where people judge the shape and style of one kind of object, "
               "than on mur92, where they sort objects by category: the kind of judgement alone does not "
               "explain where re-weighting helps on these data.")
glue("nb08_size_md", size_md, display=False)
glue("nb08_kind_md", kind_md, display=False)
for name in facts.index:
    glue(f"nb08_{name}_bound", float(facts.at[name, "people's agreement (ρ per ranking)"]), display=False)
    glue(f"nb08_{name}_rho", float(facts.at[name, "CLPIPS per-ranking ρ"]), display=False)
    glue(f"nb08_{name}_layer", str(facts.at[name, "layer gaining most weight"]), display=False)
    glue(f"nb08_{name}_rankings", float(facts.at[name, "training rankings per fold"]), display=False)

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
# target). Across the {glue:text}`nb08_n_datasets:d` datasets the gain is larger where LPIPS
# starts {glue:text}`nb08_start_vs_gain_words` (correlation {glue:text}`nb08_start_vs_gain:+.2f`
# over so few datasets is a description, not a test). People's agreement with each other bounds
# what any single ranking per set can reach: on `mur92` the leave-one-out bound is
# {glue:text}`nb08_mur92_bound:.3f` against CLPIPS's {glue:text}`nb08_mur92_rho:.3f`; on `zappos` the
# split-half reliability of the crowd is {glue:text}`nb08_zappos_bound:.3f` against
# {glue:text}`nb08_zappos_rho:.3f`. The training weight moved most towards
# {glue:text}`nb08_mur92_layer` on `mur92`, {glue:text}`nb08_zappos_layer` on `zappos` and
# {glue:text}`nb08_simulated_layer` on the simulated study. `mur92` offers
# {glue:text}`nb08_mur92_rankings:,.0f` training rankings per fold and `zappos`
# {glue:text}`nb08_zappos_rankings:,.0f`. {glue:text}`nb08_size_md` {glue:text}`nb08_kind_md`

# %% tags=["hide-input"]
glue("nb08_seconds", time.perf_counter() - started, display=False)

# %% [markdown]
# This chapter ran in {glue:text}`nb08_seconds:.0f` seconds.
