"""Statistics for comparing a perceptual metric with human similarity rankings.

Conventions: a lower distance means more similar; rank 1 means most similar;
a positive correlation means the metric agrees with people.

* :mod:`~clpips.stats.icc`: intraclass correlations: :func:`icc` (pingouin's, the reference), the
  vectorised path over batches of mean squares (:func:`mean_squares`, :func:`icc_from_mean_squares`,
  :func:`icc_inference`, :func:`icc_from_matrix`) and :func:`metric_human_table`
* :mod:`~clpips.stats.spearman_brown`: the Spearman–Brown step-up and the ICCs of two rankings
* :mod:`~clpips.stats.tables`: :func:`check_table`, the input validation of every table
* :mod:`~clpips.stats.rank_correlation`: the one Spearman (:func:`spearman_rho`) and Kendall's tau,
  pooled and per set
* :mod:`~clpips.stats.bootstrap`: paired bootstrap over ranking sets
* :mod:`~clpips.stats.resampled`: corrected resampled t over cross-validation folds
* :mod:`~clpips.stats.interpret`: Koo & Li (2016) and Cicchetti (1994) labels
"""
from clpips.moved import moved_name
from clpips.stats.bootstrap import (BootstrapSettings, PairedBootstrapResult, bca_interval, bootstrap_counts,
                                    metric_statistics, one_sided_pvalue, paired_bootstrap, percentile_interval,
                                    resampled_statistics)
from clpips.stats.icc import (ALIASES, LABELS, DegenerateDataWarning, MeanSquares, canonical_label, check_table, icc,
                              icc_ak_inference, icc_from_matrix, icc_from_mean_squares, icc_inference, mean_squares,
                              metric_human_table)
from clpips.stats.interpret import cicchetti_label, interpret_icc, interpretation_scale, koo_li_label
from clpips.stats.rank_correlation import (kendall, per_set_correlation, pooled_spearman, rank_correlation,
                                           set_correlations, spearman, spearman_pvalue, spearman_rho)
from clpips.stats.resampled import corrected_resampled_t
from clpips.stats.spearman_brown import icc_ak_from_rho, icc_ak_pole, icc_ck_from_rho, spearman_brown

__all__ = ["icc", "icc_from_matrix", "icc_from_mean_squares", "icc_inference", "icc_ak_inference", "mean_squares",
           "metric_human_table", "MeanSquares", "canonical_label", "LABELS", "ALIASES", "DegenerateDataWarning",
           "check_table", "spearman_brown", "icc_ck_from_rho", "icc_ak_from_rho", "icc_ak_pole", "spearman_rho",
           "spearman_pvalue", "rank_correlation", "spearman", "kendall", "per_set_correlation", "set_correlations",
           "pooled_spearman", "paired_bootstrap", "BootstrapSettings", "PairedBootstrapResult", "bootstrap_counts",
           "metric_statistics", "percentile_interval", "bca_interval", "one_sided_pvalue", "resampled_statistics",
           "corrected_resampled_t", "interpret_icc", "koo_li_label", "cicchetti_label", "interpretation_scale"]


def __getattr__(name: str):
    return moved_name(__name__, name)   # power and verdicts, now in clpips.book.power (clpips.moved)
