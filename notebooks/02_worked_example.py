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
# (sec-02-worked-example)=
# # A worked example: Spearman's rho and the ICC by hand
#
# The paper judges a metric by two numbers: Spearman's rank correlation $\rho$ and the
# intraclass correlation ICC(A,k) between the metric's ranking of the candidates and a
# person's {cite:p}`trinh2026clpips`. Its *Example 1* shows both on four images, A, B, C and
# D, ranked three times: a **reference** ranking and two others, **R1** and **R2**. The copy
# of the paper we work from keeps the example's verdicts but has lost its numbers: R1 agrees
# with the reference *moderately* and R2 *poorly*, on the scale of {cite:t}`koo2016icc`, as
# ICC(A,k) against the reference. **The rankings below are our choice**, made to fit those
# words; they are parameters of this notebook (`example_reference`, `example_r1`,
# `example_r2`, each the rank of A, B, C, D in turn), so you can rerun the page with your own.
#
# This chapter computes everything by hand, step by step, in the code cells you see, and
# checks each result against `scipy`, `pingouin` and `clpips.stats`. Along the way it finds
# that, for two rankings, the ICC is a function of $\rho$ alone, and it shows where ICC(A,k)
# stops behaving like a correlation.

# %% tags=["parameters"]
from clpips.book.defaults import DEFAULTS

example_reference = DEFAULTS.example_reference
example_r1 = DEFAULTS.example_r1
example_r2 = DEFAULTS.example_r2
seed = DEFAULTS.seed

# %%
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pingouin as pg
from IPython.display import display
from matplotlib_inline.backend_inline import set_matplotlib_formats
from myst_nb import glue
from scipy import stats

import clpips.stats as cs
from clpips.book import paper
from clpips.book.plots.worked_example import plot_icc_vs_rho, plot_rankings
from clpips.book.report import glue_all, view
from clpips.book.worked_example import (icc_ak_pole, icc_ck_from_rho, interpret_icc, interpretation_scale, item_names,
                                        parse_ranking, ranking_text, rankings_of)

# pingouin 0.7 calls DataFrame.dropna(inplace=...), which pandas 3 deprecates: expected, not ours
warnings.filterwarnings("ignore", category=FutureWarning, module="pingouin")
set_matplotlib_formats("png")  # glued figures carry a PNG even under MPLBACKEND=Agg

# %% [markdown]
# ## The rankings
#
# A ranking gives each image its rank, 1 for the image judged most similar to the target.
# `parse_ranking` reads a parameter such as `"1,3,4,2"` (the ranks of A, B, C, D in turn) and
# refuses anything that is not a ranking of the same items: ties, gaps, a missing item.

# %%
reference = parse_ranking(example_reference, "example_reference")
r1 = parse_ranking(example_r1, "example_r1", n=len(reference))
r2 = parse_ranking(example_r2, "example_r2", n=len(reference))
n = len(reference)
ranks = pd.DataFrame({"reference": reference, "R1": r1, "R2": r2}, index=pd.Index(item_names(n), name="item"))
ranks

# %% tags=["remove-output"]
glue_all({"n": n, "reference": ranking_text(reference), "r1": ranking_text(r1), "r2": ranking_text(r2)},
         prefix="nb02_")
fig = plot_rankings(ranks)
glue("nb02_fig_rankings", fig, display=False)
plt.close(fig)  # shown once: below in JupyterLab, where the text pastes it in the book
fig

# %% [markdown]
# Written as the ranks of A, B, C, D in turn, the reference is ({glue:text}`nb02_reference`),
# R1 is ({glue:text}`nb02_r1`) and R2 is ({glue:text}`nb02_r2`): the table above, and
# {numref}`fig-02-rankings`.
#
# ```{glue:figure} nb02_fig_rankings
# :name: fig-02-rankings
#
# The three rankings of the example. Each image is a coloured disc; a line follows it from
# ranking to ranking, so crossing lines are disagreements. Rank 1 (most similar) is at the top.
# ```
#
# (sec-02-spearman)=
# ## Spearman's rho by hand
#
# Spearman's $\rho$ is the Pearson correlation of the two columns of ranks. Without ties it
# has a shortcut through the rank differences $d_i$ of the $n$ items:
#
# $$
# \rho \;=\; 1 - \frac{6 \sum_i d_i^2}{n\,(n^2 - 1)} .
# $$
#
# First the differences, item by item:

# %%
def differences(reference, other, name):
    """Item by item: the two ranks, their difference d = other - reference, and d²."""
    d = other - reference
    return pd.DataFrame({"reference": reference, name: other, "d": d, "d²": d ** 2},
                        index=pd.Index(item_names(len(d)), name="item"))


display(differences(reference, r1, "R1"), differences(reference, r2, "R2"))

# %% [markdown]
# Then the formula. Written for a `numpy` array, the same line also scores many rankings at
# once (one per row of `other`), which the last sections use.

# %%
def spearman_by_hand(reference, other):
    """Spearman's rho of untied rankings, 1 - 6 Σd² / (n (n² - 1)); `other` may hold one ranking per row."""
    d = np.asarray(other) - np.asarray(reference)
    n = d.shape[-1]
    return 1 - 6 * (d ** 2).sum(axis=-1) / (n * (n ** 2 - 1))


rho_hand = pd.Series({"R1": spearman_by_hand(reference, r1), "R2": spearman_by_hand(reference, r2)}, name="rho")
rho_hand

# %% [markdown]
# Checked against `scipy.stats.spearmanr` and against `clpips.stats.spearman_rho`, the package's
# one Spearman, which scores a metric's distances against a person's ranks (here the other ranking
# in place of the distances):

# %%
checked = pd.DataFrame({"by hand": rho_hand,
                        "scipy": {name: stats.spearmanr(reference, ranks[name]).statistic for name in rho_hand.index},
                        "clpips.stats": {name: float(cs.spearman_rho(reference, ranks[name])) for name in rho_hand.index}})
assert np.allclose(checked["by hand"], checked["scipy"]) and np.allclose(checked["by hand"], checked["clpips.stats"])
glue_all({"r1_sum_d2": int(((r1 - reference) ** 2).sum()), "r2_sum_d2": int(((r2 - reference) ** 2).sum()),
          "r1_rho": float(rho_hand["R1"]), "r2_rho": float(rho_hand["R2"]), "rho_denominator": n * (n ** 2 - 1)},
         prefix="nb02_")
checked

# %% [markdown]
# For R1, $\sum d_i^2 =$ {glue:text}`nb02_r1_sum_d2:d`, so
# $\rho = 1 - 6 \times$ {glue:text}`nb02_r1_sum_d2:d` / {glue:text}`nb02_rho_denominator:d`
# $=$ {glue:text}`nb02_r1_rho:.3f`; for R2, $\sum d_i^2 =$ {glue:text}`nb02_r2_sum_d2:d` and
# $\rho =$ {glue:text}`nb02_r2_rho:.3f`.
#
# (sec-02-icc)=
# ## The ICC by hand
#
# An intraclass correlation asks how much of the variation in a table of ratings is variation
# *between the rated items* rather than disagreement between raters
# {cite:p}`shrout1979icc,mcgraw1996icc`. Here the items are the $n$ images (rows) and the
# raters are the two rankings (columns, $k = 2$); the ratings are ranks. Take the reference and
# R1, with $y_{ij}$ the rank rater $j$ gives item $i$. First the means: the **grand mean**
# $\bar y$, the **item means** $\bar y_{i\cdot}$ (rows) and the **rater means**
# $\bar y_{\cdot j}$ (columns).

# %%
Y = ranks[["reference", "R1"]].astype(float)
n_items, k = Y.shape
grand_mean = Y.to_numpy().mean()
item_means = Y.mean(axis=1)                     # row means
rater_means = Y.mean(axis=0)                    # column means
display(Y.assign(**{"item mean": item_means}), rater_means.to_frame("rater mean").T)
print("grand mean:", grand_mean)

# %% [markdown]
# Then the sums of squares of a two-way ANOVA with one rating per cell: between items,
# $SS_R = k \sum_i (\bar y_{i\cdot} - \bar y)^2$; between raters,
# $SS_C = n \sum_j (\bar y_{\cdot j} - \bar y)^2$; and the rest, the error
# $SS_E = \sum_{ij} (y_{ij} - \bar y_{i\cdot} - \bar y_{\cdot j} + \bar y)^2$. The three add up to
# the total $SS_T = \sum_{ij} (y_{ij} - \bar y)^2$.

# %%
ss_items = k * ((item_means - grand_mean) ** 2).sum()
ss_raters = n_items * ((rater_means - grand_mean) ** 2).sum()
residuals = Y.sub(item_means, axis=0).sub(rater_means, axis=1) + grand_mean
ss_error = (residuals.to_numpy() ** 2).sum()
ss_total = ((Y.to_numpy() - grand_mean) ** 2).sum()
assert np.isclose(ss_items + ss_raters + ss_error, ss_total)
pd.Series({"SS_R (items)": ss_items, "SS_C (raters)": ss_raters, "SS_E (error)": ss_error, "SS_T (total)": ss_total})

# %% [markdown]
# Each mean square is a sum of squares over its degrees of freedom: $n - 1$ for the items,
# $k - 1$ for the raters, $(n-1)(k-1)$ for the error.

# %%
msr = ss_items / (n_items - 1)                  # MS between items (rows)
msc = ss_raters / (k - 1)                       # MS between raters (columns)
mse = ss_error / ((n_items - 1) * (k - 1))      # residual MS
view(pd.DataFrame({"SS": [ss_items, ss_raters, ss_error, ss_total],             # total has no MS: "—"
                   "df": [n_items - 1, k - 1, (n_items - 1) * (k - 1), n_items * k - 1], "MS": [msr, msc, mse, np.nan]},
                  index=pd.Index(["items (rows)", "raters (columns)", "error", "total"], name="source")))

# %% [markdown]
# The same steps as one function, written for the last two axes of an array so that one call
# does many tables at once; checked against the steps above and against `clpips.stats`:

# %%
def mean_squares(Y):
    """MS_R, MS_C and MS_E of items x raters tables: the steps above, on the last two axes of Y."""
    n, k = Y.shape[-2:]
    grand = Y.mean(axis=(-2, -1), keepdims=True)
    items, raters = Y.mean(axis=-1, keepdims=True), Y.mean(axis=-2, keepdims=True)
    ss_items = k * ((items - grand) ** 2).sum(axis=(-2, -1))
    ss_raters = n * ((raters - grand) ** 2).sum(axis=(-2, -1))
    ss_error = ((Y - items - raters + grand) ** 2).sum(axis=(-2, -1))
    return ss_items / (n - 1), ss_raters / (k - 1), ss_error / ((n - 1) * (k - 1))


library = cs.mean_squares(Y.to_numpy())
assert np.allclose(mean_squares(Y.to_numpy()), [msr, msc, mse])
assert np.allclose([library.msb, library.msj, library.mse], [msr, msc, mse])
glue_all({"grand_mean": float(grand_mean), "ss_items": float(ss_items), "ss_raters": float(ss_raters),
          "ss_error": float(ss_error), "ss_total": float(ss_total), "msr": float(msr), "msc": float(msc),
          "mse": float(mse), "df_items": n_items - 1, "df_error": (n_items - 1) * (k - 1)}, prefix="nb02_")
pd.Series(mean_squares(Y.to_numpy()), index=["MS_R", "MS_C", "MS_E"], name="mean_squares(Y)")

# %% [markdown]
# In words: the grand mean $\bar y$ is {glue:text}`nb02_grand_mean:.2f`; between items
# $SS_R =$ {glue:text}`nb02_ss_items:.2f` on {glue:text}`nb02_df_items:d` degrees of freedom,
# so $MS_R =$ {glue:text}`nb02_msr:.4f`; between raters $SS_C =$
# {glue:text}`nb02_ss_raters:.2f`, so $MS_C =$ {glue:text}`nb02_msc:.2f`; the error
# $SS_E =$ {glue:text}`nb02_ss_error:.2f` on {glue:text}`nb02_df_error:d` degrees of freedom,
# so $MS_E =$ {glue:text}`nb02_mse:.4f`; and the total $SS_T =$ {glue:text}`nb02_ss_total:.2f`.
#
# **Why $MS_C$ is exactly zero.** Both raters hand out the ranks $1, \dots, n$, each once, so
# both columns sum to $n(n+1)/2$ and have the same mean, $(n+1)/2$, which is also the grand
# mean. Two people ranking the same candidates cannot differ in their *average* rank: one cannot
# be "harsher" than the other, as with ratings on a scale. Whatever the rankings, the
# between-rater variance is zero.
#
# **The ICCs.** With the mean squares, the two-way ICCs of {cite:t}`mcgraw1996icc` (ICC(A,·)
# is ICC(2,·) of {cite:t}`shrout1979icc`, ICC(C,·) their ICC(3,·)) are
#
# $$
# \begin{aligned}
# \text{ICC(A,1)} &= \frac{MS_R - MS_E}{MS_R + (k-1)\,MS_E + \tfrac{k}{n}(MS_C - MS_E)}, \\[4pt]
# \text{ICC(A,k)} &= \frac{MS_R - MS_E}{MS_R + (MS_C - MS_E)/n}, \\[4pt]
# \text{ICC(C,1)} &= \frac{MS_R - MS_E}{MS_R + (k-1)\,MS_E}, \\[4pt]
# \text{ICC(C,k)} &= \frac{MS_R - MS_E}{MS_R}.
# \end{aligned}
# $$
#
# *A* stands for absolute agreement (a rater's systematic offset counts as disagreement), *C*
# for consistency (offsets are ignored); *1* is the reliability of one rater, *k* that of the
# mean of the $k$ raters. The paper reports ICC(A,k). In code, the four formulas as written,
# without a guard: where a denominator is zero they give $\pm\infty$, as `pingouin` does.

# %%
def icc_formulas(msr, msc, mse, n, k):
    """ICC(A,1), ICC(A,k), ICC(C,1) and ICC(C,k) from the mean squares of n items by k raters."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"ICC(A,1)": (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n),
                "ICC(A,k)": (msr - mse) / (msr + (msc - mse) / n),
                "ICC(C,1)": (msr - mse) / (msr + (k - 1) * mse),
                "ICC(C,k)": (msr - mse) / msr}


icc_hand = pd.Series(icc_formulas(msr, msc, mse, n_items, k), name="by hand")
icc_hand

# %% [markdown]
# Checked against `pingouin.intraclass_corr` and `clpips.stats.icc`, which take the ratings
# in long form, one row per (item, rater):

# %%
VARIANTS = list(icc_hand.index)
long = Y.reset_index().melt(id_vars="item", var_name="rater", value_name="rank")
with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)  # pingouin divides by zero on degenerate rankings
    icc_pg = pg.intraclass_corr(long, targets="item", raters="rater", ratings="rank").set_index("Type")
    icc_cs = cs.icc(long, targets="item", raters="rater", ratings="rank").set_index("Type")
checked = pd.DataFrame({"by hand": icc_hand, "pingouin": icc_pg.loc[VARIANTS, "ICC"],
                        "clpips.stats": icc_cs.loc[VARIANTS, "ICC"]})
assert np.allclose(checked["by hand"], checked["pingouin"], equal_nan=True)
defined = checked["clpips.stats"].notna()       # clpips.stats gives NaN where a denominator is <= 0
assert np.allclose(checked["by hand"][defined], checked["clpips.stats"][defined])
glue_all({"hand_icc_a1": float(icc_hand["ICC(A,1)"]), "hand_icc_ak": float(icc_hand["ICC(A,k)"]),
          "hand_icc_c1": float(icc_hand["ICC(C,1)"]), "hand_icc_ck": float(icc_hand["ICC(C,k)"])}, prefix="nb02_")
view(checked, digits=6)                          # six figures: the three agree beyond rounding

# %% [markdown]
# For R1, for instance,
# ICC(A,k) $=$ ({glue:text}`nb02_msr:.4f` $-$ {glue:text}`nb02_mse:.4f`) /
# ({glue:text}`nb02_msr:.4f` $+$ ({glue:text}`nb02_msc:.0f` $-$ {glue:text}`nb02_mse:.4f`) /
# {glue:text}`nb02_n:d`) $=$ {glue:text}`nb02_hand_icc_ak:.3f`, and
# ICC(C,k) $=$ {glue:text}`nb02_hand_icc_ck:.3f`. The same steps for any two rankings, in one
# function: the ranks side by side, the mean squares, the formulas. `defined` says whether
# ICC(A,k)'s denominator is positive (more on this in {ref}`sec-02-misbehaves`).

# %%
def agreement(reference, other):
    """Spearman's rho and the four ICCs of two rankings of the same items, by the functions above."""
    Y = np.column_stack([reference, other]).astype(float)
    msr, msc, mse = mean_squares(Y)
    return {"rho": spearman_by_hand(reference, other), **icc_formulas(msr, msc, mse, *Y.shape),
            "defined": msr + (msc - mse) / len(Y) > 0}


summary = pd.DataFrame.from_dict({"R1": agreement(reference, r1), "R2": agreement(reference, r2)}, orient="index")
summary.round(3)

# %% [markdown]
# Each row checked against `pingouin` once more:

# %%
for name in summary.index:
    pair = ranks[["reference", name]].reset_index().melt(id_vars="item", var_name="rater", value_name="rank")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        by_pingouin = pg.intraclass_corr(pair, "item", "rater", "rank").set_index("Type")["ICC"]
    assert np.allclose(summary.loc[name, VARIANTS].astype(float), by_pingouin[VARIANTS]), name
assert np.allclose(summary["rho"], [rho_hand["R1"], rho_hand["R2"]])

# %% [markdown]
# (sec-02-scales)=
# ## Reading an ICC: two rules of thumb
#
# Verbal labels for ICC values come from two published scales, {cite:t}`koo2016icc` (which the
# paper uses) and the older {cite:t}`cicchetti1994guidelines`. Their bands, as `clpips.book.worked_example`
# reads them:

# %%
scales = pd.concat({name: interpretation_scale(name).set_index("label")[["interval"]]
                    for name in ("koo_li", "cicchetti")}, names=["scale"])
scales

# %% [markdown]
# `interpret_icc` gives each ICC(A,k) its label on both scales (where the
# denominator is not positive the ICC is undefined, and so is its label):

# %%
icc_ak = summary["ICC(A,k)"].where(summary["defined"])
labels = pd.DataFrame({"ICC(A,k)": icc_ak, "Koo & Li": icc_ak.map(lambda v: interpret_icc(v, "koo_li")),
                       "Cicchetti": icc_ak.map(lambda v: interpret_icc(v, "cicchetti"))})
for name, row in labels.iterrows():
    glue_all({"icc_ak": float(summary.loc[name, "ICC(A,k)"]), "icc_ck": float(summary.loc[name, "ICC(C,k)"]),
              "koo_li": row["Koo & Li"], "cicchetti": row["Cicchetti"]}, prefix=f"nb02_{name.lower()}_")
labels

# %% [markdown]
# R1's ICC(A,k) of {glue:text}`nb02_r1_icc_ak:.2f` is *{glue:text}`nb02_r1_koo_li`* on Koo &
# Li's scale and *{glue:text}`nb02_r1_cicchetti`* on Cicchetti's; R2's
# {glue:text}`nb02_r2_icc_ak:.2f` is *{glue:text}`nb02_r2_koo_li`* and
# *{glue:text}`nb02_r2_cicchetti`*. (We chose the default R1 and R2 so that the Koo & Li labels
# are the paper's "moderate" and "poor".) The two scales draw their bands at different places,
# so a label means little without its scale.
#
# Koo & Li themselves advise judging the *confidence interval*, not the point estimate, and
# labelling both of its ends. `clpips.stats.icc` gives the interval of each ICC; `pingouin`
# gives the same, rounded to two decimals.

# %%
ci = {variant: icc_cs.loc[variant, "CI95"] for variant in ("ICC(A,1)", "ICC(A,k)", "ICC(C,k)")}
assert np.allclose(ci["ICC(A,k)"], icc_pg.loc["ICC(A,k)", "CI95"], atol=0.005)
# ICC(A,k)'s limits are the Spearman-Brown step-ups of ICC(A,1)'s (McGraw & Wong 1996, Table 7)
assert np.allclose(ci["ICC(A,k)"], cs.spearman_brown(ci["ICC(A,1)"], k))
glue_all({**{f"ci_{key}_{end}": float(ci[variant][i]) for variant, key in
             (("ICC(A,1)", "icc_a1"), ("ICC(A,k)", "icc_ak"), ("ICC(C,k)", "icc_ck"))
             for i, end in enumerate(("lo", "hi"))},
          "ci_icc_ck_lo_label": cs.koo_li_label(ci["ICC(C,k)"][0]),
          "ci_icc_ck_hi_label": cs.koo_li_label(ci["ICC(C,k)"][1])}, prefix="nb02_")
view(pd.DataFrame(ci, index=["lower", "upper"]).T.rename_axis("95% interval"))

# %% [markdown]
# With {glue:text}`nb02_n:d` items the 95% interval of R1's ICC(C,k) runs from
# {glue:text}`nb02_ci_icc_ck_lo:.2f` (*{glue:text}`nb02_ci_icc_ck_lo_label`*) to
# {glue:text}`nb02_ci_icc_ck_hi:.2f` (*{glue:text}`nb02_ci_icc_ck_hi_label`*). The interval
# that `pingouin` and `clpips.stats` both report for R1's ICC(A,k) runs from
# {glue:text}`nb02_ci_icc_ak_lo:.2f` to {glue:text}`nb02_ci_icc_ak_hi:.2f`. Its limits are the
# Spearman–Brown step-ups $kL/(1+(k-1)L)$ of the limits $L$ of ICC(A,1)'s interval, here
# {glue:text}`nb02_ci_icc_a1_lo:.2f` to {glue:text}`nb02_ci_icc_a1_hi:.2f`; a lower limit
# below $-1$ steps up to a "lower" limit above $+1$, which no correlation can take. A handful
# of images cannot tell "moderate" from much else: the example teaches the arithmetic, not a
# verdict.
#
# (sec-02-rho-identity)=
# ## For two rankings, the ICC is a function of rho
#
# Look again at the ANOVA of two untied rankings of the same $n$ items, with $\rho$ their
# Spearman correlation (the Pearson correlation of the ranks). Both columns have mean
# $(n+1)/2$ and the same sum of squares about it, $S = n(n^2-1)/12$. Writing the item means as
# the average of the two centred ranks,
#
# $$
# SS_C = 0, \qquad SS_R = S\,(1 + \rho), \qquad SS_E = S\,(1 - \rho) = \tfrac12 \textstyle\sum_i d_i^2 ,
# $$
#
# and both $SS_R$ and $SS_E$ have $n - 1$ degrees of freedom. Substituting,
#
# $$
# \begin{aligned}
# \text{ICC(C,k)} &= \frac{MS_R - MS_E}{MS_R} = \frac{2\rho}{1+\rho}, \\[4pt]
# \text{ICC(A,k)} &= \frac{MS_R - MS_E}{MS_R - MS_E/n} = \frac{2\rho}{1 + \rho - (1-\rho)/n}.
# \end{aligned}
# $$
#
# So **ICC(C,k) is exactly the Spearman–Brown step-up of $\rho$ to two raters**,
# $2\rho/(1+\rho)$: the reliability of the average of two "raters" that correlate $\rho$. And
# ICC(A,k), the paper's statistic, is *not* quite the same: $MS_C = 0$ removes the rater
# offsets from its denominator but leaves the $-MS_E/n$ there, so for $0 < \rho < 1$ it is a
# little larger than ICC(C,k), and the gap closes as the number of items $n$ grows. It is
# tempting to read "$MS_C = 0$" as "ICC(A,k) = ICC(C,k)"; the example shows the difference.
# `clpips.stats` has the closed form of ICC(A,k), `icc_ak_from_rho`; `icc_ck_from_rho` is the
# Spearman–Brown step-up `clpips.stats.spearman_brown(rho, 2)`:

# %%
closed = pd.DataFrame({"2 rho / (1 + rho)": icc_ck_from_rho(summary["rho"].to_numpy()),
                       "ICC(C,k)": summary["ICC(C,k)"],
                       "2 rho / (1 + rho - (1 - rho) / n)": cs.icc_ak_from_rho(summary["rho"].to_numpy(), n),
                       "ICC(A,k)": summary["ICC(A,k)"]})
assert np.allclose(closed.iloc[:, 0], closed.iloc[:, 1]) and np.allclose(closed.iloc[:, 2], closed.iloc[:, 3])
glue_all({"r1_spearman_brown": float(closed.loc["R1", "2 rho / (1 + rho)"]),
          "r2_spearman_brown": float(closed.loc["R2", "2 rho / (1 + rho)"])}, prefix="nb02_")
closed.round(4)

# %% [markdown]
# Not only for R1 and R2: the functions above score the reference against *every* ranking of
# its items at once (`rankings_of` lists them; beyond 7 items, a random 5,040 of them). Each
# row holds the mean squares ($MS_C$ is zero in every one), $\rho$ and the four ICCs.

# %%
def every_ranking(reference, seed=0):
    """rho, the mean squares and the ICCs of the reference against every ranking of its items."""
    n = len(reference)
    others = rankings_of(n, seed=seed)
    Y = np.stack([np.broadcast_to(reference, others.shape), others], axis=-1).astype(float)  # (rankings, n, 2)
    msr, msc, mse = mean_squares(Y)
    return pd.DataFrame({"ranking": [ranking_text(o) for o in others], "rho": spearman_by_hand(reference, others),
                         "MSR": msr, "MSC": msc, "MSE": mse, **icc_formulas(msr, msc, mse, n, 2),
                         "defined": msr + (msc - mse) / n > 0})


table = every_ranking(reference, seed=seed)
view(table.head())

# %% [markdown]
# The closed forms against every row, and the rows against `pingouin`, ranking by ranking (all
# of them up to 5 items, about 120 beyond):

# %%
rho_all = table["rho"].to_numpy()
inner = rho_all > -1                                       # at rho = -1 both are -inf (MSR = 0)
gap_ck = np.abs(table["ICC(C,k)"][inner] - icc_ck_from_rho(rho_all[inner])).max()
finite = np.isfinite(table["ICC(A,k)"].to_numpy())
gap_ak = np.abs(table["ICC(A,k)"][finite] - cs.icc_ak_from_rho(rho_all[finite], n)).max()
assert gap_ck < 1e-12 and gap_ak < 1e-9 and (table["MSC"] == 0).all()
for text in table["ranking"].iloc[:: max(1, len(table) // 120)]:
    pair = pd.DataFrame({"item": item_names(n) * 2, "rater": ["reference"] * n + ["other"] * n,
                         "rank": np.concatenate([reference, parse_ranking(text)])})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        by_pingouin = pg.intraclass_corr(pair, "item", "rater", "rank").set_index("Type")["ICC"]
    row = table.loc[table["ranking"] == text].iloc[0]
    assert np.allclose(row[VARIANTS].astype(float), by_pingouin[VARIANTS], equal_nan=True), text
glue_all({"n_rankings": len(table), "gap_ck": float(gap_ck), "gap_ak": float(gap_ak)}, prefix="nb02_")
pd.Series({"ICC(C,k) - 2 rho / (1 + rho)": gap_ck, "ICC(A,k) - 2 rho / (1 + rho - (1 - rho) / n)": gap_ak},
          name=f"largest difference over {len(table)} rankings")

# %% [markdown]
# For R1, $2\rho/(1+\rho) =$ {glue:text}`nb02_r1_spearman_brown:.3f`, which is its ICC(C,k),
# while its ICC(A,k) is {glue:text}`nb02_r1_icc_ak:.3f`. Over the
# {glue:text}`nb02_n_rankings:d` rankings of the {glue:text}`nb02_n:d` images, the largest
# difference between ICC(C,k) and $2\rho/(1+\rho)$ is {glue:text}`nb02_gap_ck:.1e`, and
# between ICC(A,k) and $2\rho/(1+\rho-(1-\rho)/n)$ {glue:text}`nb02_gap_ak:.1e`: rounding
# error. The hand formulas behind that table agree with `pingouin.intraclass_corr` ranking by
# ranking.
#
# ### The paper's headline numbers obey it
#
# The paper, as {doc}`/book/method` reads it, pools all held-out (set, candidate) items into
# one table with two raters, the person and the metric, each giving ranks within each set. Pooling keeps both facts the
# derivation needs: every set contributes the ranks $1..k$ to each column, so the two columns
# still have equal means ($MS_C = 0$) and equal variances. The relation then holds with $\rho$
# the pooled Spearman correlation of the two columns of ranks, and with hundreds of items the
# $1/n$ term is negligible.

# %%
headline = pd.DataFrame({m.upper(): {"reported rho": paper.value(f"{m}_spearman"),
                                     "reported ICC(A,k)": paper.value(f"{m}_icc_A_k")} for m in ("lpips", "clpips")}).T
headline["2 rho / (1 + rho)"] = icc_ck_from_rho(headline["reported rho"].to_numpy())
headline["truncated to 2 decimals"] = np.floor(100 * headline["2 rho / (1 + rho)"]) / 100
for m, row in headline.iterrows():
    glue_all({"rho": float(row["reported rho"]), "icc": float(row["reported ICC(A,k)"]),
              "predicted": float(row["2 rho / (1 + rho)"]), "truncated": float(row["truncated to 2 decimals"])},
             prefix=f"nb02_paper_{m.lower()}_")
headline.round(4)

# %% [markdown]
# And how much the $1/n$ term adds to ICC(A,k) at the paper's CLPIPS $\rho$, for two
# illustrative numbers of pooled items:

# %%
rho_c = headline.loc["CLPIPS", "reported rho"]
term = pd.Series({items: cs.icc_ak_from_rho(rho_c, items) - icc_ck_from_rho(rho_c) for items in (100, 1000)},
                 name="ICC(A,k) - ICC(C,k)").rename_axis("pooled items")
glue_all({"gap_items_0": 100, "gap_0": float(term[100]), "gap_items_1": 1000, "gap_1": float(term[1000])},
         prefix="nb02_")
term

# %% [markdown]
# The paper's LPIPS has $\rho =$ {glue:text}`nb02_paper_lpips_rho:.3f`, and
# $2\rho/(1+\rho) =$ {glue:text}`nb02_paper_lpips_predicted:.3f`: the reported ICC(A,k) is
# {glue:text}`nb02_paper_lpips_icc:.2f`. CLPIPS has $\rho =$ {glue:text}`nb02_paper_clpips_rho:.3f`
# and $2\rho/(1+\rho) =$ {glue:text}`nb02_paper_clpips_predicted:.3f`, against a reported
# {glue:text}`nb02_paper_clpips_icc:.2f`. The first pair agrees to rounding; the second agrees
# if the paper truncated rather than rounded to two decimals (both predicted values truncate to
# the reported ones, {glue:text}`nb02_paper_lpips_truncated:.2f` and
# {glue:text}`nb02_paper_clpips_truncated:.2f`). The $1/n$ term cannot explain the difference:
# it makes ICC(A,k) *larger*, by {glue:text}`nb02_gap_0:.4f` with {glue:text}`nb02_gap_items_0:,d`
# pooled items and {glue:text}`nb02_gap_1:.5f` with {glue:text}`nb02_gap_items_1:,d`, at the
# paper's CLPIPS $\rho$.
#
# Two conclusions. The reported pairs are what one expects if the paper's pooled $\rho$
# compares the metric's *within-set ranks* with the person's, the very table its ICC is
# computed from. And then **the paper's ICC(A,k) carries no information beyond its $\rho$**:
# it is $2\rho/(1+\rho)$ up to the $1/n$ term, a monotone function, so it ranks metrics exactly
# as $\rho$ does, and its improvement from LPIPS to CLPIPS is $\rho$'s improvement seen through
# that function.
#
# Had $\rho$ instead been computed on the raw distances pooled across sets, nothing would tie
# the two numbers together. A synthetic evaluation shows the difference: a person ranks
# {glue:text}`nb02_pooled_k:d` candidates in each of {glue:text}`nb02_pooled_sets:d` sets, and
# a metric's distance is a per-set offset plus the rank plus noise:

# %%
rng = np.random.default_rng(seed)
n_sets, k_sets = 100, 10
offsets = rng.normal(0.0, 3.0, size=(n_sets, 1))             # some targets have farther candidates overall
person = np.tile(np.arange(1, k_sets + 1), (n_sets, 1))      # the person's ranks 1..k in every set
distance = offsets + person + 5.0 * rng.standard_normal((n_sets, k_sets))
pooled = pd.DataFrame({"set": np.repeat(np.arange(n_sets), k_sets), "candidate": np.tile(np.arange(k_sets), n_sets),
                       "rank": person.ravel(), "distance": distance.ravel()})
pooled.head()

# %% [markdown]
# The ICC is always computed on ranks: `clpips.stats.metric_human_table` turns the distances into
# within-set ranks, one row per (set, candidate) and rater. $\rho$ can be computed on those
# ranks or on the raw distances:

# %%
pairs = cs.metric_human_table(pooled, "set", "rank", "distance", candidate_col="candidate")
with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)
    pooled_icc = cs.icc(pairs, "target", "rater", "rating").set_index("Type")["ICC"]
wide = pairs.pivot(index="target", columns="rater", values="rating")
rho_ranks = stats.spearmanr(wide["human"], wide["metric"]).statistic            # within-set ranks, pooled
rho_distances = stats.spearmanr(pooled["rank"], pooled["distance"]).statistic   # raw distances, pooled
assert np.isclose(pooled_icc["ICC(C,k)"], icc_ck_from_rho(rho_ranks))
assert np.isclose(pooled_icc["ICC(A,k)"], cs.icc_ak_from_rho(rho_ranks, len(wide)))
pooled_icc[["ICC(C,k)", "ICC(A,k)"]]

# %% [markdown]
# The two $\rho$ and their $2\rho/(1+\rho)$ beside it:

# %%
comparison = pd.DataFrame({
    "pooled rho": [rho_ranks, rho_distances],
    "2 rho / (1 + rho)": [icc_ck_from_rho(rho_ranks), icc_ck_from_rho(rho_distances)]},
    index=pd.Index(["metric ranks within each set", "raw distances"], name="rho computed on"))
glue_all({"pooled_items": len(wide), "pooled_sets": int(pooled["set"].nunique()),
          "pooled_k": int(pooled.groupby("set").size().iloc[0]), "pooled_rho_ranks": float(rho_ranks),
          "pooled_rho_distances": float(rho_distances), "pooled_icc_ak": float(pooled_icc["ICC(A,k)"]),
          "pooled_icc_ck": float(pooled_icc["ICC(C,k)"]),
          "pooled_sb_distances": float(icc_ck_from_rho(rho_distances))}, prefix="nb02_")
comparison.round(4)

# %% [markdown]
# On the {glue:text}`nb02_pooled_items:d` pooled items ICC(C,k) is
# {glue:text}`nb02_pooled_icc_ck:.4f` and ICC(A,k) {glue:text}`nb02_pooled_icc_ak:.4f`.
# $\rho$ on within-set ranks is {glue:text}`nb02_pooled_rho_ranks:.3f`, and its
# $2\rho/(1+\rho)$ is that ICC(C,k) exactly. $\rho$ on the raw distances is
# {glue:text}`nb02_pooled_rho_distances:.3f`, with the set offsets, which the ICC never sees,
# in it; its $2\rho/(1+\rho) =$ {glue:text}`nb02_pooled_sb_distances:.3f` is not tied to the
# ICC.
#
# (sec-02-misbehaves)=
# ## Where ICC(A,k) stops behaving like a correlation
#
# A correlation lies between $-1$ and $1$. The ICC formulas are ratios of *estimated* variance
# components, and the estimates can be negative, so the ICCs need not. For two rankings the
# closed forms above show exactly where things go wrong ({numref}`fig-02-icc-vs-rho`). The
# pole of ICC(A,k), where its denominator is zero, and the perfectly reversed ranking:

# %%
pole = icc_ak_pole(n)
reversed_ranking = n + 1 - reference
reversed_icc_ak = agreement(reference, reversed_ranking)["ICC(A,k)"]
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always", cs.DegenerateDataWarning)
    reversed_cs = cs.icc(pd.DataFrame({"item": item_names(n) * 2, "rater": ["reference"] * n + ["reversed"] * n,
                                       "rank": np.concatenate([reference, reversed_ranking])}),
                         "item", "rater", "rank").set_index("Type")["ICC"]
assert np.isnan(reversed_cs["ICC(A,k)"]) and any(issubclass(w.category, cs.DegenerateDataWarning) for w in caught)
assert np.isclose(reversed_icc_ak, n)                          # the formula (and pingouin): exactly n
assert (table["defined"] == (table["rho"] > pole + 1e-12)).all()
pd.Series({"pole (rho)": pole, "ICC(A,k) of the reversed ranking": reversed_icc_ak,
           "clpips.stats.icc of the reversed ranking": reversed_cs["ICC(A,k)"]})

# %% [markdown]
# Every ranking of the items again, grouped by its $\rho$, with ICC(A,k) as the formula (and
# `pingouin`) gives it and as `clpips.stats.icc` gives it (a dash: no value, where the denominator is
# not positive):

# %%
shown = table.loc[np.isfinite(table["ICC(A,k)"]), "ICC(A,k)"]
glue_all({"pole": float(pole), "reversed_icc_ak": float(reversed_icc_ak), "icc_ak_max": float(shown.max()),
          "icc_ak_min": float(shown.min()), "n_undefined": int((~table["defined"]).sum()),
          "pole_items_0": 10, "pole_0": float(icc_ak_pole(10)),              # one set of 10 candidates
          "pole_items_1": 1000, "pole_1": float(icc_ak_pole(1000))}, prefix="nb02_")   # a pooled table
by_rho = (table.groupby("rho", sort=False)
          .agg(rankings=("ranking", "size"), **{"ICC(C,k)": ("ICC(C,k)", "first"),
               "ICC(A,k), formula and pingouin": ("ICC(A,k)", "first"), "defined": ("defined", "first")})
          .sort_index(ascending=False))
by_rho["ICC(A,k), clpips.stats"] = by_rho["ICC(A,k), formula and pingouin"].where(by_rho["defined"])
infinite = {-np.inf: "−∞", np.inf: "∞"}           # shown as such; "—": clpips.stats gives no value
view(by_rho.drop(columns="defined").astype(object).replace(infinite))

# %% tags=["remove-output"]
examples = {name: (summary.loc[name, "rho"], summary.loc[name, "ICC(A,k)"]) for name in ("R1", "R2")}
fig = plot_icc_vs_rho(table, n, examples=examples, bands=interpretation_scale("koo_li"))
glue("nb02_fig_icc_vs_rho", fig, display=False)
plt.close(fig)  # shown once: below in JupyterLab, where the text pastes it in the book
fig

# %% [markdown]
# ```{glue:figure} nb02_fig_icc_vs_rho
# :name: fig-02-icc-vs-rho
#
# ICC(C,k) (black) and ICC(A,k) (red) of the reference against every ranking of its items,
# plotted against the two rankings' Spearman $\rho$; marker size counts the rankings with that
# $\rho$, the curves are the closed forms. Top: the whole range; ICC(A,k)'s formula divides by
# zero at the dotted line, and in the grey region its denominator is negative. Bottom: $\rho \geq 0$
# over the Koo & Li bands, with R1 and R2 marked.
# ```
#
# - **ICC(C,k) falls below $-1$** as soon as $\rho < -1/3$ (where $2\rho/(1+\rho) = -1$) and
#   towards $-\infty$ as $\rho \to -1$; for a perfectly reversed ranking the item means are
#   all equal, $MS_R = 0$, and it is $-\infty$.
# - **ICC(A,k) divides by zero** at $\rho = -(n-1)/(n+1)$, here {glue:text}`nb02_pole:.2f`,
#   where $MS_R = MS_E/n$. Between that pole and $0$ it plunges towards $-\infty$; the lowest
#   finite value among the rankings here is {glue:text}`nb02_icc_ak_min:.1f`.
# - **Below the pole ICC(A,k) turns positive and exceeds 1.** Numerator and denominator are
#   both negative, and the formula reports *high agreement* for rankings that are nearly
#   reversed: the highest finite value among the rankings here is
#   {glue:text}`nb02_icc_ak_max:.1f`, and for the exactly reversed ranking
#   $2\rho/(1+\rho-(1-\rho)/n)$ at $\rho = -1$ is $n =$ {glue:text}`nb02_reversed_icc_ak:.0f`.
#   `pingouin.intraclass_corr` returns these values as they come; `clpips.stats.icc` returns
#   `NaN` with a `DegenerateDataWarning` for the {glue:text}`nb02_n_undefined:d` rankings whose
#   denominator is zero or negative.
#
# Why it happens: $MS_R - MS_E$ estimates (a multiple of) the variance *between items*, and the
# ANOVA estimate goes negative when the two raters disagree more than the items differ, which
# is what a negative $\rho$ means for rankings. A ratio of variance estimates with a negative
# estimate in it is no longer a proportion of variance.
#
# How much this matters depends on $n$. The pole $-(n-1)/(n+1)$ moves towards $-1$ as items
# are added: {glue:text}`nb02_pole_0:.3f` for a single set of {glue:text}`nb02_pole_items_0:d`
# candidates and {glue:text}`nb02_pole_1:.4f` for {glue:text}`nb02_pole_items_1:,d` pooled items.
# A pooled evaluation like the paper's is safe unless a metric is almost perfectly backwards;
# an ICC(A,k) computed *per set* can report a high value for a metric that orders the set
# nearly in reverse. Look at $\rho$ (or at the sign of $MS_R - MS_E$) before trusting an ICC.
#
# ## Summary
#
# - Spearman's $\rho$ of two untied rankings is $1 - 6\sum d_i^2 / (n(n^2-1))$; ICC(A,k) comes
#   from the two-way ANOVA of the items $\times$ raters table of ranks.
# - For rankings the between-rater mean square $MS_C$ is exactly zero: raters who hand out the
#   same ranks cannot differ in their mean.
# - Then ICC(C,k) $= 2\rho/(1+\rho)$ exactly, and ICC(A,k) $= 2\rho/(1+\rho-(1-\rho)/n)$, which
#   tends to the same value as $n$ grows. The paper's reported ICCs are this function of its
#   reported $\rho$, truncated to two decimals: they add no information beyond $\rho$.
# - ICC(A,k) is not bounded by $\pm 1$: for $\rho$ below $-(n-1)/(n+1)$ its formula reports
#   values above 1, for a reversed ranking exactly $n$. `clpips.stats.icc` returns `NaN` there.
# - The verbal labels depend on the scale, and with few items the confidence interval spans
#   several of them.
