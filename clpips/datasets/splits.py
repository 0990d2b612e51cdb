"""Train/test splits of rankings, and the one rule for image pairs shared across a split.

By target (the paper's split): all sets of one target land on one side, so a
model is judged on targets it never saw as targets. Candidates are not split:
in ``mur92`` a training set's candidate can be a test target (every image is a
target there), and the pair (X, Y) can be held out while (Y, X) is trained on
(:func:`shared_pairs`). By image (:func:`split_folds` with ``mode="image"``):
no image is on both sides.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from clpips.choices import SPLIT_MODES  # how a split separates the sides: the one list (the CLI reads it too)
from clpips.defaults import DEFAULTS


def _shuffled_targets(table: pd.DataFrame, seed: int) -> np.ndarray:
    targets = np.array(sorted(table["target"].unique()), dtype=object)
    return targets[np.random.default_rng(seed).permutation(len(targets))]


def _target_folds(table: pd.DataFrame, n_splits: int, seed: int) -> list[np.ndarray]:
    """The shuffled targets cut into ``n_splits`` folds within one target in size: every split's held-out targets."""
    targets = _shuffled_targets(table, seed)
    if not 2 <= n_splits <= len(targets):
        raise ValueError(f"n_splits must lie between 2 and the number of targets ({len(targets)}), got {n_splits}")
    return np.array_split(targets, n_splits)


def fold_targets(table: pd.DataFrame, n_splits: int, seed: int = DEFAULTS.seed) -> list[set[str]]:
    """The targets each fold holds out, the same in every mode (split by image, a target whose rankings
    keep too few candidates is missing from the held-out side).
    """
    return [set(part) for part in _target_folds(table, n_splits, seed)]


def split_by_target(table: pd.DataFrame, test_size: float = DEFAULTS.test_size,
                    seed: int = DEFAULTS.seed) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows of ``table`` split into (train, test) by target image, no target on both sides.

    ``test_size``: the share of targets held out, rounded and kept between 1 and all but one; ``seed``
    shuffles the sorted targets. Rows keep their order and index.
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
    """``n_splits`` (train, test) pairs; each target in exactly one test fold, folds within one target in size."""
    for fold in fold_targets(table, n_splits, seed):
        is_test = table["target"].isin(fold)
        yield table[~is_test], table[is_test]


# --------------------------------------------------------------------------- split modes


def check_split_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`SPLIT_MODES`, else a one-line ValueError naming the choices."""
    if mode not in SPLIT_MODES:
        raise ValueError(f"split mode must be one of {sorted(SPLIT_MODES)}, got {mode!r}")
    return mode


def image_folds(table: pd.DataFrame, n_splits: int, seed: int = DEFAULTS.seed) -> dict[str, int]:
    """Every image's fold: targets get :func:`kfold_by_target`'s (so both modes hold out the same
    targets); a candidate-only image goes where most of its targets are (ties: lowest fold).
    """
    fold_of = {t: f for f, part in enumerate(_target_folds(table, n_splits, seed)) for t in part}
    others = table.loc[~table["candidate"].isin(fold_of), ["candidate", "target"]]
    if len(others):
        votes = others.assign(fold=others["target"].map(fold_of)).groupby(["candidate", "fold"]).size()
        votes = votes.reset_index(name="n").sort_values(["candidate", "n", "fold"], ascending=[True, False, True])
        fold_of.update(votes.drop_duplicates("candidate").set_index("candidate")["fold"].to_dict())
    return {str(k): int(v) for k, v in fold_of.items()}


def split_modes_coincide(table: pd.DataFrame) -> bool:
    """True when the split by image holds out exactly what the split by target does: no candidate
    ranked with two targets, no target ranked as a candidate (the simulated study).
    """
    targets_of = table.groupby("candidate")["target"].nunique()
    return bool((targets_of <= 1).all()) and not set(table["target"]) & set(table["candidate"])


def restrict_to_images(table: pd.DataFrame, images, min_candidates: int = 2) -> pd.DataFrame:
    """Rows whose target and candidate both lie in ``images``, each ranking re-ranked ``1..k'`` in its
    order; one left with fewer than ``min_candidates`` is dropped. The split by image for a study that
    cannot draw new candidates.
    """
    images = set(images)
    out = table[table["target"].isin(images) & table["candidate"].isin(images)]
    return _rerank(out, min_candidates)


def _rerank(rows: pd.DataFrame, min_candidates: int = 2) -> pd.DataFrame:
    if min_candidates < 2:
        raise ValueError(f"a ranking needs at least 2 candidates, got min_candidates={min_candidates}")
    rows = rows.copy()
    group = rows.groupby(["set_id", "rater"], sort=False)["rank"]
    rows["rank"] = group.rank(method="first").astype(rows["rank"].dtype)
    return rows[group.transform("size") >= min_candidates]


def split_folds(table: pd.DataFrame, mode: str = "target", n_splits: int = 5, seed: int = DEFAULTS.seed,
                within=None, min_candidates: int = 2) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """``n_splits`` (train, test) pairs in split ``mode``.

    ``"target"``: :func:`kfold_by_target`. ``"image"``: the images are cut into folds
    (:func:`image_folds`) and each side's rankings use its own images only: ``within(images, seed)`` when
    the dataset can draw new candidates, else :func:`restrict_to_images` (a held-out ranking needs
    ``min_candidates``). Rows on neither side: ``len(table) - len(train) - len(test)``.
    """
    check_split_mode(mode)
    if mode == "target":
        yield from kfold_by_target(table, n_splits, seed)
        return
    fold_of = image_folds(table, n_splits, seed)
    for fold in range(n_splits):
        test_images = sorted(img for img, f in fold_of.items() if f == fold)
        train_images = sorted(img for img, f in fold_of.items() if f != fold)
        if within is not None:
            yield within(train_images, seed), within(test_images, seed)
        else:
            yield (restrict_to_images(table, train_images),
                   restrict_to_images(table, test_images, min_candidates))


# --------------------------------------------------------------------------- shared image pairs
def shared_pairs(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
    """Which training rows hold an image pair a held-out row holds too: *the* shared-pair rule.

    A pair is the unordered ``{target, candidate}`` (an LPIPS distance is symmetric). Splitting by target
    leaves such pairs wherever images are both targets and candidates (mur92); by image, none.
    """
    held = set(map(frozenset, zip(test["target"], test["candidate"])))
    return np.fromiter((frozenset(p) in held for p in zip(train["target"], train["candidate"])),
                       dtype=bool, count=len(train))


def shared_pair_share(train: pd.DataFrame, test: pd.DataFrame) -> float:
    """Share of held-out rows whose image pair also occurs in a training row (:func:`shared_pairs`)."""
    if test.empty:
        return float("nan")
    return float(shared_pairs(test, train).mean())


def drop_shared_pairs(train: pd.DataFrame, test: pd.DataFrame) -> pd.DataFrame:
    """Training rows without the pairs held-out rows hold, each shortened ranking re-ranked (below two: dropped)."""
    return _rerank(train[~shared_pairs(train, test)])
