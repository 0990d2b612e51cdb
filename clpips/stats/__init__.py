"""Statistics for comparing a perceptual metric with human similarity rankings.

Conventions: a lower distance means more similar; rank 1 means most similar;
a positive correlation means the metric agrees with people. Modules: :mod:`~clpips.stats.icc`
(pingouin's ICC, the reference, and the vectorised path over batches of mean squares),
:mod:`~clpips.stats.spearman_brown`, :mod:`~clpips.stats.tables` (input validation),
:mod:`~clpips.stats.rank_correlation` (the one Spearman), :mod:`~clpips.stats.bootstrap` (paired,
over ranking sets), :mod:`~clpips.stats.resampled` (corrected resampled t), :mod:`~clpips.stats.interpret`.
"""
from clpips.moved import moved_name
from clpips.stats.bootstrap import (BootstrapSettings, PairedBootstrapResult, bca_interval, bootstrap_counts,
                                    metric_statistics, one_sided_pvalue, paired_bootstrap, percentile_interval,
                                    resampled_statistics)
from clpips.stats.icc import (ALIASES, LABELS, DegenerateDataWarning, MeanSquares, canonical_label, icc,
                              icc_ak_inference, icc_from_matrix, icc_from_mean_squares, icc_inference, mean_squares,
                              metric_human_table)
from clpips.stats.interpret import KOO_LI, Band, band_label, koo_li_label
from clpips.stats.rank_correlation import set_correlations, spearman_pvalue, spearman_rho
from clpips.stats.resampled import corrected_resampled_t
from clpips.stats.spearman_brown import icc_ak_from_rho, spearman_brown
from clpips.stats.tables import check_table

__all__ = ["icc", "icc_from_matrix", "icc_from_mean_squares", "icc_inference", "icc_ak_inference", "mean_squares",
           "metric_human_table", "MeanSquares", "canonical_label", "LABELS", "ALIASES", "DegenerateDataWarning",
           "check_table", "spearman_brown", "icc_ak_from_rho", "spearman_rho", "spearman_pvalue", "set_correlations",
           "paired_bootstrap", "BootstrapSettings", "PairedBootstrapResult", "bootstrap_counts",
           "metric_statistics", "percentile_interval", "bca_interval", "one_sided_pvalue", "resampled_statistics",
           "corrected_resampled_t", "koo_li_label", "band_label", "Band", "KOO_LI"]


def __getattr__(name: str):
    return moved_name(__name__, name)   # power, verdicts, the table-level rank correlations: now in the book
