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
from IPython.display import Markdown, display
from matplotlib_inline.backend_inline import set_matplotlib_formats
from myst_nb import glue

from clpips.book import paper
from clpips.book.baselines import add_baselines, label
from clpips.book.summaries import noise_ceiling
from clpips.evaluate import alignment_table
from clpips import experiment, protocol
from clpips.book import report
from clpips.book import set_scores
from clpips.datasets import SPLIT_MODES
from clpips.experiment import bootstrap_result, load_dataset, run, spearman_brown_icc
from clpips.book.plots import evaluation as plots
from clpips.book.plots import protocol as plots_protocol

set_matplotlib_formats("png")  # glued figures carry a PNG even under MPLBACKEND=Agg
plt.ioff()  # every figure here is glued where the text shows it: none also under its cell
started = time.perf_counter()

options = {"k": k, "candidates": candidates, "seed": seed}
data = load_dataset(dataset, **options)  # a CSV study ignores the built-in sampling options

# the nested protocol, split by target and by image (cached: chapters 05 and 08 reuse these runs)
cv = {mode: protocol.crossval(data, mode=mode, **protocol.options(globals())) for mode in SPLIT_MODES}
summaries = {mode: res.summary(ci=ci, n_boot=n_boot, seed=seed) for mode, res in cv.items()}
paper_delta = {"icc_A_k": paper.value("delta_icc"), "spearman_raw": paper.derived()["delta_spearman"]}


def verdict(row) -> str:
    """Words for an interval of a difference, chosen by its ends."""
    if row["nb_low"] > 0:
        return "above zero: CLPIPS agrees better"
    if row["nb_high"] < 0:
        return "below zero: CLPIPS agrees worse"
    return "includes zero: no difference is shown"


rows = []
for mode, summary in summaries.items():
    res = cv[mode]
    glue(f"nb04_cv_{mode}_n_folds", int(len(res.folds)), display=False)
    glue(f"nb04_cv_{mode}_n_targets", int(res.folds["n_test_targets"].sum() / protocol_repeats), display=False)
    glue(f"nb04_cv_{mode}_test_rankings", float(res.folds["n_test_rankings"].mean()), display=False)
    glue(f"nb04_cv_{mode}_shared", float(res.folds["shared_pair_share"].mean()), display=False)
    top = res.chosen().iloc[0]
    glue(f"nb04_cv_{mode}_chosen", f"margin {top['margin']:g}, lr {top['lr']:g}, {int(top['epochs'])} epochs",
         display=False)
    glue(f"nb04_cv_{mode}_chosen_n", int(top["folds"]), display=False)
    for stat, row in summary.iterrows():
        for col in ("lpips", "clpips", "delta", "nb_low", "nb_high", "boot_delta", "boot_low", "boot_high"):
            glue(f"nb04_cv_{mode}_{stat}_{col}", float(row[col]), display=False)
        glue(f"nb04_cv_{mode}_{stat}_positive", int(round(row["positive_share"] * row["n_folds"])), display=False)
        glue(f"nb04_cv_{mode}_{stat}_verdict", verdict(row), display=False)
        boot = (f"[{row['boot_low']:+.3f}, {row['boot_high']:+.3f}]" if np.isfinite(row["boot_low"]) else "—")
        rows.append({"split": f"by {mode}", "statistic": plots_protocol.TITLES[stat].lstrip("Δ").strip(),
                     "LPIPS": f"{row['lpips']:.3f}", "CLPIPS": f"{row['clpips']:.3f}", "Δ": f"{row['delta']:+.3f}",
                     "corrected t 95%": f"[{row['nb_low']:+.3f}, {row['nb_high']:+.3f}]",
                     "target bootstrap 95%": boot,
                     "folds Δ > 0": f"{int(round(row['positive_share'] * row['n_folds']))}/{int(row['n_folds'])}",
                     "paper Δ": (f"{paper_delta[stat]:+.3f}" if stat in paper_delta else "—")})
cv_table = pd.DataFrame(rows).set_index(["split", "statistic"])
glue("nb04_cv_table", cv_table, display=False)
fig = plots_protocol.plot_fold_deltas({f"by {m}": r.folds for m, r in cv.items()},
                                      {f"by {m}": s for m, s in summaries.items()}, reference=paper_delta, seed=seed)
glue("nb04_cv_fig", fig, display=False)
plt.close(fig)  # shown where the text pastes it, not also under this cell
glue("nb04_cv_repeats", int(protocol_repeats), display=False)
glue("nb04_cv_redraw", " (each repeat with a new random draw of every target's candidates, so that no result "
     "rests on one draw)" if getattr(data, "within", None) is not None else "", display=False)
glue("nb04_cv_folds", int(protocol_folds), display=False)
glue("nb04_cv_inner", int(protocol_inner_folds), display=False)
glue("nb04_cv_n_settings", int(len(protocol.options(globals())["grid"].settings())), display=False)
glue("nb04_paper_delta_icc_t4", paper.printed("delta_icc"), display=False)
glue("nb04_paper_delta_icc_lo", paper.printed("delta_icc_ci_low"), display=False)
glue("nb04_paper_delta_icc_hi", paper.printed("delta_icc_ci_high"), display=False)
glue("nb04_cv_image_stronger", "smaller" if summaries["image"].at["icc_A_k", "delta"]
     < summaries["target"].at["icc_A_k", "delta"] else "larger", display=False)

# %% [markdown]
# ## The answer over repeated, nested splits
#
# {glue:text}`nb04_cv_repeats:d` repeats of a {glue:text}`nb04_cv_folds:d`-fold split of the
# {glue:text}`nb04_dataset` targets{glue:text}`nb04_cv_redraw` give
# {glue:text}`nb04_cv_target_n_folds:d` held-out folds per split mode. In each, an inner {glue:text}`nb04_cv_inner:d`-fold cross-validation on the
# training targets alone chose one of {glue:text}`nb04_cv_n_settings:d` settings (margin x
# learning rate x epochs); split by target the most frequent choice was
# {glue:text}`nb04_cv_target_chosen` ({glue:text}`nb04_cv_target_chosen_n:d` folds).
#
# ```{glue:figure} nb04_cv_fig
# :name: fig-04-protocol
#
# Held-out differences CLPIPS − LPIPS in every outer fold (grey dots), their mean with the
# corrected resampled $t$ interval (blue; Nadeau & Bengio's variance correction for training
# sets that overlap between folds), and the difference on the pooled out-of-fold rankings with
# a 95% bootstrap interval over targets (orange; ICC and the rank-based $
ho$ only). Dashed: the
# paper's value where it reports one (its ΔICC from Table 4; its Δ$
ho$ as the difference of
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
# {glue:text}`nb04_cv_target_icc_A_k_nb_high:+.3f`], an interval that
# {glue:text}`nb04_cv_target_icc_A_k_verdict`; CLPIPS was ahead in
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
# [{glue:text}`nb04_cv_target_spearman_raw_nb_low:+.3f`, {glue:text}`nb04_cv_target_spearman_raw_nb_high:+.3f`]
# (interval {glue:text}`nb04_cv_target_spearman_raw_verdict`); on within-ranking ranks by
# {glue:text}`nb04_cv_target_spearman_delta:+.3f`; pair accuracy by
# {glue:text}`nb04_cv_target_pair_accuracy_delta:+.3f` ({glue:text}`nb04_cv_target_pair_accuracy_verdict`).
#
# **Split by image**, where no held-out image was ever trained on, as target or as candidate
# (split by target, {glue:text}`nb04_cv_target_shared:.0%` of the held-out rows share their image
# pair with a training row; split by image {glue:text}`nb04_cv_image_shared:.0%`), ΔICC(A,k) is
# {glue:text}`nb04_cv_image_icc_A_k_delta:+.3f` [{glue:text}`nb04_cv_image_icc_A_k_nb_low:+.3f`,
# {glue:text}`nb04_cv_image_icc_A_k_nb_high:+.3f`], an interval that
# {glue:text}`nb04_cv_image_icc_A_k_verdict` ({glue:text}`nb04_cv_image_icc_A_k_positive:d` of
# {glue:text}`nb04_cv_image_n_folds:d` folds ahead; target bootstrap
# [{glue:text}`nb04_cv_image_icc_A_k_boot_low:+.3f`, {glue:text}`nb04_cv_image_icc_A_k_boot_high:+.3f`]),
# {glue:text}`nb04_cv_image_stronger` than split by target; Δ$\rho$ (paper's definition)
# {glue:text}`nb04_cv_image_spearman_raw_delta:+.3f` ({glue:text}`nb04_cv_image_spearman_raw_verdict`).
# Every fold has its own model, chosen and trained without its held-out targets, so no number
# here rests on one split; they do rest on one dataset, which
# {doc}`/out/notebooks/08_across_datasets` varies. Chapter {doc}`/out/notebooks/05_bootstrap` looks at the intervals more closely.
#
# ## The paper's protocol, one split (an illustration)
#
# The rest of this chapter runs the paper's protocol once: one 70/30 split by target (seed
# {glue:text}`nb04_seed:d`), CLPIPS fitted with this chapter's fixed parameters, as
# `clpips fit` does and as {doc}`/out/notebooks/03_training` shows. Its numbers are one draw
# from the spread of {numref}`fig-04-protocol`, not the answer.

# %% tags=["hide-input"]
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
glue("nb04_seed", int(seed), display=False)
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
reported = {  # the paper pools raw distances across sets: its rho goes in that column
    "LPIPS, paper (Table 3)": {"spearman_raw": paper.value("lpips_spearman"), "icc_A_k": paper.value("lpips_icc_A_k")},
    "CLPIPS, paper (Table 3)": {"spearman_raw": paper.value("clpips_spearman"),
                                "icc_A_k": paper.value("clpips_icc_A_k")},
}
# ICC(A,k) of each metric with an interval that resamples targets (all their rankings together):
# the F-based interval treats every (ranking, candidate) row as independent, but all raters of a
# target share its candidates
cluster_ci, width_ratio = {}, {}
for m in metrics:
    res = bootstrap_result(scored, "lpips", m, unit="target", n_boot=n_boot, seed=seed, ci=ci)
    cluster_ci[m] = tuple(res.intervals.loc["icc_b"])
    f_width = float(table.at[m, "icc_A_k_ci_high"] - table.at[m, "icc_A_k_ci_low"])
    width_ratio[m] = (cluster_ci[m][1] - cluster_ci[m][0]) / f_width if f_width > 0 else float("nan")
table3 = report.table3(table, reported, cluster_ci=cluster_ci)
glue("nb04_lpips_cluster_lo", float(cluster_ci["lpips"][0]), display=False)
glue("nb04_lpips_cluster_hi", float(cluster_ci["lpips"][1]), display=False)
glue("nb04_lpips_width_ratio", float(width_ratio["lpips"]), display=False)
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
    glue(f"nb04_{m}_rho_raw", float(row["spearman_raw"]), display=False)
glue("nb04_delta_rho", float(table.at["clpips", "spearman"] - table.at["lpips", "spearman"]), display=False)
glue("nb04_delta_rho_raw", float(table.at["clpips", "spearman_raw"] - table.at["lpips", "spearman_raw"]),
     display=False)
glue("nb04_delta_icc", float(table.at["clpips", "icc_A_k"] - table.at["lpips", "icc_A_k"]), display=False)
glue("nb04_paper_delta_rho", paper.derived()["delta_spearman"], display=False)
glue("nb04_paper_delta_icc", paper.derived()["delta_icc_A_k"], display=False)

# ICC(A,k) on untied ranks is a function of the pooled rho: check it on every metric of the table
sb = spearman_brown_icc(table["spearman"].astype(float), table["n_rows"].astype(float))
glue("nb04_sb_max_error", float(np.max(np.abs(sb - table["icc_A_k"].astype(float)))), display=False)
glue("nb04_paper_lpips_sb", paper.derived()["lpips_icc_from_rho"], display=False)
glue("nb04_paper_clpips_sb", paper.derived()["clpips_icc_from_rho"], display=False)
glue("nb04_equal_sizes", "equal" if scored.groupby(["set_id", "rater"]).size().nunique() == 1 else "unequal",
     display=False)
for m in ("lpips", "clpips"):  # does 2 rho / (1 + rho) of the paper's rho print as its ICC?
    sb_printed = f"{paper.derived()[f'{m}_icc_from_rho']:.{len(paper.printed(f'{m}_icc_A_k').split('.')[1])}f}"
    glue(f"nb04_paper_{m}_sb_printed", sb_printed, display=False)
    glue(f"nb04_paper_{m}_sb_match", "matches" if sb_printed == paper.printed(f"{m}_icc_A_k") else "does not match",
         display=False)

# %% [markdown]
# ```{glue:figure} nb04_table3
# :name: tbl-04-table3
#
# Agreement with held-out human rankings. ICC(A,k) with its F-based 95% interval and $p$ (H0:
# ICC = 0); pooled Spearman's $\rho$ and Kendall's $\tau_b$ of metric rank against human rank,
# with $p$ for $\rho$; the mean of the per-ranking $\rho$; the Koo & Li label
# {cite:p}`koo2016icc`. The paper's rows carry the values it reports {cite:p}`trinh2026clpips`
# (— where a value is not transcribed in `clpips.book.paper`); its data are private and different.
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
# Those F-based intervals treat all {glue:text}`nb04_n_rows:,d` rows as independent, but every
# person ranked the same candidates of a target; resampling targets instead gives LPIPS
# [{glue:text}`nb04_lpips_cluster_lo:.3f`, {glue:text}`nb04_lpips_cluster_hi:.3f`], an interval
# {glue:text}`nb04_lpips_width_ratio:.1f` times as wide. By the Koo & Li reading the agreement is
# *{glue:text}`heldout_lpips_icc_label`* for LPIPS and *{glue:text}`heldout_clpips_icc_label`* for
# CLPIPS. Whether the *difference* is more than chance needs a paired test over many splits: that
# is {numref}`fig-04-protocol` above, and {doc}`/out/notebooks/05_bootstrap`.
#
# **ICC(A,k) restates the rank-based $\rho$.** Human and metric both give ranks $1..k$ in every
# ranking, so ICC(A,k) $= 2\rho / (1 + \rho - (1-\rho)/n)$ for $n$ rows with $\rho$ the
# within-ranking definition, the Spearman–Brown formula up to a term of order $1/n$
# ({doc}`/book/method`). Computed that way from each row of the table it matches the ICC column
# to within {glue:text}`nb04_sb_max_error:.1e` (here the sets are {glue:text}`nb04_equal_sizes`
# in size). The identity needs that definition of $\rho$; the paper's raw-distance $\rho$ is
# a different number. Applied to the paper's printed $\rho$ anyway, $2\rho/(1+\rho)$ gives
# {glue:text}`nb04_paper_lpips_sb:.3f` and {glue:text}`nb04_paper_clpips_sb:.3f`, which at the
# paper's precision print as {glue:text}`nb04_paper_lpips_sb_printed` ({glue:text}`nb04_paper_lpips_sb_match`
# its {glue:text}`paper_lpips_icc`) and {glue:text}`nb04_paper_clpips_sb_printed`
# ({glue:text}`nb04_paper_clpips_sb_match` its {glue:text}`paper_clpips_icc`). Whether the paper's
# two statistics carry one piece of information therefore cannot be settled from its tables.
#
# ## LPIPS and CLPIPS among the baselines, and a lower bound of the noise ceiling

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
    lpips_mean_rho = float(table.at["lpips", "spearman_per_ranking"])
    gain, gap = clpips_mean_rho - lpips_mean_rho, ceiling - clpips_mean_rho
    ceiling_md = (
        f"People's agreement with each other bounds the noise ceiling from below at {ceiling:.3f}: that is how "
        "well the average rank the *other* people gave predicts one person's ranking of the same candidates "
        "(mean Spearman $\\rho$, leave one person out). The ceiling itself, what a metric that gives everybody "
        "the same ranking could at best reach, lies at or above it. CLPIPS's mean per-ranking $\\rho$ "
        f"is {clpips_mean_rho:.3f} and LPIPS's {lpips_mean_rho:.3f}: the fit "
        f"{'closes' if gain > 0 else 'does not close'} {abs(gain):.3f} of the gap, and "
        f"{max(gap, 0):.3f} remain{'s' if gap > 0 else ''} to the lower bound, "
        f"{'more' if gap > abs(gain) else 'less'} than the change the fit made.")
else:
    ceiling_md = (
        "These data have one ranking per set, so people cannot be compared with each other on the same "
        "candidates and this bound does not exist; a split-half reliability takes its place where the data "
        "allow one ({doc}`/out/notebooks/01_dataset_exploration`), and in the simulated study the known ground "
        "truth plays that role.")
if data.name == "mur92":
    ceiling_md += (
        " People sort these photographs by *what* they show, a face with faces and a fruit with fruit "
        "({doc}`/out/notebooks/01_dataset_exploration`), while LPIPS's features, and any re-weighting of them, "
        "see mostly colour, texture and layout: re-weighting five layers' channels cannot add category "
        "information the features lack.")
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
# the mean over rankings of the per-ranking Spearman $\rho$ (right), with a lower bound of the
# noise ceiling (dashed; the mean $\rho$ of each person with the average rank the others gave the same set)
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
per_ranking = set_scores.per_ranking_spearman(scored, metrics)
gains = set_scores.set_gains(per_ranking, "lpips", "clpips")
chosen = set_scores.example_sets(gains)
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
# (`clpips.book.set_scores.example_sets`): among the {glue:text}`nb04_n_sets:d` held-out ranking
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
