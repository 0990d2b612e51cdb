"""Train/test splits by target image: all sets of one target land on one side,
so a model is judged on targets it never saw during training.

Candidates are not split: in ``mur92`` a training set's candidate can be a test
target (every image is a target there), as in a split of the paper's study.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from clpips.defaults import DEFAULTS


def _shuffled_targets(table: pd.DataFrame, seed: int) -> np.ndarray:
    targets = np.array(sorted(table["target"].unique()), dtype=object)
    return targets[np.random.default_rng(seed).permutation(len(targets))]


def split_by_target(table: pd.DataFrame, test_size: float = DEFAULTS.test_size,
                    seed: int = DEFAULTS.seed) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split rankings into train and test by target image.

    Parameters
    ----------
    table : pandas.DataFrame
        Rankings with a ``target`` column.
    test_size : float
        Share of target images held out, in (0, 1); the count is rounded and
        kept between 1 and the number of targets minus 1.
    seed : int
        Seed of the shuffle of the (sorted) targets.

    Returns
    -------
    train, test : pandas.DataFrame
        Rows of ``table``, original order and index, no target in both.
    """
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must lie strictly between 0 and 1, got {test_size}")
    targets = _shuffled_targets(table, seed)
    if len(targets) < 2:
        raise ValueError(f"need at least two target images to split, got {len(targets)}")
    n_test = min(max(int(round(test_size * len(targets))), 1), len(targets) - 1)
    is_test = table["target"].isin(set(targets[:n_test]))
    return table[~is_test], table[is_test]


def kfold_by_target(table: pd.DataFrame, n_splits: int = 5,
                    seed: int = DEFAULTS.seed) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """Yield ``n_splits`` (train, test) pairs; each target is in exactly one test fold.

    Folds differ in size by at most one target.
    """
    targets = _shuffled_targets(table, seed)
    if not 2 <= n_splits <= len(targets):
        raise ValueError(f"n_splits must lie between 2 and the number of targets ({len(targets)}), got {n_splits}")
    for fold in np.array_split(targets, n_splits):
        is_test = table["target"].isin(set(fold))
        yield table[~is_test], table[is_test]
