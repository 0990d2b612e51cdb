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
# (sec-09-beyond)=
# # Beyond the linear weights: pooled re-weighting, a pooled transform and self-distillation beside CLPIPS
#
# CLPIPS can only re-weight what LPIPS already measures: per channel, how much two images differ
# *at each location*, averaged over space. AligNet {cite:p}`muttenthaler2025aligning` takes another
# road: it learns a transform of a vision model's *global* representation from human similarity
# judgements, kept close to the original by a regulariser, lets the aligned model label a large set of
# new images as a *surrogate teacher*, and trains a student on those labels. DreamSim
# {cite:p}`fu2023dreamsim` likewise tunes global embeddings to human judgements. This chapter does
# not reproduce AligNet: it has one small backbone (AlexNet) and no separate teacher data. It asks a
# narrower question with three metrics built on LPIPS's *pooled* representation, raced against
# CLPIPS and LPIPS under the nested protocol of {numref}`fig-04-protocol`, on every dataset of
# {doc}`/out/notebooks/08_across_datasets`:
#
# | metric | what is learnt |
# |---|---|
# | LPIPS | nothing (v0.1 weights): the reference |
# | CLPIPS | 1,152 per-channel weights of spatial differences (the paper) |
# | pooled re-weighting ("global CLPIPS") | a pooled channel re-weighting: the same 1,152 weights, on features averaged over space first |
# | pooled low-rank transform | a low-rank transform of the pooled representation: a rank-8 departure $UV^\top$ from the identity, pulled towards it by $\lambda\lVert UV^\top\rVert_F^2$ (AligNet's first move) |
# | taught CLPIPS | CLPIPS taught by the transform: CLPIPS's weights, trained on people's pairs plus the transform's rankings of new sets of the *same training images* (self-distillation) |
#
# The metrics are families of the protocol (`clpips.book.families`): each is fitted on a fold's
# training rankings, tuned by that fold's inner folds (all but the student, as the budgets below
# say), and scored on its held-out rankings.

# %% tags=["parameters"]
from clpips.book.defaults import DEFAULTS

dataset = DEFAULTS.dataset                      # a CSV path: your study, beside the built-in datasets
seed = DEFAULTS.seed
protocol_repeats = DEFAULTS.protocol_repeats    # CLPIPS's runs: chapters 04 and 08's, read back
beyond_repeats = DEFAULTS.beyond_repeats        # the race: repeats of the outer split for every metric
transform_margins = DEFAULTS.transform_margins
transform_lambdas = DEFAULTS.transform_lambdas
transform_lrs = DEFAULTS.transform_lrs
transform_steps = DEFAULTS.transform_steps
transform_rank = DEFAULTS.transform_rank
teacher_sets = DEFAULTS.teacher_sets
teacher_weight = DEFAULTS.teacher_weight
ci = DEFAULTS.ci

# %%
import time
import warnings

import matplotlib.pyplot as plt
import pandas as pd
import pingouin
from scipy import stats
from matplotlib_inline.backend_inline import set_matplotlib_formats
from myst_nb import glue

from clpips import protocol
from clpips.book import families
from clpips.book.plots.beyond import TITLES, plot_race
from clpips.book.power import minimal_detectable_effect
from clpips.book.report import glue_all, grid_edge_table, in_words, readable
from clpips.datasets import SPLIT_MODES
from clpips.book.studies import load_every_dataset

set_matplotlib_formats("png")  # glued figures carry a PNG even under MPLBACKEND=Agg
warnings.simplefilter("ignore", protocol.GridEdgeWarning)  # the race's grid edges are a table below
started = time.perf_counter()

# %% [markdown]
# ## A fair race: the same folds, budgets of the same size
#
# Every metric's settings are chosen by the same inner folds, each from its own grid, and the grids
# are about the same size. The budgets (settings offered to the inner folds):

# %% tags=["remove-output"]
studies = load_every_dataset(dataset, seed=seed)
settings = protocol.Settings.from_parameters(globals())   # chapters 04 and 08's protocol
race = settings.replace(repeats=beyond_repeats)           # every metric of the race: the same folds
metrics = {name: families.family(name, globals()) for name in protocol.METRICS}
budget = families.budget(metrics, settings, {name: beyond_repeats for name in metrics})
shown = readable(budget.rename(index=TITLES))
glue_all({"nb09_budget": shown, "nb09_folds": settings.folds})
shown   # in JupyterLab; in the book, where the text pastes it

# %% [markdown]
# ```{glue:figure} nb09_budget
# :name: tbl-09-budget
#
# Each metric's tuning budget: what its inner folds choose, among how many settings, and the repeats
# of the outer split. The student follows CLPIPS's choice in each fold: tuning it would need a
# teacher refitted in every inner fold.
# ```
#
# A grid as large as CLPIPS's costs about what CLPIPS's runs cost, so the race runs
# {glue:text}`nb09_repeats:d` repeat(s) of the {glue:text}`nb09_folds:d`-fold outer split, not chapter 04's
# {glue:text}`nb09_clpips_repeats:d`; CLPIPS's runs (shared with chapters 04 and 08) are cut to the
# same repeats, so every comparison is made on the same folds. Fewer folds give wider intervals.
#
# ## The runs

# %%
def run(name: str, mode: str, metric: str) -> protocol.CrossvalResult:
    """One dataset, split mode and metric under the race's protocol (read from the cache when run before)."""
    if metric == "clpips":   # chapters 04 and 08's run, cut to the race's repeats
        return families.first_repeats(protocol.crossval(studies[name], settings.replace(mode=mode)), beyond_repeats)
    return protocol.crossval(studies[name], race.replace(mode=mode), metrics[metric])


# mur92 last: side by side in `make book`, chapter 04 computes mur92's CLPIPS runs meanwhile
runs = {(name, mode, metric): run(name, mode, metric)
        for name in sorted(studies, key=lambda name: name == "mur92") for mode in SPLIT_MODES
        for metric in ("global", "transform", "clpips", "teacher")}

# %% [markdown]
# A split by image that holds out what the split by target does (no image ranked with two targets)
# gives the same runs: such a case is counted once.

# %%
cases = [(name, mode) for name in studies for mode in SPLIT_MODES
         if runs[(name, mode, "clpips")].settings.get("same_folds_as") != "target"]
glue("nb09_repeats", beyond_repeats, display=False)
glue("nb09_clpips_repeats", protocol_repeats, display=False)

# %% [markdown]
# A setting chosen at the edge of its grid in most folds may have a better one beyond it. Where the
# race's runs did so:

# %% tags=["remove-output"]
edges = grid_edge_table({(f"{name} by {mode}", TITLES[metric]): result for (name, mode, metric), result in runs.items()
                         if (name, mode) in cases and metric != "teacher"}, names=["case", "metric"])
shown = readable(edges)
glue("nb09_edges", shown, display=False)
shown   # in JupyterLab; in the book, where the text pastes it

# %% [markdown]
# ```{glue:figure} nb09_edges
# :name: tbl-09-edges
#
# Chosen values at an edge of their grid in more than half of a run's outer folds (grids of three
# values or more; the student is not tuned).
# ```
#
# ## Scoring: each metric against LPIPS and against CLPIPS
#
# For each case, a metric's held-out ΔICC(A,k) against LPIPS, and the fold-by-fold difference of its
# ΔICC(A,k) from CLPIPS's, each with the corrected resampled $t$ over folds and its $p$-value.

# %%
def comparisons(name: str, mode: str) -> list[dict]:
    """Every comparison of one case: each metric against LPIPS, each new metric against CLPIPS."""
    out, base = [], runs[(name, mode, "clpips")]
    for metric in protocol.METRICS:
        test = runs[(name, mode, metric)].summary(ci=ci, bootstrap=False).loc["icc_A_k"]
        out.append({"metric": metric, "against": "LPIPS", "delta": test["delta"], "low": test["nb_low"],
                    "high": test["nb_high"], "p": test["nb_pval"], "n_folds": test["n_folds"]})
        if metric != "clpips":
            test = runs[(name, mode, metric)].versus(base, "icc_A_k", ci=ci)
            out.append({"metric": metric, "against": "CLPIPS", "delta": test["delta"], "low": test["low"],
                        "high": test["high"], "p": test["pval"], "n_folds": test["n_folds"]})
    return [{"case": f"{name} by {mode}", **row} for row in out]


tests = pd.DataFrame([row for case in cases for row in comparisons(*case)])

# %% [markdown]
# The chapter makes many comparisons, so some would look significant by chance. Holm's step-down
# correction is applied over *all* of them at once (the family: every metric against LPIPS and every
# new metric against CLPIPS, on every dataset and split), and a comparison's verdict comes from its
# Holm-adjusted $p$-value alone:

# %%
def verdict(delta: float, p_holm: float, alpha: float = 1 - ci) -> str:
    """'better' or 'worse' where Holm's adjusted p is below alpha (by the sign of delta), otherwise
    'no difference shown'."""
    if not p_holm < alpha:
        return "no difference shown"
    return "better" if delta > 0 else "worse"


tests["p_holm"] = pingouin.multicomp(tests["p"].to_numpy(float), method="holm")[1]
tests["verdict"] = [verdict(d, p) for d, p in zip(tests["delta"], tests["p_holm"])]
glue("nb09_n_tests", len(tests), display=False)

# %% [markdown]
# {glue:text}`nb09_n_tests:d` comparisons in all. The race, per case and metric:

# %% tags=["remove-output"]
wide = tests.assign(metric=tests["metric"].map(TITLES)).pivot_table(
    index=["case", "metric"], columns="against", values=["delta", "p_holm"], sort=False)
wide.columns = pd.MultiIndex.from_tuples([(f"vs {against}", "Δ" if value == "delta" else "Holm p")
                                          for value, against in wide.columns])
table = readable(wide[[("vs LPIPS", "Δ"), ("vs LPIPS", "Holm p"), ("vs CLPIPS", "Δ"), ("vs CLPIPS", "Holm p")]])
glue("nb09_table", table, display=False)
fig = plot_race(tests)
glue("nb09_fig", fig, display=False)
plt.close(fig)  # shown once: below in JupyterLab, where the text pastes it in the book
display(table)
fig

# %% [markdown]
# ```{glue:figure} nb09_fig
# :name: fig-09-race
#
# Each metric against LPIPS (top: its mean held-out ΔICC(A,k)) and against CLPIPS (bottom: the
# mean over folds of its ΔICC(A,k) minus CLPIPS's), with the corrected resampled $t$ interval of
# each comparison on its own (not adjusted for the number of comparisons).
# ```
#
# ```{glue:figure} nb09_table
# :name: tbl-09-race
#
# The race: mean ΔICC(A,k) against LPIPS and against CLPIPS (fold by fold, the same folds), with
# Holm-adjusted $p$-values over all the chapter's comparisons ("—": CLPIPS is not compared with
# itself).
# ```

# %%
def where(said: str, against: str, metric: str | None = None) -> str:
    """The cases where a comparison against ``against`` got the verdict ``said`` (naming the metric when
    ``metric`` is not given), in words."""
    rows = tests[(tests["verdict"] == said) & (tests["against"] == against)]
    if metric is not None:
        return in_words(rows.loc[rows["metric"] == metric, "case"])
    return in_words(f"{case} ({TITLES[m]})" for case, m in zip(rows["case"], rows["metric"]))


for metric in protocol.METRICS:
    glue(f"nb09_{metric}_better_than_lpips", where("better", "LPIPS", metric), display=False)
glue("nb09_better_than_clpips", where("better", "CLPIPS"), display=False)
glue("nb09_worse_than_clpips", where("worse", "CLPIPS"), display=False)
uncorrected = tests[(tests["against"] == "CLPIPS") & (tests["p"] < 1 - ci) & (tests["delta"] > 0)]
glue("nb09_uncorrected_better_than_clpips", len(uncorrected), display=False)
glue("nb09_alpha", 1 - ci, display=False)

# %% [markdown]
# Where each metric agreed better with people than LPIPS, after Holm's correction. CLPIPS:
# {glue:text}`nb09_clpips_better_than_lpips`. Pooled channel re-weighting:
# {glue:text}`nb09_global_better_than_lpips`. The low-rank transform:
# {glue:text}`nb09_transform_better_than_lpips`. CLPIPS taught by the transform:
# {glue:text}`nb09_teacher_better_than_lpips`.
#
# Better than CLPIPS, after Holm's correction: {glue:text}`nb09_better_than_clpips`; worse:
# {glue:text}`nb09_worse_than_clpips`. Before the correction, {glue:text}`nb09_uncorrected_better_than_clpips:d`
# of the comparisons with CLPIPS had $p$ below {glue:text}`nb09_alpha:.2f` in the new metric's favour.

# %% [markdown]
# A comparison that shows no difference is not evidence that there is none: how large a difference
# could it have found? Each comparison's corrected $t$ interval gives its standard error,
# (high − low) / (2$t$), where $t$ is the quantile (of $J - 1$ degrees of freedom, $J$ folds) the
# interval was made with, and with it the smallest true difference the test detects with 80% power
# at the uncorrected level (`clpips.book.power.minimal_detectable_effect`); Holm's correction makes
# it larger still.

# %%
se = (tests["high"] - tests["low"]) / (2 * stats.t.ppf(0.5 + ci / 2, tests["n_folds"] - 1))
tests["mde"] = [minimal_detectable_effect(s, n - 1, alpha=1 - ci) for s, n in zip(se, tests["n_folds"])]


def could_detect(against: str) -> str:
    """The comparisons against ``against`` that showed no difference, in words: how many, and the
    smallest true difference each could have detected."""
    nulls = tests[(tests["verdict"] == "no difference shown") & (tests["against"] == against)]
    if nulls.empty:
        return f"every comparison with {against} showed a difference"
    n = int((tests["against"] == against).sum())
    return (f"{'all' if len(nulls) == n else f'{len(nulls)} of the'} {n} comparisons with {against} showed no "
            f"difference; they could have detected a true ΔICC(A,k) of {nulls['mde'].min():.3f} to "
            f"{nulls['mde'].max():.3f} (median {nulls['mde'].median():.3f})")


pd.Series(glue_all({"nb09_nulls_lpips": could_detect("LPIPS"), "nb09_nulls_clpips": could_detect("CLPIPS")}))

# %% [markdown]
# After Holm's correction:
#
# - {glue:text}`nb09_nulls_lpips`;
# - {glue:text}`nb09_nulls_clpips`.
#
# A true difference smaller than these could be there unseen.

# %% [markdown]
# ## Does the transform keep the representation's local structure?
#
# AligNet checks that alignment does not wreck what the model already knew: that images' nearest
# neighbours in the representation survive. Here: for each dataset's images, the share of each
# image's 10 nearest neighbours (pooled features weighted by LPIPS's $\sqrt{w_0}$) still among its 10
# nearest after each fold's fitted transform, or its pooled re-weighting, averaged over images and folds.

# %% tags=["remove-output"]
local = pd.DataFrame([{"case": f"{name} by {mode}",
                       **{TITLES[m]: families.neighbours_kept(studies[name], runs[(name, mode, m)]) for m in
                          ("transform", "global")},
                       "λ chosen (median)": runs[(name, mode, "transform")].folds["lam"].median()}
                      for name, mode in cases]).set_index("case")
glue("nb09_local", readable(local), display=False)
glue("nb09_keep_min", float(local[TITLES["transform"]].min()), display=False)
glue("nb09_keep_max", float(local[TITLES["transform"]].max()), display=False)
readable(local)   # in JupyterLab; in the book, where the text pastes it

# %% [markdown]
# ```{glue:figure} nb09_local
# :name: tbl-09-local
#
# Nearest-neighbour overlap (10 nearest) of the pooled representation before and after the fitted
# transform, and after the pooled re-weighting: 1 means every image kept its neighbours. The median
# $\lambda$ the inner folds chose for the transform.
# ```
#
# The transforms kept between {glue:text}`nb09_keep_min:.2f` and {glue:text}`nb09_keep_max:.2f` of
# the images' nearest neighbours. The regulariser's strength was chosen by the inner folds for
# held-out agreement, not for keeping structure; a larger $\lambda$ keeps more
# (`-p transform_lambdas ...`).
#
# ## Reading it honestly
#
# * **What was tested.** Two metrics on LPIPS's pooled representation (a re-weighting and a
#   low-rank transform) and a CLPIPS taught by the transform, each tuned as CLPIPS is, on the
#   same folds. Not AligNet's recipe: its teacher is a large model aligned once and then labels
#   millions of new images, and its student is another network. Here the teacher is fitted on the
#   fold's training rankings and relabels new sets of the *same* training images, with the *same*
#   backbone: self-distillation, which can only re-use what the training rankings hold.
# * **What the pooled metrics can and cannot do.** They see the whole image at once, so they can
#   reward images that share content in different places, which spatial differences cannot; they
#   are blind to where things are. The table says which won where, after correcting for the number
#   of comparisons.
# * **What it cannot say.** Rank 8, one backbone (AlexNet), {glue:text}`nb09_repeats:d` repeat(s) of
#   {glue:text}`nb09_folds:d` folds, at most a few thousand rankings per fold: a null here is a
#   null at this scale, and with one repeat the intervals are wide. AligNet and DreamSim report gains
#   from much larger models and data {cite:p}`muttenthaler2025aligning,fu2023dreamsim`.

# %%
glue("nb09_seconds", time.perf_counter() - started, display=False)

# %% [markdown]
# This chapter ran in {glue:text}`nb09_seconds:.0f` seconds.
