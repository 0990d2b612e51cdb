"""Statistics for comparing a perceptual metric with human similarity rankings.

Conventions: a lower distance means more similar; rank 1 means most similar;
a positive correlation means the metric agrees with people.

* :mod:`~clpips.stats.icc`: intraclass correlations: :func:`icc` (pingouin's, the reference), the
  vectorised path over batches of mean squares (:func:`mean_squares`, :func:`icc_from_mean_squares`,
  :func:`icc_inference`, :func:`icc_from_matrix`) and :func:`metric_human_table`
* :mod:`~clpips.stats.spearman_brown`: the Spearman–Brown step-up and ICC(A,k) of two rankings
* :mod:`~clpips.stats.tables`: :func:`check_table`, the input validation of every table
* :mod:`~clpips.stats.rank_correlation`: the one Spearman (:func:`spearman_rho`), pooled and per set
* :mod:`~clpips.stats.bootstrap`: paired bootstrap over ranking sets
* :mod:`~clpips.stats.resampled`: corrected resampled t over cross-validation folds
* :mod:`~clpips.stats.interpret`: Koo & Li (2016) labels
"""
from clpips.moved import moved_name
from clpips.stats.bootstrap import (BootstrapSettings, PairedBootstrapResult, bca_interval, bootstrap_counts,
                                    metric_statistics, one_sided_pvalue, paired_bootstrap, percentile_interval,
                                    resampled_statistics)
from clpips.stats.icc import (ALIASES, LABELS, DegenerateDataWarning, MeanSquares, canonical_label, check_table, icc,
                              icc_ak_inference, icc_from_matrix, icc_from_mean_squares, icc_inference, mean_squares,
                              metric_human_table)
from clpips.stats.interpret import KOO_LI, Band, band_label, koo_li_label
from clpips.stats.rank_correlation import set_correlations, spearman_pvalue, spearman_rho
from clpips.stats.resampled import corrected_resampled_t
from clpips.stats.spearman_brown import icc_ak_from_rho, spearman_brown

__all__ = ["icc", "icc_from_matrix", "icc_from_mean_squares", "icc_inference", "icc_ak_inference", "mean_squares",
           "metric_human_table", "MeanSquares", "canonical_label", "LABELS", "ALIASES", "DegenerateDataWarning",
           "check_table", "spearman_brown", "icc_ak_from_rho", "spearman_rho", "spearman_pvalue", "set_correlations",
           "paired_bootstrap", "BootstrapSettings", "PairedBootstrapResult", "bootstrap_counts",
           "metric_statistics", "percentile_interval", "bca_interval", "one_sided_pvalue", "resampled_statistics",
           "corrected_resampled_t", "koo_li_label", "band_label", "Band", "KOO_LI"]


def __getattr__(name: str):
    return moved_name(__name__, name)   # power, verdicts, the table-level rank correlations: now in the book
