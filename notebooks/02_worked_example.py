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
# This chapter computes everything by hand, step by step, and checks each result against
# `scipy`, `pingouin` and `clpips.stats`. Along the way it finds that, for two rankings, the
# ICC is a function of $\rho$ alone, and it shows where ICC(A,k) stops behaving like a
# correlation.

# %% tags=["parameters"]
from clpips.defaults import DEFAULTS

example_reference = DEFAULTS.example_reference
example_r1 = DEFAULTS.example_r1
example_r2 = DEFAULTS.example_r2
seed = DEFAULTS.seed

# %% tags=["hide-input"]
import warnings

import numpy as np
import pandas as pd
import matplotlib.pyplot as plt
import pingouin as pg
from IPython.display import display
from matplotlib_inline.backend_inline import set_matplotlib_formats
from myst_nb import glue
from scipy import stats

import clpips.stats as cs
from clpips.book import paper
from clpips.book import worked_example as we
from clpips.book.plots.worked_example import plot_icc_vs_rho, plot_rankings

# pingouin 0.7 calls DataFrame.dropna(inplace=...), which pandas 3 deprecates: expected, not ours
warnings.filterwarnings("ignore", category=FutureWarning, module="pingouin")
set_matplotlib_formats("png")  # glued figures carry a PNG even under MPLBACKEND=Agg

reference = we.parse_ranking(example_reference, "example_reference")
r1 = we.parse_ranking(example_r1, "example_r1")
r2 = we.parse_ranking(example_r2, "example_r2")
rankings = {"reference": reference, "R1": r1, "R2": r2}
ranks = we.ratings_table(rankings).astype(int)
n = len(reference)

glue("nb02_n", n, display=False)
glue("nb02_reference", we.ranking_text(reference), display=False)
glue("nb02_r1", we.ranking_text(r1), display=False)
glue("nb02_r2", we.ranking_text(r2), display=False)
fig = plot_rankings(rankings)
glue("nb02_fig_rankings", fig, display=False)
plt.close(fig)
ranks

# %% [markdown]
# ## The rankings
#
# A ranking gives each image its rank, 1 for the image judged most similar to the target.
# Written as the ranks of A, B, C, D in turn, the reference is
# ({glue:text}`nb02_reference`), R1 is ({glue:text}`nb02_r1`) and R2 is ({glue:text}`nb02_r2`):
# the table above, and {numref}`fig-02-rankings`.
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
# The differences of R1 and of R2 from the reference:

# %%
steps_r1 = we.rank_difference_table(reference, r1, names=("reference", "R1"))
steps_r2 = we.rank_difference_table(reference, r2, names=("reference", "R2"))
display(steps_r1, steps_r2)

rho_hand = {}
for name, steps in (("R1", steps_r1), ("R2", steps_r2)):
    sum_d2 = steps["d²"].sum()
    rho_hand[name] = 1 - 6 * sum_d2 / (n * (n ** 2 - 1))           # the formula above
    other = rankings[name]
    # checks: scipy, clpips.stats (one set, the other ranking as "distances"), the library
    assert np.isclose(rho_hand[name], stats.spearmanr(reference, other).statistic)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the per-set t-test of a single set is undefined
        pooled = cs.spearman(None, np.zeros(n), reference, other).loc["pooled", "r"]
    assert np.isclose(rho_hand[name], pooled)
    assert np.isclose(rho_hand[name], we.spearman_by_hand(reference, other))
    glue(f"nb02_{name.lower()}_sum_d2", int(sum_d2), display=False)
    glue(f"nb02_{name.lower()}_rho", float(rho_hand[name]), display=False)
glue("nb02_rho_denominator", n * (n ** 2 - 1), display=False)

# %% [markdown]
# For R1, $\sum d_i^2 =$ {glue:text}`nb02_r1_sum_d2:d`, so
# $\rho = 1 - 6 \times$ {glue:text}`nb02_r1_sum_d2:d` / {glue:text}`nb02_rho_denominator:d`
# $=$ {glue:text}`nb02_r1_rho:.3f`; for R2, $\sum d_i^2 =$ {glue:text}`nb02_r2_sum_d2:d` and
# $\rho =$ {glue:text}`nb02_r2_rho:.3f`. The code checks both against `scipy.stats.spearmanr`
# and `clpips.stats.spearman`.
#
# (sec-02-icc)=
# ## The ICC by hand
#
# An intraclass correlation asks how much of the variation in a table of ratings is variation
# *between the rated items* rather than disagreement between raters
# {cite:p}`shrout1979icc,mcgraw1996icc`. Here the items are the $n$ images (rows) and the
# raters are the two rankings (columns, $k = 2$); the ratings are ranks. Take the reference and
# R1:

# %%
Y = we.ratings_table({"reference": reference, "R1": r1})
n_items, k = Y.shape

grand_mean = Y.to_numpy().mean()
item_means = Y.mean(axis=1)                     # row means
rater_means = Y.mean(axis=0)                    # column means
ss_items = k * ((item_means - grand_mean) ** 2).sum()
ss_raters = n_items * ((rater_means - grand_mean) ** 2).sum()
residuals = Y.sub(item_means, axis=0).sub(rater_means, axis=1) + grand_mean
ss_error = (residuals.to_numpy() ** 2).sum()
ss_total = ((Y.to_numpy() - grand_mean) ** 2).sum()
msr = ss_items / (n_items - 1)                  # MS between items (rows), df n - 1
msc = ss_raters / (k - 1)                       # MS between raters (columns), df k - 1
mse = ss_error / ((n_items - 1) * (k - 1))      # residual MS, df (n - 1)(k - 1)

# checks: the sums of squares add up; the library's ANOVA and clpips.stats agree
anova = we.two_way_anova(Y)
assert np.isclose(ss_items + ss_raters + ss_error, ss_total)
assert np.allclose([msr, msc, mse], [anova.msr, anova.msc, anova.mse])
ms = cs.mean_squares(Y.to_numpy())
assert np.allclose([msr, msc, mse], [ms.msb, ms.msj, ms.mse])

display(Y.assign(**{"item mean": item_means}),
        rater_means.to_frame("rater mean").T,
        anova.table())

for key, value in {"grand_mean": grand_mean, "ss_items": ss_items, "ss_raters": ss_raters,
                   "ss_error": ss_error, "ss_total": ss_total, "msr": msr, "msc": msc, "mse": mse}.items():
    glue(f"nb02_{key}", float(value), display=False)
glue("nb02_df_items", n_items - 1, display=False)
glue("nb02_df_error", (n_items - 1) * (k - 1), display=False)

# %% [markdown]
# Step by step, with $y_{ij}$ the rank rater $j$ gives item $i$:
#
# 1. The **grand mean** $\bar y$ is {glue:text}`nb02_grand_mean:.2f`; the **item means**
#    $\bar y_{i\cdot}$ and **rater means** $\bar y_{\cdot j}$ are in the tables above.
# 2. Between items: $SS_R = k \sum_i (\bar y_{i\cdot} - \bar y)^2 =$ {glue:text}`nb02_ss_items:.2f`,
#    on $n - 1 =$ {glue:text}`nb02_df_items:d` degrees of freedom, so
#    $MS_R =$ {glue:text}`nb02_msr:.4f`.
# 3. Between raters: $SS_C = n \sum_j (\bar y_{\cdot j} - \bar y)^2 =$
#    {glue:text}`nb02_ss_raters:.2f`, so $MS_C =$ {glue:text}`nb02_msc:.2f`.
# 4. Error: $SS_E = \sum_{ij} (y_{ij} - \bar y_{i\cdot} - \bar y_{\cdot j} + \bar y)^2 =$
#    {glue:text}`nb02_ss_error:.2f` on $(n-1)(k-1) =$ {glue:text}`nb02_df_error:d` degrees of
#    freedom, so $MS_E =$ {glue:text}`nb02_mse:.4f`. The three add up to the total,
#    $SS_T =$ {glue:text}`nb02_ss_total:.2f`.
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
# \text{ICC(A,1)} &= \frac{MS_R - MS_E}{MS_R + (k-1)\,MS_E + \tfrac{k}{n}(MS_C - MS_E)}, &
# \text{ICC(A,k)} &= \frac{MS_R - MS_E}{MS_R + (MS_C - MS_E)/n}, \\[4pt]
# \text{ICC(C,1)} &= \frac{MS_R - MS_E}{MS_R + (k-1)\,MS_E}, &
# \text{ICC(C,k)} &= \frac{MS_R - MS_E}{MS_R}.
# \end{aligned}
# $$
#
# *A* stands for absolute agreement (a rater's systematic offset counts as disagreement), *C*
# for consistency (offsets are ignored); *1* is the reliability of one rater, *k* that of the
# mean of the $k$ raters. The paper reports ICC(A,k).

# %%
with np.errstate(divide="ignore", invalid="ignore"):
    icc_hand = {
        "ICC(A,1)": (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n_items),
        "ICC(A,k)": (msr - mse) / (msr + (msc - mse) / n_items),
        "ICC(C,1)": (msr - mse) / (msr + (k - 1) * mse),
        "ICC(C,k)": (msr - mse) / msr,
    }

# checks: pingouin, clpips.stats.icc and the library's formulas
long = Y.reset_index().melt(id_vars="item", var_name="rater", value_name="rank")
with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)  # pingouin divides by zero on degenerate rankings
    icc_pg = pg.intraclass_corr(long, targets="item", raters="rater", ratings="rank").set_index("Type")
    icc_cs = cs.icc(long, targets="item", raters="rater", ratings="rank").set_index("Type")
icc_lib = we.icc_formulas(msr, msc, mse, n_items, k)
for variant, value in icc_hand.items():
    assert np.isclose(value, icc_pg.loc[variant, "ICC"]), variant
    assert np.isclose(value, icc_lib[variant]), variant
    if np.isfinite(icc_cs.loc[variant, "ICC"]):     # clpips.stats gives NaN where a denominator is <= 0
        assert np.isclose(value, icc_cs.loc[variant, "ICC"]), variant
    glue(f"nb02_hand_{we.VARIANT_KEYS[variant]}", float(value), display=False)

pd.DataFrame({"by hand": icc_hand, "pingouin": icc_pg.loc[list(icc_hand), "ICC"],
              "clpips.stats": icc_cs.loc[list(icc_hand), "ICC"]})

# %% [markdown]
# For R1, for instance,
# ICC(A,k) $=$ ({glue:text}`nb02_msr:.4f` $-$ {glue:text}`nb02_mse:.4f`) /
# ({glue:text}`nb02_msr:.4f` $+$ ({glue:text}`nb02_msc:.0f` $-$ {glue:text}`nb02_mse:.4f`) /
# {glue:text}`nb02_n:d`) $=$ {glue:text}`nb02_hand_icc_ak:.3f`, and
# ICC(C,k) $=$ {glue:text}`nb02_hand_icc_ck:.3f`. The same steps for both rankings, with
# `clpips.book.worked_example.compare_rankings`:

# %%
summary = we.compare_rankings(reference, {"R1": r1, "R2": r2})
for name, other in (("R1", r1), ("R2", r2)):          # each row checked against pingouin again
    long_pair = we.ratings_table({"reference": reference, name: other}).reset_index().melt(
        id_vars="item", var_name="rater", value_name="rank")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        pg_pair = pg.intraclass_corr(long_pair, "item", "rater", "rank").set_index("Type")["ICC"]
    for variant in we.VARIANTS:
        assert np.isclose(summary.loc[name, variant], pg_pair[variant]), (name, variant)
    assert np.isclose(summary.loc[name, "rho"], rho_hand[name])
    glue(f"nb02_{name.lower()}_icc_ak", float(summary.loc[name, "ICC(A,k)"]), display=False)
    glue(f"nb02_{name.lower()}_icc_ck", float(summary.loc[name, "ICC(C,k)"]), display=False)
    glue(f"nb02_{name.lower()}_koo_li", summary.loc[name, "Koo & Li"], display=False)
    glue(f"nb02_{name.lower()}_cicchetti", summary.loc[name, "Cicchetti"], display=False)
summary.round(3)

# %% [markdown]
# (sec-02-scales)=
# ## Reading an ICC: two rules of thumb
#
# Verbal labels for ICC values come from two published scales, {cite:t}`koo2016icc` (which the
# paper uses) and the older {cite:t}`cicchetti1994guidelines`. Their bands, as `clpips.stats`
# reads them:

# %%
scales = pd.concat({name: cs.interpretation_scale(name).set_index("label")[["interval"]]
                    for name in ("koo_li", "cicchetti")}, names=["scale"])
scales

# %%
ci = {variant: icc_cs.loc[variant, "CI95"] for variant in ("ICC(A,1)", "ICC(A,k)", "ICC(C,k)")}
ci_pg = icc_pg.loc["ICC(A,k)", "CI95"]                       # pingouin rounds its limits to 2 decimals
assert np.allclose(ci["ICC(A,k)"], ci_pg, atol=0.005)
# ICC(A,k)'s limits are the Spearman-Brown step-ups of ICC(A,1)'s (McGraw & Wong 1996, Table 7)
assert np.allclose(ci["ICC(A,k)"], we.spearman_brown(ci["ICC(A,1)"], k))
for variant, (lo, hi) in ci.items():
    glue(f"nb02_ci_{we.VARIANT_KEYS[variant]}_lo", float(lo), display=False)
    glue(f"nb02_ci_{we.VARIANT_KEYS[variant]}_hi", float(hi), display=False)
glue("nb02_ci_icc_ck_lo_label", cs.koo_li_label(ci["ICC(C,k)"][0]), display=False)
glue("nb02_ci_icc_ck_hi_label", cs.koo_li_label(ci["ICC(C,k)"][1]), display=False)

# %% [markdown]
# R1's ICC(A,k) of {glue:text}`nb02_r1_icc_ak:.2f` is *{glue:text}`nb02_r1_koo_li`* on Koo &
# Li's scale and *{glue:text}`nb02_r1_cicchetti`* on Cicchetti's; R2's
# {glue:text}`nb02_r2_icc_ak:.2f` is *{glue:text}`nb02_r2_koo_li`* and
# *{glue:text}`nb02_r2_cicchetti`*. (We chose the default R1 and R2 so that the Koo & Li labels
# are the paper's "moderate" and "poor".) The same number gets different words on the two
# scales, so a label means little without its scale.
#
# Koo & Li themselves advise judging the *confidence interval*, not the point estimate. With
# {glue:text}`nb02_n:d` items it is wide: the 95% interval of R1's ICC(C,k) runs from
# {glue:text}`nb02_ci_icc_ck_lo:.2f` (*{glue:text}`nb02_ci_icc_ck_lo_label`*) to
# {glue:text}`nb02_ci_icc_ck_hi:.2f` (*{glue:text}`nb02_ci_icc_ck_hi_label`*). The interval
# that `pingouin` and `clpips.stats` both report for R1's ICC(A,k), from
# {glue:text}`nb02_ci_icc_ak_lo:.2f` to {glue:text}`nb02_ci_icc_ak_hi:.2f`, is stranger still.
# Its limits are the Spearman–Brown step-ups $kL/(1+(k-1)L)$ of the limits $L$ of ICC(A,1)'s
# interval, here {glue:text}`nb02_ci_icc_a1_lo:.2f` to {glue:text}`nb02_ci_icc_a1_hi:.2f`, and
# a lower limit below $-1$ steps up to a "lower" limit above $+1$. A handful of images cannot
# tell "moderate" from much else: the example teaches the arithmetic, not a verdict.
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
# \text{ICC(C,k)} = \frac{MS_R - MS_E}{MS_R} = \frac{2\rho}{1+\rho},
# \qquad
# \text{ICC(A,k)} = \frac{MS_R - MS_E}{MS_R - MS_E/n} = \frac{2\rho}{1 + \rho - (1-\rho)/n}.
# $$
#
# So **ICC(C,k) is exactly the Spearman–Brown step-up of $\rho$ to two raters**,
# $2\rho/(1+\rho)$: the reliability of the average of two "raters" that correlate $\rho$. And
# ICC(A,k), the paper's statistic, is *not* quite the same: $MS_C = 0$ removes the rater
# offsets from its denominator but leaves the $-MS_E/n$ there, so for $0 < \rho < 1$ it is a
# little larger than ICC(C,k), and the gap closes as the number of items $n$ grows. It is
# tempting to read "$MS_C = 0$" as "ICC(A,k) = ICC(C,k)"; the example shows the difference.

# %%
for name in ("R1", "R2"):
    rho = summary.loc[name, "rho"]
    assert np.isclose(summary.loc[name, "ICC(C,k)"], we.icc_ck_from_rho(rho))     # 2 rho / (1 + rho)
    assert np.isclose(summary.loc[name, "ICC(A,k)"], we.icc_ak_from_rho(rho, n))  # 2 rho / (1 + rho - (1 - rho) / n)
    glue(f"nb02_{name.lower()}_spearman_brown", float(we.icc_ck_from_rho(rho)), display=False)

table = we.permutation_table(reference, seed=seed)         # every ranking of the n items
rho_all = table["rho"].to_numpy()
inner = rho_all > -1                                       # at rho = -1 both are -inf (MSR = 0)
gap_ck = np.abs(table["ICC(C,k)"][inner] - we.icc_ck_from_rho(rho_all[inner])).max()
finite = np.isfinite(table["ICC(A,k)"].to_numpy())
gap_ak = np.abs(table["ICC(A,k)"][finite] - we.icc_ak_from_rho(rho_all[finite], n)).max()
assert gap_ck < 1e-12 and gap_ak < 1e-9
# ... and the hand formulas behind `table` against pingouin, ranking by ranking (all n! for n <= 5)
for text in table["ranking"].iloc[:: max(1, len(table) // 120)]:
    pair = we.ratings_table({"reference": reference, "other": we.parse_ranking(text)})
    pair_long = pair.reset_index().melt(id_vars="item", var_name="rater", value_name="rank")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        pg_icc = pg.intraclass_corr(pair_long, "item", "rater", "rank").set_index("Type")["ICC"]
    row = table.loc[table["ranking"] == text].iloc[0]
    assert np.allclose(row[list(we.VARIANTS)].astype(float), pg_icc[list(we.VARIANTS)], equal_nan=True), text

glue("nb02_n_rankings", len(table), display=False)
glue("nb02_gap_ck", float(gap_ck), display=False)
glue("nb02_gap_ak", float(gap_ak), display=False)

# %% [markdown]
# For R1, $2\rho/(1+\rho) =$ {glue:text}`nb02_r1_spearman_brown:.3f`, which is its ICC(C,k),
# while its ICC(A,k) is {glue:text}`nb02_r1_icc_ak:.3f`. Over all
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
reported = {m: (paper.value(f"{m}_spearman"), paper.value(f"{m}_icc_A_k")) for m in ("lpips", "clpips")}
headline = pd.DataFrame([
    {"metric": m.upper(), "reported rho": rho, "2 rho / (1 + rho)": we.icc_ck_from_rho(rho),
     "truncated to 2 decimals": np.floor(100 * we.icc_ck_from_rho(rho)) / 100, "reported ICC(A,k)": icc_ak}
    for m, (rho, icc_ak) in reported.items()]).set_index("metric")
for m in ("lpips", "clpips"):
    row = headline.loc[m.upper()]
    glue(f"nb02_paper_{m}_rho", float(row["reported rho"]), display=False)
    glue(f"nb02_paper_{m}_icc", float(row["reported ICC(A,k)"]), display=False)
    glue(f"nb02_paper_{m}_predicted", float(row["2 rho / (1 + rho)"]), display=False)
    glue(f"nb02_paper_{m}_truncated", float(row["truncated to 2 decimals"]), display=False)
rho_c = reported["clpips"][0]
for i, items in enumerate((100, 1000)):                        # two illustrative numbers of pooled items
    glue(f"nb02_gap_items_{i}", items, display=False)
    glue(f"nb02_gap_{i}", float(we.icc_ak_from_rho(rho_c, items) - we.icc_ck_from_rho(rho_c)), display=False)
headline.round(4)

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
# a metric's distance is a per-set offset plus the rank plus noise
# (`clpips.book.worked_example.pooled_rank_table`).

# %%
pooled = we.pooled_rank_table(seed=seed)
pairs = cs.metric_human_table(pooled, "set", "rank", "distance", candidate_col="candidate")
with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)
    pooled_icc = cs.icc(pairs, "target", "rater", "rating").set_index("Type")["ICC"]
wide = pairs.pivot(index="target", columns="rater", values="rating")
rho_ranks = stats.spearmanr(wide["human"], wide["metric"]).statistic            # within-set ranks, pooled
rho_distances = stats.spearmanr(pooled["rank"], pooled["distance"]).statistic   # raw distances, pooled
assert np.isclose(pooled_icc["ICC(C,k)"], we.icc_ck_from_rho(rho_ranks))
assert np.isclose(pooled_icc["ICC(A,k)"], we.icc_ak_from_rho(rho_ranks, len(wide)))
comparison = pd.DataFrame({
    "pooled rho": [rho_ranks, rho_distances],
    "2 rho / (1 + rho)": [we.icc_ck_from_rho(rho_ranks), we.icc_ck_from_rho(rho_distances)]},
    index=pd.Index(["metric ranks within each set", "raw distances"], name="rho computed on"))
glue("nb02_pooled_items", len(wide), display=False)
glue("nb02_pooled_sets", int(pooled["set"].nunique()), display=False)
glue("nb02_pooled_k", int(pooled.groupby("set").size().iloc[0]), display=False)
glue("nb02_pooled_rho_ranks", float(rho_ranks), display=False)
glue("nb02_pooled_rho_distances", float(rho_distances), display=False)
glue("nb02_pooled_icc_ak", float(pooled_icc["ICC(A,k)"]), display=False)
glue("nb02_pooled_icc_ck", float(pooled_icc["ICC(C,k)"]), display=False)
glue("nb02_pooled_sb_distances", float(we.icc_ck_from_rho(rho_distances)), display=False)
comparison.round(4)

# %% [markdown]
# The ICC is always computed on ranks (`clpips.stats.metric_human_table` turns distances into
# within-set ranks): on the {glue:text}`nb02_pooled_items:d` pooled items ICC(C,k) is
# {glue:text}`nb02_pooled_icc_ck:.4f` and ICC(A,k) {glue:text}`nb02_pooled_icc_ak:.4f`.
# $\rho$ on within-set ranks is {glue:text}`nb02_pooled_rho_ranks:.3f`, and its
# $2\rho/(1+\rho)$ is that ICC(C,k) exactly. $\rho$ on the raw distances is
# {glue:text}`nb02_pooled_rho_distances:.3f`: the set offsets, which the ICC never sees,
# lower it, and its $2\rho/(1+\rho) =$ {glue:text}`nb02_pooled_sb_distances:.3f` does not match
# the ICC.
#
# (sec-02-misbehaves)=
# ## Where ICC(A,k) stops behaving like a correlation
#
# A correlation lies between $-1$ and $1$. The ICC formulas are ratios of *estimated* variance
# components, and the estimates can be negative, so the ICCs need not. For two rankings the
# closed forms above show exactly where things go wrong ({numref}`fig-02-icc-vs-rho`):

# %%
pole = we.icc_ak_pole(n)
reversed_row = table.loc[table["rho"] == table["rho"].min()].iloc[0]
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always", cs.DegenerateDataWarning)
    reversed_cs = cs.icc(we.ratings_table({"reference": reference, "reversed": n + 1 - reference})
                         .reset_index().melt(id_vars="item", var_name="rater", value_name="rank"),
                         "item", "rater", "rank").set_index("Type")["ICC"]
assert np.isnan(reversed_cs["ICC(A,k)"]) and any(issubclass(w.category, cs.DegenerateDataWarning) for w in caught)
assert np.isclose(reversed_row["ICC(A,k)"], n)                 # the formula (and pingouin): exactly n
assert (table["defined"] == (table["rho"] > pole + 1e-12)).all()
glue("nb02_pole", float(pole), display=False)
glue("nb02_reversed_icc_ak", float(reversed_row["ICC(A,k)"]), display=False)
glue("nb02_icc_ak_max", float(table.loc[np.isfinite(table["ICC(A,k)"]), "ICC(A,k)"].max()), display=False)
glue("nb02_icc_ak_min", float(table.loc[np.isfinite(table["ICC(A,k)"]), "ICC(A,k)"].min()), display=False)
glue("nb02_n_undefined", int((~table["defined"]).sum()), display=False)
for i, items in enumerate((10, 1000)):                         # one set of 10 candidates; a pooled table
    glue(f"nb02_pole_items_{i}", items, display=False)
    glue(f"nb02_pole_{i}", float(we.icc_ak_pole(items)), display=False)
bands = cs.interpretation_scale("koo_li")
examples = {name: (summary.loc[name, "rho"], summary.loc[name, "ICC(A,k)"]) for name in ("R1", "R2")}
fig = plot_icc_vs_rho(table, n, examples=examples, bands=bands)
glue("nb02_fig_icc_vs_rho", fig, display=False)
plt.close(fig)

by_rho = (table.groupby("rho", sort=False)
          .agg(rankings=("ranking", "size"), **{"ICC(C,k)": ("ICC(C,k)", "first"),
               "ICC(A,k), formula and pingouin": ("ICC(A,k)", "first"), "defined": ("defined", "first")})
          .sort_index(ascending=False))
by_rho["ICC(A,k), clpips.stats"] = by_rho["ICC(A,k), formula and pingouin"].where(by_rho["defined"])
by_rho.drop(columns="defined").round(3)

# %% [markdown]
# ```{glue:figure} nb02_fig_icc_vs_rho
# :name: fig-02-icc-vs-rho
#
# ICC(C,k) (black) and ICC(A,k) (red) of the reference against every ranking of its items,
# plotted against the two rankings' Spearman $\rho$; marker size counts the rankings with that
# $\rho$, the curves are the closed forms. Left: the whole range; ICC(A,k)'s formula divides by
# zero at the dotted line, and in the grey region its denominator is negative. Right: $\rho \geq 0$
# over the Koo & Li bands, with R1 and R2 marked.
# ```
#
# - **ICC(C,k) falls below $-1$** as soon as $\rho < -1/3$ (where $2\rho/(1+\rho) = -1$) and
#   towards $-\infty$ as $\rho \to -1$; for a perfectly reversed ranking the item means are
#   all equal, $MS_R = 0$, and it is $-\infty$.
# - **ICC(A,k) divides by zero** at $\rho = -(n-1)/(n+1)$, here {glue:text}`nb02_pole:.2f`,
#   where $MS_R = MS_E/n$. Between that pole and $0$ it plunges below $-1$ (down to
#   {glue:text}`nb02_icc_ak_min:.1f` here).
# - **Below the pole ICC(A,k) turns positive and exceeds 1.** Numerator and denominator are
#   both negative, and the formula reports *high agreement* for rankings that are nearly
#   reversed: up to {glue:text}`nb02_icc_ak_max:.1f` here, and for the exactly reversed
#   ranking $2\rho/(1+\rho-(1-\rho)/n)$ at $\rho = -1$, which is $n =$
#   {glue:text}`nb02_reversed_icc_ak:.0f`. `pingouin.intraclass_corr` returns these values as
#   they come; `clpips.stats.icc` returns NaN with a `DegenerateDataWarning` for the
#   {glue:text}`nb02_n_undefined:d` rankings whose denominator is zero or negative.
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
#   values above 1, for a reversed ranking exactly $n$. `clpips.stats.icc` returns NaN there.
# - The verbal labels depend on the scale, and with few items the confidence interval spans
#   several of them.
