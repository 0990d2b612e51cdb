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
# better with people than LPIPS does, on images the training never saw. This chapter answers it
# for the split and fit of {doc}`/out/notebooks/03_training` (the same protocol as `clpips fit`,
# with the same parameters): every held-out ranking is scored by each metric, the metric's
# distances become ranks within the ranking, and those ranks are compared with the person's
# (see {doc}`/book/method`): Spearman's $\rho$ and Kendall's $\tau_b$ pooled over all rankings,
# and ICC(A,k) with its 95% interval and $p$-value, the layout of the paper's Table 3.
#
# Two metrics alone say little about how hard the data are, so the table also lists **more
# baselines** (`clpips.baselines`): pixel L2 and PSNR, SSIM, LPIPS with the VGG16 backbone, and
# LPIPS with all linear weights equal to 1 (the "unlearned" LPIPS). Where people agree with each
# other, their agreement bounds what any metric can reach: the **noise ceiling**.

# %% tags=["parameters"]
from clpips.defaults import DEFAULTS

dataset = DEFAULTS.dataset
k = DEFAULTS.k
candidates = DEFAULTS.candidates
test_size = DEFAULTS.test_size
seed = DEFAULTS.seed
net = DEFAULTS.net
loss = DEFAULTS.loss
margin = DEFAULTS.margin
lr = DEFAULTS.lr
batch_size = DEFAULTS.batch_size
epochs = DEFAULTS.epochs
patience = DEFAULTS.patience
init = DEFAULTS.init
layers = DEFAULTS.layers
project = DEFAULTS.project
baselines = DEFAULTS.baselines

# %% tags=["hide-input"]
import time

import numpy as np
import pandas as pd
from IPython.display import Markdown, display
from matplotlib_inline.backend_inline import set_matplotlib_formats
from myst_nb import glue

from clpips import paper
from clpips.baselines import add_baselines, label
from clpips.datasets.summaries import noise_ceiling
from clpips.evaluate import alignment_table
from clpips import experiment
from clpips.experiment import load_dataset, run, spearman_brown_icc
from clpips.plots import evaluation as plots

set_matplotlib_formats("png")  # glued figures carry a PNG even under MPLBACKEND=Agg
started = time.perf_counter()

options = {"k": k, "candidates": candidates, "seed": seed}
data = load_dataset(dataset, **options)  # a CSV study ignores the built-in sampling options
fit_options = experiment.fit_options(globals())  # this notebook's loss, margin, lr, ...
exp = run(data, seed=seed, test_size=test_size, net=net, progress=False, **fit_options)  # as `clpips fit`
extra = [b.strip() for b in baselines.split(",") if b.strip()]
scored = add_baselines(exp.scored, data, extra, alex_features=exp.features if net == "alex" else None)
metrics = ["lpips", "clpips", *extra]
table = alignment_table(scored, metrics)

used = pd.DataFrame([{"dataset": data.name, "seed": seed, "test_size": test_size, "net": net, **fit_options,
                      "baselines": baselines}])
display(used.set_index("dataset"))

test = exp.test_table
glue("nb04_dataset", data.name, display=False)
glue("nb04_margin", float(margin), display=False)
glue("nb04_n_targets", int(test["target"].nunique()), display=False)
glue("nb04_n_rankings", int(table.at["lpips", "n_rankings"]), display=False)
glue("nb04_n_rows", int(table.at["lpips", "n_rows"]), display=False)
glue("nb04_n_raters", int(test["rater"].nunique()), display=False)
glue("nb04_per_target", float(table.at["lpips", "n_rankings"] / test["target"].nunique()), display=False)

# %% [markdown]
# The held-out side of the split has {glue:text}`nb04_n_targets:d` target images of the
# {glue:text}`nb04_dataset` data, with {glue:text}`nb04_n_rankings:,d` rankings
# ({glue:text}`nb04_per_target:.1f` per target on average, by {glue:text}`nb04_n_raters:d`
# people) and {glue:text}`nb04_n_rows:,d` (ranking, candidate) rows. CLPIPS was fitted with margin
# {glue:text}`nb04_margin:.3g` on the other targets only.
#
# ## The paper's Table 3, on these data

# %% tags=["hide-input"]
reported = {
    "LPIPS, paper (Table 3)": {"spearman": paper.value("lpips_spearman"), "icc_A_k": paper.value("lpips_icc_A_k")},
    "CLPIPS, paper (Table 3)": {"spearman": paper.value("clpips_spearman"), "icc_A_k": paper.value("clpips_icc_A_k")},
}
table3 = plots.table3(table, reported)
glue("nb04_table3", table3, display=False)

for m in ("lpips", "clpips"):
    row = table.loc[m]
    glue(f"heldout_{m}_rho", float(row["spearman"]), display=False)      # pasted by book/reproduction.md
    glue(f"heldout_{m}_icc", float(row["icc_A_k"]), display=False)
    glue(f"heldout_{m}_icc_label", str(row["icc_A_k_koo_li"]), display=False)
    glue(f"paper_{m}_rho", paper.printed(f"{m}_spearman"), display=False)
    glue(f"paper_{m}_icc", paper.printed(f"{m}_icc_A_k"), display=False)
    glue(f"nb04_{m}_icc_lo", float(row["icc_A_k_ci_low"]), display=False)
    glue(f"nb04_{m}_icc_hi", float(row["icc_A_k_ci_high"]), display=False)
    glue(f"nb04_{m}_icc_p", float(row["icc_A_k_pval"]), display=False)
    glue(f"nb04_{m}_rho_p", float(row["spearman_pval"]), display=False)
    glue(f"nb04_{m}_tau", float(row["kendall"]), display=False)
    glue(f"nb04_{m}_rho_per_ranking", float(row["spearman_per_ranking"]), display=False)
glue("nb04_delta_rho", float(table.at["clpips", "spearman"] - table.at["lpips", "spearman"]), display=False)
glue("nb04_delta_icc", float(table.at["clpips", "icc_A_k"] - table.at["lpips", "icc_A_k"]), display=False)
glue("nb04_paper_delta_rho", paper.derived()["delta_spearman"], display=False)
glue("nb04_paper_delta_icc", paper.derived()["delta_icc_A_k"], display=False)

# ICC(A,k) on untied ranks is a function of the pooled rho: check it on every metric of the table
sb = spearman_brown_icc(table["spearman"].astype(float), table["n_rows"].astype(float))
glue("nb04_sb_max_error", float(np.max(np.abs(sb - table["icc_A_k"].astype(float)))), display=False)
glue("nb04_paper_lpips_sb", paper.derived()["lpips_icc_from_rho"], display=False)
glue("nb04_paper_clpips_sb", paper.derived()["clpips_icc_from_rho"], display=False)

# %% [markdown]
# ```{glue:figure} nb04_table3
# :name: tbl-04-table3
#
# Agreement with held-out human rankings. ICC(A,k) with its F-based 95% interval and $p$ (H0:
# ICC = 0); pooled Spearman's $\rho$ and Kendall's $\tau_b$ of metric rank against human rank,
# with $p$ for $\rho$; the mean of the per-ranking $\rho$; the Koo & Li label
# {cite:p}`koo2016icc`. The paper's rows carry the values it reports {cite:p}`trinh2026clpips`
# (— where a value is not transcribed in `clpips.paper`); its data are private and different.
# ```
#
# LPIPS reaches a pooled $\rho$ of {glue:text}`heldout_lpips_rho:.3f`
# ($p$ = {glue:text}`nb04_lpips_rho_p:.1e`) and CLPIPS {glue:text}`heldout_clpips_rho:.3f`
# ($p$ = {glue:text}`nb04_clpips_rho_p:.1e`), a change of {glue:text}`nb04_delta_rho:+.3f`; the
# paper reports {glue:text}`paper_lpips_rho` and {glue:text}`paper_clpips_rho`, a change of
# {glue:text}`nb04_paper_delta_rho:+.3f`. ICC(A,k) moves from {glue:text}`heldout_lpips_icc:.3f`
# [{glue:text}`nb04_lpips_icc_lo:.3f`, {glue:text}`nb04_lpips_icc_hi:.3f`] to
# {glue:text}`heldout_clpips_icc:.3f` [{glue:text}`nb04_clpips_icc_lo:.3f`,
# {glue:text}`nb04_clpips_icc_hi:.3f`] ({glue:text}`nb04_delta_icc:+.3f`; paper:
# {glue:text}`paper_lpips_icc` to {glue:text}`paper_clpips_icc`, {glue:text}`nb04_paper_delta_icc:+.2f`).
# Both metrics agree with people far beyond chance (every $p$ is tiny, because a pooled
# correlation over {glue:text}`nb04_n_rows:,d` rows detects even weak agreement), but "not zero"
# is a low bar: by the Koo & Li reading the agreement is *{glue:text}`heldout_lpips_icc_label`*
# for LPIPS and *{glue:text}`heldout_clpips_icc_label`* for CLPIPS. Whether the
# *difference* between the two is more than chance needs a paired test, the subject of
# {doc}`/out/notebooks/05_bootstrap`; the two ICC intervals above are not that test.
#
# **ICC(A,k) restates $\rho$.** Human and metric both give ranks $1..k$ in every ranking, so
# ICC(A,k) $= 2\rho / (1 + \rho - (1-\rho)/n)$ for $n$ rows, the Spearman–Brown formula up to
# a term of order $1/n$ ({doc}`/book/method`). Computed that way from the pooled $\rho$ of each
# row of the table it matches the ICC column to within {glue:text}`nb04_sb_max_error:.1e`. The
# paper's own numbers obey it as well: $2\rho/(1+\rho)$ of its $\rho$ gives
# {glue:text}`nb04_paper_lpips_sb:.3f` and {glue:text}`nb04_paper_clpips_sb:.3f` against its
# printed ICCs of {glue:text}`paper_lpips_icc` and {glue:text}`paper_clpips_icc`. The paper's
# two statistics are one.
#
# ## LPIPS and CLPIPS among the baselines, and the noise ceiling

# %% tags=["hide-input"]
ceiling_table = noise_ceiling(test)
has_ceiling = not ceiling_table.empty
ceiling = float(ceiling_table.set_index("rater").at["all", "rho"]) if has_ceiling else float("nan")
order = table["icc_A_k"].astype(float).sort_values(ascending=False)
others = [m for m in order.index if m not in ("lpips", "clpips")]
best_other, worst = others[0], order.index[-1]

glue("nb04_n_metrics", len(metrics), display=False)
glue("nb04_clpips_place", int(list(order.index).index("clpips") + 1), display=False)
glue("nb04_lpips_place", int(list(order.index).index("lpips") + 1), display=False)
glue("nb04_best_other", label(best_other), display=False)
glue("nb04_best_other_icc", float(order[best_other]), display=False)
glue("nb04_worst", label(worst), display=False)
glue("nb04_worst_icc", float(order[worst]), display=False)
if "lpips_ones" in table.index:
    ones = float(table.at["lpips_ones", "icc_A_k"])
    glue("nb04_ones_icc", ones, display=False)
    glue("nb04_ones_vs_lpips", "below" if ones < float(table.at["lpips", "icc_A_k"]) else "above", display=False)
else:
    glue("nb04_ones_icc", float("nan"), display=False)
    glue("nb04_ones_vs_lpips", "not computed (left out of `baselines`)", display=False)
glue("nb04_ceiling", ceiling, display=False)
clpips_mean_rho = float(table.at["clpips", "spearman_per_ranking"])
if has_ceiling:
    ceiling_md = (
        f"The noise ceiling is {ceiling:.3f}: that is how well the average rank the other people gave "
        "predicts one person's ranking of the same candidates (mean Spearman $\\rho$), and no metric that "
        "gives everybody the same ranking can expect to do much better. CLPIPS's mean per-ranking $\\rho$ "
        f"is {clpips_mean_rho:.3f}, {clpips_mean_rho / ceiling:.0%} of the ceiling; LPIPS's is "
        f"{float(table.at['lpips', 'spearman_per_ranking']):.3f}.")
else:
    ceiling_md = (
        "These data have one ranking per set, so people cannot be compared with each other on the same "
        "candidates and there is no noise ceiling; in the simulated study the known ground truth plays that "
        "role ({doc}`/out/notebooks/01_dataset_exploration`).")
if data.name == "mur92":
    ceiling_md += (
        " On `mur92` the distance between every metric and the ceiling is the main finding: people sort these "
        "photographs by *what* they show, a face with faces and a fruit with fruit "
        "({doc}`/out/notebooks/01_dataset_exploration`), while LPIPS's features, and any re-weighting of them, "
        "see mostly colour, texture and layout. Fine-tuning five layers' channel weights cannot add category "
        "information the features lack, so the gain over LPIPS is small next to the gap that remains.")
elif data.name == "simulated":
    ceiling_md += (
        " In the simulated study people judge six scene attributes; how well a metric can do depends on how "
        "visible those attributes are in its features.")
glue("nb04_ceiling_md", Markdown(ceiling_md), display=False)

display(table[["spearman", "kendall", "spearman_per_ranking", "icc_A_k", "icc_A_k_ci_low", "icc_A_k_ci_high"]]
        .astype(float).rename(index=label).round(3))
fig = plots.plot_alignment(table, ceiling if has_ceiling else None)
glue("nb04_fig_alignment", fig, display=False)

# %% [markdown]
# ```{glue:figure} nb04_fig_alignment
# :name: fig-04-alignment
#
# Every metric's agreement with the held-out rankings: ICC(A,k) with its 95% interval (left) and
# the mean over rankings of the per-ranking Spearman $\rho$ (right), with the noise ceiling
# (dashed; the mean $\rho$ of each person with the average rank the others gave the same set)
# where the data have it. LPIPS orange, CLPIPS blue, baselines grey.
# ```
#
# Ordered by ICC(A,k), CLPIPS is number {glue:text}`nb04_clpips_place:d` and LPIPS number
# {glue:text}`nb04_lpips_place:d` of the {glue:text}`nb04_n_metrics:d` metrics. The best of the
# other baselines is {glue:text}`nb04_best_other`, with ICC(A,k) {glue:text}`nb04_best_other_icc:.3f`;
# the weakest is {glue:text}`nb04_worst`, with {glue:text}`nb04_worst_icc:.3f`. The unweighted LPIPS, with every
# channel counted equally, scores {glue:text}`nb04_ones_icc:.3f`, {glue:text}`nb04_ones_vs_lpips`
# LPIPS v0.1 whose weights were learned from human judgements of image *distortions*
# {cite:p}`zhang2018lpips`. Pixel L2 and PSNR have identical rows by construction: $1/$PSNR is an
# increasing function of the mean squared error, so both order every candidate set the same way.
#
# ```{glue:md} nb04_ceiling_md
# :format: myst
# ```
#
# ## One target in three orders (the paper's Figure 3)

# %% tags=["hide-input"]
per_ranking = plots.per_ranking_spearman(scored, metrics)
gains = plots.set_gains(per_ranking, "lpips", "clpips")
chosen = plots.example_sets(gains)
by_set = gains.set_index("set_id")
figures = {}
for which in ("gain", "loss"):
    sid = chosen[which]
    row = by_set.loc[sid]
    glue(f"nb04_{which}_set", str(sid), display=False)
    glue(f"nb04_{which}_target", str(row["target"]), display=False)
    glue(f"nb04_{which}_lpips", float(row["rho_lpips"]), display=False)
    glue(f"nb04_{which}_clpips", float(row["rho_clpips"]), display=False)
    glue(f"nb04_{which}_delta", float(row["gain"]), display=False)
    glue(f"nb04_{which}_n", int(row["n_rankings"]), display=False)
    fig = plots.plot_orders(data, scored, sid, ("lpips", "clpips"),
                            rho={"lpips": row["rho_lpips"], "clpips": row["rho_clpips"]})
    glue(f"nb04_fig_orders_{which}", fig, display=False)
glue("nb04_n_sets", int(len(gains)), display=False)
glue("nb04_sets_improved", int((gains["gain"] > 0).sum()), display=False)
glue("nb04_sets_worse", int((gains["gain"] < 0).sum()), display=False)

# %% [markdown]
# The paper illustrates its result with one target and its candidates in the human, LPIPS and
# CLPIPS orders. A single example can show anything, so the two here are chosen by a fixed rule
# (`clpips.plots.evaluation.example_sets`): among the {glue:text}`nb04_n_sets:d` held-out ranking
# sets, the one where CLPIPS's mean per-ranking $\rho$ gains most over LPIPS's, and the one where
# it loses most. CLPIPS does better on {glue:text}`nb04_sets_improved:d` sets and worse on
# {glue:text}`nb04_sets_worse:d`.
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

# %% tags=["hide-input"]
x, y = per_ranking["lpips"].to_numpy(float), per_ranking["clpips"].to_numpy(float)
glue("nb04_rank_better", int(np.sum(y > x)), display=False)
glue("nb04_rank_worse", int(np.sum(y < x)), display=False)
glue("nb04_rank_equal", int(np.sum(y == x)), display=False)
glue("nb04_rank_mean_delta", float(np.nanmean(y - x)), display=False)
fig = plots.plot_rho_scatter(per_ranking, "lpips", "clpips", highlight=[chosen["gain"], chosen["loss"]], seed=seed)
glue("nb04_fig_scatter", fig, display=False)

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
# change of per-ranking $\rho$ is {glue:text}`nb04_rank_mean_delta:+.3f`. The points hug the
# diagonal: the fit re-weighs the same features, so both metrics tend to succeed and fail on
# the same rankings, and the spread *along* the diagonal, from target to target and person to
# person, is much larger than the shift *across* it. `clpips evaluate --baselines` prints the
# table of this chapter from the command line.

# %% tags=["hide-input"]
glue("nb04_seconds", time.perf_counter() - started, display=False)

# %% [markdown]
# This chapter ran in {glue:text}`nb04_seconds:.0f` seconds.
