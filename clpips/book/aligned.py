"""AligNet's moves at compendium scale: a low-rank transform of LPIPS's pooled representation, and a teacher.

AligNet (Muttenthaler et al., Nature 2025) aligns a vision model with people in
three moves: (1) learn a transform of the model's global representation from
human similarity judgements, kept close to the original by a regulariser;
(2) use the aligned model as a surrogate *teacher* to label comparisons people
never made; (3) train a *student* on those labels. This module gives the pieces
to run those moves beside CLPIPS on the compendium's ranking data; the nested
cross-validation (:mod:`clpips.protocol`) runs them as the metric families of
:mod:`clpips.book.families`. It is not AligNet's recipe: one small backbone
(AlexNet), and no separate teacher data: the teacher relabels new sets of the
training side's own images (self-distillation), where AligNet's labels a much
larger image set.

The global representation
    :func:`image_embeddings`: for each image (its own native size), LPIPS's
    channel-normalised activations of the five layers
    (:meth:`clpips.model.CLPIPS.layer_features`), averaged over space, each layer's
    pooled vector scaled to unit length, concatenated layer by layer (D = 1,152 for
    AlexNet). Cached on disk per image content.

Two pair features, one row per distinct (target, candidate) of a table, in the order
:func:`clpips.train.pair_features_for` uses, so the existing trainer and scorer apply:
    :func:`global_features`: ``psi = (e_t - e_c) ** 2`` elementwise, so that
    ``psi @ w`` is a "global LPIPS" (``w = w0``, the official per-channel weights)
    and a "global CLPIPS" once ``w`` is fitted with :func:`clpips.train.fit_many`.
    :func:`delta_features`: the signed ``delta = sqrt(w0) * e_t - sqrt(w0) * e_c``,
    so ``||delta||^2 == psi @ w0``: the input of the transform.

The transform
    ``d(t, c) = ||(I + U V^T) delta||^2`` with ``U, V`` in ``R^{D x r}`` (rank ``r``),
    regularised towards the identity by ``lam * ||U V^T||_F^2`` (computed as
    ``trace((U^T U)(V^T V))``, never forming a D x D matrix). ``U`` starts at zero,
    so training starts *exactly* at global LPIPS (``d = ||delta||^2``). ``V`` starts
    at small seeded Gaussian values (standard deviation ``V_INIT / sqrt(D)``: columns
    of expected length ``V_INIT``): were both zero, every gradient would vanish
    (``U = V = 0`` is a saddle point: the gradient of ``U`` is proportional to
    ``delta V`` and that of ``V`` to ``delta U``); being random, ``V`` picks the first
    directions ``U`` can grow along; being small, it keeps the identity's
    neighbourhood at start; seeded, a fit is reproducible bit for bit.

The loss: why a ranking loss and not AligNet's odd-one-out
    AligNet trains on odd-one-out triplet choices with a softmax over the three
    pairs' similarities. Our data are rankings: a target and its candidates in order
    of similarity. Every ordered pair of a ranking (``better`` ranked above ``worse``)
    *is* an (anchor, closer, farther) triplet with a known anchor, so no
    odd-one-out marginalisation is needed, and training with CLPIPS's own loss
    (:func:`clpips.train.pair_loss` on ``s = d(t, worse) - d(t, better)``, ``"margin"``
    or ``"logistic"``, the same margin grid) keeps the comparison with CLPIPS like
    for like: the two differ only in what is learnt (a per-channel weighting of
    spatial differences vs a low-rank transform of the global representation).

Training (:func:`fit_transform_many`) is full-batch Adam (every training pair
each step: deterministic, no shuffles), a grid of (lam, lr) settings stepping in
lockstep as one batched tensor, with gradients written out (checked against
autograd in the tests). Identical ordered pairs (mur92's raters rank the same
sets) are merged with their counts as weights (the mean loss is unchanged), and
when the delta rows are differences of per-image vectors (``factors``, which
:func:`delta_features` provides), a step works on the images rather than the rows
(92 vs ~900 on mur92): the products with ``U`` and ``V``, and the distances as
entries of image-by-image matrices (:func:`_gradient_images`). On that image path a
few consecutive jobs step together (:data:`JOBS_TOGETHER`), their columns side by side
over the union of their pairs, each column weighing only its own job's: a job's step
there is mostly fixed costs of small operations, and the protocol's runs took 9-30%
less time (measured at :data:`JOBS_TOGETHER`); a column's numbers are those of its job
fitted alone, bit for bit in our runs (a pair of another job weighs 0, and adds 0).
On the rows path each job steps alone (over the rows path, the earlier measurement:
8 mur92-sized jobs together, 3.3 s of CPU against 3.4 s one after another).

Measured (``benchmarks/bench_aligned.py``, best of 5; a 2-core Intel Xeon shared with
other work, load 2.5-4.6, 1 torch thread): one mur92-sized job (50,000 training pairs over
920 distinct rows of 92 images, 8,271 distinct ordered pairs, D = 1,152, rank 8,
6 settings, 200 steps) took 0.41-0.46 s of CPU (0.46-0.63 s wall) with ``factors``, and
0.91-0.95 s of CPU from the delta rows alone.

The teacher
    :func:`teacher_rankings` draws candidate sets among a given image universe
    (the training side's images) and ranks them by a teacher distance (e.g. the
    fitted transform, :func:`teacher_distance`), in the dataset schema with
    ``rater = "teacher"``; :func:`teacher_sets` sizes them against the human pairs.
    :func:`neighbour_overlap` measures how much a transform reorders nearest
    neighbours (AligNet's check that the representation's local structure survives).

Conventions: lower distance = more similar; rank 1 = most similar.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from clpips import atomic
from clpips.features import (MEMORY_BUDGET, CacheWarning, PairFeatures, activation_bytes, layer_activations,
                             read_cached)
from clpips.images import load_image
from clpips.model import CHANNELS, CLPIPS, initial_weight_vector
from clpips.paths import cache_dir, sha256_file
from clpips.train import LOSSES, compute_dtype, pair_loss, torch_threads

#: bump when the definition of an image embedding changes, to invalidate caches
EMBEDDING_VERSION = 1
#: the ``rater`` of teacher-made rankings, and the prefix of their set ids
TEACHER = "teacher"
#: expected length of each column of V at initialisation (entries ~ N(0, V_INIT^2 / D))
V_INIT = 0.1


# --------------------------------------------------------------------------- embeddings
@dataclass
class Embeddings:
    """Global image embeddings: ``matrix[i]`` is the embedding of ``refs[i]``."""

    refs: list[str]
    matrix: torch.Tensor        #: n x D float32, each layer's block of unit length
    net: str
    extracted: int = 0          #: images computed now (the rest came from the cache)

    def __post_init__(self) -> None:
        if self.matrix.ndim != 2 or self.matrix.shape[0] != len(self.refs):
            raise ValueError(f"matrix must be {len(self.refs)} x D, got {tuple(self.matrix.shape)}")
        self.index = {ref: i for i, ref in enumerate(self.refs)}

    def rows(self, refs: Iterable[str]) -> torch.Tensor:
        """Row numbers of ``refs`` (a KeyError names a reference that was not embedded)."""
        out = []
        for ref in refs:
            i = self.index.get(str(ref))
            if i is None:
                raise KeyError(f"no embedding for image {ref!r}")
            out.append(i)
        return torch.tensor(out, dtype=torch.long)

    def of(self, refs: Iterable[str]) -> torch.Tensor:
        """The embeddings of ``refs`` (len(refs) x D)."""
        return self.matrix[self.rows(refs)]

    def scaled(self, weights: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``sqrt(w) * e`` for every image (n x D): squared Euclidean distances between these rows are
        the global LPIPS distances ``psi @ w`` (``w`` default: the official v0.1 weights)."""
        return self.matrix * _sqrt_weights(weights, self.net, self.matrix.shape[1])

    def delta(self, targets: Sequence[str], candidates: Sequence[str],
              weights: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Transform inputs ``sqrt(w) * e_t - sqrt(w) * e_c`` of arbitrary pairs (len x D)."""
        targets, candidates = list(targets), list(candidates)
        if len(targets) != len(candidates):
            raise ValueError(f"{len(targets)} targets for {len(candidates)} candidates")
        z = self.scaled(weights)
        return z[self.rows(targets)] - z[self.rows(candidates)]


def embedding_store(net: str) -> Path:
    """Folder of the per-image embedding cache: ``<cache>/embeddings/v{EMBEDDING_VERSION}-{net}``."""
    return cache_dir() / "embeddings" / f"v{EMBEDDING_VERSION}-{net}"


def image_embeddings(dataset, refs: Iterable[str], net: str = "alex", device: str = "cpu", cache: bool = True,
                     progress: bool = False, metric: Optional[CLPIPS] = None) -> Embeddings:
    """Global embeddings of images of ``dataset``, each through the backbone once, cached by content.

    Parameters
    ----------
    dataset
        Anything with ``image_path(ref) -> Path`` (a :mod:`clpips.datasets` dataset).
    refs : iterable of image references
        Duplicates are embedded once; the result keeps their first-seen order.
    net, device
        Backbone (``"alex"``: D = 1,152) and torch device.
    cache : bool
        Read and write ``embedding_store(net) / <sha256 of the image bytes>.pt``
        (checked entries, :func:`clpips.atomic.write_checked`; a bad entry is named in a
        :class:`clpips.features.CacheWarning`, removed and rebuilt).
    progress : bool
        Show a progress bar over the images computed.
    metric : CLPIPS, optional
        A ready metric with backbone ``net`` (saves building one).

    Notes
    -----
    Each image is read at its own size (:func:`clpips.images.load_image`) and goes through
    the backbone with :func:`clpips.features.layer_activations` (in chunks of at most
    :data:`clpips.features.MEMORY_BUDGET` bytes of activations; an image this process has
    already run at its size, e.g. for pair features, is not run again). An image's embedding is,
    per layer ``l``, the spatial mean of the channel-normalised activations ``f^l``
    scaled to unit length, concatenated layer by layer.
    """
    if net not in CHANNELS:
        raise ValueError(f"net must be one of {tuple(CHANNELS)}, got {net!r}")
    if metric is not None and metric.net_name != net:
        raise ValueError(f"metric has backbone {metric.net_name!r}, not net={net!r}")
    refs = list(dict.fromkeys(str(r) for r in refs))
    dim = sum(CHANNELS[net])
    paths = {ref: Path(dataset.image_path(ref)) for ref in refs}
    hashes = {ref: sha256_file(p) for ref, p in paths.items()}
    first = {}
    for ref, digest in hashes.items():
        first.setdefault(digest, ref)
    store = embedding_store(net)
    found: dict[str, torch.Tensor] = {}
    if cache:
        for digest in first:
            vec = _read_embedding(store / f"{digest}.pt", dim)
            if vec is not None:
                found[digest] = vec
    todo = [digest for digest in first if digest not in found]
    if todo:
        metric = (metric if metric is not None else CLPIPS(net=net)).to(device)
        computed = _embed(metric, [paths[first[d]] for d in todo], todo, progress)
        found.update(zip(todo, computed))
        if cache:
            try:
                for digest, vec in zip(todo, computed):
                    atomic.write_checked(store / f"{digest}.pt", atomic.torch_bytes(vec.clone()))
            except OSError as err:
                warnings.warn(f"cannot write the embedding cache {store} ({err.strerror or err}); going on without "
                              "caching (set CLPIPS_CACHE to a writable folder)", CacheWarning, stacklevel=2)
    matrix = torch.stack([found[hashes[r]] for r in refs]) if refs else torch.zeros(0, dim)
    return Embeddings(refs=refs, matrix=matrix.float().contiguous(), net=net, extracted=len(todo))


def finite_vector(value, dim: int) -> bool:
    """Whether ``value`` is a tensor of ``dim`` finite numbers (a valid cached embedding)."""
    return isinstance(value, torch.Tensor) and tuple(value.shape) == (dim,) and bool(torch.isfinite(value).all())


def _read_embedding(path: Path, dim: int) -> Optional[torch.Tensor]:
    """A cached embedding, verified (:func:`clpips.features.read_cached`); None when absent or bad."""
    vec = read_cached(path, lambda v: finite_vector(v, dim), f"a {dim}-number finite vector")
    return None if vec is None else vec.float()


def pooled_embedding(layers: Sequence[torch.Tensor]) -> torch.Tensor:
    """Embeddings (N x D) from a batch's channel-normalised layer activations (each N x C x H x W):
    spatial means, each layer's mean scaled to unit length, concatenated layer by layer."""
    return torch.cat([F.normalize(f.mean(dim=(2, 3)), dim=1, eps=1e-10) for f in layers], dim=1)


def _embed(metric: CLPIPS, paths: list[Path], digests: list[str], progress: bool) -> list[torch.Tensor]:
    """Embeddings of images at their own size (:func:`clpips.features.layer_activations`: an image this
    process has run through the backbone at that size, e.g. for pair features, is not run again)."""
    bar = tqdm(total=len(paths), desc=f"embeddings ({metric.net_name})", unit="img", disable=not progress)
    out: list[torch.Tensor] = []
    chunk: dict[tuple, torch.Tensor] = {}
    used = 0.0
    for i, (digest, path) in enumerate(zip(digests, paths)):
        x = load_image(path)
        chunk[(digest, *x.shape[-2:])] = x
        used += activation_bytes(metric.net_name, *x.shape[-2:])
        if used > MEMORY_BUDGET or i == len(paths) - 1:   # at most the memory budget of activations at once
            layers = layer_activations(metric, chunk, bar=bar)
            with torch.no_grad():
                out += [pooled_embedding(layers[key])[0].cpu() for key in chunk]
            chunk, used = {}, 0.0
    bar.close()
    return out


def _sqrt_weights(weights: Optional[torch.Tensor], net: str, dim: int) -> torch.Tensor:
    w = initial_weight_vector(net, "lpips") if weights is None else torch.as_tensor(weights, dtype=torch.float32)
    w = w.detach().flatten().float()
    if w.numel() != dim or not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
        raise ValueError(f"weights must be {dim} finite numbers >= 0, got {w.numel()} numbers")
    return w.sqrt()


# --------------------------------------------------------------------------- pair features
@dataclass
class DeltaFeatures(PairFeatures):
    """:class:`clpips.features.PairFeatures` whose rows are differences of per-image vectors:
    ``matrix[i] == images[ends[i, 0]] - images[ends[i, 1]]`` (bitwise)."""

    images: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 0))   #: n x D, ``sqrt(w) * e``
    ends: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 2, dtype=torch.long))  #: M x 2
    image_refs: list[str] = field(default_factory=list)                       #: the refs of ``images``' rows

    @property
    def factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(images, ends)``, for :func:`fit_transform_many`'s ``factors``."""
        return self.images, self.ends


def table_pairs(table: pd.DataFrame) -> list[tuple[str, str]]:
    """The distinct (target, candidate) pairs of a ranking table, in the order of
    :func:`clpips.train.pair_features_for` (``table[["target", "candidate"]].drop_duplicates()``)."""
    missing = {"target", "candidate"} - set(table.columns)
    if missing:
        raise ValueError(f"ranking table lacks columns {sorted(missing)}")
    keys = table[["target", "candidate"]].drop_duplicates()
    return list(dict.fromkeys((str(t), str(c)) for t, c in keys.itertuples(index=False, name=None)))


def _table_embeddings(dataset, keys, net, device, progress, embeddings) -> Embeddings:
    refs = list(dict.fromkeys(ref for key in keys for ref in key))
    if embeddings is not None:
        if embeddings.net != net:
            raise ValueError(f"embeddings are of net={embeddings.net!r}, not net={net!r}")
        return embeddings
    return image_embeddings(dataset, refs, net=net, device=device, progress=progress)


def global_features(dataset, table: pd.DataFrame, net: str = "alex", device: str = "cpu", progress: bool = False,
                    embeddings: Optional[Embeddings] = None) -> PairFeatures:
    """Global pair features ``psi = (e_t - e_c) ** 2`` of every distinct (target, candidate) of ``table``.

    Rows are in the order :func:`clpips.train.pair_features_for` uses, so
    ``psi @ w`` is a distance the existing trainer (:func:`clpips.train.fit_many`) fits
    and the scorer (:func:`clpips.evaluate.heldout_scores`) scores unchanged; with
    ``w = initial_weight_vector(net, "lpips")`` it is a global LPIPS.
    ``embeddings`` (optional) saves computing them (they must cover the table's images).
    """
    keys = table_pairs(table)
    emb = _table_embeddings(dataset, keys, net, device, progress, embeddings)
    if keys:
        matrix = (emb.of([t for t, _ in keys]) - emb.of([c for _, c in keys])) ** 2
    else:
        matrix = torch.zeros(0, emb.matrix.shape[1])
    return PairFeatures(keys=keys, matrix=matrix.contiguous(), net=net, extracted=emb.extracted)


def delta_features(dataset, table: pd.DataFrame, net: str = "alex", device: str = "cpu", progress: bool = False,
                   weights: Optional[torch.Tensor] = None, embeddings: Optional[Embeddings] = None) -> DeltaFeatures:
    """Transform inputs ``delta = sqrt(w) * e_t - sqrt(w) * e_c`` of every distinct (target, candidate) of ``table``.

    Same keys and order as :func:`global_features`; ``weights`` default to the official
    v0.1 weights ``w0``, so ``||delta||^2 == psi @ w0`` (global LPIPS). The result also
    carries the per-image vectors (``factors``) that make :func:`fit_transform_many` fast.
    """
    keys = table_pairs(table)
    emb = _table_embeddings(dataset, keys, net, device, progress, embeddings)
    refs = list(dict.fromkeys(ref for key in keys for ref in key))
    z = emb.scaled(weights)[emb.rows(refs)].contiguous()
    at = {ref: i for i, ref in enumerate(refs)}
    ends = torch.tensor([[at[t], at[c]] for t, c in keys], dtype=torch.long).reshape(-1, 2)
    matrix = (z[ends[:, 0]] - z[ends[:, 1]]).contiguous()
    return DeltaFeatures(keys=keys, matrix=matrix, net=net, extracted=emb.extracted, images=z, ends=ends,
                         image_refs=refs)


# --------------------------------------------------------------------------- the transform
@dataclass(frozen=True)
class TransformGrid:
    """The settings :func:`fit_transform_many` trains together.

    Columns are every ``(lam, lr)`` of ``lambdas x lrs``, lam-major (:meth:`columns`);
    parameters are recorded after each step count in ``steps`` (sorted, distinct).
    """

    lambdas: tuple[float, ...]      #: regulariser weights ``lam >= 0`` on ``||U V^T||_F^2``
    lrs: tuple[float, ...]          #: Adam learning rates ``> 0``
    steps: tuple[int, ...]          #: full-batch step counts at which parameters are recorded
    rank: int = 8                   #: rank ``r`` of ``U V^T``

    def __post_init__(self) -> None:
        lambdas = tuple(float(x) for x in np.atleast_1d(np.asarray(self.lambdas, dtype=float)))
        lrs = tuple(float(x) for x in np.atleast_1d(np.asarray(self.lrs, dtype=float)))
        steps = np.atleast_1d(np.asarray(self.steps, dtype=float))
        if not lambdas or not all(math.isfinite(x) and x >= 0 for x in lambdas):
            raise ValueError(f"lambdas must be finite numbers >= 0, got {self.lambdas!r}")
        if not lrs or not all(math.isfinite(x) and x > 0 for x in lrs):
            raise ValueError(f"lrs must be finite numbers > 0, got {self.lrs!r}")
        if not steps.size or not all(math.isfinite(s) and s >= 1 and s == int(s) for s in steps):
            raise ValueError(f"steps must be whole numbers >= 1, got {self.steps!r}")
        if int(self.rank) != self.rank or self.rank < 1:
            raise ValueError(f"rank must be a whole number >= 1, got {self.rank!r}")
        object.__setattr__(self, "lambdas", lambdas)
        object.__setattr__(self, "lrs", lrs)
        object.__setattr__(self, "steps", tuple(sorted({int(s) for s in steps})))
        object.__setattr__(self, "rank", int(self.rank))

    def columns(self) -> list[tuple[float, float]]:
        """``(lam, lr)`` of each trained column, in the order of the results' ``G`` axis."""
        return list(product(self.lambdas, self.lrs))

    def settings(self) -> pd.DataFrame:
        """Every ``(lam, lr, steps)`` setting, in the order of ``result.reshape(-1, P)`` rows."""
        return pd.DataFrame([(lam, lr, s) for s in self.steps for lam, lr in self.columns()],
                            columns=["lam", "lr", "steps"])


def param_count(dim: int, rank: int) -> int:
    """Length ``P = 2 * D * r`` of one setting's flattened parameters."""
    return 2 * int(dim) * int(rank)


def split_params(params: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(U, V)`` of flattened parameters: ``(P,)`` -> two ``D x r``; ``(G, P)`` -> two ``G x D x r``.

    Layout of a setting's ``P = 2 D r`` numbers: ``U`` row-major (``D x r``), then ``V`` row-major.
    """
    params = torch.as_tensor(params)
    if params.ndim not in (1, 2) or params.shape[-1] % (2 * rank):
        raise ValueError(f"params must be (P,) or (G, P) with P a multiple of 2 * rank = {2 * rank}, "
                         f"got shape {tuple(params.shape)}")
    dim = params.shape[-1] // (2 * rank)
    uv = params.reshape(*params.shape[:-1], 2, dim, rank)
    return uv[..., 0, :, :], uv[..., 1, :, :]


def regulariser(params: torch.Tensor, rank: int) -> torch.Tensor:
    """``||U V^T||_F^2 = trace((U^T U)(V^T V))`` of each setting (a scalar, or ``G``)."""
    U, V = split_params(params, rank)
    A = U.transpose(-1, -2) @ U
    B = V.transpose(-1, -2) @ V
    return (A * B).sum(dim=(-1, -2))  # trace(A B) with A, B symmetric


def transform_distances(delta_rows: torch.Tensor, params: torch.Tensor, rank: int) -> torch.Tensor:
    """``d = ||(I + U V^T) delta||^2`` of each row: ``R`` for ``(P,)`` params, ``R x G`` for ``(G, P)``.

    Computed as ``||delta||^2 + 2 (delta U).(delta V) + (delta V)^T (U^T U) (delta V)``, so at
    ``U = 0`` it is ``||delta||^2`` exactly.
    """
    delta_rows = torch.as_tensor(delta_rows)
    dt = compute_dtype(delta_rows)
    delta_rows, params = delta_rows.to(dt), torch.as_tensor(params).to(dt)
    single = params.ndim == 1
    U, V = split_params(params.reshape(-1, params.shape[-1]), rank)    # G x D x r
    if delta_rows.ndim != 2 or delta_rows.shape[1] != U.shape[1]:
        raise ValueError(f"delta_rows must be R x {U.shape[1]} for these params, got {tuple(delta_rows.shape)}")
    G = U.shape[0]
    W = torch.stack([U, V], dim=0).permute(2, 0, 1, 3).reshape(U.shape[1], -1)   # D x (2 G r), as training
    H = (delta_rows @ W).view(-1, 2, G, rank)
    Q, P = H[:, 0], H[:, 1]
    A = U.transpose(-1, -2) @ U
    d = (delta_rows * delta_rows).sum(1)[:, None] + ((2 * Q + torch.einsum("rgk,gkl->rgl", P, A)) * P).sum(-1)
    return d[:, 0] if single else d


def transform_embeddings(z: torch.Tensor, params: torch.Tensor, rank: int) -> torch.Tensor:
    """``(I + U V^T)`` applied to each row of ``z`` (n x D): ``n x D`` for ``(P,)`` params, ``G x n x D`` for
    ``(G, P)``.

    Pass ``Embeddings.scaled()`` (``sqrt(w0) * e``): squared Euclidean distances between the
    transformed rows are then the transform's distances ``d``.
    """
    z = torch.as_tensor(z)
    z = z.to(compute_dtype(z))
    U, V = split_params(torch.as_tensor(params).to(z.dtype), rank)
    if z.ndim != 2 or z.shape[1] != U.shape[-2]:
        raise ValueError(f"z must be n x {U.shape[-2]} for these params, got {tuple(z.shape)}")
    return z + (z @ V) @ U.transpose(-1, -2)


def transform_loss(delta: torch.Tensor, pairs: torch.Tensor, params: torch.Tensor, rank: int, *, margin: float,
                   loss: str = "margin", lam: float | Sequence[float] = 0.0) -> torch.Tensor:
    """The training objective: :func:`clpips.train.pair_loss` of the gaps plus ``lam * ||U V^T||_F^2``.

    ``pairs`` are ``(better, worse)`` rows of ``delta``; a scalar for ``(P,)`` params, ``G`` for ``(G, P)``
    (``lam`` a number or one per setting).
    """
    pairs = torch.as_tensor(pairs).to(torch.long)
    delta = torch.as_tensor(delta)
    dt = compute_dtype(delta)
    params = torch.as_tensor(params).to(dt)
    used, inverse = torch.unique(pairs.flatten(), return_inverse=True)
    d = transform_distances(delta.to(dt)[used], params, rank)
    d2 = d.reshape(d.shape[0], -1)
    inverse = inverse.view(-1, 2)
    s = d2[inverse[:, 1]] - d2[inverse[:, 0]]
    data = torch.stack([pair_loss(s[:, g], loss, margin) for g in range(s.shape[1])])
    out = data + torch.as_tensor(lam, dtype=dt) * regulariser(params.reshape(-1, params.shape[-1]), rank)
    return out[0] if params.ndim == 1 else out


def fit_transform_many(delta: torch.Tensor, jobs: Sequence[tuple[torch.Tensor, int]], grid: TransformGrid, *,
                       margin: float, loss: str = "margin", threads: Optional[int] = 1,
                       factors: Optional[tuple[torch.Tensor, torch.Tensor]] = None) -> list[torch.Tensor]:
    """Fit the transform ``I + U V^T`` for every job and every ``(lam, lr)`` of ``grid``.

    Parameters
    ----------
    delta : M x D tensor
        Transform inputs, one row per (target, candidate) (:func:`delta_features`' ``matrix``).
    jobs : sequence of (pairs, seed)
        ``pairs``: ``N x 2`` integer rows ``(better, worse)`` of ``delta`` (the person ranked
        ``better`` more similar to the same target; :func:`clpips.train.pair_index`);
        ``seed``: seeds the initial ``V`` (the only random choice: training is full-batch).
    grid : TransformGrid
        Regulariser weights x learning rates (the ``G`` columns), recorded step counts, rank.
    margin, loss
        :func:`clpips.train.pair_loss`'s options (one margin per call).
    threads : int or None
        torch threads during the fits (:func:`clpips.train.torch_threads`).
    factors : (Z, ends), optional
        ``delta[i] == Z[ends[i, 0]] - Z[ends[i, 1]]`` (``DeltaFeatures.factors``): the
        products with ``U`` and ``V`` then run over ``Z``'s rows (images) instead of
        ``delta``'s, and the rest of a step over image-by-image matrices
        (:func:`_gradient_images`): about twice as fast on mur92 (module docstring).
        Checked against ``delta`` on the rows used (a ValueError if they differ).

    Returns
    -------
    list of tensors, one per job, each ``len(grid.steps) x G x P``: entry ``[i, g]`` holds
    the parameters after ``grid.steps[i]`` full-batch Adam steps of column ``g``
    (``grid.columns()[g]``), flattened as ``U`` (``D x r``, row-major) then ``V`` (same);
    unpack with :func:`split_params`, use with :func:`transform_distances`.

    Notes
    -----
    Each column is what a grid of that one setting gives, and the fast path (``factors``)
    what the rows give, to float rounding (bitwise, in our runs, for a column of a grid with
    the margin loss; the two paths sum in other orders). A nonconvex fit can amplify rounding
    over many steps at a high learning rate: the parameters may then differ in the second
    digit, the pair accuracy in the fourth. Training is Adam (betas 0.9/0.999, eps 1e-8, as
    :class:`clpips.train._Adam`) on the objective of :func:`transform_loss`, from ``U = 0``
    and ``V`` with entries ``N(0, V_INIT^2 / D)`` drawn by
    ``torch.Generator().manual_seed(seed)`` (:func:`initial_v`). Identical
    ordered pairs are merged with their counts as weights (the same mean loss), and a step
    computes only over the rows (or, with ``factors``, images) the job's pairs use (with
    ``factors``, up to :data:`JOBS_TOGETHER` consecutive jobs step together over the rows or
    images any of them uses: a job's columns weigh only its own pairs, so they are what the
    job alone gives, to float rounding).
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    if not (isinstance(margin, (int, float)) and math.isfinite(margin) and margin > 0):
        raise ValueError(f"margin must be a finite number > 0, got {margin!r}")
    if not isinstance(grid, TransformGrid):
        raise ValueError(f"grid must be a TransformGrid, got {type(grid).__name__}")
    delta = torch.as_tensor(delta)
    if delta.ndim != 2 or delta.shape[0] == 0 or not bool(torch.isfinite(delta).all()):
        raise ValueError(f"delta must be a non-empty M x D tensor of finite numbers, got shape {tuple(delta.shape)}")
    if factors is not None:
        Z, ends = (torch.as_tensor(x) for x in factors)
        if Z.ndim != 2 or Z.shape[1] != delta.shape[1] or ends.shape != (delta.shape[0], 2) or (
                ends.numel() and (int(ends.min()) < 0 or int(ends.max()) >= Z.shape[0])):
            raise ValueError(f"factors must be (Z: n x {delta.shape[1]}, ends: {delta.shape[0]} x 2 rows of Z)")
        factors = (Z, ends.to(torch.long))
    checked = []
    for j, job in enumerate(jobs):
        try:
            pairs, seed = job
        except (TypeError, ValueError):
            raise ValueError(f"job {j} must be a (pairs, seed) tuple") from None
        pairs = torch.as_tensor(pairs)
        if pairs.ndim != 2 or pairs.shape[1] != 2 or pairs.shape[0] == 0 or pairs.is_floating_point():
            raise ValueError(f"job {j}: pairs must be a non-empty N x 2 integer tensor of (better, worse) rows")
        if int(pairs.min()) < 0 or int(pairs.max()) >= delta.shape[0]:
            raise ValueError(f"job {j}: pairs must index rows of delta, in [0, {delta.shape[0]})")
        checked.append((pairs.to(torch.long), int(seed)))
    with torch_threads(threads):
        return [fitted for chunk in _lockstep_chunks(factors, checked)
                for fitted in _fit_transform(delta, factors, chunk, grid, float(margin), loss)]


#: most jobs stepped together on the image path (:func:`_lockstep_chunks`). Measured on chapter 09's
#: fit_transform_many calls (1 thread; 45 inner jobs then 15 refits per run): 1, 2, 3, 4, 8 jobs
#: together took 12.4, 9.9, 8.7, 8.8, 9.5 s on mur92 by target; 1, 3, 4, 6 took 12.1, 10.5, 11.9, 13.3 s
#: on zappos by image, whose jobs' images differ (so their union's image-by-image matrices grow)
JOBS_TOGETHER = 3


def _lockstep_chunks(factors, jobs: list) -> list[list]:
    """Consecutive jobs that step together: up to :data:`JOBS_TOGETHER` jobs on the image path
    (:func:`_by_images`), where much of a job's step is fixed costs of small operations (3 inner folds
    of one outer fold are consecutive and share most images); a job on the rows path steps alone (its
    step's work grows with its rows, and a union of jobs' rows would only add to it)."""
    chunks: list[tuple[bool, list]] = []
    for job in jobs:
        by_images = _by_images(factors, job[0])
        if by_images and chunks and chunks[-1][0] and len(chunks[-1][1]) < JOBS_TOGETHER:
            chunks[-1][1].append(job)
        else:
            chunks.append((by_images, [job]))
    return [members for _, members in chunks]


def initial_v(dim: int, rank: int, seed: int) -> torch.Tensor:
    """The starting ``V`` of a fit (``D x r``): entries ``N(0, V_INIT^2 / D)``, seeded."""
    gen = torch.Generator().manual_seed(int(seed))
    return torch.randn(int(dim), int(rank), generator=gen) * (V_INIT / math.sqrt(dim))


@dataclass
class _Problem:
    """Jobs' pairs, compacted: the rows (and images) they use, merged duplicates' weights per job."""

    better: torch.Tensor        #: distinct ordered pairs (of every job), as rows of ``norms``
    worse: torch.Tensor
    weight: torch.Tensor        #: N_u x (J G): count / N of each distinct pair in each column's job (0: not its)
    norms: torch.Tensor         #: ||delta||^2 of each used row (column)
    basis: torch.Tensor         #: what U and V multiply: the used rows, or the used images
    basis_t: torch.Tensor
    t_at: Optional[torch.Tensor]  #: with factors: each row's target and candidate image in ``basis``
    c_at: Optional[torch.Tensor]
    corners: Optional[torch.Tensor] = None  #: with factors: (t, t), (t, c), (c, t), (c, c) of each row in n x n
    weight_t: Optional[torch.Tensor] = None  #: (J G) x N_u, ``weight`` transposed


def _distinct_pairs(pairs: torch.Tensor, span: int, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor,
                                                                                                  torch.Tensor]:
    """A job's distinct ordered pairs as sorted integer keys ``better * span + worse``, and each one's
    count / N (in ``dtype``). One key per pair: torch.unique(dim=0) compares rows one by one (0.15 s for
    50,000 pairs)."""
    keys, counts = torch.unique(pairs[:, 0] * span + pairs[:, 1], return_counts=True)
    return keys, (counts.to(torch.float64) / pairs.shape[0]).to(dtype)


def _by_images(factors, pairs: torch.Tensor) -> bool:
    """Whether a step over ``pairs`` works on the images (``factors``) rather than the rows.

    The image path pays off when images are few beside the rows (mur92: 92 images, ~900 rows); its
    image-by-image matrices grow with the square of the images, so where each row brings its own
    candidate (the simulated study: ~1,600 images for ~1,600 rows; its 20 protocol fits took 148 s
    by the images and 25 s by the rows, measured) the rows are used."""
    if factors is None:
        return False
    used = torch.unique(pairs.flatten())
    return 2 * int(torch.unique(factors[1][used].flatten()).numel()) <= int(used.numel())


def _prepare(delta: torch.Tensor, factors, jobs_pairs: Sequence[torch.Tensor], G: int) -> _Problem:
    """Jobs' pairs compacted for stepping ``G`` settings of each job together: identical ordered pairs
    (raters who ranked the same set alike) merged, their counts as each job's weights; only the rows
    (or, with ``factors``, the images) the jobs use. Column ``j G + g`` is setting ``g`` of job ``j``."""
    span, dt = int(delta.shape[0]), compute_dtype(delta)
    distinct = [_distinct_pairs(pairs, span, dt) for pairs in jobs_pairs]
    keys = distinct[0][0] if len(distinct) == 1 else torch.unique(torch.cat([k for k, _ in distinct]))
    per_job = torch.zeros(keys.shape[0], len(distinct), dtype=dt)
    for j, (k, w) in enumerate(distinct):
        per_job[torch.searchsorted(keys, k), j] = w
    weight = per_job.repeat_interleave(G, dim=1)
    uniq = torch.stack([keys // span, keys % span], dim=1)
    used, inverse = torch.unique(uniq.flatten(), return_inverse=True)
    inverse = inverse.view(-1, 2)
    rows = delta[used].to(dt).contiguous()
    t_at = c_at = None
    basis = rows
    if factors is not None and not _by_images(factors, uniq):
        factors = None
    if factors is not None:
        Z, ends = factors
        images, at = torch.unique(ends[used].flatten(), return_inverse=True)
        at = at.view(-1, 2)
        t_at, c_at = at[:, 0].contiguous(), at[:, 1].contiguous()
        basis = Z[images].to(dt).contiguous()
        error = float((basis[t_at] - basis[c_at] - rows).abs().max()) if rows.numel() else 0.0
        if error > 1e-5 * float(rows.abs().max()):
            raise ValueError("factors do not reproduce delta: need delta[i] == Z[ends[i, 0]] - Z[ends[i, 1]]")
    corners = None
    if t_at is not None:
        n = basis.shape[0]
        corners = torch.cat([t_at * n + t_at, t_at * n + c_at, c_at * n + t_at, c_at * n + c_at])
    return _Problem(better=inverse[:, 0].contiguous(), worse=inverse[:, 1].contiguous(),
                    weight=weight, norms=(rows * rows).sum(1)[:, None],
                    basis=basis, basis_t=basis.T.contiguous(), t_at=t_at, c_at=c_at, corners=corners,
                    weight_t=weight.T.contiguous())


def _gradient(prob: _Problem, W: torch.Tensor, lam2: torch.Tensor, margin: float, loss: str) -> torch.Tensor:
    """The gradient of :func:`transform_loss` at ``W`` (``D x 2 x G x r``: ``U = W[:, 0]``, ``V = W[:, 1]``);
    ``lam2``: twice each setting's lam, ``G x 1 x 1``.

    With ``Q = delta U``, ``P = delta V``, ``A = U^T U`` (rows of one setting):
    ``d = |delta|^2 + 2 Q.P + P^T A P``, so ``dd/dQ = 2 P``, ``dd/dP = 2 (Q + A P)``,
    ``dd/dA = P P^T``; with ``c = dL/dd`` per row, ``dL/dU = delta^T (2 c P) + 2 U (P^T c P)``
    and ``dL/dV = delta^T (2 c (Q + A P))``; the regulariser ``lam trace(A V^T V)`` adds
    ``2 lam U V^T V`` and ``2 lam V A``.
    """
    if prob.corners is not None:
        return _gradient_images(prob, W, lam2, margin, loss)
    dim, _, G, r = W.shape
    n_rows, C = prob.norms.shape[0], G * r
    # Row quantities are kept R x (G r) (settings side by side, inner dimension G r): the settings'
    # r x r products are one product with a block-diagonal matrix, and elementwise work runs over
    # contiguous rows rather than blocks of r = 8 numbers.
    W2 = W.view(dim, 2 * C)
    W3 = W.view(dim, 2 * G, r)
    AB = torch.einsum("dgk,dgl->gkl", W3, W3)           # U^T U then V^T V, per setting: 2G x r x r
    H = prob.basis @ W2                                 # images (or rows) x 2Gr: [delta U | delta V]
    if prob.t_at is not None:                           # rows from their images
        H = H.index_select(0, prob.t_at) - H.index_select(0, prob.c_at)
    Q, P = H[:, :C], H[:, C:]
    T = torch.addmm(Q, P, torch.block_diag(*AB[:G]))    # Q + P A
    d = prob.norms + ((Q + T) * P).view(n_rows, G, r).sum(-1)   # |delta|^2 + 2 Q.P + P^T A P: n_rows x G
    s = d.index_select(0, prob.worse) - d.index_select(0, prob.better)
    if loss == "margin":
        slope = (s <= margin).to(s.dtype).mul_(prob.weight)          # -dl/ds per distinct pair
    else:
        slope = torch.sigmoid(s / -margin).mul_(prob.weight / margin)
    up, down = torch.zeros(n_rows, G, dtype=W.dtype), torch.zeros(n_rows, G, dtype=W.dtype)
    up.index_add_(0, prob.better, slope)
    down.index_add_(0, prob.worse, slope)
    c2 = up.sub_(down).mul_(2).repeat_interleave(r, dim=1)   # 2 dL/dd per row (ds/dd: -1 at better, +1 at worse)
    X = torch.empty(n_rows, 2 * C, dtype=W.dtype)
    torch.mul(c2, P, out=X[:, :C])                      # dL/dQ = 2 c P
    torch.mul(c2, T, out=X[:, C:])                      # dL/dP = 2 c (Q + P A)
    if prob.t_at is not None:                           # rows back onto their images
        Y, Yc = (torch.zeros(prob.basis.shape[0], 2 * C, dtype=W.dtype) for _ in range(2))
        Y.index_add_(0, prob.t_at, X)
        Yc.index_add_(0, prob.c_at, X)
        Y.sub_(Yc)
    else:
        Y = X
    g = prob.basis_t @ Y                                # D x 2Gr
    M = (X[:, :C].T @ P).view(G, r, G, r).diagonal(dim1=0, dim2=2).permute(2, 0, 1)   # 2 dL/dA per setting
    K = torch.cat([M + lam2 * AB[G:], lam2 * AB[:G]])   # 2G x r x r
    g.view(dim, 2 * G, r).add_(torch.einsum("dgk,gkl->dgl", W3, K))
    return g.view(dim, 2, G, r)


_CORNER_SIGNS = torch.tensor([1.0, -1.0, -1.0, 1.0])


def _gradient_images(prob: _Problem, W: torch.Tensor, lam2: torch.Tensor, margin: float,
                     loss: str) -> torch.Tensor:
    """:func:`_gradient` when rows are differences of images, working on n x n matrices of images.

    With ``a = Z V``, ``b = Z U`` (n x r per setting) and ``e = 1_t - 1_c`` the row's image
    indicator, ``d = |delta|^2 + e^T F e`` with ``F = (2 b + a A) a^T`` (``e^T b a^T e = Q.P``),
    so ``d`` is four entries of ``F`` per row. Back: with ``c = dL/dd`` per row and the
    signed Laplacian ``S = sum_rows c e e^T`` (n x n), ``dL/db = 2 S a``,
    ``dL/da = 2 S (b + a A)``, ``dL/dA = a^T S a``. No R x (G r) row array is formed: on mur92
    (n = 92 images, R = 920 rows) a step's work outside the two D-sized products is on
    G x 92 x 92 and G x R arrays.
    """
    dim, _, G, r = W.shape
    n, n_rows = prob.basis.shape[0], prob.norms.shape[0]
    W3 = W.view(dim, 2 * G, r)
    AB = torch.einsum("dgk,dgl->gkl", W3, W3)           # U^T U then V^T V, per setting: 2G x r x r
    A = AB[:G]
    H = (prob.basis @ W.view(dim, 2 * G * r)).view(n, 2 * G, r).transpose(0, 1)   # 2G x n x r: b then a
    b, a = H[:G], H[G:]
    T = torch.baddbmm(b, a, A)                          # b + a A
    F = torch.bmm(b + T, a.transpose(1, 2))             # (2 b + a A) a^T: G x n x n
    at_corners = F.view(G, n * n).index_select(1, prob.corners).view(G, 4, n_rows)
    d = prob.norms.T + (at_corners * _CORNER_SIGNS[:, None]).sum(1)            # G x n_rows
    s = d.index_select(1, prob.worse) - d.index_select(1, prob.better)       # G x N_u
    if loss == "margin":
        slope = (s <= margin).to(s.dtype).mul_(prob.weight_t)        # -dl/ds per distinct pair
    else:
        slope = torch.sigmoid(s / -margin).mul_(prob.weight_t / margin)
    c = torch.zeros(G, n_rows, dtype=W.dtype)
    c.index_add_(1, prob.better, slope)
    down = torch.zeros(G, n_rows, dtype=W.dtype)
    down.index_add_(1, prob.worse, slope)
    c.sub_(down)                                        # dL/dd per row (ds/dd: -1 at better, +1 at worse)
    S = torch.zeros(G, n * n, dtype=W.dtype)
    S.index_add_(1, prob.corners, (c[:, None, :] * _CORNER_SIGNS[:, None]).view(G, 4 * n_rows))
    SaT = torch.bmm(S.view(G, n, n), torch.cat([a, T], dim=2))              # [S a | S (b + a A)]: G x n x 2r
    Y = SaT.view(G, n, 2, r).permute(1, 2, 0, 3).reshape(n, 2 * G * r)      # image-level dL/d[b | a] / 2
    g = prob.basis_t @ Y                                # D x 2Gr, half the data gradient
    gA = torch.bmm(a.transpose(1, 2), SaT[:, :, :r])    # dL/dA = a^T S a
    K = torch.cat([gA + 0.5 * lam2 * AB[G:], 0.5 * lam2 * A])     # halved, as g
    g.view(dim, 2 * G, r).add_(torch.einsum("dgk,gkl->dgl", W3, K))
    return g.mul_(2).view(dim, 2, G, r)


def _fit_transform(delta: torch.Tensor, factors, jobs: Sequence[tuple[torch.Tensor, int]], grid: TransformGrid,
                   margin: float, loss: str) -> list[torch.Tensor]:
    """Jobs' grids in lockstep, their settings side by side (``J G`` columns over the union of their
    pairs, each column weighing only its job's): one ``len(steps) x G x P`` per job."""
    dim, r = delta.shape[1], grid.rank
    per = len(grid.columns())                           # settings of one job
    cols = grid.columns() * len(jobs)                   # column j G + g: setting g of job j
    G = len(cols)
    prob = _prepare(delta, factors, [pairs for pairs, _ in jobs], per)
    dt = compute_dtype(delta)                           # float32, or float64 for the tests' comparisons
    lam2 = 2 * torch.tensor([lam for lam, _ in cols], dtype=dt)[:, None, None]      # G x 1 x 1
    lr = torch.tensor([lr for _, lr in cols], dtype=dt).view(1, 1, G, 1)
    W = torch.zeros(dim, 2, G, r, dtype=dt)             # [:, 0] = U, [:, 1] = V, each D x G x r
    for j, (_, seed) in enumerate(jobs):
        W[:, 1, j * per:(j + 1) * per] = initial_v(dim, r, seed)[:, None, :]
    m, v = torch.zeros_like(W), torch.zeros_like(W)
    b1, b2, eps = 0.9, 0.999, 1e-8
    records = []
    for t in range(1, grid.steps[-1] + 1):
        g = _gradient(prob, W, lam2, margin, loss)
        m.lerp_(g, 1 - b1)                              # Adam (as train._Adam), per entry
        v.mul_(b2).addcmul_(g, g, value=1 - b2)
        denom = v.sqrt().div_((1 - b2 ** t) ** 0.5).add_(eps)
        W.addcdiv_(m * (lr / (1 - b1 ** t)), denom, value=-1.0)
        if t in grid.steps:
            records.append(W.permute(2, 1, 0, 3).reshape(G, -1).clone())
    out = torch.stack(records)
    return [out[:, j * per:(j + 1) * per].clone() for j in range(len(jobs))]

# --------------------------------------------------------------------------- the teacher
def teacher_distance(embeddings: Embeddings, params: torch.Tensor, rank: int,
                     weights: Optional[torch.Tensor] = None) -> Callable[[Sequence[str], Sequence[str]], np.ndarray]:
    """A fitted transform as a teacher: ``distance(targets, candidates) -> np.ndarray`` of
    :func:`transform_distances` on ``embeddings.delta(targets, candidates, weights)``
    (one setting's ``(P,)`` params)."""
    params = torch.as_tensor(params, dtype=torch.float32)
    if params.ndim != 1:
        raise ValueError(f"a teacher takes one setting's parameters, shape (P,), got {tuple(params.shape)}")

    def distance(targets: Sequence[str], candidates: Sequence[str]) -> np.ndarray:
        return transform_distances(embeddings.delta(targets, candidates, weights), params, rank).numpy().astype(float)

    return distance


def teacher_rankings(distance: Callable[[Sequence[str], Sequence[str]], np.ndarray], targets: Sequence[str],
                     images: Sequence[str], *, sets_per_target: int, k: int, seed: int) -> pd.DataFrame:
    """Rankings a teacher makes: candidate sets people never ranked, ordered by the teacher's distance.

    Parameters
    ----------
    distance : callable
        ``distance(targets, candidates)`` -> one distance per pair (lower = more similar),
        e.g. :func:`teacher_distance`. Called once, with every pair.
    targets : sequence of image references
        The targets to make rankings for (duplicates count once). Each must be one of
        ``images``: the teacher works inside one image universe.
    images : sequence of image references
        The universe: every target and candidate is drawn from it, never from elsewhere
        (pass the training side's images, so no held-out image reaches the student).
    sets_per_target : int
        Candidate sets per target (>= 0; 0 gives an empty table).
    k : int
        Candidates per set, ``2 <= k <= len(images) - 1``.
    seed : int
        Seeds the draws (``numpy.random.default_rng``): the same arguments give the same table.

    Returns
    -------
    DataFrame in the dataset schema (``set_id, target, candidate, rater, rank``):
    for each target in the given order and each of its sets, ``k`` distinct candidates
    drawn uniformly from ``images`` minus the target, ranked 1..k by the teacher's
    distance (rank 1 = smallest; equal distances keep the draw's order, so there are no
    ties). ``rater`` is :data:`TEACHER`; set ids ``teacher-<seed>-<target number>-<set number>``
    are unique and cannot be mistaken for human sets.
    """
    universe = list(dict.fromkeys(str(i) for i in images))
    wanted = list(dict.fromkeys(str(t) for t in targets))
    if int(sets_per_target) != sets_per_target or sets_per_target < 0:
        raise ValueError(f"sets_per_target must be a whole number >= 0, got {sets_per_target!r}")
    if int(k) != k or k < 2:
        raise ValueError(f"k must be a whole number >= 2, got {k!r}")
    known = set(universe)
    outside = [t for t in wanted if t not in known]
    if outside:
        raise ValueError(f"target {outside[0]!r} is not one of the teacher's images ({len(outside)} such targets)")
    if wanted and k > len(universe) - 1:
        raise ValueError(f"k={k} candidates need at least {k + 1} images, got {len(universe)}")
    columns = ["set_id", "target", "candidate", "rater", "rank"]
    n_sets = len(wanted) * int(sets_per_target)
    if n_sets == 0:
        return pd.DataFrame({c: pd.Series(dtype="int64" if c == "rank" else object) for c in columns})
    rng = np.random.default_rng(seed)
    pool_index = {t: np.array([i for i, im in enumerate(universe) if im != t]) for t in wanted}
    set_ids, set_targets, picks = [], [], []
    for ti, t in enumerate(wanted):
        for j in range(int(sets_per_target)):
            picks.append(pool_index[t][rng.choice(len(universe) - 1, size=int(k), replace=False)])
            set_ids.append(f"{TEACHER}-{seed}-{ti:05d}-{j:04d}")
            set_targets.append(t)
    cand = np.array(universe, dtype=object)[np.stack(picks)]                  # sets x k
    tgt = np.repeat(np.array(set_targets, dtype=object), k)
    dist = np.asarray(distance(list(tgt), list(cand.ravel())), dtype=float)
    if dist.shape != (n_sets * k,) or not np.isfinite(dist).all():
        raise ValueError(f"distance must return {n_sets * k} finite numbers, got shape {dist.shape}")
    order = np.argsort(dist.reshape(n_sets, k), axis=1, kind="stable")
    ranks = np.empty((n_sets, k), dtype=np.int64)
    np.put_along_axis(ranks, order, np.arange(1, k + 1)[None, :].repeat(n_sets, 0), axis=1)
    return pd.DataFrame({"set_id": np.repeat(np.array(set_ids, dtype=object), k), "target": tgt,
                         "candidate": cand.ravel(), "rater": TEACHER, "rank": ranks.ravel()})[columns]


def teacher_sets(weight: float, human_pairs: int, n_targets: int, k: int) -> int:
    """Sets per target so that the teacher's pairs are about ``weight`` x the human pairs.

    A ranking of ``k`` gives ``k (k - 1) / 2`` pairs, so ``round(weight * human_pairs /
    (k (k - 1) / 2) / n_targets)``, at least 1 when ``weight > 0``; ``weight = 0`` gives 0.
    """
    if not (math.isfinite(weight) and weight >= 0):
        raise ValueError(f"weight must be a finite number >= 0, got {weight!r}")
    if human_pairs < 0 or n_targets < 1 or k < 2:
        raise ValueError(f"need human_pairs >= 0, n_targets >= 1 and k >= 2, got {human_pairs}, {n_targets}, {k}")
    if weight == 0:
        return 0
    per_set = k * (k - 1) / 2
    return max(1, int(math.floor(weight * human_pairs / per_set / n_targets + 0.5)))


def neighbour_overlap(before: torch.Tensor, after: torch.Tensor, k: int = 10) -> float:
    """Mean over items of ``|kNN_before ∩ kNN_after| / k``: how much a transform keeps nearest neighbours.

    Neighbours by Euclidean distance between rows (n x D each, the same items in the same
    order), the item itself excluded; 1.0 when every item keeps its ``k`` nearest neighbours
    (e.g. identical embeddings, or any rotation of them). Equal distances are broken by
    row order. Several ``after`` of one ``before``: :func:`neighbour_overlaps`.
    """
    return float(neighbour_overlaps(before, [after], k)[0])


def neighbour_overlaps(before: torch.Tensor, afters: Sequence[torch.Tensor], k: int = 10) -> np.ndarray:
    """:func:`neighbour_overlap` of ``before`` with each of ``afters``, ``before``'s neighbours found once
    (chapter 09 compares one representation with 30 refits per dataset and split: finding them again for
    each was half of its 20 s of neighbour search, profiled)."""
    before = torch.as_tensor(before, dtype=torch.float64)
    n = before.shape[0] if before.ndim == 2 else -1
    for after in afters:
        if before.ndim != 2 or torch.as_tensor(after).ndim != 2 or torch.as_tensor(after).shape[0] != n:
            raise ValueError(f"before and after must be n x D with the same n, got {tuple(before.shape)} and "
                             f"{tuple(torch.as_tensor(after).shape)}")
    if int(k) != k or not 1 <= k <= n - 1:
        raise ValueError(f"k must be a whole number in [1, {n - 1}], got {k!r}")

    def nearest(x: torch.Tensor) -> torch.Tensor:
        # n x n: True at each row's k nearest, the first k of a stable sort (ties: lower row first), found
        # with topk rather than a full sort (chapter 09's 360 sorts of 2,040 x 2,040 took 11 s, profiled)
        dist = torch.cdist(x, x)
        dist.fill_diagonal_(float("inf"))
        kth = torch.topk(dist, int(k), dim=1, largest=False).values.max(dim=1, keepdim=True).values
        closer, tied = dist < kth, dist == kth
        room = int(k) - closer.sum(dim=1, keepdim=True)
        return closer | (tied & (torch.cumsum(tied, dim=1) <= room))

    first = nearest(before)
    return np.array([float((first & nearest(torch.as_tensor(after, dtype=torch.float64))).sum(dim=1).double().mean()
                           / int(k)) for after in afters])
