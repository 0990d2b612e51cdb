"""The package's choice lists, defined once in one light module (no torch, no pandas): the modules that
check a value and the command line (which must start without torch) read them here, so an option the
library accepts is an option the CLI offers.
"""
from __future__ import annotations

#: LPIPS backbones (:data:`clpips.model.CHANNELS` has one entry per name)
NETS: tuple[str, ...] = ("alex", "vgg")
#: starting linear weights: what :func:`clpips.model.initial_weight_vector` and ``CLPIPS(linear=...)``
#: accept besides a file path
LINEAR_INITS: tuple[str, ...] = ("lpips", "uniform", "ones", "random")
#: losses of a ranking pair (:func:`clpips.train.pair_loss`)
LOSSES: tuple[str, ...] = ("margin", "logistic")
#: how mur92's candidates are drawn (:func:`clpips.datasets.mur92.draw_candidates`)
CANDIDATE_RULES: tuple[str, ...] = ("random", "stratified")
#: what reading a study CSV does with tied ranks (:func:`clpips.datasets.from_csv`, :mod:`clpips.datasets.validate`)
TIES: tuple[str, ...] = ("reject", "average")
#: how a split separates training from held-out rankings (the nested protocol, :mod:`clpips.protocol`)
SPLIT_MODES: dict[str, str] = {
    "target": "by target, as the paper: no held-out target has a training ranking; "
              "candidates (and targets as candidates) may occur on both sides",
    "image": "by image: no image, as target or candidate, occurs on both sides",
}
#: the statistics the protocol scores on every held-out side, as :func:`clpips.evaluate.heldout_scores` names them
PROTOCOL_STATISTICS: tuple[str, ...] = ("icc_A_k", "spearman_raw", "spearman", "pair_accuracy")
#: inner-fold criteria a protocol setting can be chosen by (higher is better)
SELECT: tuple[str, ...] = PROTOCOL_STATISTICS
#: the metrics ``clpips crossval --metric`` fits and compares with LPIPS (chapter 09's: clpips.book.families)
PROTOCOL_METRICS: tuple[str, ...] = ("clpips", "global", "transform", "teacher")
#: the extra baselines of :mod:`clpips.book.baselines`, in table order (pixel metrics, then feature metrics)
BASELINES: tuple[str, ...] = ("l2", "psnr", "ssim", "lpips_vgg", "lpips_ones")
