"""Ablations of CLPIPS training (chapter 06): one factor at a time, judged held-out.

Each *factor* (the margin, the learning rate, the trained layers, ...) is varied
over a few *levels* while every other option keeps its default
(:mod:`clpips.defaults`); a level is one :class:`Variant`, a dict of option
overrides for :func:`clpips.train.fit`. :func:`run_ablation` fits every variant
on every *replicate* and scores it on the replicate's held-out rankings with
the ICC(A,k), pooled Spearman and Kendall of :func:`clpips.evaluate.alignment`
(the same numbers, through :func:`clpips.evaluate.heldout_scores`, as the evaluation
chapter scores CLPIPS, without the per-ranking correlations the chapter does not
use). It returns a tidy table, one row per (variant, replicate).

The fits run on the nested protocol's engine: every fit of every replicate that shares
a feature matrix is one column of one :func:`clpips.train.fit_many` call (starting
weights, trained layers, projection, loss, margin and learning rate per column; a
learning-curve subsample is its own set of pairs), every epoch is recorded, and each
column keeps the epoch that ``fit``'s early stopping keeps
(:func:`clpips.book.batched_fits.early_stopped`): the weights, best epoch and epochs run of its own
``train.fit`` (tested), at a fraction of the time of a loop of fits.

Replicates (:func:`replicates`) answer "would this difference survive another
split?":

* ``folds=0``: the standard split (:func:`clpips.datasets.split_by_target`
  with ``test_size`` and ``split_seed``), once per training seed in ``seeds``.
  The test rankings never change, so the spread across seeds is *training*
  noise only (initialisation, shuffling, the validation split inside ``fit``);
* ``folds=k``: :func:`clpips.datasets.kfold_by_target` re-splits the targets
  into ``k`` folds, each fold's targets held out once (times each seed), so
  the spread also contains the *split* noise: which targets happen to be in
  the test set.

Pair features are computed once per backbone (:func:`clpips.train.pair_features_for`
over the whole table, through the on-disk cache). Identical option sets that appear in several factors
(the default level of each) are fitted once per replicate and reported under
each factor.

Special levels:

* ``n_rankings`` (the learning curve, :func:`learning_curve_variants`):
  train on a seeded random subsample of that many training rankings (one
  ranking = one ``set_id`` by one rater). For one replicate the subsamples are
  nested (the first ``n`` of one permutation), so the curve's steps are not
  confounded with which rankings were drawn; sizes above what a replicate has
  are skipped;
* ``net`` (the backbone): a VGG variant uses VGG pair features and starts from
  VGG's own LPIPS weights; its row reports both LPIPS-VGG (``lpips_*``) and the
  paper's baseline LPIPS-AlexNet (``base_*``).

Pooled versus per-rater training is :func:`run_per_rater`: one model per rater
fitted on that rater's training rankings only, and the pooled model, each
judged on that rater's held-out rankings. Both runners can leave out of training
the image pairs that also occur in held-out rankings (``exclude_shared_pairs``,
:func:`clpips.datasets.drop_shared_pairs`, the package's one shared-pair rule).

:func:`summarize` condenses the table: per level the mean and spread across
replicates and the *paired* difference from the factor's reference (default)
level, with a t interval. With re-splits the interval uses the Nadeau & Bengio
(2003) correction of the variance, ``(1/J + n_test/n_train) * s^2``, because
the training sets of different folds overlap and a plain ``s^2/J`` would be
too narrow; with the standard split only, the interval covers training noise
and says nothing about the choice of test targets.

Threads: fits run with ``torch.set_num_threads(threads)`` (default 1): the
steps are small matrix products, and on a busy two-core machine two
threads made a fit up to ten times slower than one.

The package, by concern (every name is importable from ``clpips.book.ablations``):

* :mod:`~clpips.book.ablations.grid`: factors, levels, variants, replicates, subsamples;
* :mod:`~clpips.book.ablations.runner`: :func:`run_ablation`, :func:`run_per_rater` (batched fits, scoring);
* :mod:`~clpips.book.ablations.summary`: :func:`summarize` and the other tables of numbers.

The chapter's words and display tables about the results are :mod:`clpips.book.report`'s
(:func:`~clpips.book.report.factor_facts`, :func:`~clpips.book.report.verdict_lists`,
:func:`~clpips.book.report.budget_note`, :func:`~clpips.book.report.report_table`).
"""
from __future__ import annotations

from clpips.book.ablations.grid import (FACTORS, TRAIN_OPTIONS, Replicate, Variant, factor_variants, learning_curve_variants,
                   parse_levels, replicates, standard_grid, subsample_rankings)
from clpips.book.ablations.runner import changed_layers, run_ablation, run_per_rater
from clpips.book.ablations.summary import METRICS, budget_limited, default_fit_rows, noise_table, summarize

__all__ = ["Variant", "Replicate", "FACTORS", "TRAIN_OPTIONS", "METRICS", "parse_levels", "factor_variants",
           "standard_grid", "learning_curve_variants", "replicates", "subsample_rankings", "changed_layers",
           "run_ablation", "run_per_rater", "summarize", "default_fit_rows", "budget_limited", "noise_table"]
