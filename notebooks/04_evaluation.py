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
# (sec-04-evaluation)=
# # Evaluation on held-out targets
#
# The question of the paper {cite:p}`trinh2026clpips` is whether the fine-tuned metric agrees
# better with people than LPIPS does, on images the training never saw. One split cannot answer
# it: which targets happen to be held out, and which training seed is used, move the answer by
# as much as the effect itself. This chapter therefore leads with the **nested protocol**
# (`clpips.protocol`, `clpips crossval`): the targets are cut into folds, repeatedly; on each
# training side an inner cross-validation chooses the margin, learning rate and number of epochs;
# the chosen setting is refitted and scored on the held-out fold. It is run twice: split **by
# target**, as the paper splits, and split **by image**, where no image is on both sides (see
# {doc}`/book/method`). Only then comes the paper's protocol on one split, as an illustration,
# with more baselines and the bound that people's agreement with each other sets.

# %% tags=["parameters"]
from clpips.book.defaults import DEFAULTS

dataset = DEFAULTS.dataset
k = DEFAULTS.k
candidates = DEFAULTS.candidates
seed = DEFAULTS.seed
test_size = DEFAULTS.test_size
baselines = DEFAULTS.baselines
protocol_folds = DEFAULTS.protocol_folds
protocol_repeats = DEFAULTS.protocol_repeats
protocol_inner_folds = DEFAULTS.protocol_inner_folds
n_boot = DEFAULTS.n_boot
ci = DEFAULTS.ci

# %%
import warnings

import numpy as np
import pandas as pd
from myst_nb import glue

from clpips import protocol
from clpips.book import paper, report, set_scores
from clpips.book.baselines import add_baselines, label
from clpips.book.plots import evaluation as plots
from clpips.book.plots import protocol as plots_protocol
from clpips.book.report import glue_all, grid_edge_table, view
from clpips.book.summaries import noise_ceiling
from clpips.datasets import SPLIT_MODES
from clpips.datasets.splits import split_modes_coincide
from clpips.defaults import as_dict
from clpips.evaluate import alignment_table
from clpips.experiment import bootstrap_result, fit_options, load_dataset, run
from clpips.stats import icc_ak_from_rho
from clpips.book.power import mode_difference, power_table
from matplotlib_inline.backend_inline import set_matplotlib_formats

# Figures are PNG, also when glued. A cell that draws a figure or makes the numbers the text pastes
# is tagged remove-output: the book shows them where the text pastes them, a live reader under the cell.
set_matplotlib_formats("png")
warnings.simplefilter("ignore", protocol.GridEdgeWarning)  # the grid's edges are a table under the runs

# %% [markdown]
# ## The answer over repeated, nested splits
#
# {glue:text}`nb04_cv_repeats:d` repeats of a {glue:text}`nb04_cv_folds:d`-fold split of the
# {glue:text}`nb04_dataset` targets give {glue:text}`nb04_cv_target_n_folds:d` held-out folds per
# split mode; where a dataset draws each target's candidates, as mur92 does, every repeat draws
# them anew, so that no result rests on one draw. In each fold an inner
# {glue:text}`nb04_cv_inner:d`-fold cross-validation on the training targets alone chose one of
# {glue:text}`nb04_cv_n_settings:d` settings (margin × learning rate × epochs, and "do not train",
# which keeps LPIPS). Each run is cached under its data and settings, so chapters 05 and 08 read
# these same runs. Under the cell: the settings chosen most often ("do not train" shows as 0
# epochs, with a dash for its margin and learning rate).

# %%
data = load_dataset(dataset, k=k, candidates=candidates, seed=seed)  # a CSV study ignores k and candidates
cv = {mode: protocol.crossval(data, protocol.Settings.from_parameters(globals(), mode=mode)) for mode in SPLIT_MODES}
view(pd.concat({f"by {mode}": res.chosen().head(3) for mode, res in cv.items()}, names=["split", "rank"])
     .droplevel("rank"), decimals=3, names={"folds": "folds that chose it"})

# %% [markdown]
# A value the inner folds chose at an edge of its grid in most outer folds may have a better one
# beyond the grid; where that happened, a run's result holds for the grid offered, and a wider grid
# might find more. Cases (a split and a tuned parameter) at an edge in most folds of the runs
# above: {glue:text}`nb04_n_edges:d`, listed under the cell.

# %%
edges = grid_edge_table({f"by {mode}": res for mode, res in cv.items()}, names=["split"])
glue("nb04_n_edges", len(edges), display=False)
view(edges, decimals={"folds there (share)": 2})

# %% [markdown]
# Each outer fold gives one held-out difference CLPIPS − LPIPS per statistic. Their mean, with a
# $t$ interval whose variance carries Nadeau and Bengio's correction for folds that share
# training targets, is the protocol's answer; a bootstrap over targets of the pooled out-of-fold
# rankings is a second look at it.

# %% tags=["remove-output"]
summaries = {mode: res.summary(ci=ci, n_boot=n_boot, seed=seed) for mode, res in cv.items()}
paper_delta = {"icc_A_k": paper.value("delta_icc"), "spearman_raw": paper.derived()["delta_spearman"]}
cv_table = report.protocol_table(summaries, reference=paper_delta)
fig = plots_protocol.plot_fold_deltas({f"by {m}": r.folds for m, r in cv.items()},
                                      {f"by {m}": s for m, s in summaries.items()}, reference=paper_delta, seed=seed)
shown = view(cv_table)
glue_all({"nb04_cv_table": shown, "nb04_cv_fig": fig})
shown

# %% tags=["remove-output"]
numbers = {"dataset": data.name, "cv_repeats": int(protocol_repeats), "cv_folds": int(protocol_folds),
           "cv_inner": int(protocol_inner_folds), "cv_n_settings": len(cv["target"].inner) // len(cv["target"].folds),
           "paper_delta_icc_t4": paper.printed("delta_icc"), "paper_delta_icc_lo": paper.printed("delta_icc_ci_low"),
           "paper_delta_icc_hi": paper.printed("delta_icc_ci_high")}
for mode, res in cv.items():
    summary = summaries[mode].assign(positive=lambda s: (s["positive_share"] * s["n_folds"]).round().astype(int))
    per_mode = report.flat(summary, ["lpips", "clpips", "delta", "nb_low", "nb_high", "boot_delta", "boot_low",
                                     "boot_high", "positive"])
    per_mode |= {"n_folds": len(res.folds), "n_targets": int(res.folds["n_test_targets"].sum() / protocol_repeats),
                 "test_rankings": float(res.folds["n_test_rankings"].mean()),
                 "shared": float(res.folds["shared_pair_share"].mean())}
    numbers |= {f"cv_{mode}_{name}": value for name, value in per_mode.items()}
pd.Series(glue_all(numbers, prefix="nb04_"))

# %% [markdown]
# ```{glue:figure} nb04_cv_fig
# :name: fig-04-protocol
#
# Held-out differences CLPIPS − LPIPS in every outer fold (grey dots), their mean with the
# corrected resampled $t$ interval (blue; Nadeau & Bengio's variance correction for training
# sets that overlap between folds), and the difference on the pooled out-of-fold rankings with
# a 95% bootstrap interval over targets (orange; ICC and the rank-based $\rho$ only). Dashed: the
# paper's value where it reports one (its ΔICC from Table 4; its Δ$\rho$ as the difference of
# its Table 3 values, under its raw-distance definition).
# ```
#
# ```{glue:figure} nb04_cv_table
# :name: tbl-04-protocol
#
# The protocol's summary. LPIPS and CLPIPS: means over folds. "corrected t": mean Δ over folds
# with the corrected resampled $t$ interval, which assumes the correlation between two folds'
# differences is about $n_\text{test}/n$ (a heuristic; it varies training and test targets
# together). "target bootstrap": Δ of the pooled out-of-fold rankings, averaged over repeats,
# with a percentile interval from resampling targets with all their rankings (it holds the
# fitted models fixed and treats targets as independent). "paper Δ": the matching number of
# {cite:t}`trinh2026clpips`, for ρ only under its own definition (raw distances pooled).
# ```
#
# **Split by target**, ICC(A,k) goes from {glue:text}`nb04_cv_target_icc_A_k_lpips:.3f` with
# LPIPS to {glue:text}`nb04_cv_target_icc_A_k_clpips:.3f` with CLPIPS, a mean difference of
# {glue:text}`nb04_cv_target_icc_A_k_delta:+.3f` [{glue:text}`nb04_cv_target_icc_A_k_nb_low:+.3f`,
# {glue:text}`nb04_cv_target_icc_A_k_nb_high:+.3f`]; CLPIPS was ahead in
# {glue:text}`nb04_cv_target_icc_A_k_positive:d` of the {glue:text}`nb04_cv_target_n_folds:d`
# folds. Resampling targets of the out-of-fold rankings gives
# {glue:text}`nb04_cv_target_icc_A_k_boot_delta:+.3f` [{glue:text}`nb04_cv_target_icc_A_k_boot_low:+.3f`,
# {glue:text}`nb04_cv_target_icc_A_k_boot_high:+.3f`]. The paper reports
# ΔICC = {glue:text}`nb04_paper_delta_icc_t4` [{glue:text}`nb04_paper_delta_icc_lo`,
# {glue:text}`nb04_paper_delta_icc_hi`] from one split of its own data, bootstrapped over its
# target sets: the same statistic and the same unit of resampling as our orange interval, but
# for one split where ours averages {glue:text}`nb04_cv_target_n_folds:d` folds, on other
# people and other images. Pooled $\rho$ as the paper defines it (raw distances pooled across
# sets) moves by {glue:text}`nb04_cv_target_spearman_raw_delta:+.3f`
# [{glue:text}`nb04_cv_target_spearman_raw_nb_low:+.3f`, {glue:text}`nb04_cv_target_spearman_raw_nb_high:+.3f`];
# on within-ranking ranks by {glue:text}`nb04_cv_target_spearman_delta:+.3f`; pair accuracy by
# {glue:text}`nb04_cv_target_pair_accuracy_delta:+.3f` [{glue:text}`nb04_cv_target_pair_accuracy_nb_low:+.3f`,
# {glue:text}`nb04_cv_target_pair_accuracy_nb_high:+.3f`].
#
# **Split by image**, where no held-out image was ever trained on, as target or as candidate
# (split by target, {glue:text}`nb04_cv_target_shared:.0%` of the held-out rows share their image
# pair with a training row; split by image {glue:text}`nb04_cv_image_shared:.0%`), ΔICC(A,k) is
# {glue:text}`nb04_cv_image_icc_A_k_delta:+.3f` [{glue:text}`nb04_cv_image_icc_A_k_nb_low:+.3f`,
# {glue:text}`nb04_cv_image_icc_A_k_nb_high:+.3f`] ({glue:text}`nb04_cv_image_icc_A_k_positive:d` of
# {glue:text}`nb04_cv_image_n_folds:d` folds ahead; target bootstrap
# [{glue:text}`nb04_cv_image_icc_A_k_boot_low:+.3f`, {glue:text}`nb04_cv_image_icc_A_k_boot_high:+.3f`])
# and Δ$\rho$ (paper's definition) {glue:text}`nb04_cv_image_spearman_raw_delta:+.3f`
# [{glue:text}`nb04_cv_image_spearman_raw_nb_low:+.3f`, {glue:text}`nb04_cv_image_spearman_raw_nb_high:+.3f`].
#
# ### What the intervals show, and what they could have shown
#
# An interval that holds zero says "no difference shown", not "no difference": with few folds it
# may hold the gain one looks for as well. `clpips.book.power.power_table` reads each interval
# against the paper's effect (ΔICC(A,k) {glue:text}`nb04_paper_delta_icc_t4`, Δ$\rho$
# {glue:text}`nb04_paper_delta_rho:.3f`) with one function, `clpips.book.power.verdict`: *helps* when
# the interval lies above zero, *hurts* when it lies below; for an interval that holds zero,
# *equivalent* when it lies within ± the paper's effect, *inconclusive* when it reaches the
# paper's effect (zero and that gain both fit), *no gain shown* otherwise (a gain of the paper's
# size is ruled out, a loss of that size is not). It also gives `mde`, the smallest true Δ the
# test detects with 80% power, and the power at the paper's effect.

# %%
power = pd.concat({f"by {mode}": power_table(res, bound=paper_delta, ci=ci) for mode, res in cv.items()},
                  names=["split"])
view(power[["delta", "low", "high", "mde", "power_at_bound", "verdict"]], decimals={"delta": 3, "low": 3, "high": 3, "mde": 3},
     names={"delta": "Δ", "power_at_bound": "power at the paper's Δ"})

# %% [markdown]
# Is the gain split by image smaller than split by target? The two runs share their repeat and
# fold numbers, so `clpips.book.power.mode_difference` pairs their differences fold by fold, by
# target − by image, with the same corrected interval:

# %%
modes = mode_difference(cv["target"], cv["image"], ci=ci)
view(pd.DataFrame([modes], index=pd.Index(["ΔICC(A,k), by target − by image"], name="difference")),
     decimals={"delta": 3, "se": 3, "low": 3, "high": 3}, names={"delta": "Δ", "pval": "p", "n_folds": "folds"})


def modes_in_words(modes: dict, coincide: bool) -> str:
    """The paired difference between the split modes, in words; where the two splits hold out the same
    rankings (no candidate ranked with two targets, no target a candidate), it is zero by construction."""
    if coincide:
        return ("zero by construction: on these data the two splits hold out the same rankings (no candidate "
                "is ranked with two targets, and no target is a candidate)")
    return f"{modes['delta']:+.3f} [{modes['low']:+.3f}, {modes['high']:+.3f}] (p = {modes['pval']:.2g})"

# %% tags=["remove-output"]
numbers = {f"power_{split[3:]}_{stat}_{col}": row[col] for (split, stat), row in power.iterrows()
           for col in ("mde", "power_at_bound", "verdict")}
numbers |= {f"cv_{split[3:]}_icc_A_k_verdict": report.interval_phrase(row["verdict"])  # book/reproduction.md's phrase
            for (split, stat), row in power.iterrows() if stat == "icc_A_k"}
numbers |= {f"modes_{name}": modes[name] for name in ("delta", "low", "high", "pval")}
numbers["modes_words"] = modes_in_words(modes, split_modes_coincide(data.table))
numbers["paper_delta_rho"] = paper.derived()["delta_spearman"]
pd.Series(glue_all(numbers, prefix="nb04_"))

# %% [markdown]
# Split by target, the interval of ΔICC(A,k) reads *{glue:text}`nb04_power_target_icc_A_k_verdict`*;
# split by image, *{glue:text}`nb04_power_image_icc_A_k_verdict`*. Split by image, the smallest
# ΔICC(A,k) that {glue:text}`nb04_cv_image_n_folds:d` folds detect with 80% power is
# {glue:text}`nb04_power_image_icc_A_k_mde:.3f`, against the paper's
# {glue:text}`nb04_paper_delta_icc_t4`, at which the test's power is
# {glue:text}`nb04_power_image_icc_A_k_power_at_bound:.0%`. For Δ$\rho$ (the paper's definition)
# the readings are *{glue:text}`nb04_power_target_spearman_raw_verdict`* by target and
# *{glue:text}`nb04_power_image_spearman_raw_verdict`* by image.
#
# The paired difference between the modes, by target − by image, is
# {glue:text}`nb04_modes_words`. The two modes' folds
# hold different rankings, so the pairing may remove little, and the interval may be about that of
# two independent sets of folds: the split mode is shown to change the gain only when this
# interval excludes zero, whatever the two gains look like side by side.
#
# Every fold has its own model, chosen and trained without its held-out targets, so no number
# here rests on one split; they do rest on one dataset, which
# {doc}`/out/notebooks/08_across_datasets` varies. Chapter {doc}`/out/notebooks/05_bootstrap` looks at the intervals more closely.
#
# ## The paper's protocol, one split (an illustration)
#
# The rest of this chapter runs the paper's protocol once: one split by target that holds out
# {glue:text}`nb04_test_size:.0%` of the targets (seed {glue:text}`nb04_seed:d`), CLPIPS fitted with
# the default settings of `clpips.defaults`, as `clpips fit` does and as
# {doc}`/out/notebooks/03_training` shows. Its numbers come from one split, as each dot of
# {numref}`fig-04-protocol` does, and are not the answer. The `baselines` are scored on the same held-out rankings.

# %%
exp = run(data, seed=seed, test_size=test_size, progress=False, **fit_options(as_dict()))  # as `clpips fit`
extra = [b.strip() for b in baselines.split(",") if b.strip()]
scored = add_baselines(exp.scored, data, extra, alex_features=exp.features if exp.settings["net"] == "alex" else None)
metrics = ["lpips", "clpips", *extra]
table = alignment_table(scored, metrics)
table.loc[["lpips", "clpips"], ["icc_A_k", "spearman", "spearman_raw"]].astype(float).round(3)

# %% tags=["remove-output"]
test = exp.test_table
pd.Series(glue_all({"seed": int(seed), "test_size": float(test_size), "margin": float(exp.settings["margin"]),
                    "n_targets": int(test["target"].nunique()), "n_rankings": int(table.at["lpips", "n_rankings"]),
                    "n_rows": int(table.at["lpips", "n_rows"]), "n_raters": int(test["rater"].nunique()),
                    "per_target": float(table.at["lpips", "n_rankings"] / test["target"].nunique())}, prefix="nb04_"))

# %% [markdown]
# The held-out side of the split has {glue:text}`nb04_n_targets:d` target images of the
# {glue:text}`nb04_dataset` data, with {glue:text}`nb04_n_rankings:,d` rankings
# ({glue:text}`nb04_per_target:.1f` per target on average, by {glue:text}`nb04_n_raters:d`
# people) and {glue:text}`nb04_n_rows:,d` (ranking, candidate) rows. CLPIPS was fitted with margin
# {glue:text}`nb04_margin:.3g` on the other targets only.
#
# ## The paper's Table 3, on these data
#
# The F-based interval of ICC(A,k) treats every (ranking, candidate) row as independent, but all
# the people who ranked a target ranked the same candidates. Resampling targets, each with all
# its rankings, gives an interval that allows for that; under the cell, how many times wider it is.

# %%
reported = {  # the paper pools raw distances across sets: its rho goes in that column
    "LPIPS, paper (Table 3)": {"spearman_raw": paper.value("lpips_spearman"), "icc_A_k": paper.value("lpips_icc_A_k")},
    "CLPIPS, paper (Table 3)": {"spearman_raw": paper.value("clpips_spearman"),
                                "icc_A_k": paper.value("clpips_icc_A_k")},
}
cluster_ci = {m: tuple(bootstrap_result(scored, "lpips", m, unit="target", n_boot=n_boot, seed=seed, ci=ci)
                       .intervals.loc["icc_b"]) for m in metrics}
table3 = report.table3(table, reported, cluster_ci=cluster_ci)
f_width = (table["icc_A_k_ci_high"] - table["icc_A_k_ci_low"]).astype(float)
width_ratio = pd.Series({m: hi - lo for m, (lo, hi) in cluster_ci.items()}) / f_width
width_ratio.rename(index=label).round(1)

# %% tags=["remove-output"]
# shown as two tables that fit the page: ICC(A,k), then the rank correlations
icc_columns = ["ICC(A,k) [F 95% CI, rows independent]", "[95% CI, targets resampled]", "p (ICC)", "Koo & Li"]
tables = {"nb04_table3": view(table3[icc_columns]), "nb04_table3_rho": view(table3.drop(columns=icc_columns))}
glue_all(tables)
display(*tables.values())   # in JupyterLab; in the book, where the text pastes them
numbers = {"nb04_lpips_cluster_lo": float(cluster_ci["lpips"][0]), "nb04_lpips_cluster_hi": float(cluster_ci["lpips"][1]),
           "nb04_lpips_width_ratio": float(width_ratio["lpips"]),
           "nb04_delta_rho": float(table.at["clpips", "spearman"] - table.at["lpips", "spearman"]),
           "nb04_delta_rho_raw": float(table.at["clpips", "spearman_raw"] - table.at["lpips", "spearman_raw"]),
           "nb04_delta_icc": float(table.at["clpips", "icc_A_k"] - table.at["lpips", "icc_A_k"]),
           "nb04_paper_delta_icc": paper.derived()["delta_icc_A_k"]}
for m in ("lpips", "clpips"):
    row = table.loc[m]
    numbers |= {f"heldout_{m}_rho": float(row["spearman"]), f"heldout_{m}_icc": float(row["icc_A_k"]),
                f"heldout_{m}_icc_label": str(row["icc_A_k_koo_li"]),  # heldout_ and paper_: book/reproduction.md
                f"paper_{m}_rho": paper.printed(f"{m}_spearman"), f"paper_{m}_icc": paper.printed(f"{m}_icc_A_k")}
    numbers |= {f"nb04_{m}_{name}": float(row[col]) for name, col in
                (("icc_lo", "icc_A_k_ci_low"), ("icc_hi", "icc_A_k_ci_high"), ("icc_p", "icc_A_k_pval"),
                 ("rho_p", "spearman_pval"), ("tau", "kendall"), ("rho_per_ranking", "spearman_per_ranking"),
                 ("rho_raw", "spearman_raw"))}
pd.Series(glue_all(numbers))

# %% [markdown]
# ```{glue:figure} nb04_table3
# :name: tbl-04-table3
#
# Agreement with held-out human rankings (the paper's Table 3, in two parts; the rank correlations
# are in {numref}`tbl-04-table3-rho`). ICC(A,k) with its F-based 95% interval, its interval from
# resampling targets, and $p$ (H0: ICC = 0); the Koo & Li label {cite:p}`koo2016icc`. The paper's rows carry the values it reports {cite:p}`trinh2026clpips`
# (— where a value is not transcribed in `clpips.book.paper`); its data are private and different.
# ```
#
# ```{glue:figure} nb04_table3_rho
# :name: tbl-04-table3-rho
#
# The same metrics' rank correlations with the held-out human ranks: pooled Spearman's $\rho$ of
# raw distances (the paper's definition) and of within-ranking ranks (equal to the mean of the
# per-ranking $\rho$), with $p$, and Kendall's $\tau_b$ of metric rank against human rank.
# ```
#
# Pooled $\rho$ has two definitions, and they differ. The paper pools raw distances across
# sets: LPIPS {glue:text}`nb04_lpips_rho_raw:.3f` and CLPIPS {glue:text}`nb04_clpips_rho_raw:.3f`
# ({glue:text}`nb04_delta_rho_raw:+.3f`; paper: {glue:text}`paper_lpips_rho` and
# {glue:text}`paper_clpips_rho`, {glue:text}`nb04_paper_delta_rho:+.3f`). Correlating the person's
# rank with the metric's rank *within* each ranking gives {glue:text}`heldout_lpips_rho:.3f` and
# {glue:text}`heldout_clpips_rho:.3f` ({glue:text}`nb04_delta_rho:+.3f`; $p$ =
# {glue:text}`nb04_lpips_rho_p:.1e` and {glue:text}`nb04_clpips_rho_p:.1e`), which with untied
# ranks and sets of equal size is the mean per-ranking $\rho$. ICC(A,k) moves from
# {glue:text}`heldout_lpips_icc:.3f` [{glue:text}`nb04_lpips_icc_lo:.3f`, {glue:text}`nb04_lpips_icc_hi:.3f`]
# to {glue:text}`heldout_clpips_icc:.3f` [{glue:text}`nb04_clpips_icc_lo:.3f`,
# {glue:text}`nb04_clpips_icc_hi:.3f`] ({glue:text}`nb04_delta_icc:+.3f`; paper:
# {glue:text}`paper_lpips_icc` to {glue:text}`paper_clpips_icc`, {glue:text}`nb04_paper_delta_icc:+.2f`).
# Those F-based intervals treat all {glue:text}`nb04_n_rows:,d` rows as independent; resampling
# targets instead gives LPIPS [{glue:text}`nb04_lpips_cluster_lo:.3f`,
# {glue:text}`nb04_lpips_cluster_hi:.3f`], an interval {glue:text}`nb04_lpips_width_ratio:.1f` times
# as wide. By the Koo & Li reading the agreement is *{glue:text}`heldout_lpips_icc_label`* for
# LPIPS and *{glue:text}`heldout_clpips_icc_label`* for CLPIPS. Whether the *difference* is more
# than chance needs a paired test over many splits: that is {numref}`fig-04-protocol` above, and
# {doc}`/out/notebooks/05_bootstrap`.
#
# ## ICC(A,k) restates the rank-based $\rho$
#
# Human and metric both give ranks $1..k$ in every ranking, so ICC(A,k)
# $= 2\rho / (1 + \rho - (1-\rho)/n)$ for $n$ rows with $\rho$ the within-ranking definition, the
# Spearman–Brown formula up to a term of order $1/n$ ({doc}`/book/method`). The cell computes it
# from each row of the table and compares it with the ICC column; then applies $2\rho/(1+\rho)$ to
# the paper's printed $\rho$ and prints it at the paper's precision.

# %%
sb = icc_ak_from_rho(table["spearman"].astype(float), table["n_rows"].astype(float))
sb_max_error = float((sb - table["icc_A_k"].astype(float)).abs().max())
paper_sb = pd.DataFrame({m: {"paper's rho": paper.printed(f"{m}_spearman"),
                             "2 rho / (1 + rho)": paper.derived()[f"{m}_icc_from_rho"],
                             "printed so": f"{paper.derived()[f'{m}_icc_from_rho']:.{len(paper.printed(f'{m}_icc_A_k').split('.')[1])}f}",
                             "paper's ICC(A,k)": paper.printed(f"{m}_icc_A_k")} for m in ("lpips", "clpips")}).T
view(paper_sb.rename_axis("metric"))

# %% tags=["remove-output"]
pd.Series(glue_all({"sb_max_error": sb_max_error, "paper_lpips_sb": paper.derived()["lpips_icc_from_rho"],
                    "paper_clpips_sb": paper.derived()["clpips_icc_from_rho"],
                    "paper_lpips_sb_printed": paper_sb.at["lpips", "printed so"],
                    "paper_clpips_sb_printed": paper_sb.at["clpips", "printed so"]}, prefix="nb04_"))

# %% [markdown]
# Computed from each row of the table, the formula matches the ICC column to within
# {glue:text}`nb04_sb_max_error:.1e` (it needs sets of equal size; with unequal sets it is an
# approximation). The identity needs the within-ranking definition of $\rho$; the paper's
# raw-distance $\rho$ is a different number. Applied to the paper's printed $\rho$ anyway,
# $2\rho/(1+\rho)$ gives {glue:text}`nb04_paper_lpips_sb:.3f` and
# {glue:text}`nb04_paper_clpips_sb:.3f`, which at the paper's precision print as
# {glue:text}`nb04_paper_lpips_sb_printed` and {glue:text}`nb04_paper_clpips_sb_printed`, against
# its {glue:text}`paper_lpips_icc` and {glue:text}`paper_clpips_icc`. Whether the paper's two
# statistics carry one piece of information therefore cannot be settled from its tables.
#
# ## LPIPS and CLPIPS among the baselines, and a lower bound of the noise ceiling
#
# People's agreement with each other bounds the noise ceiling from below: how well the average
# rank the *other* people gave predicts one person's ranking of the same candidates (mean
# Spearman $\rho$, leave one person out). The ceiling itself, what a metric that gives everybody
# the same ranking could at best reach, lies at or above it. Data with one ranking per set have
# no such bound (no number below): people cannot be compared on the same candidates, and a split-half
# reliability takes its place where the data allow one
# ({doc}`/out/notebooks/01_dataset_exploration`). Under the cell, every metric ordered by ICC(A,k).

# %%
ceiling_table = noise_ceiling(exp.test_table)
ceiling = float(ceiling_table.set_index("rater").at["all", "rho"]) if not ceiling_table.empty else float("nan")
ordered = table[["icc_A_k", "icc_A_k_ci_low", "icc_A_k_ci_high", "spearman", "kendall", "spearman_per_ranking"]]
view(ordered.astype(float).sort_values("icc_A_k", ascending=False).rename(index=label),
     names={"icc_A_k": "ICC(A,k)", "icc_A_k_ci_low": "95% CI low", "icc_A_k_ci_high": "95% CI high",
            "spearman": "ρ, ranks pooled", "kendall": "Kendall τ_b", "spearman_per_ranking": "mean ρ per ranking"})

# %% tags=["remove-output"]
fig = plots.plot_alignment(table, None if np.isnan(ceiling) else ceiling)
glue("nb04_fig_alignment", fig, display=False)

# %% tags=["remove-output"]
def unweighted_in_words(table: pd.DataFrame) -> str:
    """LPIPS with every channel counted equally against LPIPS v0.1, in words (if the run scored it)."""
    if "lpips_ones" not in table.index:
        return "the unweighted LPIPS, which would show what those weights add, is not among this run's baselines"
    return (f"with every channel counted equally instead, LPIPS scores {table.at['lpips_ones', 'icc_A_k']:.3f}, "
            f"against {table.at['lpips', 'icc_A_k']:.3f} for LPIPS v0.1")


def ceiling_in_words(ceiling: float, table: pd.DataFrame) -> str:
    """The lower bound of the noise ceiling against CLPIPS's and LPIPS's mean per-ranking rho, in words."""
    clpips, lpips = (float(table.at[m, "spearman_per_ranking"]) for m in ("clpips", "lpips"))
    moved = f"CLPIPS's mean per-ranking ρ is {clpips:.3f} and LPIPS's {lpips:.3f}: the fit moved it by {clpips - lpips:+.3f}"
    if np.isnan(ceiling):
        return (f"{moved}. No held-out set was ranked by two people, so people's agreement gives no bound of the "
                "noise ceiling on these data")
    return (f"People's agreement bounds the noise ceiling from below at {ceiling:.3f}. {moved}, and the bound lies "
            f"{ceiling - clpips:+.3f} from CLPIPS's value: the room left below the ceiling is at least that")


place = list(table["icc_A_k"].astype(float).sort_values(ascending=False).index)
pd.Series(glue_all({
    "n_metrics": len(metrics), "clpips_place": place.index("clpips") + 1, "lpips_place": place.index("lpips") + 1,
    "ones_icc": float(table.at["lpips_ones", "icc_A_k"]) if "lpips_ones" in table.index else float("nan"),
    "ones_words": unweighted_in_words(table), "ceiling_words": ceiling_in_words(ceiling, table), "ceiling": ceiling,
    "ceiling_gain": float(table.at["clpips", "spearman_per_ranking"] - table.at["lpips", "spearman_per_ranking"]),
    "ceiling_gap": ceiling - float(table.at["clpips", "spearman_per_ranking"])}, prefix="nb04_"))

# %% [markdown]
# ```{glue:figure} nb04_fig_alignment
# :name: fig-04-alignment
#
# Every metric's agreement with the held-out rankings: ICC(A,k) with its 95% interval (left) and
# the mean over rankings of the per-ranking Spearman $\rho$ (right), with a lower bound of the
# noise ceiling (dashed; the mean $\rho$ of each person with the average rank the others gave the same set)
# where the data have it. LPIPS orange, CLPIPS blue, baselines grey.
# ```
#
# Ordered by ICC(A,k), CLPIPS is number {glue:text}`nb04_clpips_place:d` and LPIPS number
# {glue:text}`nb04_lpips_place:d` of the {glue:text}`nb04_n_metrics:d` metrics. LPIPS v0.1's weights
# were learned from human judgements of image *distortions* {cite:p}`zhang2018lpips`;
# {glue:text}`nb04_ones_words`.
# Pixel L2 and PSNR have identical rows by construction: $1/$PSNR is an increasing function of
# the mean squared error, so both order every candidate set the same way.
#
# {glue:text}`nb04_ceiling_words`.
#
# ```{note}
# Why the gap can stay large: in `mur92` people sort photographs by *what* they show, a face with
# faces and a fruit with fruit ({doc}`/out/notebooks/01_dataset_exploration`), while LPIPS's
# features, and any re-weighting of them, see mostly colour, texture and layout; re-weighting five
# layers' channels cannot add category information the features lack. In the simulated study
# people judge six scene attributes, and how well a metric can do depends on how visible those
# attributes are in its features.
# ```
#
# ## One target in three orders (the paper's Figure 3)
#
# The paper illustrates its result with one target and its candidates in the human, LPIPS and
# CLPIPS orders. A single example can show anything, so the two here are chosen by a fixed rule
# (`clpips.book.set_scores.example_sets`): among the held-out ranking sets, the one where
# CLPIPS's mean per-ranking $\rho$ gains most over LPIPS's, and the one where it loses most.

# %%
per_ranking = set_scores.per_ranking_spearman(scored, metrics)
gains = set_scores.set_gains(per_ranking, "lpips", "clpips")
chosen = set_scores.example_sets(gains)
shown = gains.set_index("set_id").loc[[chosen["gain"], chosen["loss"]]]
view(shown, names={"n_rankings": "rankings", "rho_lpips": "ρ LPIPS", "rho_clpips": "ρ CLPIPS", "gain": "gain of ρ"})

# %% tags=["remove-output"]
for which, sid in chosen.items():
    fig = plots.plot_orders(data, scored, sid, ("lpips", "clpips"),
                            rho={"lpips": shown.at[sid, "rho_lpips"], "clpips": shown.at[sid, "rho_clpips"]})
    glue(f"nb04_fig_orders_{which}", fig, display=False)

# %% tags=["remove-output"]
numbers = {"n_sets": len(gains), "sets_improved": int((gains["gain"] > 0).sum()),
           "sets_worse": int((gains["gain"] < 0).sum())}
for which, sid in chosen.items():
    row = shown.loc[sid]
    numbers |= {f"{which}_set": str(sid), f"{which}_target": str(row["target"]), f"{which}_lpips": float(row["rho_lpips"]),
                f"{which}_clpips": float(row["rho_clpips"]), f"{which}_delta": float(row["gain"]),
                f"{which}_n": int(row["n_rankings"])}
pd.Series(glue_all(numbers, prefix="nb04_"))

# %% [markdown]
# Of the {glue:text}`nb04_n_sets:d` held-out sets, CLPIPS does better on
# {glue:text}`nb04_sets_improved:d` and worse on {glue:text}`nb04_sets_worse:d`.
#
# ```{glue:figure} nb04_fig_orders_gain
# :name: fig-04-orders-gain
#
# The set where CLPIPS gains most ({glue:text}`nb04_gain_set`): the target (framed) and its
# candidates ordered by the people (top, by their mean rank), by LPIPS and by CLPIPS (most similar
# first). Under each candidate its mean human rank: a metric that agrees with the people shows
# increasing numbers from left to right. $\rho$: mean over the set's rankings.
# ```
#
# On set {glue:text}`nb04_gain_set` ({glue:text}`nb04_gain_n:d` ranking(s)) the mean $\rho$ goes from
# {glue:text}`nb04_gain_lpips:.2f` with LPIPS to {glue:text}`nb04_gain_clpips:.2f` with CLPIPS
# ({glue:text}`nb04_gain_delta:+.2f`).
#
# ```{glue:figure} nb04_fig_orders_loss
# :name: fig-04-orders-loss
#
# The set where CLPIPS loses most ({glue:text}`nb04_loss_set`), drawn as in
# {numref}`fig-04-orders-gain`.
# ```
#
# On set {glue:text}`nb04_loss_set` ({glue:text}`nb04_loss_n:d` ranking(s)) it goes from
# {glue:text}`nb04_loss_lpips:.2f` to {glue:text}`nb04_loss_clpips:.2f`
# ({glue:text}`nb04_loss_delta:+.2f`). Gains and losses of this size on single sets are the
# raw material of the averages in {numref}`tbl-04-table3`; the next figure shows all of them.
#
# ## Ranking by ranking

# %%
x, y = per_ranking["lpips"].to_numpy(float), per_ranking["clpips"].to_numpy(float)
by_ranking = pd.DataFrame([{"better": int(np.sum(y > x)), "worse": int(np.sum(y < x)), "equal": int(np.sum(y == x)),
                            "mean change of rho": float(np.nanmean(y - x))}], index=["CLPIPS against LPIPS"])
view(by_ranking.rename_axis("rankings"))

# %% tags=["remove-output"]
fig = plots.plot_rho_scatter(per_ranking, "lpips", "clpips", highlight=[chosen["gain"], chosen["loss"]], seed=seed)
glue("nb04_fig_scatter", fig, display=False)

# %% tags=["remove-output"]
pd.Series(glue_all({f"rank_{name}": by_ranking.at["CLPIPS against LPIPS", column] for name, column in
                    (("better", "better"), ("worse", "worse"), ("equal", "equal"), ("mean_delta", "mean change of rho"))},
                   prefix="nb04_"))

# %% [markdown]
# ```{glue:figure} nb04_fig_scatter
# :name: fig-04-rho-scatter
#
# Spearman $\rho$ of each held-out ranking with CLPIPS (y) against LPIPS (x), jittered by at
# most 0.01 because $\rho$ of a few candidates takes few values. Above the diagonal CLPIPS agrees
# better with that person's ranking; circled, the rankings of the two sets shown above.
# ```
#
# Ranking by ranking, CLPIPS agrees better with {glue:text}`nb04_rank_better:d` rankings, worse
# with {glue:text}`nb04_rank_worse:d` and equally with {glue:text}`nb04_rank_equal:d`; the mean
# change of per-ranking $\rho$ is {glue:text}`nb04_rank_mean_delta:+.3f`. Where the points hug the
# diagonal, the fit, which re-weighs the same features, makes both metrics succeed and fail on
# the same rankings, and the spread *along* the diagonal, from target to target and person to
# person, is larger than the shift *across* it. `clpips evaluate --baselines` prints the
# table of this chapter from the command line.
