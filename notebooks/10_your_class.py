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
from clpips.defaults import DEFAULTS

class_csv = DEFAULTS.class_csv
study = DEFAULTS.dataset
classroom_k = DEFAULTS.classroom_k
classroom_sets = DEFAULTS.classroom_sets
classroom_students = DEFAULTS.classroom_students
seed = DEFAULTS.seed
net = DEFAULTS.net
device = DEFAULTS.device
test_size = DEFAULTS.test_size
personal_l2 = DEFAULTS.personal_l2
epochs = DEFAULTS.epochs
n_boot = DEFAULTS.n_boot
ci = DEFAULTS.ci

# %% tags=["hide-input"]
import os
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display
from matplotlib_inline.backend_inline import set_matplotlib_formats
from myst_nb import glue

from clpips.book import class_analysis as ca
from clpips.apps import classroom as cr
from clpips.book import personal as ps
from clpips.datasets import RankingDataset
from clpips.features import pair_features
from clpips.book.report import glue_all

set_matplotlib_formats("png")  # glued figures carry a PNG even under MPLBACKEND=Agg
started = time.perf_counter()


def features_of(dataset, table):
    pairs = table[["target", "candidate"]].astype(str).drop_duplicates()
    return pair_features(dataset, list(pairs.itertuples(index=False, name=None)), net=net, device=device,
                         progress=False)


if class_csv:                                        # a real class
    klass, record = cr.read_class(class_csv)
    sets = record.get("sets") or sorted(klass.table["set_id"].astype(str).unique())
    features = features_of(klass, klass.table)
    truth = None
    source = (f"the class file {Path(class_csv).name} ({klass.table['rater'].nunique()} students, "
              f"study {record.get('study', 'unknown')})")
    design = klass
else:                                                # a simulated class on the study `clpips classroom` serves
    design = cr.load_study(study, k=classroom_k, seed=seed)
    sets = cr.class_sets(design, classroom_sets, seed)
    chosen = design.table[design.table["set_id"].astype(str).isin(sets)]
    features = features_of(design, chosen)
    table, truth = ca.simulate_class(design, features, sets, classroom_students, seed=seed, net=net)
    klass = RankingDataset(table=table, root=design.root, name="simulated class")
    source = (f"a simulated class: {classroom_students} students ranking the {len(sets)} sets of "
              f"{design.name} that `clpips classroom --study {study}` serves (no class file was given)")
rankings = klass.table
n_students = rankings["rater"].nunique()
glue_all({"source": source, "simulated": "simulated" if truth is not None else "real",
          "n_students": int(n_students), "n_sets": int(rankings["set_id"].nunique()),
          "n_rankings": int(rankings.groupby(["rater", "set_id"]).ngroups),
          "k": int(rankings.groupby(["rater", "set_id"]).size().median())}, prefix="nb10_")
print(f"Data: {source}.")

# %% [markdown]
# ## The data
#
# This page shows **{glue:text}`nb10_source`**: {glue:text}`nb10_n_rankings:d` rankings by
# {glue:text}`nb10_n_students:d` students of {glue:text}`nb10_n_sets:d` sets, each a target and
# {glue:text}`nb10_k:d` candidates. Every student was shown the same sets in the same order,
# so the students can be compared set by set.
#
# ## Rank it yourself
#
# The same sets, in the ranking widget of {numref}`sec-07-personal-metrics`. In JupyterLab
# (`make lab`) the buttons work: click the candidates from most to least similar and save; your
# rankings go to a file of their own, never to the class file. On this static page it shows the
# first set.

# %% tags=["hide-input"]
from clpips.apps.widget import RankingSession, RankingWidget

mine = Path(os.environ.get("CLPIPS_NOTEBOOK_OUT") or tempfile.mkdtemp(prefix="clpips-class-"))
my_csv = mine / "your_class" / "my_rankings.csv"
my_csv.unlink(missing_ok=True)  # every run starts afresh
session = RankingSession(design, my_csv, rater="you", sets=sets, features=features, l2=personal_l2,
                         epochs=epochs, net=net, device=device, seed=seed)
RankingWidget(session, thumb=112, columns=6)

# %% tags=["hide-input"]
rho = ca.pairwise_rho(rankings)
iccs = ca.class_icc(rankings)
consensus = ca.consensus_scores(rankings)
off_diagonal = rho.where(~np.eye(len(rho), dtype=bool)).stack()
glue_all({"pair_rho": float(off_diagonal.mean()), "pair_rho_min": float(off_diagonal.min()),
          "pair_rho_max": float(off_diagonal.max()),
          "icc_a1": float(iccs["icc_A_1"].mean()), "icc_ak": float(iccs["icc_A_k"].mean()),
          "icc_sets": int(len(iccs)),
          "consensus_rho": float(consensus["spearman"].mean()), "consensus_icc": float(consensus["icc_A_k"].mean()),
          "consensus_low": str(consensus["icc_A_k"].idxmin()),
          "consensus_low_icc": float(consensus["icc_A_k"].min())}, prefix="nb10_")

fig, ax = plt.subplots(figsize=(5.6, 4.6))
im = ax.imshow(rho.to_numpy(float), vmin=-1, vmax=1, cmap="RdBu_r")
ax.set_xticks(range(len(rho)), [s.replace("student ", "") for s in rho.columns], rotation=90, fontsize=7)
ax.set_yticks(range(len(rho)), [s.replace("student ", "") for s in rho.index], fontsize=7)
ax.set_title("Spearman's rho between students (mean over shared sets)", fontsize=9)
fig.colorbar(im, ax=ax, shrink=0.8)
fig.tight_layout()
glue("nb10_fig_pairs", fig, display=False)
plt.close(fig)
display(consensus.round(3))

# %% [markdown]
# ## How much does the class agree?
#
# Two students' rankings of the same set correlate, on average over pairs of students and sets,
# with Spearman's $\rho$ = {glue:text}`nb10_pair_rho:.2f` (pairs range from
# {glue:text}`nb10_pair_rho_min:.2f` to {glue:text}`nb10_pair_rho_max:.2f`,
# {numref}`fig-10-pairs`). Over the {glue:text}`nb10_icc_sets:d` shared sets, ICC(A,1), the
# agreement of *one* student with another, averages {glue:text}`nb10_icc_a1:.2f`; ICC(A,k), the
# reliability of the class's *mean* ranking, {glue:text}`nb10_icc_ak:.2f`. The mean of many
# students is far more reliable than any one of them: this is why a metric fitted to pooled
# rankings is judged against people one at a time.
#
# Each student against the consensus of the *others* (their mean rank of each candidate),
# scored exactly as a metric is scored against a person: $\rho$ =
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

# %% tags=["hide-input"]
study_ = ps.personal_study(klass, test_size=test_size, seed=seed, net=net, device=device, l2=personal_l2,
                           epochs=epochs, lopo=False, person_bootstrap=False, n_boot=n_boot, ci=ci,
                           features=features)
per = study_.per_person.join(consensus.rename(columns={"icc_A_k": "icc_consensus",
                                                      "spearman": "rho_consensus"})[["icc_consensus"]])
across = study_.across_people()
glue_all({"n_train": int(per["n_train"].median()), "n_test": int(per["n_test"].median()),
          **{f"{stat}_{model}": float(per[f"{stat}_{model}"].mean())      # nb10_icc_lpips, nb10_rho_pooled, ...
             for model in ("lpips", "pooled", "personal") for stat in ("icc", "rho")}}, prefix="nb10_")
for name, key in (("pooled_vs_lpips", "pl"), ("personal_vs_pooled", "pp")):
    row = across.loc[(name, "icc")]
    glue_all({"": float(row["mean_delta"]), "_lo": float(row["ci_low"]), "_hi": float(row["ci_high"]),
              "_pos": int(row["n_positive"])}, prefix=f"nb10_{key}")
columns = ["n_train", "n_test", "icc_consensus", "icc_lpips", "icc_pooled", "icc_personal"]
display(per[columns].round(3))

fig, ax = plt.subplots(figsize=(7.5, 3.4))
x = np.arange(len(per))
for i, (col, label) in enumerate((("icc_lpips", "LPIPS"), ("icc_pooled", "pooled CLPIPS"),
                                  ("icc_personal", "personal CLPIPS"))):
    ax.bar(x + (i - 1) * 0.27, per[col], width=0.27, label=label)
ax.scatter(x, per["icc_consensus"], color="k", marker="_", s=120, zorder=3, label="others' consensus (all sets)")
ax.set_xticks(x, [s.replace("student ", "") for s in per.index], fontsize=7)
ax.set_ylabel("held-out ICC(A,k)")
ax.set_ylim(min(0, float(per[["icc_lpips", "icc_pooled", "icc_personal"]].min().min())), 1)
ax.legend(fontsize=7, ncol=4, loc="lower left")
fig.tight_layout()
glue("nb10_fig_students", fig, display=False)
plt.close(fig)

# %% [markdown]
# ## Each student against the metrics
#
# The sets are split once by target ({glue:text}`nb10_n_train:d` training and
# {glue:text}`nb10_n_test:d` held-out sets per student). The class's pooled CLPIPS is fitted on
# every student's training rankings, as the paper fits it; each student's personal CLPIPS
# starts from it and is fitted on that student's training rankings only, pulled towards it
# ({numref}`sec-07-personal-metrics`). On the held-out sets ({numref}`fig-10-students`),
# ICC(A,k) with the students averages {glue:text}`nb10_icc_lpips:.2f` for LPIPS,
# {glue:text}`nb10_icc_pooled:.2f` for the pooled CLPIPS and
# {glue:text}`nb10_icc_personal:.2f` for the personal ones (Spearman's $\rho$
# {glue:text}`nb10_rho_lpips:.2f`, {glue:text}`nb10_rho_pooled:.2f`,
# {glue:text}`nb10_rho_personal:.2f`). Pooled minus LPIPS: {glue:text}`nb10_pl:.3f`
# ({glue:text}`nb10_pl_lo:.3f` to {glue:text}`nb10_pl_hi:.3f` over students,
# {glue:text}`nb10_pl_pos:d` of {glue:text}`nb10_n_students:d` better off); personal minus
# pooled: {glue:text}`nb10_pp:.3f` ({glue:text}`nb10_pp_lo:.3f` to
# {glue:text}`nb10_pp_hi:.3f`, {glue:text}`nb10_pp_pos:d` better off). With a lesson's
# handful of rankings per student these intervals are wide: a class study is for seeing how
# the method works, not for deciding whether it does ({numref}`sec-07-personal-metrics` has
# the larger study).
#
# ```{glue:figure} nb10_fig_students
# :name: fig-10-students
#
# Held-out ICC(A,k) of LPIPS, the class's pooled CLPIPS and each student's personal CLPIPS with
# each student; black bars: the student against the others' consensus (all shared sets).
# ```

# %% tags=["hide-input"]
models = {"LPIPS": study_.weights["lpips"], "pooled CLPIPS": study_.weights["pooled"]}
if truth is not None:
    models["the class's true taste"] = truth["class"]
shares = ps.layer_shares(models, net=net)
display(shares.round(3))
moved = (study_.weights["pooled"] - study_.weights["lpips"]).norm() / study_.weights["lpips"].norm()
if truth is not None:
    true_l5 = float(shares.loc["the class's true taste", "layer 5"])
    truth_note = (f"The simulated class's true taste puts {true_l5:.1%} of the weight on layer 5: "
                  "the pooled fit moves towards it only as far as a lesson's rankings allow.")
else:
    truth_note = "A real class has no known true taste; compare with the pooled CLPIPS of mur92 in chapter 7."
glue_all({f"share_l{layer}_{short}": float(shares.loc[model, f"layer {layer}"])   # nb10_share_l1_lpips, ...
          for layer in (1, 5) for short, model in (("lpips", "LPIPS"), ("pooled", "pooled CLPIPS"))}
         | {"moved": float(moved), "truth_note": truth_note}, prefix="nb10_")
fig, ax = plt.subplots(figsize=(6.5, 2.8))
shares.T.plot.bar(ax=ax, rot=0)
ax.set_ylabel("share of the weight")
ax.legend(fontsize=8)
fig.tight_layout()
glue("nb10_fig_layers", fig, display=False)
plt.close(fig)
glue_all({"nb10_seconds": time.perf_counter() - started})

# %% [markdown]
# ## What the class's CLPIPS learned
#
# CLPIPS changes only LPIPS's five per-layer linear weights. Fitted on this class, it moved them
# by {glue:text}`nb10_moved:.1%` (relative L2 distance); the share of the weight on the first
# layer, which sees edges and colour, went from {glue:text}`nb10_share_l1_lpips:.1%` to
# {glue:text}`nb10_share_l1_pooled:.1%`, on the last, most object-like layer from
# {glue:text}`nb10_share_l5_lpips:.1%` to {glue:text}`nb10_share_l5_pooled:.1%`
# ({numref}`fig-10-layers`). {glue:text}`nb10_truth_note`
#
# ```{glue:figure} nb10_fig_layers
# :name: fig-10-layers
#
# Share of the total linear weight in each LPIPS layer.
# ```
#
# This chapter ran in {glue:text}`nb10_seconds:.0f` s.
