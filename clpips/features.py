"""Pair feature vectors, computed once per image and cached on disk.

Because an LPIPS distance is ``phi(target, candidate) . w`` (see
:mod:`clpips.model`), training and evaluating linear weights never needs the
backbone again once the pair vectors ``phi`` are known. This module computes
them with each unique image going through the backbone once, and caches them
under ``<cache>/features/<net>-<size rule>/``, one file per target image, keyed
by the sha256 of the image files' bytes (an entry holds ``candidates``, the
candidates' sha256, and ``vectors``, one row each). A second fit on the same data
extracts nothing. Each entry is written with its checksum and verified when read
(:func:`clpips.atomic.read_checked`): a truncated or altered entry is named in a
warning, removed and rebuilt; a cache folder that cannot be written is one
warning line, and the run goes on without caching.
"""
from __future__ import annotations

import contextlib
import functools
import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from . import atomic
from .conventions import check_size
from .images import SizeRule, load_image, match_sizes
from .model import CHANNELS, CLPIPS
from .paths import cache_dir, sha256_file

#: bump when the definition of the feature vector or the entry format changes, to invalidate caches
#: (2: an entry is one matrix and its candidates' sha256, not one tensor per candidate: reading a
#: chapter 09 run's entries took 24 s of torch.load for 174,000 small tensors, measured)
FEATURE_VERSION = 2
#: cap on backbone activations held in memory at once (bytes)
MEMORY_BUDGET = 3 * 2 ** 30
#: how much each LPIPS layer downsamples its input (AlexNet: conv1 stride 4, then pools of 2)
LAYER_STRIDES = {"alex": (4, 8, 16, 16, 16), "vgg": (1, 2, 4, 8, 16)}


@dataclass
class PairFeatures:
    """Feature vectors of (target, candidate) pairs: ``matrix[index[(t, c)]]``."""

    keys: list[tuple[str, str]]
    matrix: torch.Tensor
    net: str
    extracted: int  #: pairs computed now (the rest came from the cache)

    def __post_init__(self) -> None:
        self.index = {key: i for i, key in enumerate(self.keys)}

    @functools.cached_property
    def _lookup(self) -> pd.MultiIndex:
        # built once: chapter 09's runs asked 1,875 times and rebuilt it each time, 10 s in all (profiled)
        return pd.MultiIndex.from_tuples(self.keys)

    def rows(self, targets: Iterable[str], candidates: Iterable[str]) -> torch.Tensor:
        """Row numbers of the given pairs (a KeyError names a pair that was not computed)."""
        wanted = pd.MultiIndex.from_arrays([np.asarray(targets, dtype=object), np.asarray(candidates, dtype=object)])
        rows = self._lookup.get_indexer(wanted) if self.keys else np.full(len(wanted), -1)
        if (rows < 0).any():
            raise KeyError(f"no feature vector for pair {wanted[int(np.argmax(rows < 0))]}")
        return torch.from_numpy(rows.astype(np.int64))


def _size_tag(size: SizeRule) -> str:
    return "target" if isinstance(size, str) else f"{size[0]}x{size[1]}"


def feature_store(net: str, size: SizeRule) -> Path:
    return cache_dir() / "features" / f"v{FEATURE_VERSION}-{net}-{_size_tag(size)}"


def pair_features(dataset, pairs: Sequence[tuple[str, str]], net: str = "alex", size: SizeRule = "target",
                  device: str = "cpu", batch_size: int = 32, cache: bool = True,
                  progress: bool = True, metric: Optional[CLPIPS] = None) -> PairFeatures:
    """Feature vectors for (target, candidate) image references of ``dataset``.

    Parameters
    ----------
    dataset
        Anything with ``image_path(ref) -> Path`` (a :class:`clpips.datasets` dataset).
    pairs : sequence of (target ref, candidate ref)
        Duplicates are computed once.
    net, size, device, batch_size
        Backbone, size rule (:func:`clpips.images.match_sizes`), torch device, images per forward pass.
    cache : bool
        Read and write the on-disk cache.
    metric : CLPIPS, optional
        A ready metric with backbone ``net`` (saves building one).
    """
    keys = list(dict.fromkeys((str(t), str(c)) for t, c in pairs))
    dim = sum(CHANNELS[net])
    paths = {ref: Path(dataset.image_path(ref)) for key in keys for ref in key}
    hashes = {ref: sha256_file(p) for ref, p in paths.items()}
    store = feature_store(net, size)
    found: dict[tuple[str, str], torch.Tensor] = {}
    by_target: dict[str, dict[str, torch.Tensor]] = {}
    if cache:
        for t in {t for t, _ in keys}:
            by_target[t] = _read_entry(store / f"{hashes[t]}.pt", dim)
        for t, c in keys:
            vec = by_target[t].get(hashes[c])
            if vec is not None:
                found[(t, c)] = vec
    todo = [k for k in keys if k not in found]
    # a lock while the missing vectors are computed and written, so notebooks run side by side extract
    # each vector once; the one that waited finds them in the cache
    with (atomic.exclusive(store / ".lock") if cache and todo else contextlib.nullcontext()):
        if cache and todo:
            for t in {t for t, _ in todo}:
                by_target[t] = _read_entry(store / f"{hashes[t]}.pt", dim)
            found.update({(t, c): by_target[t][hashes[c]] for t, c in todo if hashes[c] in by_target[t]})
            todo = [k for k in todo if k not in found]
        _compute(dataset, todo, found, by_target, hashes, paths, store, net, size, device, batch_size, cache,
                 progress, metric)
    matrix = torch.stack([found[k] for k in keys]) if keys else torch.zeros(0, dim)
    return PairFeatures(keys=keys, matrix=matrix.float(), net=net, extracted=len(todo))


def _compute(dataset, todo, found, by_target, hashes, paths, store, net, size, device, batch_size, cache,
             progress, metric) -> None:
    """Compute the ``todo`` vectors into ``found`` and, with ``cache``, write their targets' entries."""
    if todo:
        metric = metric if metric is not None else CLPIPS(net=net)
        metric = metric.to(device)
        computed = _extract(metric, todo, paths, size, batch_size, progress)
        found.update(computed)
        if cache:
            try:
                for t in {t for t, _ in todo}:
                    entry = dict(by_target.get(t, {}))
                    entry.update({hashes[c]: computed[(tt, c)] for tt, c in todo if tt == t})
                    atomic.write_checked(store / f"{hashes[t]}.pt", atomic.torch_bytes(
                        {"candidates": list(entry), "vectors": torch.stack(list(entry.values()))}))
            except OSError as err:
                warnings.warn(f"cannot write the feature cache {store} ({err.strerror or err}); going on without "
                              "caching (set CLPIPS_CACHE to a writable folder)", CacheWarning, stacklevel=4)


class CacheWarning(UserWarning):
    """A cache entry was bad (and is rebuilt) or the cache cannot be written."""


def _read_entry(path: Path, dim: int) -> dict[str, torch.Tensor]:
    """A target's cached vectors by candidate sha256, verified (:func:`read_cached`); ``{}`` when absent or bad."""
    entry = read_cached(path, lambda e: _valid_entry(e, dim), f"candidates and their {dim}-number finite vectors")
    return {} if entry is None else dict(zip(entry["candidates"], entry["vectors"]))


def _valid_entry(entry, dim: int) -> bool:
    if not (isinstance(entry, dict) and set(entry) == {"candidates", "vectors"}):
        return False
    names, vectors = entry["candidates"], entry["vectors"]
    return (isinstance(names, list) and all(isinstance(n, str) for n in names) and len(set(names)) == len(names)
            and isinstance(vectors, torch.Tensor) and tuple(vectors.shape) == (len(names), dim)
            and bool(torch.isfinite(vectors).all()))


def _finite_vector(value, dim: int) -> bool:
    return isinstance(value, torch.Tensor) and tuple(value.shape) == (dim,) and bool(torch.isfinite(value).all())


def read_cached(path: Path, valid, holds: str):
    """A torch-saved cache entry written by :func:`clpips.atomic.write_checked`, verified: its checksum,
    then ``valid(obj)``. A bad entry (``holds`` says what it should hold) is named in a
    :class:`CacheWarning`, removed, and None returned, so the caller rebuilds it; None when absent."""
    if not path.is_file():
        return None
    try:
        obj = torch.load(io.BytesIO(atomic.read_checked(path)), map_location="cpu", weights_only=True)
        if not valid(obj):
            raise atomic.CacheEntryError(f"{path}: cache entry does not hold {holds}")
    except Exception as err:  # a checksum mismatch, or bytes torch cannot read
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        if not isinstance(err, atomic.CacheEntryError):
            reason = f"{path}: unreadable cache entry ({reason})"
        try:
            atomic.remove_entry(path)
        except OSError:
            pass
        warnings.warn(f"{reason}; removed it, rebuilding", CacheWarning, stacklevel=4)
        return None
    return obj


def _extract(metric: CLPIPS, todo: list[tuple[str, str]], paths: dict[str, Path], size: SizeRule,
             batch_size: int, progress: bool) -> dict[tuple[str, str], torch.Tensor]:
    """Compute vectors: every distinct (image, size) through the backbone once per memory chunk."""
    images = {ref: load_image(paths[ref]) for ref in dict.fromkeys(ref for key in todo for ref in key)}

    prep = {}  # pair -> ((target, size), (candidate, size), target tensor, candidate tensor)
    for t, c in todo:
        ti, ci = match_sizes(images[t], images[c], size)
        check_size(ti.shape[-2:], metric.net_name, str(paths[t]) if isinstance(size, str) else f"size {size}")
        prep[(t, c)] = (t, tuple(ti.shape[-2:])), (c, tuple(ci.shape[-2:])), ti, ci

    # group pairs into chunks whose distinct images fit the memory budget
    # bytes of the five layers' activations per input pixel: channels / (layer stride)^2, float32
    per_pixel = 4 * sum(c / s ** 2 for c, s in zip(CHANNELS[metric.net_name], LAYER_STRIDES[metric.net_name]))
    chunks, current, seen, used = [], [], set(), 0.0
    for t, c in sorted(todo):
        tkey, ckey, _, _ = prep[(t, c)]
        new = [k for k in (tkey, ckey) if k not in seen]
        cost = sum(k[1][0] * k[1][1] * per_pixel for k in new)
        if current and used + cost > MEMORY_BUDGET:
            chunks.append(current)
            current, seen, used = [], set(), 0.0
            new = [tkey, ckey]
            cost = sum(k[1][0] * k[1][1] * per_pixel for k in new)
        current.append((t, c))
        seen.update(new)
        used += cost
    if current:
        chunks.append(current)

    out: dict[tuple[str, str], torch.Tensor] = {}
    n_images = sum(len({k for t, c in ch for k in prep[(t, c)][:2]}) for ch in chunks)
    bar = tqdm(total=n_images, desc=f"backbone ({metric.net_name})", unit="img", disable=not progress)
    with torch.no_grad():
        for chunk in chunks:
            tensors: dict[tuple, torch.Tensor] = {}
            for t, c in chunk:
                tkey, ckey, ti, ci = prep[(t, c)]
                tensors.setdefault(tkey, ti)
                tensors.setdefault(ckey, ci)
            feats: dict[tuple, list[torch.Tensor]] = {}
            by_size: dict[tuple, list[tuple]] = {}
            for key in tensors:
                by_size.setdefault(key[1], []).append(key)
            for group in by_size.values():
                for i in range(0, len(group), batch_size):
                    part = group[i:i + batch_size]
                    layers = metric.layer_features(torch.cat([tensors[k] for k in part]))
                    for j, key in enumerate(part):
                        feats[key] = [layer[j:j + 1] for layer in layers]
                    bar.update(len(part))
            for t, c in chunk:
                tkey, ckey, _, _ = prep[(t, c)]
                out[(t, c)] = metric.vector_from_layers(feats[tkey], feats[ckey])[0].cpu()
    bar.close()
    return out
