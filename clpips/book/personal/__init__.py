"""Personal CLPIPS metrics: one model per person, pulled towards the pooled one.

The paper fits one CLPIPS for everybody (all raters' rankings pooled) and names
a metric adapted to each person as future work. This module builds and judges
such metrics, on any dataset whose raters each ranked several targets
(``mur92``: 16 people, the same 92 targets and candidates for all).

Models, for each person ``r`` (all fits share one feature matrix, computed once):

``lpips``
    Baseline LPIPS (v0.1 weights).
``pooled``
    CLPIPS fitted on every person's *training* rankings (the paper's model),
    exactly as :func:`clpips.experiment.run` fits it.
``personal``
    Starts from the pooled weights and is fitted on ``r``'s training rankings
    only, with the penalty ``l2 * ||w - w_pooled||^2`` pulling it back towards
    the pooled weights (:func:`clpips.train.fit_pairs` with ``l2_to``).
``lopo``
    *Leave one person out*: pooled CLPIPS fitted on everybody's training
    rankings except ``r``'s: what a new user gets before giving any ranking.
``personal_lopo``
    A personal model of ``r`` that starts from (and is pulled towards) ``lopo``
    instead: the honest "new user" personalisation, in which no model has seen
    any of ``r``'s rankings before ``r`` gives them.

Split and leakage. Targets are split once (:func:`clpips.datasets.split_by_target`,
the standard split), so every model is judged on targets that none of them was
trained on, for every person. ``pooled`` has, however, seen ``r``'s *training*
rankings: comparing ``personal`` with ``pooled`` credits the pooled model with
some of ``r``'s own data; ``personal_lopo`` versus ``lopo`` does not. A second,
smaller overlap comes from candidates: a held-out ranking of target ``X``
may contain candidate ``Y`` while the training ranking of target ``Y`` contains
``X``, the same image pair (LPIPS is symmetric). :func:`shared_pair_share`
measures it and ``exclude_shared_pairs=True`` removes those pairs from training.

Personal fits use all of the person's training rankings, no early stopping
(``epochs`` epochs, the last kept): the pull towards the starting weights is
their regulariser. Because the loss is a mean over pairs, the pull does not
weaken as a person gives more rankings.

Evaluation on a person's held-out rankings (:func:`clpips.evaluate.heldout_scores`): ICC(A,k)
and pooled Spearman's rho of the metric's within-ranking ranks against the
person's, exactly :func:`clpips.evaluate.alignment`. Intervals come from one
two-way bootstrap (:func:`two_way_bootstrap`): people and held-out targets are
drawn with replacement, independently, and both models of a comparison are
scored on the same draws. The mean Δ = challenger − reference over people gets
its percentile interval (:meth:`PersonalStudy.across_people`, with a sign test
and a Wilcoxon signed-rank test over people); each person's Δ gets the interval
and a one-sided p-value of the same target draws.

The package, by concern (every name is importable from ``clpips.book.personal``):

* :mod:`~clpips.book.personal.names`: the models and comparisons, by name;
* :mod:`~clpips.book.personal.study`: :func:`personal_study` (fits and scores), :class:`PersonalStudy`,
  :func:`fit_personal` (one; :func:`fit_personals`, many at once), :class:`PairBank`, :func:`l2_sensitivity`;
* :mod:`~clpips.book.personal.bootstrap`: the two-way bootstrap of people and targets;
* :mod:`~clpips.book.personal.inference`: means over people with intervals, paired tests, Holm;
* :mod:`~clpips.book.personal.curves`: learning curves (:func:`learning_curve`);
* :mod:`~clpips.book.personal.recovery`: what the models learned (whose rankings, which simulated
  truth); where their weight sits per layer is :mod:`clpips.book.layer_weights`'.
"""
from __future__ import annotations

from clpips.book.personal.bootstrap import TwoWayBootstrap, score_people, two_way_bootstrap, two_way_counts
from clpips.book.personal.curves import LearningCurve, learning_curve, parse_sizes
from clpips.book.personal.inference import holm, paired_tests, people_interval
from clpips.book.personal.names import COMPARISON_LABELS, COMPARISONS, MODELS, STATISTICS
from clpips.book.layer_weights import layer_changes, layer_shares  # the chapters read them here (07, 08)
from clpips.book.personal.recovery import attribute_sensitivity, cross_person, own_versus_others, truth_recovery
from clpips.book.personal.study import PairBank, PersonalStudy, fit_personal, fit_personals, l2_sensitivity, personal_study

__all__ = ["MODELS", "COMPARISONS", "COMPARISON_LABELS", "STATISTICS",
           "people_interval", "paired_tests", "holm",
           "two_way_counts", "TwoWayBootstrap", "two_way_bootstrap", "score_people",
           "PairBank", "fit_personal", "fit_personals", "PersonalStudy", "personal_study", "l2_sensitivity",
           "parse_sizes", "LearningCurve", "learning_curve",
           "cross_person", "own_versus_others", "layer_shares", "layer_changes", "attribute_sensitivity",
           "truth_recovery"]
