"""``zappos``: 85 shoe photographs and 283,770 crowd triplets, as rankings.

The data are triplets ``head, closer, farther``: a crowd worker judged image
``closer`` more similar to image ``head`` than image ``farther`` (Heim et al.
2015, deconflicted by them; images from UT-Zappos50K, Yu & Grauman 2014). There
are no worker ids, so every ranking here is the pooled judgement of the crowd
(rater ``"crowd"``).

From triplets to rankings
-------------------------
For every head (target) ``t`` each triplet ``(t, a, b)`` is one comparison in
which ``a`` beat ``b``. A Bradley–Terry model, ``P(a beats b) = 1 / (1 +
exp(s_b - s_a))``, is fitted to that head's comparisons only, giving a strength
``s`` for every other image; the higher the strength, the more similar to ``t``.
A ranking set is ``k`` candidates drawn from the 84 other images with
``numpy.random.default_rng([seed, t])``; ``sets_per_target`` disjoint sets are
drawn per target (default :data:`DEFAULTS.zappos_sets_per_target`), and each
set's candidates are ranked by strength, rank 1 = strongest = most similar.

Fitter: ``choix.ilsr_pairwise_dense`` (PyPI ``choix``, Maystre & Grossglauser's
I-LSR). It converges to the Bradley–Terry maximum-likelihood estimate, works on
the dense win-count matrix (each head compares about 3,340 of its 3,486
candidate pairs) and takes a few milliseconds per head, where
``choix.opt_pairwise`` (the same likelihood with an L2 penalty, solved by
scipy's Newton-CG over a Python loop of comparisons) takes about 0.4 s per head:
85 heads, two halves for the split-half reliability and one refit per ``within``
call would cost minutes instead of about a second. The two give the same order
(Spearman 0.99996 between their strengths on a head of these data). The fits run
as :func:`bradley_terry_many`: choix's I-LSR step for step (its chain, start and
stopping rule), on a stack of heads at once, which agrees with
``choix.ilsr_pairwise_dense`` to about 1e-12 (tested against it) and is 2-9 times
faster where a split by image refits thousands of heads (measured in that function).

Regularisation ``alpha`` (default :data:`ALPHA`): each head's comparison graph is
not strongly connected (its candidates fall into blocks, two for most heads,
and every comparison between two blocks is won by the same block), so the unpenalised
maximum likelihood does not exist: the strengths of the blocks drift apart
without bound. choix's ``alpha`` adds a small rate between every pair of items
of I-LSR's Markov chain, which pulls strengths towards equality and keeps them
finite; the order within a block, and of the blocks, is the data's.

Ties: when two images were each compared with every other candidate and won the
same number of times, their strengths are equal (win counts are the
sufficient statistic of a complete round robin). This happens for about four
of a head's 3,486 candidate pairs on average (60 of the 85 heads have one or
more). Strengths within ``1e-6`` of each other are read as tied; with
``ties="average"`` (default) tied candidates get their average rank (no training
pair is made from them), ``ties="reject"`` raises.

Leakage
-------
A ranking of a set for target ``t`` is computed only from the triplets whose
head is ``t``. Every triplet has exactly one head, so the triplets behind the
rankings of different targets are disjoint: a split by target
(:func:`clpips.datasets.split_by_target`) keeps the triplets that rank the
held-out sets away from the ones that rank the training sets. (A training
set's candidate may still be a held-out target, as in mur92: the image is
shared, the judgements are not.)

A split by *image* is stricter: no held-out image may inform training at all.
Then a training target's ranking must not use triplets ``(t, a, b)`` where
``a`` or ``b`` is a held-out image, even if neither is one of its candidates.
:func:`within` (the dataset's ``within`` hook) therefore refits each head on
the triplets whose closer and farther images both lie among the given images,
and draws candidates only among them. Restricting the full-head strengths
instead would carry information from comparisons with the other side's images.

Reliability (not a noise ceiling): with no individual raters, the data's reliability is measured
by splitting each head's triplets at random into two halves and ranking every set
from each half (:func:`split_half_ranks`); the book compares the two rankings
(:func:`clpips.book.agreement.split_half`).

Files (``deconflicted_triplets.csv.zip``, ``images/0.jpg`` ...
``images/84.jpg``) come from ``stsievert/salmon`` at a fixed commit and are
each checked against the sha256 sums shipped with the package
(``zappos_sha256.txt``). They are read from ``$CLPIPS_DATA_MIRROR/zappos/``
when that variable is set (or ``mirror=`` is passed), else downloaded from
``$CLPIPS_ZAPPOS_URL`` or the canonical GitHub address (or ``base_url=``), into
``<cache>/data/zappos/``.
"""
from __future__ import annotations

import importlib
import io
import os
import warnings
import zipfile
from collections.abc import Collection, Sequence
from functools import partial
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from clpips.defaults import DEFAULTS

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
    """The expected sha256 of every file, from the packaged ``zappos_sha256.txt``
    (``sha256  path`` lines, as ``sha256sum`` writes them)."""
    if text is None:
        text = resources.files("clpips.datasets").joinpath("zappos_sha256.txt").read_text(encoding="utf-8")
    table = {}
    for line in text.splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            table[name.strip().lstrip("*")] = digest
    return table


#: file name -> sha256 (86 files)
SHA256 = read_sha256_table()


def image_ref(index: int) -> str:
    """Image reference of object ``index`` (0-84), as named in the triplets."""
    return f"images/{index}.jpg"


def image_index(ref: str) -> int:
    """The object index of an image reference (inverse of :func:`image_ref`)."""
    try:
        index = int(ref.removeprefix("images/").removesuffix(".jpg"))
    except ValueError:
        index = -1
    if image_ref(index) != ref or not 0 <= index < N_IMAGES:
        raise ValueError(f"zappos: {ref!r} is not one of its images (images/0.jpg ... images/{N_IMAGES - 1}.jpg)")
    return index


def fetch_files(base_url: str | None = None, mirror: str | os.PathLike | None = None) -> dict[str, Path]:
    """Verified local copies of every file of :data:`SHA256` in ``<cache>/data/zappos/``
    (:func:`clpips.datasets.download.fetch_files`: an explicit ``mirror`` or ``base_url`` wins, then
    ``$CLPIPS_DATA_MIRROR``, ``$CLPIPS_ZAPPOS_URL``, the canonical address; a file that cannot be fetched
    or whose sha256 differs is a one-line DownloadError naming it, and nothing is kept under its name)."""
    return download.fetch_files("zappos", SHA256, BASE_URL, "CLPIPS_ZAPPOS_URL", base_url=base_url, mirror=mirror)


def zip_member(path: str | os.PathLike, suffix: str) -> bytes:
    """The bytes of the one file ending in ``suffix`` inside the zip ``path`` (macOS metadata, ``__MACOSX/``,
    ignored); a one-line :class:`RankingDataError` naming ``path`` when it is not a zip or holds no such
    file or several."""
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
    outside = ((triplets < 0) | (triplets >= n_images)).any(axis=1)
    return outside | (triplets[:, 0] == triplets[:, 1]) | (triplets[:, 0] == triplets[:, 2]) \
        | (triplets[:, 1] == triplets[:, 2])


def bradley_terry(wins: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """Bradley–Terry strengths from a win-count matrix: ``choix.ilsr_pairwise_dense``'s I-LSR
    (:func:`bradley_terry_many` of a stack of one).

    Parameters
    ----------
    wins : numpy.ndarray
        ``n x n``; ``wins[i, j]`` = times item ``i`` beat item ``j``.
    alpha : float
        choix's regularisation (0: the plain maximum-likelihood estimate, which
        exists only when the comparison graph is strongly connected).

    Returns
    -------
    numpy.ndarray
        ``n`` strengths (log scale, mean 0); higher = wins more often.
    """
    wins = np.asarray(wins, dtype=float)
    if wins.ndim != 2 or wins.shape[0] != wins.shape[1] or (wins < 0).any():
        raise ValueError(f"wins must be a square matrix of non-negative counts, got shape {wins.shape}")
    return bradley_terry_many(wins[None], alpha)[0]


def bradley_terry_many(wins: np.ndarray, alpha: float = ALPHA, max_iter: int = 100,
                       tol: float = 1e-8) -> np.ndarray:
    """Bradley–Terry strengths of a stack of win-count matrices (``H x n x n``) at once: ``H x n``.

    Each matrix gets what ``choix.ilsr_pairwise_dense(wins[h], alpha)`` gives (PyPI ``choix``,
    Maystre & Grossglauser's I-LSR, the module docstring's fitter): the same Markov chain
    (rate ``alpha + wins[j, i] / (w_i + w_j)`` from ``i`` to ``j``), the same start (equal
    weights), the same stopping rule (the L1 change of the centred log-strengths at most
    ``tol * n``, checked from the second step), each matrix stopping on its own; only the
    steps run on the whole stack, and the chain's stationary distribution is a solve with
    one balance equation replaced by the normalisation (choix back-substitutes an LU of the
    singular generator): the two agree to about 1e-12 (tested). Measured on zappos split by
    image, where a protocol run refits 4,335 heads of up to 67 candidates: 68 heads of 67 took
    0.10 s stacked and 0.18 s one call of choix each.
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
    """``wins[i, j]``: the triplets with head ``head`` in which ``items[i]`` was closer than ``items[j]``
    (only triplets whose closer and farther both lie in ``items``); image indices lie in ``0..n_images-1``."""
    pos = np.full(n_images, -1)
    pos[items] = np.arange(len(items))
    own = triplets[triplets[:, 0] == head]
    closer, farther = pos[own[:, 1]], pos[own[:, 2]]
    keep = (closer >= 0) & (farther >= 0)
    wins = np.zeros((len(items), len(items)))
    np.add.at(wins, (closer[keep], farther[keep]), 1)
    return wins


def head_strengths(triplets: np.ndarray, head: int, items: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """Strength of each of ``items`` (image indices, not ``head``) for target ``head``,
    fitted to the triplets with that head whose closer and farther both lie in ``items``."""
    return bradley_terry(head_wins(triplets, head, items), alpha)


class HeadTriplets:
    """The triplets grouped by head, each head's fitted strengths remembered by (head, pool, alpha),
    and each :func:`within` table by its options.

    ``refs`` names the image of each index (default zappos's ``images/0.jpg`` ...) and ``name`` the
    dataset in messages: another triplet dataset (:mod:`.alien_eggs`) passes its own, and
    :func:`rankings`, :func:`within` and :func:`split_half_ranks` read its images through them.

    A split by image refits every head of every side of every fold (:func:`within`), and the
    protocol's runs of one dataset (one per metric, chapter 09) draw the same folds, so the same
    fits recur. Measured on zappos split by image (one protocol run, 123 ``within`` calls): the
    4,590 head fits, each scanning all 283,770 triplets for its head, took 22 of the run's 46 s.
    Grouping by head once makes the scan a slice; remembering the fits makes a second run's
    draws free. A head's triplets keep their order (stable sort), so its strengths are those
    :func:`head_strengths` gives on the full array, bit for bit (tested).
    """

    #: remembered fits before the memory is emptied (a fit is 84 numbers; a run makes about 4,600)
    MAX_FITS = 50_000
    #: remembered within() tables before that memory is emptied (a run draws about 120)
    MAX_TABLES = 1_000

    def __init__(self, triplets: np.ndarray, refs: Sequence[str] | None = None, name: str = "zappos"):
        triplets = np.asarray(triplets, dtype=np.int64)
        #: the image reference of each index, and the dataset's name in messages
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
        """Keep a copy of a :func:`within` table under its options."""
        if len(self.tables) >= self.MAX_TABLES:
            self.tables.clear()
        self.tables[key] = table.copy()

    def index(self, ref: str) -> int:
        """The index of image reference ``ref`` (a one-line ValueError naming it when it is none of the images)."""
        if ref not in self._index:
            raise ValueError(f"{self.name}: {ref!r} is not one of its images ({self.refs[0]} ... {self.refs[-1]})")
        return self._index[ref]

    def of(self, head: int) -> np.ndarray:
        """The triplets whose head is ``head``, in their original order."""
        return self.triplets[self._starts[head]:self._starts[head + 1]]

    def strengths(self, head: int, items: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
        """:func:`head_strengths` of ``head`` over ``items``, fitted once."""
        return self.strengths_of([head], [items], alpha)[0]

    def strengths_of(self, heads: Sequence[int], items: Sequence[np.ndarray], alpha: float = ALPHA) -> list[np.ndarray]:
        """:meth:`strengths` of each ``(heads[h], items[h])``; those not remembered are fitted as one stack
        per number of items (:func:`bradley_terry_many`: a head's fit is the one it gets alone)."""
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
    """``triplets`` grouped by head: a :class:`HeadTriplets` as it is, an array as zappos's."""
    return triplets if isinstance(triplets, HeadTriplets) else HeadTriplets(triplets)


def strength_ranks(strengths: np.ndarray) -> np.ndarray:
    """Ranks of ``strengths``, 1 = strongest; values within :data:`TIE_TOLERANCE`
    of their neighbour in sorted order share their average rank."""
    strengths = np.asarray(strengths, dtype=float)
    order = np.argsort(-strengths, kind="stable")
    sorted_s = strengths[order]
    group = np.concatenate([[0], np.cumsum(np.abs(np.diff(sorted_s)) > TIE_TOLERANCE)])
    positions = np.arange(1, len(strengths) + 1, dtype=float)
    mean_position = (np.bincount(group, positions) / np.bincount(group))[group]
    ranks = np.empty(len(strengths))
    ranks[order] = mean_position
    return ranks


def draw_sets(targets: np.ndarray, pool: np.ndarray, k: int, sets_per_target: int,
              seed: int) -> list[tuple[int, int, np.ndarray]]:
    """``(target, j, candidates)`` for ``sets_per_target`` disjoint sets of ``k``
    candidates per target, drawn from ``pool`` minus the target with
    ``numpy.random.default_rng([seed, target])``; candidates sorted."""
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
    """Ranking rows for every target in ``pool``, using only images and triplets within ``pool``.

    Each target's strengths are fitted to the triplets with that head whose closer
    and farther both lie in ``pool`` (all 85 images: every triplet of the head).
    ``triplets``: the array (zappos's), or a :class:`HeadTriplets` (which remembers its fits,
    and names the images). Not validated; :func:`load` and :func:`within` validate.
    """
    check_ties(ties)
    heads = as_heads(triplets)
    pool = np.array(sorted(set(int(i) for i in pool)), dtype=np.int64)
    ids, targets, candidates, ranks = [], [], [], []
    others = {int(t): pool[pool != t] for t in pool}
    fitted = dict(zip(others, heads.strengths_of(list(others), list(others.values()), alpha)))
    strengths = np.zeros(len(heads.refs))
    current = None
    for target, j, chosen in draw_sets(pool, pool, k, sets_per_target, seed):
        if target != current:
            strengths[others[target]] = fitted[target]
            current = target
        set_ranks = strength_ranks(strengths[chosen])
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
    """Rankings built only from the given image references (the ``within`` hook).

    Every given image is a target; its candidates are drawn among the other given
    images, ``k' = min(k, len(images) - 1)`` per set and as many disjoint sets as
    fit (at most ``sets_per_target``), and ranked by strengths refitted to the
    head's triplets whose closer and farther are both given images (see the module
    docstring: the leak-free choice for a split by image). With all 85 images this
    is the table :func:`load` gives with the same options. ``triplets``: as :func:`rankings`'s.
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
    """The zappos rankings: 85 targets x ``sets_per_target`` sets of ``k`` candidates, rater ``"crowd"``.

    Parameters
    ----------
    k : int
        Candidates per set, 2..84.
    sets_per_target : int
        Disjoint candidate sets per target (``k * sets_per_target <= 84``).
    seed : int
        Seed of the candidate draw (``numpy.random.default_rng([seed, target])``).
    alpha : float
        Regularisation of the Bradley–Terry fit (see the module docstring).
    ties : {"average", "reject"}
        What to do with candidates of equal strength.
    base_url, mirror : optional
        Where to fetch the files from (see :func:`fetch_files`).
    """
    check_ties(ties)
    triplets = read_triplets(fetch_files(base_url=base_url, mirror=mirror)[TRIPLETS_FILE])
    info = pd.DataFrame({"image": [image_ref(i) for i in range(N_IMAGES)], "index": np.arange(N_IMAGES),
                         "triplets_as_head": np.bincount(triplets[:, 0], minlength=N_IMAGES)})
    return crowd_dataset(
        HeadTriplets(triplets), data_dir("zappos"), k=k, sets_per_target=sets_per_target, seed=seed,
        alpha=alpha, ties=ties, citation=CITATION, licence=LICENCE, image_info=info,
        description=(f"85 shoe photographs (UT-Zappos50K) and {len(triplets):,} crowd triplets (Heim et al. 2015): "
                     f"each image a target with {sets_per_target} disjoint sets of {k} random candidates, ranked by "
                     "Bradley-Terry strengths fitted to that target's triplets."))


def crowd_dataset(heads: HeadTriplets, root: Path, k: int, sets_per_target: int, seed: int, alpha: float,
                  ties: str, **about) -> RankingDataset:
    """A crowd's triplets as a dataset of rankings (zappos's, :mod:`.alien_eggs`'s): every image a target
    (:func:`rankings`), the table validated, and the ``within`` hook sharing ``heads``, so that the
    fits of the table and of every ``within`` draw are remembered. ``about``: the
    :class:`RankingDataset`'s ``citation``, ``licence``, ``image_info`` and ``description``; its name
    is ``heads.name``."""
    table = rankings(heads, range(len(heads.refs)), k=k, sets_per_target=sets_per_target, seed=seed,
                     alpha=alpha, ties=ties)
    source = f"{heads.name} rankings (k={k}, sets_per_target={sets_per_target}, seed={seed})"
    return RankingDataset(
        table=validate(table, root, source=source, ties=ties, k=k), root=root, name=heads.name,
        within=partial(within, triplets=heads, root=root, k=k, sets_per_target=sets_per_target,
                       alpha=alpha, ties=ties), **about)


def triplets(base_url: str | None = None, mirror: str | os.PathLike | None = None) -> np.ndarray:
    """The verified triplets (``n x 3``: head, closer, farther), fetched like :func:`load`'s files."""
    return read_triplets(fetch_files(base_url=base_url, mirror=mirror)[TRIPLETS_FILE])


def split_half_ranks(table: pd.DataFrame, triplets: np.ndarray | HeadTriplets, seed: int = DEFAULTS.seed,
                     alpha: float = ALPHA) -> pd.DataFrame:
    """Each set of ``table`` ranked twice, from two random halves of its target's triplets.

    The pool is the table's images (all 85 for :func:`load`, the given ones for
    :func:`within`); a head's triplets within the pool are shuffled with
    ``numpy.random.default_rng([seed, head])`` and cut into halves A (first
    ``n // 2``) and B. Returns ``set_id, target, candidate, rank_a, rank_b`` (ranks
    within each set, 1 = strongest, ties averaged) in the table's row order. ``triplets``: as
    :func:`rankings`'s.
    """
    heads = as_heads(triplets)
    refs = sorted(set(table["target"]) | set(table["candidate"]))
    pool = np.array(sorted(heads.index(r) for r in refs), dtype=np.int64)
    in_pool = np.zeros(len(heads.refs), dtype=bool)
    in_pool[pool] = True
    ranked, wins = [], []
    groups = list(table.groupby("target", sort=True))
    for target_ref, _ in groups:   # each head's two halves, then every fit as one stack
        head = heads.index(target_ref)
        own = heads.of(head)                      # the head's triplets in their original order
        own = own[in_pool[own[:, 1]] & in_pool[own[:, 2]]]
        order = np.random.default_rng([seed, head]).permutation(len(own))
        wins += [head_wins(half, head, pool[pool != head], len(heads.refs))
                 for half in (own[order[: len(own) // 2]], own[order[len(own) // 2:]])]
    strengths = bradley_terry_many(np.stack(wins), alpha) if wins else np.zeros((0, len(pool) - 1))
    for g, (target_ref, part) in enumerate(groups):
        others = pool[pool != heads.index(target_ref)].tolist()
        fits = [dict(zip(others, strengths[2 * g + half])) for half in (0, 1)]
        for sid, rows in part.groupby("set_id", sort=True):
            cands = rows["candidate"].drop_duplicates()
            idx = [heads.index(c) for c in cands]
            ranked.append(pd.DataFrame({
                "set_id": sid, "target": target_ref, "candidate": cands.to_numpy(),
                "rank_a": strength_ranks([fits[0][i] for i in idx]),
                "rank_b": strength_ranks([fits[1][i] for i in idx])}))
    out = pd.concat(ranked, ignore_index=True)
    keys = table[["set_id", "candidate"]].drop_duplicates()
    return keys.merge(out, on=["set_id", "candidate"], how="left")[
        ["set_id", "target", "candidate", "rank_a", "rank_b"]].reset_index(drop=True)


def __getattr__(name: str):
    """``split_half``, moved to :func:`clpips.book.agreement.split_half`, at its old path with a
    DeprecationWarning until clpips 0.3."""
    if name != "split_half":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(f"{__name__}.split_half moved to clpips.book.agreement.split_half; the old path works until "
                  "clpips 0.3", DeprecationWarning, stacklevel=2)
    # by name, as clpips.moved does: the core does not import the book; only this old path reaches it
    return importlib.import_module("clpips.book.agreement").split_half
