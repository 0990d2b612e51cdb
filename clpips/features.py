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
warning line, and the run goes on without caching. Within a process, the backbone's
activations of an image at a size are kept in memory (:func:`layer_activations`, up to
:data:`KEEP_BUDGET` bytes), so new pairs of images already run, and their embeddings
(:mod:`clpips.aligned`), do not run the backbone again.
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
#: cap on the activations a process keeps after a pass (bytes), so that an image it has run through a
#: backbone at a size is not run again (:func:`layer_activations`). Chapter 09 ran the simulated
#: study's 2,040 images (0.6 MB of AlexNet activations each) three times: for the pair features, the
#: embeddings and the teacher's new pairs (9, 11 and 11 s, measured)
KEEP_BUDGET = 3 * 2 ** 29
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
        computed = _extract(metric, todo, paths, hashes, size, batch_size, progress)
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


def activation_bytes(net: str, height: int, width: int) -> float:
    """Bytes of the five layers' float32 activations of one image of that size (channels / stride^2 per
    input pixel, summed over the layers)."""
    return 4 * height * width * sum(c / s ** 2 for c, s in zip(CHANNELS[net], LAYER_STRIDES[net]))


class _Kept:
    """Activations a process has computed, by (net, device, image sha256, height, width), up to :data:`KEEP_BUDGET`
    bytes (the first ones computed stay; nothing is dropped). A net's backbone is fixed (the official
    ImageNet weights, loaded strictly), so an image's activations at a size are a function of its bytes."""

    def __init__(self) -> None:
        self.layers: dict[tuple, list[torch.Tensor]] = {}
        self.bytes = 0

    def keep(self, key: tuple, layers: list[torch.Tensor]) -> None:
        size = sum(t.numel() * t.element_size() for t in layers)
        if key not in self.layers and self.bytes + size <= KEEP_BUDGET:
            self.layers[key] = layers
            self.bytes += size


_KEPT = _Kept()


def layer_activations(metric: CLPIPS, images: dict[tuple, torch.Tensor], batch_size: int = 32,
                      bar=None) -> dict[tuple, list[torch.Tensor]]:
    """The channel-normalised layer activations (each ``1 x C x h x w``, on ``metric``'s device) of each image.

    ``images`` maps ``(sha256 of the image file, height, width)`` to the image at that size
    (``1 x 3 x height x width``). Those this process has computed before are taken from memory
    (up to :data:`KEEP_BUDGET` bytes are kept); the rest go through ``metric``'s backbone in
    batches of equal-size images, of at most ``batch_size`` (one more where the last batch would
    hold one image) and never of one image alone: on
    the CPU, a batch of one takes another kernel path with other float rounding (measured:
    batches of 2 to 64 gave every image bit for bit the same activations, a batch of one did
    not), so an image's activations do not depend on which images shared its batch. A lone
    image goes through twice in a batch of two.
    """
    # kept per backbone and device: activations kept on one device are not handed to a metric on another
    net = (metric.net_name, str(next(metric.net.parameters()).device))
    out = {key: _KEPT.layers[(*net, *key)] for key in images if (*net, *key) in _KEPT.layers}
    if bar is not None:
        bar.update(len(out))
    by_size: dict[tuple, list[tuple]] = {}
    for key in images:
        if key not in out:
            by_size.setdefault(key[1:], []).append(key)
    with torch.no_grad():
        for group in by_size.values():
            starts = list(range(0, len(group), max(1, int(batch_size))))
            if len(starts) > 1 and len(group) - starts[-1] == 1:   # no last batch of one: the one before takes it
                starts.pop()
            for i, start in enumerate(starts):
                part = group[start:starts[i + 1] if i + 1 < len(starts) else len(group)]
                x = torch.cat([images[k] for k in part] * (2 if len(part) == 1 else 1))
                layers = metric.layer_features(x)
                for j, key in enumerate(part):
                    out[key] = [layer[j:j + 1].clone() for layer in layers]
                    _KEPT.keep((*net, *key), out[key])
                if bar is not None:
                    bar.update(len(part))
    return out


def _extract(metric: CLPIPS, todo: list[tuple[str, str]], paths: dict[str, Path], hashes: dict[str, str],
             size: SizeRule, batch_size: int, progress: bool) -> dict[tuple[str, str], torch.Tensor]:
    """Compute vectors: every distinct (image, size) through the backbone once per memory chunk
    (:func:`layer_activations`: not at all if this process has already run it)."""
    images = {ref: load_image(paths[ref]) for ref in dict.fromkeys(ref for key in todo for ref in key)}

    prep = {}  # pair -> ((target sha256, size), (candidate sha256, size), target tensor, candidate tensor)
    for t, c in todo:
        ti, ci = match_sizes(images[t], images[c], size)
        check_size(ti.shape[-2:], metric.net_name, str(paths[t]) if isinstance(size, str) else f"size {size}")
        prep[(t, c)] = (hashes[t], *ti.shape[-2:]), (hashes[c], *ci.shape[-2:]), ti, ci

    # group pairs into chunks whose distinct images fit the memory budget
    chunks, current, seen, used = [], [], set(), 0.0
    for t, c in sorted(todo):
        tkey, ckey, _, _ = prep[(t, c)]
        new = [k for k in (tkey, ckey) if k not in seen]
        cost = sum(activation_bytes(metric.net_name, *k[1:]) for k in new)
        if current and used + cost > MEMORY_BUDGET:
            chunks.append(current)
            current, seen, used = [], set(), 0.0
            new = [tkey, ckey]
            cost = sum(activation_bytes(metric.net_name, *k[1:]) for k in new)
        current.append((t, c))
        seen.update(new)
        used += cost
    if current:
        chunks.append(current)

    out: dict[tuple[str, str], torch.Tensor] = {}
    n_images = sum(len({k for t, c in ch for k in prep[(t, c)][:2]}) for ch in chunks)
    bar = tqdm(total=n_images, desc=f"backbone ({metric.net_name})", unit="img", disable=not progress)
    for chunk in chunks:
        tensors: dict[tuple, torch.Tensor] = {}
        for t, c in chunk:
            tkey, ckey, ti, ci = prep[(t, c)]
            tensors.setdefault(tkey, ti)
            tensors.setdefault(ckey, ci)
        feats = layer_activations(metric, tensors, batch_size, bar)
        with torch.no_grad():
            for t, c in chunk:
                tkey, ckey, _, _ = prep[(t, c)]
                out[(t, c)] = metric.vector_from_layers(feats[tkey], feats[ckey])[0].cpu()
    bar.close()
    return out
