"""The ablation grid: factors, their levels (:class:`Variant`) and the replicates they are fitted on.

* :data:`FACTORS`, :func:`parse_levels`, :func:`factor_variants`, :func:`standard_grid`,
  :func:`learning_curve_variants`: which fits the chapter compares, each a :class:`Variant`
  (option overrides for :func:`clpips.train.fit`) whose :meth:`Variant.key` names its effective options;
* :class:`Replicate`, :func:`replicates`: the (split, training seed) replicates;
  :func:`subsample_rankings`: the nested subsamples of the learning curve.

See :mod:`clpips.book.ablations` for the design.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from clpips.book.defaults import DEFAULTS
from clpips.evaluate import ranking_ids
from clpips.experiment import FIT_OPTIONS

#: option that each factor varies, the type of its levels and how levels are written in a defaults string
FACTORS: dict[str, dict[str, Any]] = {
    "margin": {"option": "margin", "type": float, "sep": ",", "title": "margin of the ranking loss"},
    "lr": {"option": "lr", "type": float, "sep": ",", "title": "learning rate"},
    "layers": {"option": "layers", "type": str, "sep": ";", "title": "trained layers"},
    "init": {"option": "init", "type": str, "sep": ",", "title": "initial weights"},
    "project": {"option": "project", "type": bool, "sep": ",", "title": "projection onto w >= 0"},
    "loss": {"option": "loss", "type": str, "sep": ",", "title": "loss"},
    "net": {"option": "net", "type": str, "sep": ",", "title": "backbone"},
    "train_size": {"option": "n_rankings", "type": int, "sep": ",", "title": "training rankings"},
}
#: the options that define a fit (besides the data): a variant's key fills them all in
TRAIN_OPTIONS = ("net", *FIT_OPTIONS, "n_rankings")


# =========================================================================== variants
@dataclass(frozen=True)
class Variant:
    """One level of one factor: option overrides for :func:`clpips.train.fit`.

    ``options`` may also hold ``n_rankings`` (subsample the training rankings)
    and ``net``; every option not named keeps the runner's default.
    """

    factor: str
    level: str
    options: Mapping[str, Any] = field(default_factory=dict)
    reference: bool = False  #: the factor's default level, the one the others are compared with

    def key(self, **fit_options: Any) -> str:
        """The *effective* options as canonical JSON: equal keys mean the same fit.

        Every option of :data:`TRAIN_OPTIONS` is filled in (the variant's own value,
        else ``fit_options``, else :data:`DEFAULTS`) and layer sets are normalised,
        so ``{"margin": 0.05}`` and ``{"lr": 0.001}`` name the same default fit.
        """
        from clpips.train import parse_layers
        options = {name: getattr(DEFAULTS, name, None) for name in TRAIN_OPTIONS}
        options.update(fit_options)
        options.update(self.options)
        options["layers"] = parse_layers(options["layers"])
        return json.dumps(options, sort_keys=True, default=str)


def _parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "on", "yes", "1"):
        return True
    if value in ("false", "off", "no", "0"):
        return False
    raise ValueError(f"not a boolean level: {text!r}")


def parse_levels(factor: str, levels: str | Iterable[Any]) -> list[Any]:
    """Levels of ``factor`` from a defaults string (``"0.01,0.05"``, layers ``"0;1;all"``) or a list.

    ``train_size`` accepts ``"all"`` (returned as ``None``: every training ranking).
    """
    spec = FACTORS[factor]
    if isinstance(levels, str):
        levels = [x.strip() for x in levels.split(spec["sep"]) if x.strip()]
    out = []
    for x in levels:
        if factor == "train_size" and (x is None or str(x).strip() == "all"):
            out.append(None)
        elif spec["type"] is bool:
            out.append(x if isinstance(x, bool) else _parse_bool(str(x)))
        else:
            out.append(spec["type"](x))
    if not out:
        raise ValueError(f"no levels given for factor {factor!r}")
    return out


def _level_label(factor: str, value: Any) -> str:
    if factor == "train_size":
        return "all" if value is None else str(int(value))
    if factor == "project":
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _same_level(factor: str, a: Any, b: Any) -> bool:
    if factor == "layers":
        from clpips.train import parse_layers
        return parse_layers(a) == parse_layers(b)
    if factor == "train_size":
        return a is None and b is None or (a is not None and b is not None and int(a) == int(b))
    return a == b


def factor_variants(factor: str, levels: str | Iterable[Any], reference: Any = "default") -> list[Variant]:
    """The variants of one factor, the reference level marked.

    ``reference`` is the level the others are compared with: by default the value in
    :data:`DEFAULTS` (``"all"`` training rankings for ``train_size``). When it is not
    among ``levels`` it is added (in order, for numeric factors), so every factor has one.

    >>> [v.level for v in factor_variants("margin", "0.01,0.1")]
    ['0.01', '0.05', '0.1']
    >>> [v.reference for v in factor_variants("margin", "0.01,0.05")]
    [False, True]
    """
    if factor not in FACTORS:
        raise ValueError(f"unknown factor {factor!r}: choose from {sorted(FACTORS)}")
    option = FACTORS[factor]["option"]
    values = parse_levels(factor, levels)
    if isinstance(reference, str) and reference == "default":
        reference = None if factor == "train_size" else getattr(DEFAULTS, option)
    else:
        reference = parse_levels(factor, [reference])[0] if factor != "layers" else str(reference)
    if not any(_same_level(factor, v, reference) for v in values):
        values.append(reference)
        if FACTORS[factor]["type"] in (int, float) and factor != "train_size":
            values.sort()
    out = []
    for value in values:
        options = {} if (factor == "train_size" and value is None) else {option: value}
        out.append(Variant(factor, _level_label(factor, value), options,
                           reference=_same_level(factor, value, reference)))
    return out


def standard_grid(factors: Sequence[str] = ("margin", "lr", "layers", "init", "project", "loss", "net"),
                  base: Optional[Mapping[str, Any]] = None, **levels: str) -> list[Variant]:
    """The chapter's grid: each factor's levels from :data:`DEFAULTS` unless given.

    Keyword arguments name a factor and its levels (``margin="0.01,0.1"``);
    ``project`` defaults to on/off. ``base`` maps options to the values every
    other fit uses (pass the same to :func:`run_ablation` as ``fit_options``):
    each factor's reference level is its ``base`` value (default: :data:`DEFAULTS`).
    The learning curve is separate (:func:`learning_curve_variants`), since its
    levels change the data, not the fit.
    """
    from_defaults = {"margin": DEFAULTS.ablation_margins, "lr": DEFAULTS.ablation_lrs,
                     "layers": DEFAULTS.ablation_layers, "init": DEFAULTS.ablation_inits,
                     "project": "on,off", "loss": DEFAULTS.ablation_losses, "net": DEFAULTS.ablation_nets,
                     "train_size": DEFAULTS.ablation_train_sizes}
    unknown = set(levels) - set(FACTORS)
    if unknown:
        raise ValueError(f"unknown factor(s) {sorted(unknown)}: choose from {sorted(FACTORS)}")
    base = dict(base or {})
    grid: list[Variant] = []
    for factor in factors:
        option = FACTORS[factor]["option"]
        reference = base.get(option, "default") if factor != "train_size" else "default"
        grid += factor_variants(factor, levels.get(factor, from_defaults[factor]), reference=reference)
    return grid


def learning_curve_variants(sizes: str | Iterable[Any] = DEFAULTS.ablation_train_sizes) -> list[Variant]:
    """Variants training on ``n`` rankings each (``"all"``: every training ranking, the reference)."""
    return factor_variants("train_size", sizes)


# =========================================================================== replicates
@dataclass
class Replicate:
    """One (train, test) split and one training seed."""

    split: str                #: "standard" or "fold i/k"
    fold: int                 #: -1 for the standard split
    seed: int                 #: training seed
    train: pd.DataFrame
    test: pd.DataFrame

    @property
    def tag(self) -> tuple[str, int]:
        return (self.split, self.seed)


def replicates(table: pd.DataFrame, folds: int = 0, seeds: Iterable[int] = (DEFAULTS.seed,),
               test_size: float = DEFAULTS.test_size, split_seed: int = DEFAULTS.seed) -> list[Replicate]:
    """The (split, training seed) replicates; see the module docstring.

    ``folds=0``: the standard split, once per seed; ``folds=k >= 2``: ``k`` folds by target
    (:func:`clpips.datasets.split_folds`, the nested protocol's, which for ``"target"`` is
    :func:`clpips.datasets.kfold_by_target`, with ``split_seed``), each once per seed.
    """
    from clpips.datasets import split_by_target, split_folds
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("give at least one training seed")
    if folds == 0:
        train, test = split_by_target(table, test_size=test_size, seed=split_seed)
        return [Replicate("standard", -1, s, train, test) for s in seeds]
    if folds < 2:
        raise ValueError(f"folds must be 0 (the standard split) or at least 2, got {folds}")
    out = []
    for i, (train, test) in enumerate(split_folds(table, "target", folds, seed=split_seed)):  # the protocol's folds
        out += [Replicate(f"fold {i + 1}/{folds}", i, s, train, test) for s in seeds]
    return out


def _ranking_keys(table: pd.DataFrame) -> pd.Series:
    return ranking_ids(table)


def subsample_rankings(table: pd.DataFrame, n: Optional[int], seed: int | Sequence[int]) -> pd.DataFrame:
    """``n`` whole rankings of ``table`` drawn at random (seeded), or all of them for ``n=None``.

    One permutation of the table's rankings per seed; the first ``n`` are kept,
    so for one seed a smaller sample is part of every larger one (nested).
    Rows keep their order and index.
    """
    if n is None:
        return table
    keys = _ranking_keys(table)
    unique = np.array(sorted(keys.unique()), dtype=object)
    if not 1 <= n <= len(unique):
        raise ValueError(f"cannot draw {n} rankings from {len(unique)}")
    order = np.random.default_rng(seed).permutation(len(unique))
    return table[keys.isin(set(unique[order[:n]]))]
