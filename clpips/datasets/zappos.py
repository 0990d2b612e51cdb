"""``zappos``: 85 shoe photographs and 283,770 crowd triplets as rankings (``data/README.md``).

A triplet ``head, closer, farther`` is one comparison won by ``closer``. For each head a Bradley–Terry
model is fitted to that head's triplets only; each target's sets of ``k`` candidates, drawn with
``default_rng([seed, target])``, are ranked by strength (rank 1 = strongest = most similar), rater
``"crowd"``. The fitter is choix's I-LSR, run on stacks of heads by :func:`bradley_terry_many` (a few
ms per head; ``choix.opt_pairwise`` takes 0.4 s for the same order); ``alpha`` keeps strengths finite,
as no head's comparison graph is strongly connected. A split by image refits each head on the given
images only (:func:`within`), so no comparison with a held-out image informs training.
"""
from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Collection, Sequence
from functools import partial
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from clpips.defaults import DEFAULTS
from clpips.moved import moved_name

import clpips.datasets.download as download
from clpips.datasets.download import data_dir
from clpips.datasets.schema import RankingDataError, RankingDataset
from clpips.datasets.validate import check_ties, validate

COMMIT = "3e92c9c6c364c0a15a6f344607324b8f83d914eb"
BASE_URL = f"https://raw.githubusercontent.com/stsievert/salmon/{COMMIT}/examples/zappos/_raw"
TRIPLETS_FILE = "deconflicted_triplets.csv.zip"
N_IMAGES = 85
RATER = "crowd"
#: choix's regularisation of I-LSR (see the module docstring)
ALPHA = 0.01
#: strengths closer than this are read as tied
TIE_TOLERANCE = 1e-6
CITATION = (
    "Heim E, Berger M, Seversky L, Hauskrecht M (2015). Active perceptual similarity modeling with "
    "auxiliary information. arXiv:1511.02254\n"
    "Yu A, Grauman K (2014). Fine-grained visual comparisons with local learning. "
    "IEEE Conference on Computer Vision and Pattern Recognition (CVPR), 192-199"
)
LICENCE = (f"The copy: BSD 3-Clause (stsievert/salmon, commit {COMMIT}, examples/zappos/_raw); "
           "the images: UT-Zappos50K, for academic, non-commercial research")


def read_sha256_table(text: str | None = None) -> dict[str, str]:
    """``{path: sha256}`` from ``sha256sum`` lines (default: the packaged ``zappos_sha256.txt``)."""
    if text is None:
        text = resources.files("clpips.datasets").joinpath("zappos_sha256.txt").read_text(encoding="utf-8")
    pairs = (line.split(maxsplit=1) for line in text.splitlines() if line.strip())
    return {name.strip().lstrip("*"): digest for digest, name in pairs}


#: file name -> sha256 (86 files)
SHA256 = read_sha256_table()


def image_ref(index: int) -> str:
    """Image reference of object ``index`` (0-84), as named in the triplets."""
    return f"images/{index}.jpg"


def image_index(ref: str) -> int:
    """The object index of an image reference (inverse of :func:`image_ref`)."""
    if ref not in _INDEX:
        raise ValueError(f"zappos: {ref!r} is not one of its images (images/0.jpg ... images/{N_IMAGES - 1}.jpg)")
    return _INDEX[ref]


_INDEX = {image_ref(i): i for i in range(N_IMAGES)}


def fetch_files(base_url: str | None = None, mirror: str | os.PathLike | None = None) -> dict[str, Path]:
    """Verified local copies of every file of :data:`SHA256` (:func:`clpips.datasets.download.fetch_files`)."""
    return download.fetch_files("zappos", SHA256, BASE_URL, "CLPIPS_ZAPPOS_URL", base_url=base_url, mirror=mirror)


def zip_member(path: str | os.PathLike, suffix: str) -> bytes:
    """The bytes of the one file ending in ``suffix`` in the zip ``path`` (``__MACOSX/`` ignored)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith(suffix) and not n.startswith("__MACOSX/")]
            if len(names) != 1:
                raise RankingDataError(f"{path}: expected one {suffix} file inside, found {archive.namelist()}")
            return archive.read(names[0])
    except zipfile.BadZipFile as err:
        raise RankingDataError(f"{path}: not a zip file ({err})") from None


def read_triplets(path: str | os.PathLike) -> np.ndarray:
    """The triplets (``n x 3`` int64: head, closer, farther) from the published zip."""
    source = str(path)
    raw = zip_member(path, ".csv")
    try:
        triplets = np.loadtxt(io.BytesIO(raw), delimiter=",", dtype=np.int64, ndmin=2)
    except ValueError as err:
        raise RankingDataError(f"{source}: lines must be three whole numbers head,closer,farther ({err})") from err
    if triplets.shape[1] != 3:
        raise RankingDataError(f"{source}: lines must be three whole numbers head,closer,farther, "
                               f"found {triplets.shape[1]} columns")
    bad = invalid_triplets(triplets, N_IMAGES)
    if bad.any():
        line = int(np.flatnonzero(bad)[0]) + 1
        raise RankingDataError(f"{source}, line {line}: {triplets[line - 1].tolist()} is not three different "
                               f"image indices in 0..{N_IMAGES - 1}")
    return triplets


def invalid_triplets(triplets: np.ndarray, n_images: int) -> np.ndarray:
    """Which rows of an ``n x 3`` array are not three different image indices in ``0..n_images-1`` (boolean)."""
    repeated = (np.diff(np.sort(triplets, axis=1), axis=1) == 0).any(axis=1)
    return ((triplets < 0) | (triplets >= n_images)).any(axis=1) | repeated


def bradley_terry(wins: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """Bradley–Terry log-strengths (mean 0) from ``wins[i, j]``, times ``i`` beat ``j`` (bradley_terry_many)."""
    wins = np.asarray(wins, dtype=float)
    if wins.ndim != 2 or wins.shape[0] != wins.shape[1] or (wins < 0).any():
        raise ValueError(f"wins must be a square matrix of non-negative counts, got shape {wins.shape}")
    return bradley_terry_many(wins[None], alpha)[0]


def bradley_terry_many(wins: np.ndarray, alpha: float = ALPHA, max_iter: int = 100, tol: float = 1e-8) -> np.ndarray:
    """Bradley–Terry strengths of a stack of win matrices (``H x n x n``) at once: ``H x n``.

    Each matrix gets ``choix.ilsr_pairwise_dense(wins[h], alpha)``: the same chain (rate ``alpha +
    wins[j, i] / (w_i + w_j)`` from ``i`` to ``j``), start and stopping rule (L1 change of the centred
    log-strengths at most ``tol * n``, from the second step), each matrix stopping on its own. The
    stationary distribution is a solve with one balance equation replaced by the normalisation (choix
    back-substitutes an LU): they agree to about 1e-12 (tested). 68 heads of 67 candidates: 0.10 s
    stacked, 0.18 s by one choix call each.
    """
    wins = np.asarray(wins, dtype=float)
    if wins.ndim != 3 or wins.shape[1] != wins.shape[2] or (wins < 0).any():
        raise ValueError(f"wins must be a stack of square matrices of non-negative counts, got shape {wins.shape}")
    n_stack, n = wins.shape[:2]
    params = np.zeros((n_stack, n))
    weights = np.ones((n_stack, n))
    live = np.arange(n_stack)
    diagonal = np.arange(n)
    rhs = np.zeros((n, 1))
    rhs[-1] = n                                        # the normalisation: strengths' weights sum to n
    for step in range(max_iter):
        w = weights[live]
        # chain[j, i] = rate from i to j = alpha + wins[i, j] / (w_i + w_j): the balance equations' matrix
        balance = alpha + wins[live] / (w[:, :, None] + w[:, None, :])
        balance[:, diagonal, diagonal] -= balance.sum(axis=1)
        balance[:, -1, :] = 1.0
        try:
            dist = np.linalg.solve(balance, np.broadcast_to(rhs, (len(live), n, 1)))[..., 0]
        except np.linalg.LinAlgError:
            raise ValueError("Bradley-Terry: the comparisons have no unique stationary distribution "
                             "(more than one absorbing class); use alpha > 0") from None
        new = np.log(dist)
        new -= new.mean(axis=1, keepdims=True)
        done = np.zeros(len(live), dtype=bool) if step == 0 else \
            np.abs(params[live] - new).sum(axis=1) <= tol * n
        params[live] = new
        shifted = np.exp(new - new.mean(axis=1, keepdims=True))
        weights[live] = (n / shifted.sum(axis=1, keepdims=True)) * shifted
        live = live[~done]
        if not len(live):
            return params
    raise RuntimeError(f"Bradley-Terry: {len(live)} of {n_stack} fits did not converge after {max_iter} steps")


def head_wins(triplets: np.ndarray, head: int, items: np.ndarray, n_images: int = N_IMAGES) -> np.ndarray:
    """``wins[i, j]``: ``head``'s triplets in which ``items[i]`` was closer than ``items[j]`` (both in ``items``)."""
    pos = np.full(n_images, -1)
    pos[items] = np.arange(len(items))
    own = triplets[triplets[:, 0] == head]
    closer, farther = pos[own[:, 1]], pos[own[:, 2]]
    keep = (closer >= 0) & (farther >= 0)
    wins = np.zeros((len(items), len(items)))
    np.add.at(wins, (closer[keep], farther[keep]), 1)
    return wins


def head_strengths(triplets: np.ndarray, head: int, items: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """Strength of each of ``items`` for target ``head``, from its triplets within ``items``."""
    return bradley_terry(head_wins(triplets, head, items), alpha)


class HeadTriplets:
    """The triplets grouped by head; fitted strengths remembered by (head, pool, alpha), within() tables by options.

    ``refs`` names the image of each index and ``name`` the dataset in messages (another triplet dataset,
    :mod:`.alien_eggs`, passes its own). Why: a split by image refits every head of every side of every
    fold, and chapter 09's runs draw the same folds; on zappos by image the 4,590 fits, each scanning all
    triplets, took 22 of a run's 46 s. A head's triplets keep their order (stable sort), so its
    strengths are bit for bit :func:`head_strengths`'s on the full array (tested).
    """

    #: remembered fits before the memory is emptied (a fit is 84 numbers; a run makes about 4,600)
    MAX_FITS = 50_000
    #: remembered within() tables before that memory is emptied (a run draws about 120)
    MAX_TABLES = 1_000

    def __init__(self, triplets: np.ndarray, refs: Sequence[str] | None = None, name: str = "zappos"):
        triplets = np.asarray(triplets, dtype=np.int64)
        self.refs = list(refs) if refs is not None else [image_ref(i) for i in range(N_IMAGES)]
        self.name = name
        self._index = {ref: i for i, ref in enumerate(self.refs)}
        self.triplets = triplets[np.argsort(triplets[:, 0], kind="stable")]
        self._starts = np.searchsorted(self.triplets[:, 0], np.arange(len(self.refs) + 1))
        self._fits: dict[tuple, np.ndarray] = {}
        #: :func:`within`'s validated tables by their options (validating took 8.8 of the 25 s that
        #: chapter 09's runs spent in within(), profiled)
        self.tables: dict[tuple, pd.DataFrame] = {}

    def remember(self, key: tuple, table: pd.DataFrame) -> None:
        if len(self.tables) >= self.MAX_TABLES:
            self.tables.clear()
        self.tables[key] = table.copy()

    def index(self, ref: str) -> int:
        if ref not in self._index:
            raise ValueError(f"{self.name}: {ref!r} is not one of its images ({self.refs[0]} ... {self.refs[-1]})")
        return self._index[ref]

    def of(self, head: int) -> np.ndarray:
        return self.triplets[self._starts[head]:self._starts[head + 1]]

    def strengths(self, head: int, items: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
        return self.strengths_of([head], [items], alpha)[0]

    def strengths_of(self, heads: Sequence[int], items: Sequence[np.ndarray], alpha: float = ALPHA) -> list[np.ndarray]:
        """:meth:`strengths` of each ``(heads[h], items[h])``; the new ones fitted as one stack per size."""
        keys = [(int(h), np.asarray(i, dtype=np.int64).tobytes(), float(alpha)) for h, i in zip(heads, items)]
        todo: dict[int, dict[tuple, np.ndarray]] = {}
        for key, head, its in zip(keys, heads, items):
            if key not in self._fits:
                its = np.asarray(its, dtype=np.int64)
                todo.setdefault(len(its), {})[key] = head_wins(self.of(int(head)), int(head), its, len(self.refs))
        if todo and len(self._fits) + sum(map(len, todo.values())) > self.MAX_FITS:
            self._fits.clear()
        for stack in todo.values():
            self._fits.update(zip(stack, bradley_terry_many(np.stack(list(stack.values())), alpha)))
        return [self._fits[key] for key in keys]


def as_heads(triplets: np.ndarray | HeadTriplets) -> HeadTriplets:
    return triplets if isinstance(triplets, HeadTriplets) else HeadTriplets(triplets)


def strength_ranks(strengths: np.ndarray) -> np.ndarray:
    """Ranks of ``strengths``, 1 = strongest; neighbours within :data:`TIE_TOLERANCE` share their average rank."""
    strengths = np.asarray(strengths, dtype=float)
    order = np.argsort(-strengths, kind="stable")
    group = np.concatenate([[0], np.cumsum(np.abs(np.diff(strengths[order])) > TIE_TOLERANCE)])
    ranks = np.empty(len(strengths))
    ranks[order] = rankdata(group)                     # a group of neighbours: its positions' average
    return ranks


def draw_sets(targets: np.ndarray, pool: np.ndarray, k: int, sets_per_target: int,
              seed: int) -> list[tuple[int, int, np.ndarray]]:
    """``(target, j, candidates)``: ``sets_per_target`` disjoint sets of ``k`` per target from ``pool`` minus it,
    drawn with ``default_rng([seed, target])``; candidates sorted.
    """
    pool = np.sort(np.asarray(pool))
    if not 2 <= k <= len(pool) - 1:
        raise ValueError(f"k must lie between 2 and {len(pool) - 1} (the other images), got {k}")
    if not 1 <= sets_per_target <= (len(pool) - 1) // k:
        raise ValueError(f"sets_per_target must lie between 1 and {(len(pool) - 1) // k} "
                         f"(disjoint sets of k={k} among {len(pool) - 1} other images), got {sets_per_target}")
    out = []
    for target in np.sort(np.asarray(targets)):
        rng = np.random.default_rng([seed, int(target)])
        others = pool[pool != target]
        chosen = rng.choice(others, size=k * sets_per_target, replace=False)
        out += [(int(target), j, np.sort(part)) for j, part in enumerate(np.split(chosen, sets_per_target))]
    return out


def set_id(target: int, j: int) -> str:
    """Id of the ``j``-th set (0-based) of ``target``."""
    return f"t{target:02d}-{j}"


def rankings(triplets: np.ndarray | HeadTriplets, pool: Collection[int], k: int = DEFAULTS.k,
             sets_per_target: int = DEFAULTS.zappos_sets_per_target, seed: int = DEFAULTS.seed,
             alpha: float = ALPHA, ties: str = "average") -> pd.DataFrame:
    """Ranking rows for every target in ``pool``, from the images and triplets within ``pool`` only.

    ``triplets``: an array (zappos's) or a :class:`HeadTriplets`. Not validated (:func:`load`, :func:`within` do).
    """
    check_ties(ties)
    heads = as_heads(triplets)
    pool = np.array(sorted(set(int(i) for i in pool)), dtype=np.int64)
    ids, targets, candidates, ranks = [], [], [], []
    others = {int(t): pool[pool != t] for t in pool}
    fitted = dict(zip(others, heads.strengths_of(list(others), list(others.values()), alpha)))
    for target, j, chosen in draw_sets(pool, pool, k, sets_per_target, seed):
        set_ranks = strength_ranks(fitted[target][np.searchsorted(others[target], chosen)])
        if ties == "reject" and len(np.unique(set_ranks)) < len(set_ranks):
            raise RankingDataError(f"{heads.name}: target {target}, set {j}: candidates with equal Bradley-Terry "
                                   "strengths; pass ties='average' to give them their average rank")
        ids += [set_id(target, j)] * len(chosen)
        targets += [heads.refs[target]] * len(chosen)
        candidates += [heads.refs[c] for c in chosen]
        ranks.append(set_ranks)
    table = pd.DataFrame({"set_id": ids, "target": targets, "candidate": candidates, "rater": RATER,
                          "rank": np.concatenate(ranks)})
    if ties == "reject":
        table["rank"] = table["rank"].astype(np.int64)
    return table


def within(images: Collection[str], seed: int = DEFAULTS.seed, *, triplets: np.ndarray | HeadTriplets, root: Path,
           k: int = DEFAULTS.k, sets_per_target: int = DEFAULTS.zappos_sets_per_target,
           alpha: float = ALPHA, ties: str = "average") -> pd.DataFrame:
    """Rankings from the given image references only (the ``within`` hook; see the module on leakage).

    Every image is a target with ``min(k, len(images) - 1)`` candidates per set, as many disjoint sets
    as fit (at most ``sets_per_target``); with all 85 images, the table :func:`load` gives.
    """
    heads = as_heads(triplets)
    pool = sorted({heads.index(ref) for ref in images})
    if len(pool) < 3:
        raise ValueError(f"{heads.name}: within() needs at least 3 images (a target and two candidates), "
                         f"got {len(pool)}")
    k_eff = min(k, len(pool) - 1)
    n_sets = max(1, min(sets_per_target, (len(pool) - 1) // k_eff))
    key = (tuple(pool), int(seed), k_eff, n_sets, float(alpha), ties, str(root))
    if key in heads.tables:
        return heads.tables[key].copy()
    table = rankings(heads, pool, k=k_eff, sets_per_target=n_sets, seed=seed, alpha=alpha, ties=ties)
    table = validate(table, root, source=f"{heads.name} rankings within {len(pool)} images (k={k_eff}, seed={seed})",
                     ties=ties, check_images=False)
    heads.remember(key, table)
    return table


def load(k: int = DEFAULTS.k, sets_per_target: int = DEFAULTS.zappos_sets_per_target, seed: int = DEFAULTS.seed,
         alpha: float = ALPHA, ties: str = "average", base_url: str | None = None,
         mirror: str | os.PathLike | None = None) -> RankingDataset:
    """The zappos rankings: 85 targets x ``sets_per_target`` disjoint sets of ``k`` candidates, rater ``"crowd"``."""
    check_ties(ties)
    found = triplets(base_url, mirror)
    info = pd.DataFrame({"image": [image_ref(i) for i in range(N_IMAGES)], "index": np.arange(N_IMAGES),
                         "triplets_as_head": np.bincount(found[:, 0], minlength=N_IMAGES)})
    return crowd_dataset(
        HeadTriplets(found), data_dir("zappos"), k=k, sets_per_target=sets_per_target, seed=seed,
        alpha=alpha, ties=ties, citation=CITATION, licence=LICENCE, image_info=info,
        description=(f"85 shoe photographs (UT-Zappos50K) and {len(found):,} crowd triplets (Heim et al. 2015): "
                     f"each image a target with {sets_per_target} disjoint sets of {k} random candidates, ranked by "
                     "Bradley-Terry strengths fitted to that target's triplets."))


def crowd_dataset(heads: HeadTriplets, root: Path, k: int, sets_per_target: int, seed: int, alpha: float,
                  ties: str, **about) -> RankingDataset:
    """A crowd's triplets as a dataset: every image a target (:func:`rankings`), validated, with a ``within``
    hook sharing ``heads`` (so every fit is remembered); ``about``: citation, licence, image_info, description.
    """
    table = rankings(heads, range(len(heads.refs)), k=k, sets_per_target=sets_per_target, seed=seed,
                     alpha=alpha, ties=ties)
    source = f"{heads.name} rankings (k={k}, sets_per_target={sets_per_target}, seed={seed})"
    return RankingDataset(
        table=validate(table, root, source=source, ties=ties, k=k), root=root, name=heads.name,
        within=partial(within, triplets=heads, root=root, k=k, sets_per_target=sets_per_target,
                       alpha=alpha, ties=ties), **about)


def triplets(base_url: str | None = None, mirror: str | os.PathLike | None = None) -> np.ndarray:
    """The verified triplets (``n x 3``: head, closer, farther)."""
    return read_triplets(fetch_files(base_url=base_url, mirror=mirror)[TRIPLETS_FILE])


def __getattr__(name: str):
    return moved_name(__name__, name)   # split_half, now in clpips.book.agreement (clpips.moved)
