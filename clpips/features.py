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
(:mod:`clpips.book.aligned`), do not run the backbone again. Memory is bounded whatever the study's size
(:data:`MEMORY_BUDGET`): images are decoded and run chunk by chunk (an image in several chunks runs once
in each, unless its activations are kept), a pass keeps its activations only when all of them fit
:data:`KEEP_BUDGET`, and a large pair matrix is memory-mapped on disk.
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
from PIL import Image
from tqdm.auto import tqdm

import clpips.atomic as atomic
from clpips.conventions import check_size
from clpips.images import SizeRule, load_image, match_sizes
from clpips.model import CHANNELS, CLPIPS
from clpips.paths import cache_dir, sha256_file

#: bump when the definition of the feature vector or the entry format changes, to invalidate caches
#: (2: an entry is one matrix and its candidates' sha256, not one tensor per candidate: reading a
#: chapter 09 run's entries took 24 s of torch.load for 174,000 small tensors, measured)
FEATURE_VERSION = 2
#: cap on what a chunk of pair features holds in memory at once (bytes): its decoded images and the
#: activations they add (:func:`_pair_chunks`); a pair matrix larger than this is memory-mapped on disk.
#: Was 3 GiB of activations alone, with every image decoded up front and kept up to :data:`KEEP_BUDGET`:
#: a synthetic study of 11 images of 64 px per target took 2 MB per target, 7.2 GB at 3,000 (issue 25)
MEMORY_BUDGET = 2 ** 30
#: cap on the activations a process keeps after a pass (bytes), so that an image it has run through a
#: backbone at a size is not run again (:func:`layer_activations`). Chapter 09 ran the simulated
#: study's 2,040 images (0.6 MB of AlexNet activations each) three times: for the pair features, the
#: embeddings and the teacher's new pairs (9, 11 and 11 s, measured)
KEEP_BUDGET = 3 * 2 ** 29
#: images per forward pass of the backbone (of equal size; :func:`layer_activations`): a pair's vector
#: does not depend on it (an image's activations do not depend on its batch), only memory and speed do
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


def _size_tag(size: SizeRule) -> str:
    return "target" if isinstance(size, str) else f"{size[0]}x{size[1]}"


def feature_store(net: str, size: SizeRule) -> Path:
    return cache_dir() / "features" / f"v{FEATURE_VERSION}-{net}-{_size_tag(size)}"


def pair_features(dataset, pairs: Sequence[tuple[str, str]], net: str = "alex", size: SizeRule = "target",
                  device: str = "cpu", cache: bool = True, progress: bool = True,
                  metric: Optional[CLPIPS] = None) -> PairFeatures:
    """Feature vectors for (target, candidate) image references of ``dataset``.

    Memory stays bounded whatever the number of pairs: images are decoded chunk by chunk within
    :data:`MEMORY_BUDGET` (:func:`_pair_chunks`), their activations are kept only when all of this
    call's fit :data:`KEEP_BUDGET` (:func:`_keeps_all`), each target's entry is written as soon as it is
    complete, and a matrix larger than the budget is memory-mapped on a temporary file
    (:func:`_new_matrix`). The numbers do not depend on how the pairs were chunked.

    Parameters
    ----------
    dataset
        Anything with ``image_path(ref) -> Path`` (a :class:`clpips.datasets` dataset).
    pairs : sequence of (target ref, candidate ref)
        Duplicates are computed once.
    net, size, device
        Backbone, size rule (:func:`clpips.images.match_sizes`), torch device (images go through the
        backbone :data:`BATCH_SIZE` at a time).
    cache : bool
        Read and write the on-disk cache.
    metric : CLPIPS, optional
        A ready metric with backbone ``net`` (saves building one).
    """
    keys = list(dict.fromkeys((str(t), str(c)) for t, c in pairs))
    dim = sum(CHANNELS[net])
    paths = {ref: Path(dataset.image_path(ref)) for key in keys for ref in key}
    run = _Pass(paths, {ref: sha256_file(p) for ref, p in paths.items()}, feature_store(net, size), size,
                BATCH_SIZE, progress, cache)
    matrix = _new_matrix(len(keys), dim)
    row = {key: i for i, key in enumerate(keys)}
    todo = _fill_from_cache(run, keys, matrix, row, {}) if cache else keys
    # a lock while the missing vectors are computed and written, so notebooks run side by side extract
    # each vector once; the one that waited finds them in the cache
    with (atomic.exclusive(run.store / ".lock") if cache and todo else contextlib.nullcontext()):
        existing: dict[str, dict[str, torch.Tensor]] = {}
        if cache and todo:
            todo = _fill_from_cache(run, todo, matrix, row, existing)
        if todo:
            metric = (metric if metric is not None else CLPIPS(net=net)).to(device)
            _compute(metric, run, todo, matrix, row, existing)
    return PairFeatures(keys=keys, matrix=matrix, net=net, extracted=len(todo))


@dataclass
class _Pass:
    """What one :func:`pair_features` call works with: image files, their sha256, the cache folder, options."""

    paths: dict[str, Path]
    hashes: dict[str, str]
    store: Path
    size: SizeRule
    batch_size: int
    progress: bool
    cache: bool


def _new_matrix(rows: int, dim: int) -> torch.Tensor:
    """An uninitialised ``rows x dim`` float32 matrix: in memory up to :data:`MEMORY_BUDGET` bytes, larger
    memory-mapped on an unlinked temporary file (in the cache folder where it can be written), whose pages
    the kernel can write out and drop; the file goes when the matrix does, whatever ends the process."""
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


def _fill_from_cache(run: _Pass, keys: list[tuple[str, str]], matrix: torch.Tensor, row: dict,
                     existing: dict[str, dict[str, torch.Tensor]]) -> list[tuple[str, str]]:
    """Copy the cached vectors of ``keys`` into their rows of ``matrix``, one target's entry at a time;
    the keys not cached, in order. A target with missing pairs and an entry keeps it in ``existing``
    (its new vectors are added to it when written)."""
    by_target: dict[str, list[tuple[str, str]]] = {}
    for key in keys:
        by_target.setdefault(key[0], []).append(key)
    missing: set[tuple[str, str]] = set()
    for t, ours in by_target.items():
        entry = _read_entry(run.store / f"{run.hashes[t]}.pt", matrix.shape[1])
        for key in ours:
            vec = entry.get(run.hashes[key[1]])
            if vec is None:
                missing.add(key)
            else:
                matrix[row[key]] = vec
        if entry and any(key in missing for key in ours):
            existing[t] = entry
    return [key for key in keys if key in missing]


def _compute(metric: CLPIPS, run: _Pass, todo: list[tuple[str, str]], matrix: torch.Tensor, row: dict,
             existing: dict[str, dict[str, torch.Tensor]]) -> None:
    """Compute the ``todo`` vectors into their rows of ``matrix`` and, with ``run.cache``, write each target's
    entry (``existing`` and the new vectors, in ``todo`` order) as soon as its last vector is known."""
    wanted: dict[str, list[str]] = {}
    for t, c in todo:
        wanted.setdefault(t, []).append(c)
    done: dict[str, dict[str, torch.Tensor]] = {}
    cache = run.cache
    for vectors in _extract(metric, todo, run):
        for (t, c), vec in vectors.items():
            matrix[row[(t, c)]] = vec
            done.setdefault(t, {})[c] = vec
            if cache and len(done[t]) == len(wanted[t]):
                entry = dict(existing.pop(t, {}))
                entry.update({run.hashes[c]: done[t][c] for c in wanted[t]})
                cache = _write_entry(run.store / f"{run.hashes[t]}.pt", entry)
            if len(done[t]) == len(wanted[t]):
                del done[t]


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


def finite_vector(value, dim: int) -> bool:
    """Whether ``value`` is a tensor of ``dim`` finite numbers (a cached embedding's check)."""
    return isinstance(value, torch.Tensor) and tuple(value.shape) == (dim,) and bool(torch.isfinite(value).all())




def read_cached(path: Path, valid, holds: str):
    """A torch-saved cache entry written by :func:`clpips.atomic.write_checked`, verified: its checksum,
    then ``valid(obj)`` (:func:`clpips.atomic.read_entry`, the one reader of a checked entry). A bad
    entry (``holds`` says what it should hold) is named in a :class:`CacheWarning`, removed, and None
    returned, so the caller rebuilds it; None when absent."""
    if not path.is_file():
        return None
    return atomic.read_entry(path, lambda data: torch.load(io.BytesIO(data), map_location="cpu", weights_only=True),
                             valid, holds, CacheWarning, stacklevel=4)


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


def layer_activations(metric: CLPIPS, images: dict[tuple, torch.Tensor], batch_size: int = BATCH_SIZE,
                      bar=None, keep: bool = True) -> dict[tuple, list[torch.Tensor]]:
    """The channel-normalised layer activations (each ``1 x C x h x w``, on ``metric``'s device) of each image.

    ``images`` maps ``(sha256 of the image file, height, width)`` to the image at that size
    (``1 x 3 x height x width``). Those this process has computed before are taken from memory
    (up to :data:`KEEP_BUDGET` bytes are kept, of calls with ``keep``); the rest go through ``metric``'s backbone in
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
                    if keep:
                        _KEPT.keep((*net, *key), out[key])
                if bar is not None:
                    bar.update(len(part))
    return out


def _pair_chunks(metric: CLPIPS, todo: list[tuple[str, str]], run: _Pass):
    """Yield ``(pairs, images)`` chunk by chunk, in sorted pair order: each pair with its target's and
    candidate's keys ``(sha256, height, width)``, and the chunk's images at those sizes. Images are decoded
    here, for their chunk only: a chunk holds at most :data:`MEMORY_BUDGET` bytes of decoded images and of
    the activations they will add (an image whose activations this process keeps costs its pixels only)."""
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
    """Bytes a pair adds to a chunk (``decoded``: its images by reference, ``images``: by key): the pair's
    ``loaded`` images not decoded in it yet, and for each of its keys new to it (``sized``: key -> image at
    that size), a resized copy's pixels and the activations it will add (none when ``kept``: net, device)."""
    new = sum(x.numel() * 4 for ref, x in loaded.items() if ref not in decoded)
    for key, x in sized.items():
        if key not in images:
            copy = not any(x is y for y in loaded.values())
            new += copy * x.numel() * 4 + ((*kept, *key) not in _KEPT.layers) * activation_bytes(kept[0], *key[1:])
    return new


def _keeps_all(metric: CLPIPS, todo: list[tuple[str, str]], run: _Pass) -> bool:
    """Whether a pass keeps its activations (:func:`layer_activations`): only when all the new ones fit
    beside those kept already (:data:`KEEP_BUDGET`). Part of a larger pass would hold memory that a later
    pass over the same images could only partly use. Estimated from the targets' sizes in their file
    headers (nothing decoded; a file that cannot be read says no)."""
    kept = (metric.net_name, str(next(metric.net.parameters()).device))
    shapes: dict[str, tuple[int, int]] = {}
    keys: set[tuple] = set()
    for t, c in todo:
        if t not in shapes:
            try:
                shapes[t] = tuple(run.size) if not isinstance(run.size, str) else _header_size(run.paths[t])
            except (OSError, ValueError, Image.DecompressionBombError):   # load_image says what, when decoding
                return False
        keys.update((run.hashes[ref], *shapes[t]) for ref in (t, c))
    new = sum(activation_bytes(kept[0], *key[1:]) for key in keys if (*kept, *key) not in _KEPT.layers)
    return _KEPT.bytes + new <= KEEP_BUDGET


def _header_size(path: Path) -> tuple[int, int]:
    """(height, width) from an image file's header; rotated by its EXIF orientation or not, the same
    number of pixels, which is all :func:`activation_bytes` needs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)   # load_image checks its own limit
        with Image.open(path) as img:
            return img.size[1], img.size[0]


def _extract(metric: CLPIPS, todo: list[tuple[str, str]], run: _Pass):
    """Yield the vectors of ``todo``, ``{pair: vector}`` chunk by chunk (:func:`_pair_chunks`): every distinct
    (image, size) of a chunk through the backbone once (:func:`layer_activations`: not at all if this
    process keeps its activations). An image's activations do not depend on its batch, so neither do
    the vectors on the chunks."""
    keep = _keeps_all(metric, todo, run)
    bar = tqdm(total=len({ref for key in todo for ref in key}), desc=f"backbone ({metric.net_name})", unit="img",
               disable=not run.progress)
    try:
        for pairs, images in _pair_chunks(metric, todo, run):
            if bar.n + len(images) > bar.total:     # an image in several chunks, or at several sizes
                bar.total = bar.n + len(images)
            feats = layer_activations(metric, images, run.batch_size, bar, keep)
            with torch.no_grad():
                vectors = {pair: metric.vector_from_layers(feats[tkey], feats[ckey])[0].cpu()
                           for pair, tkey, ckey in pairs}
            del feats, images            # before the next chunk is decoded: one chunk in memory at a time
            yield vectors
    finally:
        bar.close()
