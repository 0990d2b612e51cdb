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
# (sec-01-datasets)=
# # The data: ranking sets, and how much people agree
#
# CLPIPS learns from, and is judged on, **rankings**. A person looks at a *target* image and a
# handful of *candidate* images and orders the candidates from most to least similar to the
# target. The paper's rankings are private {cite:p}`trinh2026clpips`, so this book works with
# three datasets anyone can rebuild:
#
# - **`mur92`**: real judgements. {glue:text}`nb01_mur_raters:d` people arranged
#   {glue:text}`nb01_mur_images:d` photographs of objects by similarity {cite:p}`mur2013human,kriegeskorte2008matching`; each person's dissimilarities
#   are read as rankings of candidates around each image.
# - **`zappos`**: real judgements of another kind. A crowd answered
#   {glue:text}`nb01_zap_triplets:,d` questions "which of two shoes is more like this one?" about
#   {glue:text}`nb01_zap_images:d` shoe photographs {cite:p}`heim2015active,yu2014finegrained`;
#   the answers about each target are turned into one ranking of candidates around it.
# - **`simulated`**: a study shaped like the paper's, in which each participant ranks their own
#   regenerations of a target, generated from a model whose ground truth we know.
#
# This chapter shows what a ranking set looks like in each, how much data there is, where
# similar candidates land, and how far people agree with each other. The last point matters
# most: the agreement between people bounds how well *any* metric can agree with them.

# %% tags=["parameters"]
from clpips.book.defaults import DEFAULTS

dataset = DEFAULTS.dataset
k = DEFAULTS.k
candidates = DEFAULTS.candidates
seed = DEFAULTS.seed

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib_inline.backend_inline import set_matplotlib_formats
from myst_nb import glue
from scipy import stats

from clpips.book import paper, summaries
from clpips.book.agreement import split_half, split_half_ranks
from clpips.book.labels import category_mean_rank, same_category, top_rank_share
from clpips.book.plots import datasets as plots
from clpips.book.report import glue_all, view
from clpips.book.scenes import NAMES
from clpips.book.simulated import StudyDesign
from clpips.book.truth import WEIGHTINGS, attribute_matches, truth_agreement
from clpips.datasets import zappos
from clpips.experiment import load_dataset

set_matplotlib_formats("png")  # glued figures carry a PNG even under MPLBACKEND=Agg

# %% [markdown]
# Every dataset loads as one table of rankings in the same shape: one row per (set, rater,
# candidate), with the rank that rater gave that candidate. The `dataset` parameter names the
# one the later chapters use; a study of your own (a CSV file) joins the three built-in ones.

# %%
options = {"k": k, "candidates": candidates, "seed": seed}   # a CSV study ignores these sampling options
data = load_dataset(dataset, **options)
studies = {name: data if data.name == name else load_dataset(name, **options)
           for name in ("mur92", "simulated", "zappos")}
studies.setdefault(data.name, data)                          # a study of your own
mur, sim, zap = studies["mur92"], studies["simulated"], studies["zappos"]
mur.table.head()

# %% [markdown]
# ## What a ranking set is
#
# A **ranking set** is one target image and its $k$ candidates. A **ranking** is one person's
# order of a set's candidates: rank 1 for the candidate they judged most similar to the target,
# rank $k$ for the least similar. Several people may rank the same set (`mur92`), or each person
# may have sets of their own (`simulated`, and the paper). In the table format every dataset
# shares, a ranking is $k$ rows, one per candidate, each with its set, target, rater and rank
# (see the repository's `data/README.md`).
#
# For the figure below, one `mur92` set: the set whose agreement between its raters is the
# median over sets, and the two of its raters whose agreement is closest to that set's average.

# %%
agreement = summaries.rater_agreement(mur.table)           # mean pairwise Spearman per shared set
mid = agreement.loc[(agreement["mean_rho"] - agreement["mean_rho"].median()).abs().idxmin(), "set_id"]
mid_rho = agreement.set_index("set_id").loc[mid, "mean_rho"]
ranks_mid = mur.table.loc[mur.table["set_id"] == mid].pivot(index="candidate", columns="rater", values="rank")
pairwise = ranks_mid.corr(method="spearman").stack()       # every ordered pair of raters of the set
pairwise = pairwise[pairwise.index.get_level_values(0) < pairwise.index.get_level_values(1)]
two = list((pairwise - mid_rho).abs().idxmin())            # the pair whose agreement is the set's mean
glue_all({"example_pair_rho": float(pairwise[tuple(two)]), "example_set_rho": float(mid_rho)}, prefix="nb01_")
ranks_mid[two].sort_values(two[0])

# %% [markdown]
# And one `simulated` set, the one whose participant agrees with the ground truth as the median
# set does (the ground truth, and `attribute_matches`, are the subject of
# {ref}`sec-01-simulated`):

# %%
matches = attribute_matches(sim.table, sim.image_info, NAMES)   # which attributes a candidate shares with its target
truth = truth_agreement(sim.table, matches, sim.truth.weights, sim.truth.group_weights)
sim_set = truth.loc[(truth["own weights"] - truth["own weights"].median()).abs().idxmin()]
sim_set

# %% tags=["remove-output"]
category = mur.image_info.set_index("image")["category"]
same = same_category(mur.table, mur.image_info)               # does a candidate share its target's category?
n_match = dict(zip(sim.table["candidate"], matches["n_match"]))
in_mid = mur.table["set_id"] == mid
views = [plots.SetView(mur, mid, rater, title=f"mur92\n{rater}", notes=category.str.replace(" ", "\n").to_dict(),
                       highlight=dict(zip(mur.table.loc[in_mid, "candidate"], same[in_mid])))
         for rater in two]
views.append(plots.SetView(sim, sim_set["set_id"], sim_set["rater"], title=f"simulated\n{sim_set['rater']}",
                           notes={c: f"{m} of {len(NAMES)} match" for c, m in n_match.items()},
                           highlight={c: m == len(NAMES) for c, m in n_match.items()}))
if data.name not in ("mur92", "simulated", "zappos"):  # zappos has its own section below
    first = data.table.iloc[0]
    views.append(plots.SetView(data, first["set_id"], first["rater"], title=f"{data.name}\n{first['rater']}"))
fig = plots.plot_ranking_sets(views)
glue("nb01_fig_sets", fig, display=False)
plt.close(fig)  # shown once: below in JupyterLab, where the text pastes it in the book
fig

# %% [markdown]
# ```{glue:figure} nb01_fig_sets
# :name: fig-01-sets
#
# Ranking sets as people ordered them: the target (heavy frame), then the candidates from
# rank 1 (most similar) to rank $k$, five to a line. The first two sets are the same `mur92` set,
# chosen as the set whose agreement between raters is the median, ordered by the two of its
# people whose agreement is closest to that set's average; candidates of the target's category
# are framed in orange. The `simulated` set is one participant's
# own regenerations of a target, labelled with how many of the scene attributes each shares
# with the target (framed: all of them). A further set, when a study of your own is given as
# `dataset`, shows its first ranking.
# ```
#
# The two people in {numref}`fig-01-sets` rank the same candidates with a Spearman
# correlation of {glue:text}`nb01_example_pair_rho:.2f`; over all pairs of its raters this set
# averages {glue:text}`nb01_example_set_rho:.2f`. Similarity is not a fixed property of two
# images: people weigh what they see differently.
#
# (sec-01-counts)=
# ## How much data
#
# `mur92` turns each of the {glue:text}`nb01_mur_images:d` images into the target of one set,
# with {glue:text}`nb01_mur_k_max:d` candidates drawn from the other images (parameters `k`,
# `candidates` and `seed`); all {glue:text}`nb01_mur_raters:d` people rank every set, because
# each arranged all the images. That makes {glue:text}`nb01_mur_rankings:,d` rankings and
# {glue:text}`nb01_mur_pairs:,d` ordered candidate pairs, the unit CLPIPS trains on. The
# simulated study has {glue:text}`nb01_sim_raters:d` participants who each rank their own
# {glue:text}`nb01_sim_k_max:d` regenerations of each of their group's targets:
# {glue:text}`nb01_sim_rankings:,d` rankings of {glue:text}`nb01_sim_targets:d` targets, one
# rater per set, as in the paper. `zappos` has one rater, the crowd: each of its
# {glue:text}`nb01_zap_targets:d` images is the target of {glue:text}`nb01_zap_sets_per_target:d`
# sets of {glue:text}`nb01_zap_k_max:d` candidates ({glue:text}`nb01_zap_sets:,d` sets,
# {glue:text}`nb01_zap_pairs:,d` ordered pairs), ranked from the crowd's triplets
# ({ref}`sec-01-zappos`).

# %%
counts = pd.concat({name: summaries.counts(s.table) for name, s in studies.items()}).droplevel(1)
counts.index.name = "dataset"
glue_all({"n_targets": int(counts.loc[data.name, "targets"]),       # pasted by book/reproduction.md
          "n_raters": int(counts.loc[data.name, "raters"]), "n_rankings": int(counts.loc[data.name, "rankings"]),
          **{f"nb01_{short}_{column}": int(counts.loc[name, column])  # nb01_mur_sets, nb01_sim_pairs, ...
             for name, short in (("mur92", "mur"), ("simulated", "sim"), ("zappos", "zap"))
             for column in ("sets", "raters", "targets", "rankings", "pairs", "k_max")},
          "nb01_dataset": data.name, "nb01_mur_images": int(mur.image_info.shape[0])})
view(counts.T.rename_axis("count"))                  # one column per dataset: fits the page

# %% [markdown]
# The later chapters train and evaluate on **{glue:text}`nb01_dataset`** (the `dataset`
# parameter): {glue:text}`n_rankings:,d` rankings by {glue:text}`n_raters:d` people of
# {glue:text}`n_targets:d` target images.
#
# (sec-01-mur92-ranks)=
# ## `mur92`: where similar objects land
#
# The {glue:text}`nb01_mur_images:d` images fall into {glue:text}`nb01_mur_categories:d` categories (human and animal
# faces and bodies, natural and artificial objects). If category drives similarity, a
# candidate from the target's own category should often be ranked first.

# %%
top = top_rank_share(mur.table, same)                       # one row per ranking
eligible = top.loc[top["n_flagged"] > 0]                    # rankings with a same-category candidate
glue_all({"top_eligible": len(eligible), "top_rankings": len(top), "top_observed": float(eligible["top_flagged"].mean()),
          "top_chance": float(eligible["chance"].mean()),
          "mur_categories": int(mur.image_info["category"].nunique())}, prefix="nb01_")
eligible[["top_flagged", "chance"]].mean().rename({"top_flagged": "rank 1 of the same category"})

# %%
distribution = summaries.rank_distribution(mur.table.assign(same_category=same), "same_category")
mean_ranks = category_mean_rank(mur.table, mur.image_info)
share_at = distribution.query("same_category").set_index("rank")["share"]
glue_all({"same_at_1": float(share_at.loc[1]), "same_at_k": float(share_at.loc[mur.k])}, prefix="nb01_")
mean_ranks.round(1)

# %% tags=["remove-output"]
fig = plots.plot_category_ranks(distribution, "same_category", mean_ranks, mur.k)
glue("nb01_fig_category_ranks", fig, display=False)
plt.close(fig)  # shown once: below in JupyterLab, where the text pastes it in the book
fig

# %% [markdown]
# In {glue:text}`nb01_top_eligible:,d` of the {glue:text}`nb01_top_rankings:,d` rankings at least
# one candidate shares the target's category. There the rank-1 candidate is from the target's
# category {glue:text}`nb01_top_observed:.0%` of the time, where a random order would manage
# {glue:text}`nb01_top_chance:.0%` (the share of same-category candidates in the set, averaged).
# Seen the other way round ({numref}`fig-01-category-ranks`, top), a same-category candidate
# lands at rank 1 {glue:text}`nb01_same_at_1:.0%` of the time and at the last rank
# {glue:text}`nb01_same_at_k:.0%`, against {glue:text}`nb01_mur_k_max:d`-way chance.
#
# ```{glue:figure} nb01_fig_category_ranks
# :name: fig-01-category-ranks
#
# Category and rank in `mur92`. Top: the share of candidates at each rank, for candidates of
# the target's category and of another; the dashed line is chance. Bottom: the mean rank given
# to candidates of each category (columns) for targets of each category (rows); a low number
# (dark) means "judged similar". Faces go with faces and bodies with bodies, of humans and
# animals alike, and the two kinds of inanimate objects are close to each other.
# ```
#
# (sec-01-mur92-agreement)=
# ## `mur92`: how much do people agree?
#
# For each set ranked by several people we can ask how similar their rankings are: the mean
# Spearman correlation over all pairs of its raters.

# %%
spread = agreement["mean_rho"].quantile([0.1, 0.5, 0.9])
glue_all({"mur_agreement": float(agreement["mean_rho"].mean()), "mur_agreement_lo": float(spread[0.1]),
          "mur_agreement_hi": float(spread[0.9])}, prefix="nb01_")
agreement["mean_rho"].describe(percentiles=[0.1, 0.5, 0.9])

# %% [markdown]
# Two people ranking the same `mur92` set agree with a mean Spearman $\rho$ of
# {glue:text}`nb01_mur_agreement:.2f`; across sets the mean pairwise $\rho$ ranges from
# {glue:text}`nb01_mur_agreement_lo:.2f` to {glue:text}`nb01_mur_agreement_hi:.2f` (10th to 90th
# percentile, {numref}`fig-01-agreement`, top). People agree, but far from perfectly.
#
# **The noise ceiling.** A metric gives each candidate one distance to the target, so it ranks a
# set *the same way for everyone*. How well can a single ranking agree with a set's raters? For
# Spearman's $\rho$ the best single ranking is the order of the raters' mean ranks (for untied
# rankings $\rho$ is linear in the rank vector, and the rearrangement inequality does the rest).
# Two estimates bracket what it achieves (after Nili et al., 2014):
#
# - the **lower bound** correlates each rater with the mean rank of the *other* raters of the
#   set (leave one rater out). The others' mean is a noisy estimate of the consensus, so this
#   understates the best ranking: {glue:text}`nb01_ceiling_lower:.3f` on average;
# - the **upper bound** correlates each rater with the mean rank of *all* raters, the rater
#   included. This is (up to ties) the ranking that fits these very raters best, chosen after
#   seeing them; no metric, which never sees them, can do better on average:
#   {glue:text}`nb01_ceiling_upper:.3f`.
#
# `noise_ceiling_bounds` computes both for every (set, rater):

# %%
bounds = summaries.noise_ceiling_bounds(mur.table)
per_rater = bounds.groupby("rater")["lower"].mean()
glue_all({"ceiling_lower": float(bounds["lower"].mean()), "ceiling_upper": float(bounds["upper"].mean()),
          "ceiling_rater_min": float(per_rater.min()), "ceiling_rater_max": float(per_rater.max()),
          "mur_others": int(counts.loc["mur92", "raters"]) - 1}, prefix="nb01_")
bounds[["lower", "upper"]].mean()

# %% [markdown]
# Checked by hand with `scipy` on the set of {numref}`fig-01-sets`, and against
# `summaries.noise_ceiling`, which averages the lower bound per rater and over all:

# %% tags=["remove-output"]
one = mur.table.loc[mur.table["set_id"] == mid].pivot(index="candidate", columns="rater", values="rank")
rater = one.columns[0]
by_hand = {"lower": stats.spearmanr(one[rater], one.drop(columns=rater).mean(axis=1)).statistic,
           "upper": stats.spearmanr(one[rater], one.mean(axis=1)).statistic}
assert np.allclose(list(by_hand.values()), bounds.set_index(["set_id", "rater"]).loc[(mid, rater), ["lower", "upper"]])
assert np.isclose(bounds["lower"].mean(), summaries.noise_ceiling(mur.table).set_index("rater").loc["all", "rho"])
fig = plots.plot_agreement(agreement, bounds)
glue("nb01_fig_agreement", fig, display=False)
plt.close(fig)  # shown once: below in JupyterLab, where the text pastes it in the book
fig

# %% [markdown]
# So a metric that gives everyone the same ranking cannot expect a mean per-ranking $\rho$ above
# about {glue:text}`nb01_ceiling_upper:.2f` on `mur92`, and reaching
# {glue:text}`nb01_ceiling_lower:.2f` already means predicting a person as well as the other
# {glue:text}`nb01_mur_others:d` people do. (When every set has $k$ candidates and both sides
# are within-set ranks, the mean per-ranking $\rho$ equals the $\rho$ pooled over all rankings,
# which is how the paper's $\rho$ appears to be computed; see {ref}`sec-02-rho-identity`.) Individual raters
# differ: their lower bounds run from {glue:text}`nb01_ceiling_rater_min:.2f` to
# {glue:text}`nb01_ceiling_rater_max:.2f` ({numref}`fig-01-agreement`, bottom).
#
# ```{glue:figure} nb01_fig_agreement
# :name: fig-01-agreement
#
# Agreement between people in `mur92`. Top: for each set, the mean Spearman correlation over
# all pairs of its raters. Bottom: for each rater, the mean over sets of their correlation with
# the other raters' mean rank (lower bound of the noise ceiling, blue) and with all raters' mean
# rank (upper bound, red); dashed lines average over all (set, rater).
# ```
#
# The ceiling holds for one ranking per set. A *personal* metric, with weights fitted to one
# person (the personalisation the paper leaves to future work, {doc}`07_personal_metrics`), ranks each set
# differently for each person and could beat it, but only as far as what sets a person apart
# from the crowd is stable from one set to the next. The simulated study builds exactly that
# in.
#
# (sec-01-simulated)=
# ## The simulated study: agreement by design
#
# Each simulated scene is one object on a plain background, described by
# {glue:text}`nb01_sim_n_attributes:d` attributes: {glue:text}`nb01_sim_attributes`. Participant $r$ weighs the attributes with weights
# $w_r$ (summing to 1), drawn around their group's mean weights; a candidate's **utility** is
# the total weight of the attributes it shares with the target, and the participant ranks their
# regenerations by utility plus Gaussian noise of standard deviation
# {glue:text}`nb01_sim_noise:.2f` (`clpips.book.simulated`). The groups' mean weights:

# %%
design = StudyDesign(seed=seed)
glue_all({"sim_attributes": ", ".join(NAMES), "sim_n_attributes": len(NAMES), "sim_noise": float(design.noise)},
         prefix="nb01_")
sim.truth.group_weights.set_index("group").round(2)

# %%
# checks: utilities from attribute_matches and the participants' weights are the study's truth,
# and each ranking is exactly the order of the noisy judgements
w = sim.truth.weights.set_index("rater").loc[sim.table["rater"], list(NAMES)].to_numpy()
utility = (matches[list(NAMES)].to_numpy() * w).sum(axis=1)
recorded = sim.truth.utilities.set_index(["set_id", "candidate"])
key = pd.MultiIndex.from_frame(sim.table[["set_id", "candidate"]])
assert np.allclose(utility, recorded.loc[key, "utility"].to_numpy())
judged = sim.table.assign(judged=recorded.loc[key, "judged"].to_numpy())
assert all(np.isclose(stats.spearmanr(g["rank"], -g["judged"]).statistic, 1)
           for _, g in judged.groupby("set_id"))

# %% [markdown]
# Attempts at a target get better from one iteration to the next, and `truth_agreement`
# scores each participant's ranking against the utilities under four weightings of the
# attributes (the text below says which):

# %%
by_iteration = sim.table.groupby("iteration")["rank"].mean()
means = truth[list(WEIGHTINGS)].mean()
glue_all({"sim_rank_first": float(by_iteration.iloc[0]), "sim_rank_last": float(by_iteration.iloc[-1]),
          "sim_iterations": int(by_iteration.index.max()),
          **{f"truth_{short}": float(means[name])                   # nb01_truth_own, ..._group, ...
             for name, short in zip(WEIGHTINGS, ("own", "group", "everyone", "equal"))}}, prefix="nb01_")
view(means.to_frame("mean Spearman rho over sets").rename_axis("weights"))

# %% tags=["remove-output"]
fig = plots.plot_truth_agreement(sim.table, matches, truth)
glue("nb01_fig_truth", fig, display=False)
plt.close(fig)  # shown once: below in JupyterLab, where the text pastes it in the book
fig

# %% [markdown]
# Regenerations improve: the first attempt at a target gets a mean rank of
# {glue:text}`nb01_sim_rank_first:.1f`, attempt {glue:text}`nb01_sim_iterations:d` of
# {glue:text}`nb01_sim_rank_last:.1f`, because later attempts share more attributes with the
# target ({numref}`fig-01-truth`, top).
#
# Because we know each participant's weights, we can compute the ranking a perfect *personal*
# metric would give, the order of the noise-free utilities, and compare it with what the
# participant did. It agrees with a mean Spearman $\rho$ of {glue:text}`nb01_truth_own:.3f`:
# high, as designed, but not 1, because of the judgement noise and because candidates that
# share the same attributes tie in utility. This is the simulated study's noise ceiling. The
# same utilities computed with the participant's *group* weights give
# {glue:text}`nb01_truth_group:.3f`; two weightings shared by everyone, the average of all
# participants' weights and equal weights (just counting shared attributes), give
# {glue:text}`nb01_truth_everyone:.3f` and {glue:text}`nb01_truth_equal:.3f`
# ({numref}`fig-01-truth`, bottom). The gap between a participant's own weights and a weighting
# shared by everyone is the room personalisation has in this study; a group's weights recover
# part of it.
#
# ```{glue:figure} nb01_fig_truth
# :name: fig-01-truth
#
# The simulated study. Top: how many of the attributes a candidate shares with its target,
# by the rank its participant gave it. Bottom: per set, the Spearman correlation between the
# participant's ranks and the ranking by utility under four weightings of the attributes: the
# participant's own (the ground truth), their group's mean, the mean of everyone's, and equal
# weights. Diamonds mark means.
# ```
#
# (sec-01-zappos)=
# ## `zappos`: shoes ranked by a crowd
#
# The `zappos` judgements are **triplets**: a crowd worker saw a target shoe (the *head*) and two
# others and picked the one more similar to the target. Each of the
# {glue:text}`nb01_zap_images:d` photographs is the head of between
# {glue:text}`nb01_zap_head_min:,d` and {glue:text}`nb01_zap_head_max:,d` triplets, which cover
# nearly every pair of the other images. No worker ids were kept, so there are no individual
# raters. For each target, a Bradley–Terry model fitted to that target's triplets alone gives
# every other image a strength, the log-odds scale on which it is picked as "closer"
# (`clpips.datasets.zappos`). Each target gets {glue:text}`nb01_zap_sets_per_target:d` disjoint
# sets of {glue:text}`nb01_zap_k_max:d` random candidates, ranked by strength (rank 1 =
# strongest = most similar); the rater is `crowd`. Candidates with equal strengths (they won
# equally often against the same opponents) share an average rank; this happens in
# {glue:text}`nb01_zap_tied_sets:d` of the {glue:text}`nb01_zap_sets:,d` sets.
#
# Because a triplet has exactly one head, the rankings of different targets rest on disjoint
# triplets: a split by target never lets the judgements behind a held-out ranking into training.

# %%
triplets = zappos.triplets()                                  # one row per answer; column 0 is the head
head_counts = np.bincount(triplets[:, 0], minlength=zappos.N_IMAGES)
tied = zap.table.groupby("set_id")["rank"].apply(lambda r: bool((r % 1 != 0).any()))  # a shared (average) rank
glue_all({"images": int(zap.image_info.shape[0]), "triplets": int(len(triplets)),
          "head_min": int(head_counts.min()), "head_max": int(head_counts.max()),
          "sets_per_target": int(zap.table.groupby("target")["set_id"].nunique().max()),
          "tied_sets": int(tied.sum())}, prefix="nb01_zap_")
pd.Series({"triplets": len(triplets), "fewest as head": head_counts.min(), "most as head": head_counts.max(),
           "sets with tied ranks": tied.sum()}, name="zappos")

# %% [markdown]
# **Reliability (split-half).** With no individual raters, the question "how far do people agree?"
# becomes "how reproducible is the crowd's ranking?". We split each target's triplets at random
# into two halves, rank every set from each half, and compare the two rankings.

# %%
split = split_half(zap.table, triplets, seed=seed)                   # the summary over all rows
halves = split_half_ranks(zap.table, triplets, seed=seed)             # both halves' rank of every (set, candidate)
per_set = pd.Series({sid: stats.spearmanr(g["rank_a"], g["rank_b"]).statistic
                     for sid, g in halves.groupby("set_id")})
glue_all({"split_rho": float(split["rho_half"]), "split_sb": float(split["rho_spearman_brown"]),
          "split_icc": float(split["icc_A_k"]), "split_rows": int(split["n_rows"]),
          "set_rho_median": float(per_set.median()), "set_rho_lo": float(per_set.quantile(0.1)),
          "set_rho_hi": float(per_set.quantile(0.9))}, prefix="nb01_zap_")
view(pd.Series(split).drop("seed").rename({"rho_half": "ρ of the two halves", "rho_spearman_brown": "ρ, Spearman–Brown (whole crowd)",
                                           "icc_A_k": "ICC(A,k) of the two halves", "n_sets": "sets",
                                           "n_rows": "rows"}).to_frame("split-half").rename_axis("statistic"))

# %%
# checks: the split-half rho is scipy's on the two halves' ranks; its step-up is Spearman-Brown's
assert np.isclose(split["rho_half"], stats.spearmanr(halves["rank_a"], halves["rank_b"]).statistic)
assert np.isclose(split["rho_spearman_brown"], 2 * split["rho_half"] / (1 + split["rho_half"]))

# %% tags=["remove-output"]
example = (per_set - per_set.median()).abs().idxmin()  # the set whose halves agree as the median set's do
zap_target = zap.table.loc[zap.table["set_id"] == example, "target"].iloc[0]
ranks_of = halves.set_index(["set_id", "candidate"])
views = [plots.SetView(zap, sid, "crowd", title=f"zappos\n{sid}",
                       notes={c: f"halves {ranks_of.loc[(sid, c), 'rank_a']:g} | {ranks_of.loc[(sid, c), 'rank_b']:g}"
                              for c in zap.table.loc[zap.table["set_id"] == sid, "candidate"]})
         for sid in sorted(zap.table.loc[zap.table["target"] == zap_target, "set_id"].unique())]
fig = plots.plot_ranking_sets(views)
glue("nb01_fig_zappos", fig, display=False)
plt.close(fig)  # shown once: below in JupyterLab, where the text pastes it in the book
fig

# %% [markdown]
# ```{glue:figure} nb01_fig_zappos
# :name: fig-01-zappos
#
# Both `zappos` sets of one target, ranked by the crowd (rank 1 first). The target is the one
# whose set's two split-half rankings agree as closely as the median set's do; under each
# candidate, the ranks it gets from the two halves of the target's triplets.
# ```
#
# Pooled over all {glue:text}`nb01_zap_split_rows:,d` (set, candidate) rows, the two halves'
# rankings agree with a Spearman $\rho$ of {glue:text}`nb01_zap_split_rho:.3f`; per set the
# median is {glue:text}`nb01_zap_set_rho_median:.2f` (10th to 90th percentile
# {glue:text}`nb01_zap_set_rho_lo:.2f` to {glue:text}`nb01_zap_set_rho_hi:.2f`). Each half holds
# half the triplets, so this understates the reliability of the rankings built from all of them;
# the Spearman–Brown formula $2\rho / (1 + \rho)$ steps it up to
# {glue:text}`nb01_zap_split_sb:.3f`, and ICC(A,k) with the two halves as two raters, the
# reliability of their mean, gives {glue:text}`nb01_zap_split_icc:.3f`. This reliability
# estimate is of another kind than `mur92`'s noise-ceiling bounds: there they measure how well one
# ranking can predict an individual person, here how reproducible the crowd's pooled ranking is,
# the ranking a metric is compared with.
# One caveat: the triplets were "deconflicted" by their authors, who removed answers that formed
# cycles, so the data are more self-consistent than raw crowd answers and the reliability is, if
# anything, higher than it would be for them.
#
# ## What this means for a metric
#
# The paper's own $\rho$, for comparison (its Table 3):

# %%
reported = pd.Series({"LPIPS": paper.value("lpips_spearman"), "CLPIPS": paper.value("clpips_spearman")},
                     name="the paper's Spearman rho")
glue_all({"paper_lpips_rho": reported["LPIPS"], "paper_clpips_rho": reported["CLPIPS"]}, prefix="nb01_")
reported

# %% [markdown]
#
# Agreement with people has a ceiling set by the people themselves. On `mur92` one ranking per
# set, however good, can expect a mean $\rho$ between {glue:text}`nb01_ceiling_lower:.2f` and
# {glue:text}`nb01_ceiling_upper:.2f`; that is the yardstick for the metrics of the next
# chapters. On `zappos` the crowd's ranking is reproducible to a split-half $\rho$ of
# {glue:text}`nb01_zap_split_rho:.2f` ({glue:text}`nb01_zap_split_sb:.2f` stepped up to all the
# triplets). In the simulated study the ceiling is known exactly, about
# {glue:text}`nb01_truth_own:.2f` for a personal metric, and a single metric for everyone loses
# part of it. The paper's study, with one person per set, cannot estimate its ceiling this way;
# its reported $\rho$ of {glue:text}`nb01_paper_lpips_rho:.3f` (LPIPS) and
# {glue:text}`nb01_paper_clpips_rho:.3f` (CLPIPS) should be read against a bound that is unknown
# but surely below 1.

