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
# (sec-07-personal-metrics)=
# # Personal metrics: one CLPIPS per person
#
# CLPIPS fits one metric for everybody: all participants' rankings are pooled
# {cite:p}`trinh2026clpips`. The paper names a metric adapted to *each person* as future work, and
# its users include teachers, who might want a metric that agrees with *them*. This chapter asks,
# with confidence intervals, three questions on real human judgements:
#
# 1. Does a person's own CLPIPS agree better with that person's held-out rankings than the
#    pooled CLPIPS does?
# 2. Does it for a *new user*, whom the pooled model never saw, against the model such a user
#    starts from *and* against plain LPIPS?
# 3. How many rankings must a person give before their own model beats the one they start from?
#
# A personal model keeps everything of CLPIPS (only the five per-layer linear weights of LPIPS
# are trained, with the margin ranking loss) and changes two things: it starts from the pooled
# weights instead of LPIPS's, and a penalty $\lambda \lVert w - w_\text{pooled} \rVert^2$ pulls it
# back towards them, so that a few rankings nudge the pooled metric rather than replace it.
# The code is `clpips.book.personal`; the last section shows `clpips.apps.widget`, with which you can
# rank images yourself and fit your own CLPIPS.

# %% tags=["parameters"]
from clpips.book.defaults import DEFAULTS

dataset = DEFAULTS.dataset
k = DEFAULTS.k
test_size = DEFAULTS.test_size
seed = DEFAULTS.seed
epochs = DEFAULTS.epochs                      # of each personal fit (all run: the pull regularises)
personal_l2 = DEFAULTS.personal_l2            # the pull towards the starting weights
personal_sizes = DEFAULTS.personal_sizes      # learning curve: training rankings per person
personal_repeats = DEFAULTS.personal_repeats  # learning curve: subsets per size and person
n_boot = DEFAULTS.n_boot
ci = DEFAULTS.ci

# %%
import os
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib_inline.backend_inline import set_matplotlib_formats
from myst_nb import glue

from clpips.apps.widget import RankingSession, RankingWidget
from clpips.book import personal as ps
from clpips.book.plots import personal as pp
from clpips.book.report import format_p, glue_all, view
from clpips.experiment import load_dataset
from clpips.train import pair_features_for

set_matplotlib_formats("png")  # figures display (and glue) as PNG under any backend
started = time.perf_counter()

# %% [markdown]
# ## Models, split and evaluation
#
# Target images are split once, as everywhere in this book, so every person's held-out
# rankings are of targets that *no* model below was trained on (as targets; see *Leakage* below
# for the image pairs they share with training rankings). For each person we fit, from one
# feature matrix computed once:
#
# pooled
# : the paper's CLPIPS, on everybody's training rankings (early stopping on held-out training
#   targets, as in the other chapters);
# personal
# : starts from the pooled weights and trains on this person's training rankings only, pulled
#   towards the pooled weights with $\lambda$ = `personal_l2`, for `epochs` epochs (no early
#   stopping: the pull is the regulariser; all people's models train together);
# pooled without the person ("LOPO")
# : pooled CLPIPS trained on everybody *else*: what a new user gets;
# personal, new user
# : a personal model started from, and pulled towards, the LOPO model instead.
#
# `personal_study` fits them all and scores every model on each person's held-out rankings with
# ICC(A,k) and Spearman's $\rho$ of its ranks against the person's:

# %%
data = load_dataset(dataset, k=k, seed=seed)
features = pair_features_for(data, data.table, progress=False)   # every fit below reads these
study = ps.personal_study(data, test_size=test_size, seed=seed, l2=personal_l2, epochs=epochs,
                          n_boot=n_boot, ci=ci, features=features)

# %%
per = study.per_person
seconds = study.fits.groupby("model")["seconds"]
glue_all({"dataset": data.name, "n_people": len(per), "n_train": int(per["n_train"].median()),
          "n_test": int(per["n_test"].median()), "k": int(data.k or 0), "l2": personal_l2, "epochs": epochs,
          "ci": 100 * ci, "alpha": 1 - ci, "n_boot": n_boot,
          "pooled_seconds": float(seconds.sum()["pooled"]), "personal_seconds": float(seconds.mean()["personal"]),
          **{f"icc_{short}_mean": per[f"icc_{model}"].mean()          # nb07_icc_pooled_mean, ...
             for short, model in (("pooled", "pooled"), ("personal", "personal"), ("lpips", "lpips"),
                                  ("lopo", "lopo"), ("new", "personal_lopo"))}}, prefix="nb07_")
view(per[["n_train", "n_test", "icc_lpips", "icc_pooled", "icc_personal", "icc_lopo", "icc_personal_lopo"]],
     names={"n_train": "training rankings", "n_test": "held-out rankings", "icc_lpips": "LPIPS", "icc_pooled": "pooled",
            "icc_personal": "personal", "icc_lopo": "pooled without the person",
            "icc_personal_lopo": "personal from there (new user)"})

# %% [markdown]
# The data are {glue:text}`nb07_dataset`: {glue:text}`nb07_n_people:d` people, each ranking the
# same sets of {glue:text}`nb07_k:d` candidates; each person has {glue:text}`nb07_n_train:d`
# training rankings and {glue:text}`nb07_n_test:d` held-out rankings. The pooled fit took
# {glue:text}`nb07_pooled_seconds:.1f` s (its share of one batched fit with the LOPO models), a
# personal fit {glue:text}`nb07_personal_seconds:.2f` s ($\lambda$ = {glue:text}`nb07_l2:g`,
# {glue:text}`nb07_epochs:d` epochs). The table lists each person's held-out ICC(A,k) for every
# model.
#
# Intervals ({glue:text}`nb07_n_boot:d` resamples, {glue:text}`nb07_ci:.0f`%) come from one
# *two-way* bootstrap (`clpips.book.personal.two_way_bootstrap`): each resample draws the people with
# replacement and, independently, the held-out targets with replacement; every drawn person is
# scored on their rankings of the drawn targets, and both models of a comparison on the same
# draws. The mean difference over people gets the percentile interval of these resamples, so
# it reflects which people *and* which images happened to be sampled. It assumes people and
# targets are two independent random samples; it counts the person × target interaction more
# than once, so it errs on the wide side, and it holds the fitted models fixed (training noise
# is not in it). Per person, the same target draws give an interval and a one-sided p-value.
# The sign test and the Wilcoxon signed-rank test treat people as the sample and targets as
# fixed.
#
# Every claim below reads an interval of a difference the same way, by this one rule:

# %%
def where(low: float, high: float) -> str:
    """Where the interval [low, high] of a difference b − a lies: b is better, worse, or not shown apart."""
    return "above zero" if low > 0 else "below zero" if high < 0 else "includes zero"


# %%
across = study.across_people()
across["where"] = [where(lo, hi) for lo, hi in zip(across["ci_low"], across["ci_high"])]
short = {"personal_vs_pooled": "pp", "new_user": "nu", "pooled_vs_lpips": "pl", "personal_vs_lpips": "plp",
         "new_user_vs_lpips": "nl", "lopo_vs_lpips": "ll"}
for (name, stat), row in across.iterrows():                     # nb07_pp_icc, nb07_pp_icc_lo, ...
    held = study.comparison(name)[f"p_holm_{stat}"] < 1 - ci    # people whose own Holm-adjusted p is small
    glue_all({"": row["mean_delta"], "_lo": row["ci_low"], "_hi": row["ci_high"], "_where": row["where"],
              "_pos": int(row["n_positive"]), "_neg": int(row["n_negative"]), "_nsig": int(held.sum()),
              "_sign": format_p(row["sign_p"]), "_wilcoxon": format_p(row["wilcoxon_p"])},
             prefix=f"nb07_{short[name]}_{stat}")
glue_all({f"{short[name]}_n": int(across.loc[(name, "icc"), "n"]) for name in short}, prefix="nb07_")
view(across[["label", "mean_delta", "ci_low", "ci_high", "where", "n", "n_positive", "sign_p", "wilcoxon_p"]]
     .droplevel("comparison"), decimals={"mean_delta": 3, "ci_low": 3, "ci_high": 3},
     names={"label": "comparison", "mean_delta": "mean Δ", "ci_low": "interval low", "ci_high": "interval high",
            "where": "interval lies", "n": "people", "n_positive": "better off", "sign_p": "sign test p",
            "wilcoxon_p": "Wilcoxon p"})

# %% tags=["remove-output"]
fig = pp.plot_person_deltas(study.comparisons, across,
                            names=("personal_vs_pooled", "new_user", "new_user_vs_lpips"),
                            labels={"personal_vs_pooled": "personal − pooled",
                                    "new_user": "new user: personal − LOPO",
                                    "new_user_vs_lpips": "new user: personal − LPIPS"})
glue("nb07_fig_deltas", fig, display=False)
plt.close(fig)  # shown once: below in JupyterLab, where the text pastes it in the book
fig

# %% [markdown]
# ## Do personal metrics beat the pooled one?
#
# Averaged over the {glue:text}`nb07_pp_n:d` people, the held-out ICC(A,k) of the personal model
# is {glue:text}`nb07_icc_personal_mean:.3f` against {glue:text}`nb07_icc_pooled_mean:.3f` for
# the pooled model (and {glue:text}`nb07_icc_lpips_mean:.3f` for LPIPS): a mean difference of
# {glue:text}`nb07_pp_icc:.3f` ({glue:text}`nb07_ci:.0f`% CI over people and targets
# {glue:text}`nb07_pp_icc_lo:.3f` to {glue:text}`nb07_pp_icc_hi:.3f`, {glue:text}`nb07_pp_icc_where`),
# the personal model agreeing better with {glue:text}`nb07_pp_icc_pos:d` and worse with
# {glue:text}`nb07_pp_icc_neg:d` of {glue:text}`nb07_pp_n:d` people (sign test
# {glue:text}`nb07_pp_icc_sign`, Wilcoxon {glue:text}`nb07_pp_icc_wilcoxon`). In Spearman's $\rho$
# the difference is {glue:text}`nb07_pp_rho:.3f` ({glue:text}`nb07_pp_rho_lo:.3f` to
# {glue:text}`nb07_pp_rho_hi:.3f`, {glue:text}`nb07_pp_rho_where`). Person by person the evidence is thinner, because each has
# only {glue:text}`nb07_n_test:d` held-out rankings: after Holm's correction over people, the
# bootstrap p-value is below {glue:text}`nb07_alpha:.2f` for
# {glue:text}`nb07_pp_icc_nsig:d` people ({numref}`fig-07-deltas`).
#
# Against LPIPS, the pooled model's mean ΔICC(A,k) on these people is
# {glue:text}`nb07_pl_icc:.3f` ({glue:text}`nb07_pl_icc_lo:.3f` to {glue:text}`nb07_pl_icc_hi:.3f`,
# {glue:text}`nb07_pl_icc_where`), better for {glue:text}`nb07_pl_icc_pos:d` and worse for
# {glue:text}`nb07_pl_icc_neg:d` of {glue:text}`nb07_pl_n:d` people. An interval of personal
# minus pooled above zero would say that pooling people who disagree averages away preferences
# that a personal model keeps.
#
# ```{glue:figure} nb07_fig_deltas
# :name: fig-07-deltas
#
# Held-out ΔICC(A,k) per person with its paired-bootstrap interval over the person's held-out
# rankings' targets; diamonds: the mean over people with the two-way interval (people and
# targets resampled). Blue: the personal model against the pooled one. Orange: the new-user
# case, a personal model started from the pooled model trained without that person (LOPO),
# against that model. Red: the same new-user personal model against LPIPS.
# ```
#
# ## A new user: against the model they start from, and against LPIPS
#
# The comparison above is not what a new user would see: the pooled model was trained on this
# person's training rankings among everybody's, and the personal model started from it. A new
# user starts from the leave-one-person-out (LOPO) model, which has never seen that person.
# Beating the LOPO model is not enough, since the LOPO model may itself agree worse with people
# than LPIPS, the metric a new user would otherwise use. So the new-user personal model is
# judged against both (ICC(A,k), mean over people, {glue:text}`nb07_ci:.0f`% two-way intervals):
#
# | comparison | mean Δ | interval | people better / worse |
# |---|---|---|---|
# | LOPO − LPIPS | {glue:text}`nb07_ll_icc:.3f` | {glue:text}`nb07_ll_icc_lo:.3f` to {glue:text}`nb07_ll_icc_hi:.3f` ({glue:text}`nb07_ll_icc_where`) | {glue:text}`nb07_ll_icc_pos:d` / {glue:text}`nb07_ll_icc_neg:d` |
# | personal − LOPO | {glue:text}`nb07_nu_icc:.3f` | {glue:text}`nb07_nu_icc_lo:.3f` to {glue:text}`nb07_nu_icc_hi:.3f` ({glue:text}`nb07_nu_icc_where`) | {glue:text}`nb07_nu_icc_pos:d` / {glue:text}`nb07_nu_icc_neg:d` |
# | personal − LPIPS | {glue:text}`nb07_nl_icc:.3f` | {glue:text}`nb07_nl_icc_lo:.3f` to {glue:text}`nb07_nl_icc_hi:.3f` ({glue:text}`nb07_nl_icc_where`) | {glue:text}`nb07_nl_icc_pos:d` / {glue:text}`nb07_nl_icc_neg:d` |
#
# The LOPO model's held-out ICC(A,k) averages {glue:text}`nb07_icc_lopo_mean:.3f`, against
# {glue:text}`nb07_icc_lpips_mean:.3f` for LPIPS, and a personal model started from it reaches
# {glue:text}`nb07_icc_new_mean:.3f`. Against the LOPO model (Wilcoxon over people
# {glue:text}`nb07_nu_icc_wilcoxon`) its $\Delta\rho$ is {glue:text}`nb07_nu_rho:.3f`
# ({glue:text}`nb07_nu_rho_lo:.3f` to {glue:text}`nb07_nu_rho_hi:.3f`); against LPIPS it is
# better for {glue:text}`nb07_nl_icc_pos:d` and worse for {glue:text}`nb07_nl_icc_neg:d` of
# {glue:text}`nb07_nl_n:d` people, with $\Delta\rho$ = {glue:text}`nb07_nl_rho:.3f`
# ({glue:text}`nb07_nl_rho_lo:.3f` to {glue:text}`nb07_nl_rho_hi:.3f`). A new user gains from
# personalising where both intervals, against the LOPO start and against LPIPS, lie above zero;
# judged against the LOPO model alone, the gain is overstated whenever that start is itself worse
# than LPIPS (the table's first row).
#
# ## Is it the person, or just more training?
#
# A personal model is trained longer, and from a different start, than the pooled one; it might
# beat the pooled model on *anyone's* rankings. So each person's model is scored beside
# everybody else's on each person's held-out rankings ({numref}`fig-07-cross`), and one's own
# model is compared with the others' (this interval resamples people only):

# %%
cross = ps.cross_person(study, "icc")
own = ps.own_versus_others(cross, n_boot=n_boot, ci=ci, seed=seed)
own["where"] = where(own["ci_low"], own["ci_high"])
glue_all({"own": own["own"], "others": own["others"], "own_diff": own["difference"], "own_lo": own["ci_low"],
          "own_hi": own["ci_high"], "own_pos": own["n_positive"], "own_wilcoxon": format_p(own["wilcoxon_p"]),
          "own_where": own["where"]}, prefix="nb07_")
pd.Series(own, name="own model versus others'")

# %% tags=["remove-output"]
fig = pp.plot_cross_person(cross, "icc")
glue("nb07_fig_cross", fig, display=False)
plt.close(fig)
fig

# %% [markdown]
# One's own model gains {glue:text}`nb07_own:.3f` in ICC(A,k) over the pooled model on average,
# somebody else's {glue:text}`nb07_others:.3f`. Own minus others averages
# {glue:text}`nb07_own_diff:.3f` ({glue:text}`nb07_own_lo:.3f` to {glue:text}`nb07_own_hi:.3f`
# over people, {glue:text}`nb07_own_where`; positive for {glue:text}`nb07_own_pos:d` of
# {glue:text}`nb07_pp_n:d` people, Wilcoxon {glue:text}`nb07_own_wilcoxon`). Above zero, what the
# personal models learn is, at least partly, the person; an interval that includes zero leaves
# "just more training" standing.
#
# ```{glue:figure} nb07_fig_cross
# :name: fig-07-cross
#
# ΔICC(A,k) against the pooled model of each person's personal model (columns) on each person's
# held-out rankings (rows). The diagonal is one's own model.
# ```
#
# ## How many rankings does a person need?
#
# For the new user, we refit the personal model on random subsets of the person's training
# rankings and compare it with the LOPO model on the same held-out rankings
# ({numref}`fig-07-curve`; these intervals resample people only, the held-out targets fixed).
# The column *beats from here* marks the sizes from which on the interval of the mean over
# people lies above zero at that size and every larger one:

# %%
def one_statistic(frame: pd.DataFrame, stat: str):
    """The columns of one statistic (``delta_icc``, ``ci_low_icc``, ...) beside the shared ones, headed in
    words: one table per statistic fits the page. Formatting only."""
    other = "rho" if stat == "icc" else "icc"
    part = frame[[c for c in frame.columns if not c.endswith(f"_{other}")]]
    words = {c: c.removesuffix(f"_{stat}").replace("delta", f"Δ {'ICC(A,k)' if stat == 'icc' else 'ρ'}")
             .replace("ci_low", "interval low").replace("ci_high", "interval high").replace("_", " ") for c in part.columns}
    return view(part, decimals={c: 3 for c in part.columns if c.startswith(("delta_", "ci_"))}, names=words)


curve = ps.learning_curve(study, sizes=personal_sizes, repeats=personal_repeats, base="lopo")
summary = curve.summary()
first = curve.first_size_beating("icc", summary)               # None: no size gets there
from_here = summary.index.get_loc(first) if first else len(summary)
beats_from = (f"at every size from {summary.loc[first, 'mean_rankings']:.0f} rankings per person on" if first
              else "at no size tried")                           # where it beats it, in words
smallest, every = summary.iloc[0], summary.loc["all"]
glue_all({"repeats": personal_repeats, "small": smallest["delta_icc"], "small_lo": smallest["ci_low_icc"],
          "small_hi": smallest["ci_high_icc"], "small_pos": int(smallest["n_positive_icc"]),
          "small_n": float(smallest["mean_rankings"]), "all": every["delta_icc"],
          "all_n": float(every["mean_rankings"]),
          "first_n": float(summary.loc[first, "mean_rankings"]) if first else float("nan"),
          "beats_from": beats_from,
          "small_words": f"{smallest['mean_rankings']:.0f} ranking{'' if round(smallest['mean_rankings']) == 1 else 's'}"},
         prefix="nb07_lc_")
shown = summary.assign(beats_from_here=[i >= from_here for i in range(len(summary))])
display(one_statistic(shown, "icc"), one_statistic(shown, "rho"))

# %% tags=["remove-output"]
fig = pp.plot_learning_curve(summary, curve.per_person(), "icc")
glue("nb07_fig_curve", fig, display=False)
plt.close(fig)
fig

# %% [markdown]
# With {glue:text}`nb07_lc_repeats:d` subsets per size and person, the personal model beats the
# LOPO model {glue:text}`nb07_lc_beats_from`. At the smallest size,
# {glue:text}`nb07_lc_small_words` per person,
# the difference in ICC(A,k) is {glue:text}`nb07_lc_small:.3f` ({glue:text}`nb07_lc_small_lo:.3f`
# to {glue:text}`nb07_lc_small_hi:.3f`; {glue:text}`nb07_lc_small_pos:d` of
# {glue:text}`nb07_nu_n:d` people improve), against {glue:text}`nb07_lc_all:.3f` with all
# {glue:text}`nb07_lc_all_n:.0f`. Whether the new user also beats LPIPS is the question of the
# table above: the LOPO start differs from LPIPS by {glue:text}`nb07_ll_icc:.3f` in ICC(A,k).
#
# ```{glue:figure} nb07_fig_curve
# :name: fig-07-curve
#
# New user: held-out ΔICC(A,k) of a personal model against the pooled model trained without
# the person, by the number of rankings the person gave. Thin lines: people (mean over
# subsets); band: bootstrap interval of the mean over people (targets fixed).
# ```
#
# ## Leakage and a free choice
#
# Two more things could make personal models look better than they are.
#
# *Shared image pairs.* The split is by target, but candidates are not split: a held-out ranking
# of target X may contain candidate Y while the training ranking of target Y contains X. The
# person judged that pair twice and LPIPS features are symmetric, so a personal model could
# learn a held-out judgement from a training one. We refit every model with those pairs removed
# from training:

# %%
strict = ps.personal_study(data, test_size=test_size, seed=seed, l2=personal_l2, epochs=epochs,
                           n_boot=n_boot, ci=ci, features=features, lopo=False, exclude_shared_pairs=True,
                           person_bootstrap=False)
strict_row = strict.across_people().loc[("personal_vs_pooled", "icc")]
glue_all({"shared": study.settings["shared_pair_share"], "strict_icc": strict_row["mean_delta"],
          "strict_icc_lo": strict_row["ci_low"], "strict_icc_hi": strict_row["ci_high"],
          "strict_icc_pos": int(strict_row["n_positive"]),
          "strict_icc_where": where(strict_row["ci_low"], strict_row["ci_high"])}, prefix="nb07_")
strict_row[["label", "mean_delta", "ci_low", "ci_high", "n", "n_positive"]]

# %% [markdown]
# Here {glue:text}`nb07_shared:.1%` of held-out rows share their image pair with a training row.
# Without them, the mean difference (personal − pooled) is {glue:text}`nb07_strict_icc:.3f`
# ({glue:text}`nb07_strict_icc_lo:.3f` to {glue:text}`nb07_strict_icc_hi:.3f`,
# {glue:text}`nb07_strict_icc_where`; {glue:text}`nb07_strict_icc_pos:d` of
# {glue:text}`nb07_pp_n:d` people improve). The split by image (`clpips.datasets.SPLIT_MODES`,
# chapters 04 and 05) removes such pairs by construction.
#
# *The pull strength.* $\lambda$ = {glue:text}`nb07_l2:g` is a default fixed beforehand, not
# tuned on held-out data. Refitting the personal models with other pulls shows how much the
# answer depends on it:

# %%
sensitivity = ps.l2_sensitivity(study, [0.0, 0.001, 0.1])
glue_all({"min": float(sensitivity["delta_icc"].min()), "max": float(sensitivity["delta_icc"].max()),
          "lo_min": float(sensitivity["ci_low_icc"].min()),
          "values": ", ".join(f"{v:g}" for v in sensitivity.index)}, prefix="nb07_l2_")
display(one_statistic(sensitivity, "icc"), one_statistic(sensitivity, "rho"))

# %% [markdown]
# Over $\lambda$ = {glue:text}`nb07_l2_values`, the mean difference ranges from
# {glue:text}`nb07_l2_min:.3f` to {glue:text}`nb07_l2_max:.3f`, and the lowest interval bound
# (over people) is {glue:text}`nb07_l2_lo_min:.3f`: where that bound is above zero, the sign of
# the conclusion does not depend on this choice. Which pull did best (table) was not used to
# pick one.
#
# ## What a personal model changes
#
# Where does each model put its weight, layer by layer, and how far within each layer does a
# personal model move from the pooled one?

# %%
people = sorted(study.personal)
shares = ps.layer_shares({"LPIPS": study.weights["lpips"], "pooled": study.weights["pooled"],
                          **{r: study.personal[r] for r in people}})
changes = ps.layer_changes({r: study.personal[r] for r in people}, study.weights["pooled"])
moved = changes.mean()                                           # mean over people, per layer
glue_all({"share_spread": 100 * float((shares.loc[people].max() - shares.loc[people].min()).max()),
          **{f"share_{model.lower()}_l{layer}": shares.loc[model, f"layer {layer}"]   # nb07_share_pooled_l1, ...
             for model in ("pooled", "LPIPS") for layer in (1, 5)},
          "change_max_layer": str(moved.idxmax()), "change_max": float(moved.max()),
          "change_min_layer": str(moved.idxmin()), "change_min": float(moved.min())}, prefix="nb07_")
layer_table = pd.concat([shares.loc[["LPIPS", "pooled"]], moved.to_frame("personal: mean change").T]).rename_axis("model")
view(layer_table, decimals={c: 3 for c in layer_table.columns})

# %% tags=["remove-output"]
fig = pp.plot_layer_weights(shares, changes)
glue("nb07_fig_layers", fig, display=False)
plt.close(fig)
fig

# %% [markdown]
# Compared with LPIPS, the pooled fit changes the share of the total weight in layer 1 from
# {glue:text}`nb07_share_lpips_l1:.1%` to {glue:text}`nb07_share_pooled_l1:.1%` and in layer 5
# from {glue:text}`nb07_share_lpips_l5:.1%` to {glue:text}`nb07_share_pooled_l5:.1%`.
# Across people, no layer's share of a personal model varies by more than
# {glue:text}`nb07_share_spread:.1f` percentage points ({numref}`fig-07-layers`, left). Within
# layers, relative to the pooled weights, personal models move most in
# {glue:text}`nb07_change_max_layer` ({glue:text}`nb07_change_max:.1%` on average) and least in
# {glue:text}`nb07_change_min_layer` ({glue:text}`nb07_change_min:.1%`; right): where the
# within-layer changes are large beside the spread of layer shares, a person's metric is less a
# choice of "low-level or high-level" layers than of which channels within each layer matter.
#
# ```{glue:figure} nb07_fig_layers
# :name: fig-07-layers
#
# Left: share of the total linear weight in each LPIPS layer, for LPIPS, the pooled CLPIPS and
# each person's CLPIPS. Right: how far each personal model moved from the pooled one within
# each layer, $\lVert w_l - w_{\text{pooled},l} \rVert / \lVert w_{\text{pooled},l} \rVert$.
# ```
#
# ## Simulated raters: do personal models find the true weights?
#
# mur92 cannot say *what* a personal model learns about a person. The simulated study can: each
# of its raters judges six scene attributes (size, colour, texture, shape, position, background)
# with known weights, and ranks their own regenerations of each target. For any model, a
# least-squares fit of its distance on "attribute differs from the target" indicators gives its
# sensitivity to each attribute (`clpips.book.personal.attribute_sensitivity`), which we compare
# with the rater's true weights (one row per rater below).

# %%
if getattr(data, "truth", None) is not None:      # the chapter runs on simulated data already
    sim_study = study
else:                                             # a quick study of the simulated data, for this section
    sim = load_dataset("simulated", seed=seed)
    sim_study = ps.personal_study(sim, test_size=test_size, seed=seed, l2=personal_l2, epochs=epochs,
                                  n_boot=n_boot, ci=ci, features=pair_features_for(sim, sim.table, progress=False),
                                  lopo=False, person_bootstrap=False)
recovery = ps.truth_recovery(sim_study)
view(recovery, decimals=3, names={c: c.replace("_", " ") for c in recovery.columns})

# %%
closer = ps.paired_tests(recovery["cos_personal"] - recovery["cos_pooled"])
shift = ps.people_interval(recovery["cos_shift"], n_boot=n_boot, ci=ci, seed=seed)   # mean, low, high
sim_row = sim_study.across_people().loc[("personal_vs_pooled", "icc")]
glue_all({"n": len(recovery), "train": int(sim_study.per_person["n_train"].median()),
          "test": int(sim_study.per_person["n_test"].median()),
          "cos_personal": recovery["cos_personal"].mean(), "cos_pooled": recovery["cos_pooled"].mean(),
          "closer": closer["n_positive"], "closer_p": format_p(closer["wilcoxon_p"]),
          "shift": shift[0], "shift_lo": shift[1], "shift_hi": shift[2],
          "shift_pos": int((recovery["cos_shift"] > 0).sum()),
          "icc": sim_row["mean_delta"], "icc_lo": sim_row["ci_low"], "icc_hi": sim_row["ci_high"],
          "icc_where": where(sim_row["ci_low"], sim_row["ci_high"])}, prefix="nb07_sim_")
sim_row[["label", "mean_delta", "ci_low", "ci_high", "n", "n_positive"]]

# %% tags=["remove-output"]
fig = pp.plot_truth_recovery(recovery)
glue("nb07_fig_truth", fig, display=False)
plt.close(fig)
fig

# %% [markdown]
# The {glue:text}`nb07_sim_n:d` simulated raters give few rankings each
# ({glue:text}`nb07_sim_train:d` training and {glue:text}`nb07_sim_test:d` held-out). The
# held-out difference of personal minus pooled CLPIPS is ΔICC(A,k)
# {glue:text}`nb07_sim_icc:.3f` ({glue:text}`nb07_sim_icc_lo:.3f` to
# {glue:text}`nb07_sim_icc_hi:.3f` over raters and targets, {glue:text}`nb07_sim_icc_where`).
# The cosine between a model's attribute sensitivities and the rater's true weights averages
# {glue:text}`nb07_sim_cos_personal:.3f` for the personal models against
# {glue:text}`nb07_sim_cos_pooled:.3f` for the pooled one; {glue:text}`nb07_sim_closer:d` of
# {glue:text}`nb07_sim_n:d` raters are closer with their own model (Wilcoxon
# {glue:text}`nb07_sim_closer_p`). More tellingly, the cosine between the *change* a personal
# model makes to the pooled sensitivities and the rater's own deviation from the average rater
# averages {glue:text}`nb07_sim_shift:.3f` ({glue:text}`nb07_sim_shift_lo:.3f` to
# {glue:text}`nb07_sim_shift_hi:.3f`; positive for {glue:text}`nb07_sim_shift_pos:d` of
# {glue:text}`nb07_sim_n:d` raters), where fitting noise would give 0 ({numref}`fig-07-truth`).
#
# ```{glue:figure} nb07_fig_truth
# :name: fig-07-truth
#
# Simulated study. Left: cosine of each rater's true attribute weights with the attribute
# sensitivities of the pooled model (x) and of the rater's personal model (y); above the
# diagonal, the personal model is closer. Right: cosine of the personal model's change
# (personal − pooled sensitivities) with the rater's deviation from the mean true weights.
# ```
#
# ## Rank images yourself
#
# `clpips.apps.widget` lets anyone collect their own rankings and get a personal CLPIPS: it shows a
# target and its candidates; you click the candidates from most to least similar (*Undo* and
# *Reset* correct); *Save ranking* appends the ranking to a CSV in the project's schema
# (atomically: an error never loses earlier rankings; a new session resumes where the last one
# stopped); *Fit my CLPIPS* fits a personal model, starting from LPIPS or from a pooled weights
# file and pulled towards it. After each ranking it shows how well LPIPS and your model agree
# with you.
#
# Below it runs on this chapter's data with the pooled CLPIPS as its start. Since this page is
# static, the code plays a user: it ranks {glue:text}`nb07_demo_saved:d` sets the way
# {glue:text}`nb07_demo_source` of {glue:text}`nb07_dataset` did, fits, and starts on the next
# set. In Jupyter the buttons work.

# %%
# beside the book's run (clpips run), or a fresh temporary folder live: never into the checkout
demo_dir = Path(os.environ.get("CLPIPS_NOTEBOOK_OUT") or tempfile.mkdtemp(prefix="clpips-widget-"))
demo_csv = demo_dir / "widget_demo" / "rankings.csv"
demo_csv.unlink(missing_ok=True)  # every run of the chapter starts a fresh demo
source = study.raters[0]
source_rows = data.table[data.table["rater"].astype(str) == source]
demo_sets = list(dict.fromkeys(source_rows["set_id"]))[:6]
session = RankingSession(data, demo_csv, rater="demo", sets=demo_sets, base=study.weights["pooled"],
                         l2=personal_l2, epochs=epochs, features=features, seed=seed)
ranking_widget = RankingWidget(session, thumb=92, columns=5)   # target and five candidates fit the page
demo_saved, demo_clicks = 3, 4
glue_all({"demo_source": source, "demo_saved": demo_saved, "demo_clicks": demo_clicks}, prefix="nb07_")
ranking_widget

# %%
def ranks_of(set_id):
    """The source person's ranks of one set (what the demo's 'user' clicks)."""
    return source_rows[source_rows["set_id"] == set_id].set_index("candidate")["rank"].to_dict()


for _ in range(demo_saved):
    ranking_widget.play(ranks_of(session.current))   # clicks the buttons in this order
    ranking_widget.save_button.click()
ranking_widget.fit_button.click()
ranking_widget.play(ranks_of(session.current), n_clicks=demo_clicks)
pd.read_csv(demo_csv).groupby("set_id").size().rename("rows saved")

# %%
glue("nb07_seconds", time.perf_counter() - started, display=False)

# %% [markdown]
# The widget above shows the state the code left: {glue:text}`nb07_demo_saved:d` rankings saved,
# a personal model fitted on them, and {glue:text}`nb07_demo_clicks:d` candidates of the next set
# ranked. Its scores are *in-sample* for the personal model (it was fitted on those rankings);
# the columns marked *new* count only rankings saved after the last fit.
#
# ## Summary and limits
#
# On {glue:text}`nb07_dataset`, on held-out targets (ΔICC(A,k), mean over people, two-way
# {glue:text}`nb07_ci:.0f`% intervals):
#
# - personal versus pooled CLPIPS: {glue:text}`nb07_pp_icc:.3f` ({glue:text}`nb07_pp_icc_lo:.3f`
#   to {glue:text}`nb07_pp_icc_hi:.3f`, {glue:text}`nb07_pp_icc_where`);
# - a new user's personal model versus the LOPO model it starts from: {glue:text}`nb07_nu_icc:.3f`
#   ({glue:text}`nb07_nu_icc_lo:.3f` to {glue:text}`nb07_nu_icc_hi:.3f`,
#   {glue:text}`nb07_nu_icc_where`);
# - the same versus LPIPS: {glue:text}`nb07_nl_icc:.3f` ({glue:text}`nb07_nl_icc_lo:.3f` to
#   {glue:text}`nb07_nl_icc_hi:.3f`, {glue:text}`nb07_nl_icc_where`), with the LOPO model
#   itself at {glue:text}`nb07_ll_icc:.3f` against LPIPS ({glue:text}`nb07_ll_icc_lo:.3f` to
#   {glue:text}`nb07_ll_icc_hi:.3f`, {glue:text}`nb07_ll_icc_where`);
# - one's own personal model versus other people's: {glue:text}`nb07_own_diff:.3f`
#   ({glue:text}`nb07_own_lo:.3f` to {glue:text}`nb07_own_hi:.3f`, {glue:text}`nb07_own_where`);
# - against the LOPO model, the interval over people lies above zero
#   {glue:text}`nb07_lc_beats_from`.
#
# Limits:
#
# - the people of mur92 judged the similarity of 92 photographs (faces, bodies, animals, objects,
#   places) by arranging them; our rankings are read from their dissimilarity matrices, not from
#   a ranking task on generated images as in the paper;
# - the two-way intervals treat people and targets as independent random samples and the fitted
#   models as fixed; the learning-curve, pull-strength and own-versus-others intervals, and the
#   sign and Wilcoxon tests, resample people only (targets fixed);
# - all people share targets and candidates; with a user's own images the pooled model's
#   starting point may be worse, and more rankings may be needed.
#
# This chapter ran in {glue:text}`nb07_seconds:.0f` s.
