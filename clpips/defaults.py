"""The method's parameter defaults: one value per option of the core.

Every option of the core (data, metric, training, the nested protocol, statistics, the built-in
datasets' options) reads its default from :data:`DEFAULTS`, so changing a value here changes it
everywhere. The chapters' and the lesson's own parameters (ablation grids, the worked example, personal
metrics, the metrics beyond linear weights, the classroom) are the book's: :class:`BookDefaults` in
:mod:`clpips.book.defaults` adds them to these, and its ``DEFAULTS`` is what the notebooks' parameters
cells, the book runner and the CLI read. Each default is written once, in one of the two files.
"""
from __future__ import annotations

import importlib
import os
import warnings
from dataclasses import asdict, dataclass, fields
from typing import Any

#: where the chapters' and the lesson's defaults live; imported by name, and only to answer an old
#: access (:meth:`Defaults.__getattr__`): the core imports no book module (tests/test_layers.py)
BOOK_DEFAULTS = "clpips.book.defaults"


def _env_int(name: str, default: int) -> int:
    """A whole number >= 1 from the environment variable ``name``, else ``default``."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class Defaults:
    # data
    dataset: str = "mur92"          #: dataset name (see clpips.datasets) or a CSV path
    k: int = 10                     #: candidates per ranking set
    candidates: str = "random"      #: how mur92 candidates are drawn: "random" or "stratified"
    test_size: float = 0.3          #: held-out share of target images (the paper: 70/30)
    seed: int = 0                   #: one seed for splits, sampling, initialisation, bootstrap
    # metric
    net: str = "alex"               #: LPIPS backbone: "alex" or "vgg"
    device: str = "cpu"             #: torch device for feature extraction and training
    # training
    loss: str = "margin"            #: "margin" (the paper) or "logistic" (Bradley-Terry)
    margin: float = 0.05            #: margin of the ranking loss, in LPIPS distance units
    lr: float = 1e-3                #: Adam learning rate
    batch_size: int = 256           #: pairs per step (the paper: 256)
    epochs: int = 30                #: maximum epochs
    patience: int = 5               #: early stopping: epochs without held-out improvement
    init: str = "lpips"             #: starting linear weights: "lpips", "uniform" or "random"
    layers: str = "all"             #: layers to train: "all" or e.g. "0,1,4"
    project: bool = True            #: project weights onto w >= 0 after every step
    # the nested protocol (clpips.protocol, clpips crossval)
    split_mode: str = "target"      #: "target" (the paper's split) or "image" (no image on both sides)
    protocol_folds: int = 5         #: outer folds by target (or image)
    protocol_repeats: int = 3       #: repeats of the outer split with new fold assignments
    protocol_inner_folds: int = 3   #: inner folds on each outer training side, to choose the setting
    protocol_margins: str = "0.01,0.02,0.05,0.1"  #: margins the inner folds choose among (0.1 added: mur92 by image chose 0.05, the old top, in 14 of 15 folds)
    protocol_lrs: str = "0.003,0.01,0.03"  #: learning rates the inner folds choose among (0.03 added: a crowd study chose 0.01, the old top, in 15 of 15)
    protocol_epochs: str = "2,5,10,20"  #: epoch counts the inner folds choose among (2 added: mur92 by image chose 5 in 10 of 15; not 30: a run's time grows with the most epochs, 1.9x, where margins and lrs cost 1.3x)
    protocol_select: str = "icc_A_k"  #: inner criterion: icc_A_k, spearman_raw, spearman or pair_accuracy
    protocol_min_candidates: int = 3  #: split by image of a study with fixed candidates: a held-out ranking left with fewer candidates is not scored
    workers: int = _env_int("CLPIPS_WORKERS", 2)  #: processes the protocol's fits are spread over (results do not depend on it; make book sets it per lane)
    # statistics
    n_boot: int = 10_000            #: bootstrap resamples
    ci: float = 0.95                #: confidence level
    # zappos (clpips.datasets.zappos)
    zappos_sets_per_target: int = 2  #: disjoint ranking sets of k candidates per zappos target (85 x 2 x 45 pairs)
    # alien_eggs (clpips.datasets.alien_eggs)
    alien_eggs_sets_per_target: int = 2  #: disjoint ranking sets of k candidates per alien_eggs target (30 x 2 x 45 pairs)

    def __getattr__(self, name: str) -> Any:
        """A default that moved to the book (``clpips.defaults.DEFAULTS.ablation_folds``, say): the book's
        value, with a DeprecationWarning naming its new path; the old path works until clpips 0.3.
        Called only when ``name`` is no field of this object."""
        book = None if name.startswith("__") else importlib.import_module(BOOK_DEFAULTS)
        if book is None or isinstance(self, book.BookDefaults) or name not in book.names():
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        warnings.warn(f"clpips.defaults.DEFAULTS.{name} moved to {BOOK_DEFAULTS}.DEFAULTS.{name}; the old path "
                      "works until clpips 0.3", DeprecationWarning, stacklevel=2)
        return getattr(book.DEFAULTS, name)


DEFAULTS = Defaults()

#: the most pixels (width x height) an image may have unless ``$CLPIPS_MAX_PIXELS`` or ``--max-pixels``
#: says otherwise (:func:`clpips.images.max_pixels`). Here, not in clpips.images: the CLI's help names it,
#: and importing clpips.images (torch) cost every ``clpips run`` about 1 s before any notebook started
MAX_PIXELS = 4096 * 4096


def as_dict() -> dict[str, Any]:
    """The method's defaults as a plain dict (for papermill and JSON); the book's are
    ``dataclasses.asdict(clpips.book.defaults.DEFAULTS)``."""
    return asdict(DEFAULTS)


def names() -> list[str]:
    """The names of the method's defaults; the book's as well: :func:`clpips.book.defaults.names`."""
    return [f.name for f in fields(Defaults)]
