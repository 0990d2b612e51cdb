"""Pair feature vectors, computed once per image and cached on disk.

An LPIPS distance is ``phi(target, candidate) . w`` (:mod:`clpips.model`): once the pair vectors ``phi``
are known, fitting linear weights never needs the backbone again. Vectors are cached under
``<cache>/features/``, one checked entry per target image keyed by the sha256 of its bytes. Within a process
an image's activations are kept in memory (:data:`KEEP_BUDGET`); memory stays bounded whatever the study's
size (:data:`MEMORY_BUDGET`): images are decoded and run chunk by chunk, a large matrix is memory-mapped.
"""
from __future__ import annotations

import contextlib
import functools
import io
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

import clpips.atomic as atomic
from clpips.conventions import check_size
from clpips.images import SizeRule, image_size, load_image, match_sizes
from clpips.model import CHANNELS, CLPIPS
from clpips.moved import moved_name
from clpips.paths import cache_dir, sha256_file

#: bump when the feature vector or the entry format changes, to invalidate caches
FEATURE_VERSION = 2
#: bytes a chunk of pair features may hold (decoded images and their activations); a larger pair
#: matrix is memory-mapped on disk (every image decoded up front took 7.2 GB at 3,000 targets)
MEMORY_BUDGET = 2 ** 30
#: bytes of activations a process keeps after a pass (:func:`layer_activations`): chapter 09 ran the
#: simulated study's 2,040 images three times (features, embeddings, teacher pairs: 9, 11, 11 s)
KEEP_BUDGET = 3 * 2 ** 29
#: images per backbone pass; a pair's vector does not depend on it, only memory and speed do
BATCH_SIZE = 32
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


def feature_store(net: str, size: SizeRule) -> Path:
    """The cache folder of the vectors of backbone ``net`` at size rule ``size``."""
    tag = "target" if isinstance(size, str) else f"{size[0]}x{size[1]}"
    return cache_dir() / "features" / f"v{FEATURE_VERSION}-{net}-{tag}"


def pair_features(dataset, pairs: Sequence[tuple[str, str]], net: str = "alex", size: SizeRule = "target",
                  device: str = "cpu", cache: bool = True, progress: bool = True,
                  metric: Optional[CLPIPS] = None) -> PairFeatures:
    """Feature vectors for (target, candidate) image references of ``dataset`` (duplicates computed once).

    ``dataset``: anything with ``image_path(ref)``; ``size``: :func:`clpips.images.match_sizes`'s rule;
    ``metric``: a ready :class:`CLPIPS` with backbone ``net`` (saves building one). The numbers do not
    depend on how the pairs were chunked.
    """
    keys = list(dict.fromkeys((str(t), str(c)) for t, c in pairs))
    paths = {ref: Path(dataset.image_path(ref)) for key in keys for ref in key}
    run = _Pass(paths, {ref: sha256_file(p) for ref, p in paths.items()}, feature_store(net, size), size,
                progress, cache)
    features = PairFeatures(keys=keys, matrix=_new_matrix(len(keys), sum(CHANNELS[net])), net=net, extracted=0)
    todo = _fill_from_cache(run, keys, features, {}) if cache else keys
    # a lock while the missing vectors are computed and written, so notebooks run side by side extract
    # each vector once; the one that waited finds them in the cache
    with (atomic.exclusive(run.store / ".lock") if cache and todo else contextlib.nullcontext()):
        existing: dict[str, dict[str, torch.Tensor]] = {}
        if cache and todo:
            todo = _fill_from_cache(run, todo, features, existing)
        if todo:
            metric = (metric if metric is not None else CLPIPS(net=net)).to(device)
            _compute(metric, run, todo, features, existing)
    features.extracted = len(todo)
    return features


@dataclass
class _Pass:
    """What one :func:`pair_features` call works with: image files, their sha256, the cache folder, options."""

    paths: dict[str, Path]
    hashes: dict[str, str]
    store: Path
    size: SizeRule
    progress: bool
    cache: bool


def _new_matrix(rows: int, dim: int) -> torch.Tensor:
    """An uninitialised ``rows x dim`` float32 matrix; above :data:`MEMORY_BUDGET`, memory-mapped on an
    unlinked temporary file (gone with the matrix, whatever ends the process).
    """
    if rows * dim * 4 <= MEMORY_BUDGET:
        return torch.empty(rows, dim)
    try:
        cache_dir().mkdir(parents=True, exist_ok=True)
        handle = tempfile.TemporaryFile(dir=cache_dir(), prefix=".pair-features-")
    except OSError:
        handle = tempfile.TemporaryFile(prefix="clpips-pair-features-")
    with handle:
        handle.truncate(rows * dim * 4)
        return torch.from_numpy(np.memmap(handle, dtype=np.float32, mode="r+", shape=(rows, dim)))


def _fill_from_cache(run: _Pass, keys: list[tuple[str, str]], features: PairFeatures,
                     existing: dict[str, dict[str, torch.Tensor]]) -> list[tuple[str, str]]:
    """Copy the cached vectors of ``keys`` into ``features``; return the keys not cached. A target with
    missing pairs keeps its entry in ``existing`` (its new vectors are added when written).
    """
    by_target: dict[str, list[tuple[str, str]]] = {}
    for key in keys:
        by_target.setdefault(key[0], []).append(key)
    missing: set[tuple[str, str]] = set()
    for t, ours in by_target.items():
        entry = _read_entry(run.store / f"{run.hashes[t]}.pt", features.matrix.shape[1])
        for key in ours:
            vec = entry.get(run.hashes[key[1]])
            if vec is None:
                missing.add(key)
            else:
                features.matrix[features.index[key]] = vec
        if entry and any(key in missing for key in ours):
            existing[t] = entry
    return [key for key in keys if key in missing]


def _compute(metric: CLPIPS, run: _Pass, todo: list[tuple[str, str]], features: PairFeatures,
             existing: dict[str, dict[str, torch.Tensor]]) -> None:
    """Compute ``todo`` into ``features`` chunk by chunk, every distinct (image, size) of a chunk through the
    backbone once, and write each target's entry as soon as its last vector is known.
    """
    wanted: dict[str, list[str]] = {}
    for t, c in todo:
        wanted.setdefault(t, []).append(c)
    done: dict[str, dict[str, torch.Tensor]] = {}
    cache = run.cache
    keep = _keeps_all(metric, todo, run)
    bar = tqdm(total=len({ref for key in todo for ref in key}), desc=f"backbone ({metric.net_name})", unit="img",
               disable=not run.progress)
    with bar:
        for pairs, images in _pair_chunks(metric, todo, run):
            if bar.n + len(images) > bar.total:     # an image in several chunks, or at several sizes
                bar.total = bar.n + len(images)
            feats = layer_activations(metric, images, BATCH_SIZE, bar, keep)
            with torch.no_grad():
                vectors = {pair: metric.vector_from_layers(feats[tkey], feats[ckey])[0].cpu()
                           for pair, tkey, ckey in pairs}
            del feats, images            # before the next chunk is decoded: one chunk in memory at a time
            for (t, c), vec in vectors.items():
                features.matrix[features.index[(t, c)]] = vec
                done.setdefault(t, {})[c] = vec
                if len(done[t]) < len(wanted[t]):
                    continue
                new = done.pop(t)
                if cache:
                    entry = existing.pop(t, {})
                    entry.update({run.hashes[c]: new[c] for c in wanted[t]})
                    cache = _write_entry(run.store / f"{run.hashes[t]}.pt", entry)


def _write_entry(path: Path, entry: dict[str, torch.Tensor]) -> bool:
    """Write a target's entry; False (after one warning) when the cache cannot be written."""
    try:
        atomic.write_checked(path, atomic.torch_bytes({"candidates": list(entry),
                                                       "vectors": torch.stack(list(entry.values()))}))
        return True
    except OSError as err:
        warnings.warn(f"cannot write the feature cache {path.parent} ({err.strerror or err}); going on without "
                      "caching (set CLPIPS_CACHE to a writable folder)", CacheWarning, stacklevel=5)
        return False


class CacheWarning(UserWarning):
    """A cache entry was bad (and is rebuilt) or the cache cannot be written."""


def _read_entry(path: Path, dim: int) -> dict[str, torch.Tensor]:
    entry = read_cached(path, lambda e: _valid_entry(e, dim), f"candidates and their {dim}-number finite vectors")
    return {} if entry is None else dict(zip(entry["candidates"], entry["vectors"]))


def _valid_entry(entry, dim: int) -> bool:
    if not (isinstance(entry, dict) and set(entry) == {"candidates", "vectors"}):
        return False
    names, vectors = entry["candidates"], entry["vectors"]
    return (isinstance(names, list) and all(isinstance(n, str) for n in names) and len(set(names)) == len(names)
            and isinstance(vectors, torch.Tensor) and tuple(vectors.shape) == (len(names), dim)
            and bool(torch.isfinite(vectors).all()))


def read_cached(path: Path, valid, holds: str):
    """A torch-saved checked cache entry, verified (checksum, then ``valid``); a bad one is named in a
    :class:`CacheWarning` and removed, None returned (rebuild it); None when absent.
    """
    if not path.is_file():
        return None
    return atomic.read_entry(path, lambda data: torch.load(io.BytesIO(data), map_location="cpu", weights_only=True),
                             valid, holds, CacheWarning, stacklevel=4)


def activation_bytes(net: str, height: int, width: int) -> float:
    """Bytes of the five layers' float32 activations of one image of that size."""
    return 4 * height * width * sum(c / s ** 2 for c, s in zip(CHANNELS[net], LAYER_STRIDES[net]))


class _Kept:
    """Activations this process computed, by (net, device, image sha256, height, width), up to
    :data:`KEEP_BUDGET` (first come stay). The backbone is fixed, so they are a function of the bytes.
    """

    def __init__(self) -> None:
        self.layers: dict[tuple, list[torch.Tensor]] = {}
        self.bytes = 0

    def keep(self, key: tuple, layers: list[torch.Tensor]) -> None:
        size = sum(t.numel() * t.element_size() for t in layers)
        if key not in self.layers and self.bytes + size <= KEEP_BUDGET:
            self.layers[key] = layers
            self.bytes += size


_KEPT = _Kept()


def layer_activations(metric: CLPIPS, images: dict[tuple, torch.Tensor], batch_size: int = BATCH_SIZE,
                      bar=None, keep: bool = True) -> dict[tuple, list[torch.Tensor]]:
    """The channel-normalised layer activations (each ``1 x C x h x w``) of each image.

    ``images``: ``(sha256, height, width)`` -> the image at that size. Those kept in memory are reused; the
    rest go through the backbone in batches of equal-size images, never of one image alone: on the CPU a
    batch of one takes another kernel path with other rounding (batches of 2 to 64 gave bit-identical
    activations, one did not), so a lone image goes through twice.
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
            for start, end in zip(starts, starts[1:] + [len(group)]):
                part = group[start:end]
                x = torch.cat([images[k] for k in part] * (2 if len(part) == 1 else 1))
                layers = metric.layer_features(x)
                for j, key in enumerate(part):
                    out[key] = [layer[j:j + 1].clone() for layer in layers]
                    if keep:
                        _KEPT.keep((*net, *key), out[key])
                if bar is not None:
                    bar.update(len(part))
    return out


def _pair_chunks(metric: CLPIPS, todo: list[tuple[str, str]], run: _Pass):
    """``(pairs, images)`` chunk by chunk in sorted pair order, images decoded for their chunk only, each
    chunk within :data:`MEMORY_BUDGET` of decoded images and the activations they will add.
    """
    kept = (metric.net_name, str(next(metric.net.parameters()).device))
    pairs: list = []
    images: dict[tuple, torch.Tensor] = {}
    decoded: dict[str, torch.Tensor] = {}
    used = 0.0
    for t, c in sorted(todo):
        loaded = {ref: decoded[ref] if ref in decoded else load_image(run.paths[ref]) for ref in (t, c)}
        ti, ci = match_sizes(loaded[t], loaded[c], run.size)
        check_size(ti.shape[-2:], metric.net_name,
                   str(run.paths[t]) if isinstance(run.size, str) else f"size {run.size}")
        tkey, ckey = (run.hashes[t], *ti.shape[-2:]), (run.hashes[c], *ci.shape[-2:])
        spend = _added_bytes(kept, loaded, decoded, images, {tkey: ti, ckey: ci})
        if pairs and used + spend > MEMORY_BUDGET:
            yield pairs, images
            pairs, images, decoded, used = [], {}, {}, 0.0
            spend = _added_bytes(kept, loaded, decoded, images, {tkey: ti, ckey: ci})
        decoded.update(loaded)
        images.setdefault(tkey, ti)
        images.setdefault(ckey, ci)
        pairs.append(((t, c), tkey, ckey))
        used += spend
    if pairs:
        yield pairs, images


def _added_bytes(kept: tuple[str, str], loaded: dict[str, torch.Tensor], decoded: dict[str, torch.Tensor],
                 images: dict[tuple, torch.Tensor], sized: dict[tuple, torch.Tensor]) -> float:
    """Bytes a pair adds to a chunk: its images not decoded yet, and for each new key a resized copy's
    pixels and the activations it will add (none when this process keeps them).
    """
    new = sum(x.numel() * 4 for ref, x in loaded.items() if ref not in decoded)
    for key, x in sized.items():
        if key not in images:
            copy = not any(x is y for y in loaded.values())
            new += copy * x.numel() * 4 + ((*kept, *key) not in _KEPT.layers) * activation_bytes(kept[0], *key[1:])
    return new


def _keeps_all(metric: CLPIPS, todo: list[tuple[str, str]], run: _Pass) -> bool:
    """Whether a pass keeps its activations: only when all the new ones fit :data:`KEEP_BUDGET` (part of a
    pass would hold memory a later pass could only partly use); sizes from the file headers.
    """
    kept = (metric.net_name, str(next(metric.net.parameters()).device))
    shapes: dict[str, tuple[int, int]] = {}
    keys: set[tuple] = set()
    for t, c in todo:
        if t not in shapes:
            try:
                shapes[t] = tuple(run.size) if not isinstance(run.size, str) else image_size(run.paths[t])
            except (OSError, ValueError):   # load_image says what, when decoding
                return False
        keys.update((run.hashes[ref], *shapes[t]) for ref in (t, c))
    new = sum(activation_bytes(kept[0], *key[1:]) for key in keys if (*kept, *key) not in _KEPT.layers)
    return _KEPT.bytes + new <= KEEP_BUDGET


def __getattr__(name: str):
    return moved_name(__name__, name)   # finite_vector: now the embeddings' (clpips.book.aligned)
