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


# --------------------------------------------------------------------------- split modes


def check_split_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`SPLIT_MODES`, else a one-line ValueError naming the choices."""
    if mode not in SPLIT_MODES:
        raise ValueError(f"split mode must be one of {sorted(SPLIT_MODES)}, got {mode!r}")
    return mode


def image_folds(table: pd.DataFrame, n_splits: int, seed: int = DEFAULTS.seed) -> dict[str, int]:
    """Assign every image of ``table`` to one of ``n_splits`` folds.

    Targets get the folds of :func:`kfold_by_target` with the same seed (so the
    two split modes hold out the same targets). An image that is only ever a
    candidate goes to the fold holding most of the targets it is ranked with
    (ties: the lowest fold), which keeps the most rows on its side.
    """
    targets = _shuffled_targets(table, seed)
    if not 2 <= n_splits <= len(targets):
        raise ValueError(f"n_splits must lie between 2 and the number of targets ({len(targets)}), got {n_splits}")
    fold_of = {t: f for f, part in enumerate(np.array_split(targets, n_splits)) for t in part}
    others = table.loc[~table["candidate"].isin(fold_of), ["candidate", "target"]]
    if len(others):
        votes = others.assign(fold=others["target"].map(fold_of)).groupby(["candidate", "fold"]).size()
        votes = votes.reset_index(name="n").sort_values(["candidate", "n", "fold"], ascending=[True, False, True])
        fold_of.update(votes.drop_duplicates("candidate").set_index("candidate")["fold"].to_dict())
    return {str(k): int(v) for k, v in fold_of.items()}


def split_modes_coincide(table: pd.DataFrame) -> bool:
    """True when a split by image holds out exactly what the split by target does: no candidate is
    ranked with two targets and no target is ranked as a candidate (the simulated study: every
    candidate is one person's regeneration of one target). :func:`image_folds` then puts every image
    in its target's fold and no row is dropped, so both modes give the same folds."""
    targets_of = table.groupby("candidate")["target"].nunique()
    return bool((targets_of <= 1).all()) and not set(table["target"]) & set(table["candidate"])


def restrict_to_images(table: pd.DataFrame, images, min_candidates: int = 2) -> pd.DataFrame:
    """Rows whose target and candidate both lie in ``images``, each ranking re-ranked ``1..k'``.

    The kept candidates of a (set, rater) ranking keep their order; a ranking left
    with fewer than ``min_candidates`` candidates (at least two) is dropped. This is
    the split by image for a study that cannot draw new candidates (a CSV study,
    the simulated study).
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


def fold_targets(table: pd.DataFrame, n_splits: int, seed: int = DEFAULTS.seed) -> list[set[str]]:
    """The targets each of :func:`split_folds`' ``n_splits`` folds holds out, the same in both modes
    (:func:`image_folds` gives targets the folds of :func:`kfold_by_target`). Split by image, a held-out
    target all of whose rankings keep too few candidates is missing from the held-out side: these sets
    name the targets whose rankings each fold meant to score."""
    return [set(part) for part in np.array_split(_shuffled_targets(table, seed), n_splits)]


def split_folds(table: pd.DataFrame, mode: str = "target", n_splits: int = 5, seed: int = DEFAULTS.seed,
                within=None, min_candidates: int = 2) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """``n_splits`` (train, test) pairs of rankings in split ``mode`` (:data:`SPLIT_MODES`).

    ``"target"``: :func:`kfold_by_target`. ``"image"``: the images are cut into
    folds (:func:`image_folds`); the held-out side's rankings are built from the
    fold's images only and the training side's from the other images only, by
    ``within(images, seed)`` when given (a dataset that draws new candidates,
    :attr:`clpips.datasets.RankingDataset.within`), else by dropping the rows
    with an image on the other side (:func:`restrict_to_images`): a training
    ranking is kept with two candidates or more, a held-out one with
    ``min_candidates`` or more (a shorter one is not scored; ``within`` draws
    full sets on each side). Rows of
    ``table`` that are on neither side: ``len(table) - len(train) - len(test)``.
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
    """Which training rows hold an image pair that a held-out row holds too (boolean array).

    *The* shared-pair rule of the package: a pair is the unordered
    ``{target, candidate}`` (an LPIPS distance is symmetric), so the training row
    (Y, X) shares its pair with the held-out row (X, Y). Splitting by target leaves
    such pairs wherever images are both targets and candidates (mur92); the split
    by image leaves none.
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
    """Training rows without the image pairs held-out rows hold (:func:`shared_pairs`).

    Each shortened ranking is re-ranked ``1..k'`` in its order; one left with
    fewer than two candidates is dropped.
    """
    return _rerank(train[~shared_pairs(train, test)])
