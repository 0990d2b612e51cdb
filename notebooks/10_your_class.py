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
# (sec-10-your-class)=
# # Your class
#
# The teacher's view of a class study. During the lesson, students rank the sets of a study in
# their browsers with `clpips classroom` ({doc}`/book/classroom`); every ranking lands in one
# class CSV. This chapter reads that file and asks three questions:
#
# 1. How much do the students agree *with each other*?
# 2. How well do LPIPS, the class's pooled CLPIPS and each student's personal CLPIPS agree with
#    each student, on sets the models were not trained on?
# 3. What did the pooled CLPIPS learn from the class?
#
# Run it on your class with `clpips run 10_your_class -p class_csv /path/to/class.csv`. Without
# a class file (as in the published book) it runs on a *simulated* class, and says so below.

# %% tags=["parameters"]
from clpips.book.defaults import DEFAULTS

class_csv = DEFAULTS.class_csv                    # "": a simulated class
dataset = DEFAULTS.dataset                        # the study a simulated class ranks
classroom_k = DEFAULTS.classroom_k
classroom_sets = DEFAULTS.classroom_sets
classroom_students = DEFAULTS.classroom_students
seed = DEFAULTS.seed
test_size = DEFAULTS.test_size
personal_l2 = DEFAULTS.personal_l2
epochs = DEFAULTS.epochs
n_boot = DEFAULTS.n_boot
ci = DEFAULTS.ci

# %%
import os
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib_inline.backend_inline import set_matplotlib_formats
from myst_nb import glue

from clpips.apps.widget import RankingSession, RankingWidget
from clpips.book import class_analysis as ca
from clpips.book import personal as ps
from clpips.book.plots import personal as pp
from clpips.book.report import glue_all, view

set_matplotlib_formats("png")  # figures display (and glue) as PNG under any backend
started = time.perf_counter()

# %% [markdown]
# ## The data
#
# `load_class` reads the class file; without one it simulates a class on the sets that
# `clpips classroom` would serve, and the line it prints says which.

# %%
klass = ca.load_class(class_csv, dataset, k=classroom_k, n_sets=classroom_sets, n_students=classroom_students,
                      seed=seed)
rankings = klass.rankings.table
by_student = rankings.groupby(["rater", "set_id"])
counts = {"n_rankings": by_student.ngroups, "n_students": rankings["rater"].nunique(),
          "n_sets": rankings["set_id"].nunique(), "k": int(by_student.size().median())}
glue_all(counts, prefix="nb10_")
print(f"Data: {klass.source}.")
pd.Series(counts, name="count")

# %% [markdown]
# Every student was shown the same sets in the same order, but a lesson ends when it ends: the
# table counts the sets each student ranked, a student who joined and ranked nothing included.

# %%
glue("nb10_coverage", ca.coverage_sentence(klass.students), display=False)
view(klass.students, names={"sets_ranked": "sets ranked", "of": "of the sets offered", "complete": "all of them"})

# %% [markdown]
# The data are {glue:text}`nb10_n_rankings:d` rankings by {glue:text}`nb10_n_students:d`
# students of {glue:text}`nb10_n_sets:d` sets, each a target and {glue:text}`nb10_k:d`
# candidates. {glue:text}`nb10_coverage`

# %% [markdown] tags=["remove-from-report"]
# ## Rank it yourself
#
# The same sets, in the ranking widget of {numref}`chapter %s <sec-07-personal-metrics>`. In JupyterLab
# (`make lab`) the buttons work: click the candidates from most to least similar and save; your
# rankings go to a file of their own, never to the class file. On this static page it shows the
# first set.

# %% tags=["remove-from-report"]
mine = Path(os.environ.get("CLPIPS_NOTEBOOK_OUT") or tempfile.mkdtemp(prefix="clpips-class-"))
my_csv = mine / "your_class" / "my_rankings.csv"
my_csv.unlink(missing_ok=True)  # every run starts afresh
session = RankingSession(klass.design, my_csv, rater="you", sets=klass.sets, features=klass.features,
                         l2=personal_l2, epochs=epochs, seed=seed)
RankingWidget(session, thumb=92, columns=5)   # target and five candidates fit the page

# %% [markdown]
# ## How much does the class agree?
#
# Three views of the agreement between students, on the sets they share: Spearman's $\rho$ of
# every two students' ranks; per set, ICC(A,1) (one student against another) and ICC(A,k) (the
# reliability of the class's mean ranking); and each student against the consensus of the
# *others* (their mean rank of each candidate), scored exactly as a metric is scored against a
# person (the table below).

# %%
rho = ca.pairwise_rho(rankings)
iccs = ca.class_icc(rankings)
consensus = ca.consensus_scores(rankings)
pairs = rho.where(~np.eye(len(rho), dtype=bool)).stack()       # every two different students
low = consensus["icc_A_k"].dropna()                              # empty when no student shares a set
glue_all({"pair_rho": pairs.mean(), "pair_rho_min": pairs.min(), "pair_rho_max": pairs.max(),
          "icc_a1": iccs["icc_A_1"].mean(), "icc_ak": iccs["icc_A_k"].mean(), "icc_sets": len(iccs),
          "consensus_rho": consensus["spearman"].mean(), "consensus_icc": consensus["icc_A_k"].mean(),
          "consensus_low": str(low.idxmin()) if len(low) else "nobody",
          "consensus_low_icc": low.min(),
          "agreement_note": ca.agreement_note(rho, iccs, klass.students)}, prefix="nb10_")
view(consensus, names={"spearman": "ρ with the others", "icc_A_k": "ICC(A,k) with the others",
                       "n_rankings": "rankings"})

# %% tags=["remove-output"]
fig = pp.plot_student_agreement(rho)
glue("nb10_fig_pairs", fig, display=False)
plt.close(fig)  # shown once: below in JupyterLab, where the text pastes it in the book
fig

# %% [markdown]
# {glue:text}`nb10_agreement_note` Two students' rankings of the same set correlate, on average
# over pairs of students and sets, with Spearman's $\rho$ = {glue:text}`nb10_pair_rho:.2f` (pairs range from
# {glue:text}`nb10_pair_rho_min:.2f` to {glue:text}`nb10_pair_rho_max:.2f`,
# {numref}`fig-10-pairs`). Over the {glue:text}`nb10_icc_sets:d` shared sets, ICC(A,1), the
# agreement of *one* student with another, averages {glue:text}`nb10_icc_a1:.2f`; ICC(A,k), the
# reliability of the class's *mean* ranking, {glue:text}`nb10_icc_ak:.2f`. ICC(A,k) grows with
# the number of students averaged: this is why a metric fitted to pooled rankings is judged
# against people one at a time.
#
# Against the consensus of the others, the students reach $\rho$ =
# {glue:text}`nb10_consensus_rho:.2f` and ICC(A,k) = {glue:text}`nb10_consensus_icc:.2f` on
# average (table above). The student furthest from the class is
# {glue:text}`nb10_consensus_low:s` (ICC(A,k) {glue:text}`nb10_consensus_low_icc:.2f`): a
# different taste, or a hurried ranking. The consensus is the natural ceiling for any one
# metric of the class.
#
# ```{glue:figure} nb10_fig_pairs
# :name: fig-10-pairs
#
# Spearman's $\rho$ between every two students, averaged over the sets both ranked.
# ```
#
# ## Each student against the metrics
#
# The sets are split once by target. The class's pooled CLPIPS is fitted on every student's
# training rankings, as the paper fits it; each student's personal CLPIPS starts from it and is
# fitted on that student's training rankings only, pulled towards it
# ({numref}`chapter %s <sec-07-personal-metrics>`). Every model is then scored on each student's held-out sets.

# %%
glue("nb10_fit_note", ca.fit_note(rankings, klass.students, test_size, seed), display=False)
fits = None                 # a class that has ranked too few sets to fit on: this section and the next wait
if ca.can_fit(rankings, test_size, seed):
    fits = ps.personal_study(klass.rankings, test_size=test_size, seed=seed, l2=personal_l2, epochs=epochs,
                             lopo=False, person_bootstrap=False, n_boot=n_boot, ci=ci, features=klass.features)
    per = fits.per_person.join(consensus["icc_A_k"].rename("icc_consensus"))
    glue_all({"n_train": int(per["n_train"].median()), "n_test": int(per["n_test"].median()),
              **{f"{stat}_{model}": per[f"{stat}_{model}"].mean()      # nb10_icc_lpips, nb10_rho_pooled, ...
                 for model in ("lpips", "pooled", "personal") for stat in ("icc", "rho")}}, prefix="nb10_")
    display(view(per[["n_train", "n_test", "icc_consensus", "icc_lpips", "icc_pooled", "icc_personal"]].rename_axis("student"),
                 names={"n_train": "training sets", "n_test": "held-out sets", "icc_consensus": "others' consensus",
                        "icc_lpips": "LPIPS", "icc_pooled": "pooled CLPIPS", "icc_personal": "personal CLPIPS"}))

# %% [markdown]
# The mean difference over students, with its interval over students and held-out targets
# ({numref}`chapter %s <sec-07-personal-metrics>` explains the two-way bootstrap):

# %%
if fits is not None:
    gains = fits.across_people().xs("icc", level="statistic").loc[["pooled_vs_lpips", "personal_vs_pooled"]]
    for key, row in zip(("pl", "pp"), gains.itertuples()):            # nb10_pl, nb10_pl_lo, ..., nb10_pp_pos
        glue_all({"": row.mean_delta, "_lo": row.ci_low, "_hi": row.ci_high, "_pos": int(row.n_positive)},
                 prefix=f"nb10_{key}")
    display(view(gains.set_index("label").rename_axis("comparison")[["mean_delta", "ci_low", "ci_high", "n_positive", "n"]],
                 decimals={"mean_delta": 3, "ci_low": 3, "ci_high": 3},
                 names={"mean_delta": "mean Δ ICC(A,k)", "ci_low": "interval low",
                        "ci_high": "interval high", "n_positive": "better off", "n": "students"}))

# %% tags=["remove-output"]
if fits is not None:
    fig = pp.plot_students(per)
    glue("nb10_fig_students", fig, display=False)
    plt.close(fig)
    display(fig)

# %% [markdown]
# {glue:text}`nb10_fit_note` Each student has {glue:text}`nb10_n_train:d` training and
# {glue:text}`nb10_n_test:d` held-out sets. On the held-out sets ({numref}`fig-10-students`),
# ICC(A,k) with the students averages {glue:text}`nb10_icc_lpips:.2f` for LPIPS, {glue:text}`nb10_icc_pooled:.2f` for the pooled
# CLPIPS and {glue:text}`nb10_icc_personal:.2f` for the personal ones (Spearman's $\rho$
# {glue:text}`nb10_rho_lpips:.2f`, {glue:text}`nb10_rho_pooled:.2f`,
# {glue:text}`nb10_rho_personal:.2f`). Pooled minus LPIPS: {glue:text}`nb10_pl:.3f`
# ({glue:text}`nb10_pl_lo:.3f` to {glue:text}`nb10_pl_hi:.3f` over students,
# {glue:text}`nb10_pl_pos:d` of {glue:text}`nb10_n_students:d` better off); personal minus
# pooled: {glue:text}`nb10_pp:.3f` ({glue:text}`nb10_pp_lo:.3f` to
# {glue:text}`nb10_pp_hi:.3f`, {glue:text}`nb10_pp_pos:d` better off). With a lesson's
# handful of rankings per student these intervals are wide: a class study is for seeing how
# the method works, not for deciding whether it does ({numref}`chapter %s <sec-07-personal-metrics>` has
# the larger study).
#
# ```{glue:figure} nb10_fig_students
# :name: fig-10-students
#
# Held-out ICC(A,k) of LPIPS, the class's pooled CLPIPS and each student's personal CLPIPS with
# each student; black bars: the student against the others' consensus (all shared sets).
# ```
#
# ## What the class's CLPIPS learned
#
# CLPIPS changes only LPIPS's five per-layer linear weights. Where does the class's CLPIPS put
# its weight, and how far did it move from LPIPS? For a simulated class the table adds the
# taste the students were drawn from.

# %%
if fits is not None:
    models = {"LPIPS": fits.weights["lpips"], "pooled CLPIPS": fits.weights["pooled"]}
    if klass.truth is not None:
        models["the class's true taste"] = klass.truth["class"]
    shares = ps.layer_shares(models)
    moved = (fits.weights["pooled"] - fits.weights["lpips"]).norm() / fits.weights["lpips"].norm()
    glue_all({f"share_l{layer}_{short}": shares.loc[model, f"layer {layer}"]   # nb10_share_l1_lpips, ...
              for layer in (1, 5) for short, model in (("lpips", "LPIPS"), ("pooled", "pooled CLPIPS"))}
             | {"moved": float(moved)}, prefix="nb10_")
    print(f"relative L2 change of the weights: {moved:.1%}")
    display(view(shares.rename_axis("model"), decimals={c: 3 for c in shares.columns}))

# %% tags=["remove-output"]
if fits is not None:
    fig = pp.plot_layer_shares(shares)
    glue("nb10_fig_layers", fig, display=False)
    plt.close(fig)
    display(fig)

# %% [markdown]
# Fitted on this class, CLPIPS moved LPIPS's weights by {glue:text}`nb10_moved:.1%` (relative
# L2 distance); the share of the weight on the first layer, which sees edges and colour, went
# from {glue:text}`nb10_share_l1_lpips:.1%` to {glue:text}`nb10_share_l1_pooled:.1%`, on the
# last, most object-like layer from {glue:text}`nb10_share_l5_lpips:.1%` to
# {glue:text}`nb10_share_l5_pooled:.1%` ({numref}`fig-10-layers`). A simulated class shows how
# far a lesson's rankings move the pooled fit towards the true taste (the table's last row); a
# real class has no known true taste: compare with the pooled CLPIPS of mur92 in
# {numref}`chapter %s <sec-07-personal-metrics>`.
#
# ```{glue:figure} nb10_fig_layers
# :name: fig-10-layers
#
# Share of the total linear weight in each LPIPS layer.
# ```

# %%
glue("nb10_seconds", time.perf_counter() - started, display=False)

# %% [markdown]
# This chapter ran in {glue:text}`nb10_seconds:.0f` s.
