"""Paired bootstrap over ranking sets: is metric b closer to people than metric a?

Whole ranking sets are resampled with replacement and both metrics are scored on the *same* sets,
so Δ = b − a is judged against the set-to-set variability both share. Per resample and metric:
ICC(A,k) of the metric-versus-human table (:func:`~clpips.stats.icc.metric_human_table`) and the
pooled Spearman's rho of distance with human rank. A set drawn twice counts as two sets, exactly as
if the resampled table were built by concatenation with fresh set ids.

Speed: nothing is concatenated. A resample is a vector of set counts ``w``; the ANOVA sums of
squares are ``w @ per_set_sums``, and the pooled midranks are cumulative sums of the weights in
value order. Twice a midrank is an integer, so rank covariances and variances are exact int64 sums
(``w @ counts`` over (human value, metric value) cells when both take few values). 10,000
resamples of 300 sets x 10 candidates take about a second on two cores (``benchmarks/bench_bootstrap.py``).
"""
from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, replace
from typing import Literal

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri

from clpips.defaults import DEFAULTS
from clpips.stats.icc import (DegenerateDataWarning, MeanSquares, icc_from_matrix, icc_from_mean_squares,
                              metric_human_table)
from clpips.stats.rank_correlation import spearman_rho
from clpips.stats.tables import check_table

__all__ = ["paired_bootstrap", "BootstrapSettings", "PairedBootstrapResult", "bootstrap_counts",
           "resampled_statistics", "metric_statistics", "percentile_interval", "bca_interval", "one_sided_pvalue"]

#: resamples drawn per call of the random generator (fixes the stream: see bootstrap_counts)
_DRAW_CHUNK = 1000
#: about this many elements per (resample x row) working array
_WORK_ELEMENTS = 1 << 21
#: a variable with at most this many distinct values (human ranks 1..m) is ranked through a
#: sets x values count matrix; one with more (distances) through its rows in value order
_FEW_VALUES = 64
#: most items a resample may hold: the int64 rank sums are bounded by 4 n^3 < 2^63
_MAX_ITEMS = 1_300_000


# --------------------------------------------------------------------------- resampling
def _iter_counts(n_sets: int, n_boot: int, seed: int | None) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(seed)
    for start in range(0, n_boot, _DRAW_CHUNK):
        size = min(_DRAW_CHUNK, n_boot - start)
        idx = rng.integers(0, n_sets, size=(size, n_sets))
        flat = (idx + n_sets * np.arange(size)[:, None]).ravel()
        yield np.bincount(flat, minlength=size * n_sets).reshape(size, n_sets)


def bootstrap_counts(n_sets: int, n_boot: int = DEFAULTS.n_boot, seed: int | None = DEFAULTS.seed) -> np.ndarray:
    """The resamples of :func:`paired_bootstrap`: ``counts[b, s]``, how often set ``s`` (in ``result.set_ids``
    order) is drawn in resample ``b`` (``default_rng(seed).integers``, blocks of 1,000 resamples).
    """
    if n_sets < 1 or n_boot < 1:
        raise ValueError(f"need n_sets >= 1 and n_boot >= 1, got n_sets={n_sets}, n_boot={n_boot}")
    return np.vstack(list(_iter_counts(n_sets, n_boot, seed)))


def resampled_statistics(data: pd.DataFrame, set_col: str, rank_col: str, metric_cols: list[str],
                         counts: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """ICC(A,k) and pooled rho (``icc_<column>``, ``rho_<column>``) of several distance columns on given
    resamples (``counts``: resamples x sets, sets in the order of the returned ``set_ids``; a row of ones
    is the table itself): the engine of :func:`paired_bootstrap`, for callers that draw their own.
    """
    columns = {"set_col": set_col, "rank_col": rank_col, **{f"metric_{i}": c for i, c in enumerate(metric_cols)}}
    table = check_table(data, columns, numeric=[p for p in columns if p != "set_col"], caller="resampled_statistics")
    prep = _prepare(table, {c: f"metric_{i}" for i, c in enumerate(metric_cols)})
    counts = np.atleast_2d(np.asarray(counts))
    if counts.shape[1] != len(prep.set_ids):
        raise ValueError(f"resampled_statistics: counts has {counts.shape[1]} columns for {len(prep.set_ids)} sets")
    return prep.set_ids, _evaluate(prep, counts)


# --------------------------------------------------------------------------- per-set statistics
@dataclass(frozen=True)
class _PooledRanker:
    """Midranks of one variable in a weighted (resampled) pooled table, in integers.

    Rows sorted by value and grouped into ties: a group of weight ``W`` after ``L`` lighter rows has
    midrank ``L + (W + 1) / 2``; twice that, ``2 cumsum(W) - W + 1``, is an integer. A variable with few
    distinct values (human ranks) keeps a sets x values count matrix (``indicator``); one with many
    (distances) its rows in value order (``order``), with tie groups (``starts``) only if there are ties.
    """

    group_of_row: np.ndarray          # (N,) tie group of each row; groups in value order
    indicator: np.ndarray | None      # (S, G) rows of set s in group g       [few values]
    order: np.ndarray | None          # (N,) rows in value order              [many values]
    code_sorted: np.ndarray | None    # (N,) set of each row in value order   [many values]
    starts: np.ndarray | None         # (G,) first sorted row of each tie group, None without ties

    @classmethod
    def build(cls, values: np.ndarray, code: np.ndarray, n_sets: int) -> "_PooledRanker":
        uniq, group_of_row = np.unique(values, return_inverse=True)
        n_groups = len(uniq)
        if n_groups <= _FEW_VALUES:
            indicator = np.zeros((n_sets, n_groups))
            np.add.at(indicator, (code, group_of_row), 1.0)
            return cls(group_of_row, indicator, None, None, None)
        order = np.argsort(group_of_row, kind="stable")
        sorted_groups = group_of_row[order]
        starts = None
        if n_groups < len(values):
            starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
        return cls(group_of_row, None, order, code[order], starts)

    def group_weights(self, w: np.ndarray) -> np.ndarray:
        """Total weight of each tie group, (B, G) int64, groups in value order."""
        if self.indicator is not None:
            return np.rint(w.astype(float) @ self.indicator).astype(np.int64)
        sorted_weights = np.take(w, self.code_sorted, axis=1)  # np.take: C-ordered, unlike w[:, idx]
        if self.starts is None:
            return sorted_weights
        return np.add.reduceat(sorted_weights, self.starts, axis=1)

    @staticmethod
    def doubled(group_weights: np.ndarray) -> np.ndarray:
        """Twice the midrank of each group: 2 cumsum(W) - W + 1, (B, G) int64."""
        return 2 * np.cumsum(group_weights, axis=1) - group_weights + 1


def _cubes(group_weights: np.ndarray) -> np.ndarray:
    return (group_weights * group_weights * group_weights).sum(axis=1)


@dataclass(frozen=True)
class _Prepared:
    """Everything a resample needs, computed once from the ranking table."""

    set_ids: np.ndarray
    code: np.ndarray                   # (N,) set index of each row
    set_sizes: np.ndarray              # (S,) int64
    icc_stats: dict[str, np.ndarray]   # metric -> (S, 4): sum h, sum m, sum (h+m)^2, sum (h-m)^2
    human: _PooledRanker
    metric: dict[str, _PooledRanker] = field(default_factory=dict)
    #: metric -> (S, G_human * G_metric) rows of set s with each (human value, metric value),
    #: when both have few values (e.g. metrics given as ranks within sets)
    joint: dict[str, np.ndarray] = field(default_factory=dict)


def _prepare(table: pd.DataFrame, metrics: dict[str, str]) -> _Prepared:
    code, set_ids = pd.factorize(table["set_col"], sort=True)
    n_sets = len(set_ids)
    set_sizes = np.bincount(code, minlength=n_sets).astype(np.int64)
    if n_sets * set_sizes.max() > _MAX_ITEMS:
        raise ValueError(f"paired_bootstrap: a resample could hold {n_sets * set_sizes.max()} items, more than "
                         f"the {_MAX_ITEMS} for which the integer rank sums are exact")
    human = table["rank_col"].to_numpy(dtype=float)
    human_ranker = _PooledRanker.build(human, code, n_sets)
    shift = human.mean()  # the ANOVA is shift-invariant; centring keeps the sums small
    icc_stats, rankers, joint = {}, {}, {}
    for name, param in metrics.items():
        metric_rank = table.groupby("set_col", sort=False)[param].rank(method="average").to_numpy(float)
        h, m = human - shift, metric_rank - shift
        per_row = np.column_stack([h, m, (h + m) ** 2, (h - m) ** 2])
        sums = np.zeros((n_sets, 4))
        np.add.at(sums, code, per_row)
        icc_stats[name] = sums
        ranker = _PooledRanker.build(table[param].to_numpy(float), code, n_sets)
        rankers[name] = ranker
        if human_ranker.indicator is not None and ranker.indicator is not None:
            n_metric = ranker.indicator.shape[1]
            cells = np.zeros((n_sets, human_ranker.indicator.shape[1] * n_metric))
            np.add.at(cells, (code, human_ranker.group_of_row * n_metric + ranker.group_of_row), 1.0)
            joint[name] = cells
    return _Prepared(np.asarray(set_ids), code, set_sizes, icc_stats, human_ranker, rankers, joint)


def _evaluate(prep: _Prepared, counts: np.ndarray) -> dict[str, np.ndarray]:
    """ICC(A,k) and pooled rho of each metric for each row of ``counts`` (resamples x sets)."""
    counts = np.asarray(counts)
    if counts.dtype.kind not in "iu" or counts.min() < 0:
        raise ValueError("counts must be non-negative integers (how often each set is drawn)")
    counts = counts.astype(np.int64)
    step = max(1, _WORK_ELEMENTS // max(len(prep.code), 1))
    parts = [_evaluate_block(prep, counts[start:start + step]) for start in range(0, len(counts), step)]
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def _evaluate_block(prep: _Prepared, w: np.ndarray) -> dict[str, np.ndarray]:
    n = w @ prep.set_sizes                      # items (targets) = rows of the resampled table
    n_float = n.astype(float)
    w_float = w.astype(float)
    result = {}
    # ICC(A,k), two raters: sums of squares from weighted per-set sums
    for name, per_set in prep.icc_stats.items():
        h_sum, m_sum, s_sq, d_sq = (w_float @ per_set).T
        total = h_sum + m_sum
        ssb = (s_sq - total**2 / n_float) / 2          # k * sum_i (row mean - grand)^2
        ssj = (h_sum - m_sum) ** 2 / (2 * n_float)     # n * sum_j (col mean - grand)^2
        sse = (d_sq - (h_sum - m_sum) ** 2 / n_float) / 2
        ms = MeanSquares.from_sums_of_squares(ssb, ssj, sse, n_float, 2)
        result[f"icc_{name}"] = icc_from_mean_squares(ms, "ICC(A,k)")
    # pooled Spearman = Pearson correlation of the weighted midranks R_h, R_m (exact integer sums):
    #   4 cov = sum_rows W (2R_h)(2R_m) - n (n + 1)^2,   12 ss = n^3 - sum_tie_groups W^3
    human = prep.human
    human_weights = human.group_weights(w)
    human_doubled = _PooledRanker.doubled(human_weights)
    ss_human = n**3 - _cubes(human_weights)
    for name, ranker in prep.metric.items():
        dot, cubes = _rank_product(prep, name, ranker, w, human_doubled)
        cov4 = dot - n * (n + 1) ** 2
        ss_metric = n**3 - cubes
        denominator = np.sqrt(ss_human.astype(float) * ss_metric.astype(float)) / 3  # 4 sqrt(ss_h ss_m)
        defined = denominator > 0                               # 0: a side is constant, rho undefined
        result[f"rho_{name}"] = np.where(defined, cov4 / np.where(defined, denominator, 1.0), np.nan)
    return result


def _rank_product(prep: _Prepared, name: str, ranker: _PooledRanker, w: np.ndarray,
                  human_doubled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sum over rows of W 2R_h 2R_m, sum over the metric's tie groups of W^3), per resample."""
    human = prep.human
    if name in prep.joint:
        # few human and metric values: sum over (human value, metric value) cells, no per-row work
        metric_weights = ranker.group_weights(w)
        n_human, n_metric = human_doubled.shape[1], metric_weights.shape[1]
        cells = np.rint(w.astype(float) @ prep.joint[name]).astype(np.int64).reshape(len(w), n_human, n_metric)
        metric_doubled = _PooledRanker.doubled(metric_weights)
        dot = np.einsum("bh,bhm,bm->b", human_doubled, cells, metric_doubled)
        return dot, _cubes(metric_weights)
    if ranker.order is None:
        # few metric values but many human values: per row, in row order
        w_rows = np.take(w, prep.code, axis=1)
        human_rows = np.take(human_doubled, human.group_of_row, axis=1)
        metric_weights = ranker.group_weights(w)
        metric_rows = np.take(_PooledRanker.doubled(metric_weights), ranker.group_of_row, axis=1)
        return np.einsum("ij,ij->i", w_rows * human_rows, metric_rows), _cubes(metric_weights)
    # many metric values (distances): per row, in the metric's value order
    sorted_weights = np.take(w, ranker.code_sorted, axis=1)
    weighted_human = sorted_weights * np.take(human_doubled, human.group_of_row[ranker.order], axis=1)
    if ranker.starts is None:
        # no ties: 2R_m = 2 cumsum(W) - W + 1, and the last two terms are known sums:
        # sum W 2R_h W = sum_groups 2R_h (sum of W^2 in the group);  sum W 2R_h = n (n + 1)
        n = w @ prep.set_sizes
        squares = human.group_weights(w * w)
        dot = (2 * np.einsum("ij,ij->i", weighted_human, np.cumsum(sorted_weights, axis=1))
               - (human_doubled * squares).sum(axis=1) + n * (n + 1))
        return dot, (w * w * w) @ prep.set_sizes
    metric_weights = np.add.reduceat(sorted_weights, ranker.starts, axis=1)
    sorted_group = ranker.group_of_row[ranker.order]
    metric_sorted = np.take(_PooledRanker.doubled(metric_weights), sorted_group, axis=1)
    return np.einsum("ij,ij->i", weighted_human, metric_sorted), _cubes(metric_weights)


# --------------------------------------------------------------------------- intervals and p-values
def percentile_interval(boot: np.ndarray, ci: float = DEFAULTS.ci) -> tuple[float, float]:
    """Percentile bootstrap interval: the (1-ci)/2 and (1+ci)/2 quantiles (NaN replicates dropped)."""
    boot = _finite(boot)
    alpha = 1 - ci
    lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def bca_interval(boot: np.ndarray, observed: float, jackknife: np.ndarray,
                 ci: float = DEFAULTS.ci) -> tuple[float, float]:
    """Bias-corrected and accelerated (BCa) interval (Efron & Tibshirani 1993, ch. 14).

    Quantiles of ``boot`` at ``Phi(z0 + (z0 + z) / (1 - a (z0 + z)))``, ``z = Phi^-1((1 -+ ci) / 2)``;
    ``z0 = Phi^-1(share of replicates below observed, ties counted half)`` (as scipy.stats.bootstrap),
    ``a = sum(d^3) / (6 sum(d^2)^1.5)``, ``d = mean(jackknife) - jackknife`` (leave one set out).
    NaN, with a :class:`DegenerateDataWarning`, when every replicate lies on one side of ``observed``.
    """
    boot, jackknife = _finite(boot), _finite(jackknife)
    share = (np.sum(boot < observed) + np.sum(boot <= observed)) / (2 * len(boot))
    if share in (0.0, 1.0) or not np.isfinite(observed):
        warnings.warn("BCa interval undefined: all bootstrap replicates lie on one side of the observed "
                      "value; returning NaN (use the percentile interval)", DegenerateDataWarning, stacklevel=2)
        return np.nan, np.nan
    z0 = ndtri(share)
    d = jackknife.mean() - jackknife
    spread = np.sum(d**2)
    accel = np.sum(d**3) / (6 * spread**1.5) if spread > 0 else 0.0
    alpha = 1 - ci
    z = ndtri(np.array([alpha / 2, 1 - alpha / 2]))
    levels = ndtr(z0 + (z0 + z) / (1 - accel * (z0 + z)))
    lo, hi = np.quantile(boot, levels)
    return float(lo), float(hi)


def one_sided_pvalue(delta_boot: np.ndarray) -> float:
    """Bootstrap p for H0: Δ <= 0 against Δ > 0: ``(1 + #{Δ* <= 0}) / (B + 1)`` (Davison & Hinkley 1997,
    eq. 4.11: the observed data count as one more resample, so p is never 0). NaN replicates are dropped.
    """
    delta = _finite(delta_boot)
    return float((1 + np.sum(delta <= 0)) / (len(delta) + 1))


def _finite(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    keep = ~np.isnan(values)
    if not keep.any():
        raise ValueError(f"no defined bootstrap values: all {values.size} are NaN (the statistic is undefined "
                         "on every resample)")
    if not keep.all():
        warnings.warn(f"{int((~keep).sum())} of {values.size} bootstrap values are NaN (undefined "
                      "statistic on that resample) and are left out", DegenerateDataWarning, stacklevel=3)
        values = values[keep]
    return values


# --------------------------------------------------------------------------- public API
def metric_statistics(data: pd.DataFrame, set_col: str, rank_col: str, distance_col: str) -> dict[str, float]:
    """ICC(A,k) and pooled rho of one metric computed directly (``{"icc", "rho"}``): the reference for
    :func:`paired_bootstrap`'s shortcuts.
    """
    long = metric_human_table(data, set_col, rank_col, distance_col)
    wide = long["rating"].to_numpy(float).reshape(-1, 2)  # rows alternate human, metric
    return {
        "icc": float(icc_from_matrix(wide, "ICC(A,k)")),
        "rho": float(spearman_rho(data[rank_col].to_numpy(float), data[distance_col].to_numpy(float))),
    }


_ROWS = {"icc": "ΔICC(A,k)", "rho": "Δrho"}
_OBSERVED_ROWS = {"icc": "ICC(A,k)", "rho": "rho"}


@dataclass(frozen=True)
class PairedBootstrapResult:
    """Output of :func:`paired_bootstrap` (Δ = b − a).

    ``observed``: index ``ICC(A,k)``, ``rho``, columns ``a``, ``b``, ``delta``; ``distribution``: one row
    per resample (``icc_a, icc_b, delta_icc, rho_a, rho_b, delta_rho``); ``intervals``: ``ci_low``,
    ``ci_high`` per column of ``distribution``; ``p_values``: :func:`one_sided_pvalue` of each Δ;
    ``jackknife``: leave-one-set-out values (``method="bca"``); ``set_ids``: :func:`bootstrap_counts`'s columns.
    """

    metric_a: str
    metric_b: str
    observed: pd.DataFrame
    distribution: pd.DataFrame
    intervals: pd.DataFrame
    p_values: pd.Series
    jackknife: pd.DataFrame | None
    n_boot: int
    ci: float
    seed: int | None
    method: str
    set_ids: np.ndarray

    def summary(self) -> pd.DataFrame:
        """One row per Δ: ``observed_a, observed_b, delta, ci_low, ci_high, p_value``."""
        ends = self.intervals.loc[["delta_icc", "delta_rho"]].to_numpy()
        frame = self.observed.rename(columns={"a": "observed_a", "b": "observed_b"})
        frame.index = pd.Index(list(_ROWS.values()), name="statistic")
        return frame.assign(ci_low=ends[:, 0], ci_high=ends[:, 1], p_value=self.p_values.to_numpy())


def _with_deltas(values: dict[str, np.ndarray]) -> pd.DataFrame:
    frame = {}
    for stat in ("icc", "rho"):
        frame[f"{stat}_a"] = values[f"{stat}_a"]
        frame[f"{stat}_b"] = values[f"{stat}_b"]
        frame[f"delta_{stat}"] = values[f"{stat}_b"] - values[f"{stat}_a"]
    return pd.DataFrame(frame)


@dataclass(frozen=True)
class BootstrapSettings:
    """How :func:`paired_bootstrap` resamples and which interval it reports.

    ``method``: ``"percentile"`` or ``"bca"`` (:func:`bca_interval`, jackknife over the resampled units).
    ``cluster_col``: resample clusters of sets (e.g. a target ranked by several people, one set each): a
    drawn cluster brings all its sets; without it sets of one cluster, being alike, understate the variability.
    """

    n_boot: int = DEFAULTS.n_boot
    ci: float = DEFAULTS.ci
    seed: int | None = DEFAULTS.seed
    method: Literal["percentile", "bca"] = "percentile"
    cluster_col: str | None = None

    def __post_init__(self) -> None:
        if self.method not in ("percentile", "bca"):
            raise ValueError(f"method must be 'percentile' or 'bca', got {self.method!r}")
        if not 0 < self.ci < 1:
            raise ValueError(f"ci must be in (0, 1), got {self.ci!r}")
        if int(self.n_boot) != self.n_boot or self.n_boot < 1:
            raise ValueError(f"n_boot must be a positive integer, got {self.n_boot!r}")
        object.__setattr__(self, "n_boot", int(self.n_boot))


def paired_bootstrap(data: pd.DataFrame, set_col: str, rank_col: str, metric_a_col: str, metric_b_col: str,
                     settings: BootstrapSettings | None = None, **options) -> PairedBootstrapResult:
    """Paired bootstrap over ranking sets of ICC(A,k) and pooled rho for two metrics.

    ``data``: one row per (set, candidate): set ids (the resampling unit), human ranks (1 = most similar)
    and the distances (lower = more similar) of a baseline ``metric_a_col`` and a challenger
    ``metric_b_col``; Δ = b − a > 0 means b agrees better with people. ``settings`` (or its fields as
    keywords): :class:`BootstrapSettings`. Each resample gives what building the resampled table and
    calling :func:`metric_statistics` gives, to rounding (tested). Interval and p describe variability
    over *sets* (target images), the people's ranks being fixed.
    """
    settings = _settings(settings, options)
    table = check_table(data, {"set_col": set_col, "rank_col": rank_col, "metric_a_col": metric_a_col,
                               "metric_b_col": metric_b_col},
                        numeric=("rank_col", "metric_a_col", "metric_b_col"), caller="paired_bootstrap")
    prep = _prepare(table, {"a": "metric_a_col", "b": "metric_b_col"})
    units, unit_of_set = prep.set_ids, None
    if settings.cluster_col is not None:
        units, unit_of_set = _clusters(data, set_col, settings.cluster_col, prep.set_ids)
    if len(units) < 2:
        what = "clusters" if settings.cluster_col is not None else "ranking sets"
        raise ValueError(f"paired_bootstrap: need at least 2 {what} to resample, got {len(units)}")
    observed, boot, jack = _resample(prep, unit_of_set, len(units), settings)
    return PairedBootstrapResult(
        metric_a=str(metric_a_col), metric_b=str(metric_b_col), observed=_observed_table(observed),
        distribution=boot, intervals=_intervals(boot, observed, jack, settings.ci), p_values=_p_values(boot),
        jackknife=jack, n_boot=settings.n_boot, ci=settings.ci, seed=settings.seed, method=settings.method,
        set_ids=np.asarray(units),
    )


def _settings(settings: BootstrapSettings | None, options: dict) -> BootstrapSettings:
    unknown = sorted(set(options) - {f.name for f in fields(BootstrapSettings)})
    if unknown:
        raise TypeError(f"paired_bootstrap: unknown option {unknown[0]!r}; the options are "
                        f"{[f.name for f in fields(BootstrapSettings)]} (BootstrapSettings)")
    return replace(settings or BootstrapSettings(), **options)


def _resample(prep: _Prepared, unit_of_set: np.ndarray | None, n_units: int,
              settings: BootstrapSettings) -> tuple[pd.Series, pd.DataFrame, pd.DataFrame | None]:
    """The statistics and their deltas: observed, on every resample, and left-one-unit-out (BCa only)."""
    def evaluate(counts: np.ndarray) -> dict[str, np.ndarray]:
        return _evaluate(prep, counts if unit_of_set is None else counts[:, unit_of_set])

    observed = _with_deltas(evaluate(np.ones((1, n_units), dtype=np.int64))).iloc[0]
    parts = [evaluate(counts) for counts in _iter_counts(n_units, settings.n_boot, settings.seed)]
    boot = _with_deltas({key: np.concatenate([p[key] for p in parts]) for key in parts[0]})
    jack = _with_deltas(evaluate(1 - np.eye(n_units, dtype=np.int64))) if settings.method == "bca" else None
    _warn_undefined(observed, boot)    # the engine is silent: undefined values are reported once, with counts
    return observed, boot, jack


def _intervals(boot: pd.DataFrame, observed: pd.Series, jack: pd.DataFrame | None, ci: float) -> pd.DataFrame:
    """``ci_low``, ``ci_high`` of every column of ``boot``: BCa when there is a jackknife, else percentile; NaN
    for a statistic undefined on every resample (:func:`_warn_undefined` says which), the others still made."""
    ends = {column: (np.nan, np.nan) if boot[column].isna().all()
            else bca_interval(boot[column].to_numpy(), observed[column], jack[column].to_numpy(), ci)
            if jack is not None else percentile_interval(boot[column].to_numpy(), ci) for column in boot.columns}
    return pd.DataFrame(ends, index=["ci_low", "ci_high"]).T


def _p_values(boot: pd.DataFrame) -> pd.Series:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateDataWarning)  # NaN resamples: reported by _warn_undefined
        return pd.Series({_ROWS[stat]: np.nan if boot[f"delta_{stat}"].isna().all()
                          else one_sided_pvalue(boot[f"delta_{stat}"].to_numpy()) for stat in ("icc", "rho")})


def _observed_table(observed: pd.Series) -> pd.DataFrame:
    return pd.DataFrame(
        {"a": [observed["icc_a"], observed["rho_a"]], "b": [observed["icc_b"], observed["rho_b"]],
         "delta": [observed["delta_icc"], observed["delta_rho"]]},
        index=pd.Index(list(_OBSERVED_ROWS.values()), name="statistic"),
    )


def _clusters(data: pd.DataFrame, set_col: str, cluster_col: str, set_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cluster ids, and the cluster index of each set in ``set_ids`` order."""
    if cluster_col not in data.columns:
        raise ValueError(f"paired_bootstrap: no column {cluster_col!r} (cluster_col)")
    if data[cluster_col].isna().any():
        raise ValueError(f"paired_bootstrap: column {cluster_col!r} has missing values")
    per_set = data.groupby(set_col, sort=False)[cluster_col].agg(["first", "nunique"])
    split = per_set.index[per_set["nunique"] > 1]
    if len(split):
        raise ValueError(f"paired_bootstrap: set {split[0]} lies in several clusters of {cluster_col!r}")
    code, clusters = pd.factorize(per_set["first"].reindex(set_ids), sort=False)  # in set order
    return np.asarray(clusters), code


def _warn_undefined(observed: pd.Series, boot: pd.DataFrame) -> None:
    """Say once which statistics are undefined, on the data and on how many resamples (stack: the user's call)."""
    if observed.isna().any():
        names = ", ".join(observed.index[observed.isna()])
        warnings.warn(f"undefined (NaN) on the full data: {names} (constant ranks or distances, or a "
                      "non-positive ICC denominator)", DegenerateDataWarning, stacklevel=4)
    bad = boot.isna().sum()
    if bad.any():
        detail = ", ".join(f"{col}: {int(c)}" for col, c in bad.items() if c)
        warnings.warn(f"undefined (NaN) on some of {len(boot)} resamples ({detail}); those resamples are "
                      "left out of the intervals and p-values", DegenerateDataWarning, stacklevel=4)
