"""Pair features within a memory budget: images decoded chunk by chunk, a large matrix memory-mapped on disk,
and every number (and every cache entry's bytes) the same as computed all at once."""
from __future__ import annotations

import hashlib
import sys
import tempfile
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from clpips import features
from clpips.features import activation_bytes, pair_features
from helpers import Folder


@pytest.fixture()
def study(tmp_path):
    """5 targets with 3 candidates each (one target and one candidate of another size), 20 images."""
    rng = np.random.default_rng(1)
    pairs = []
    for t in range(5):
        shape = (60, 40) if t == 4 else (48, 48)
        Image.fromarray(rng.integers(0, 256, (*shape, 3), dtype=np.uint8)).save(tmp_path / f"t{t}.png")
        for c in range(3):
            cshape = (52, 44) if (t, c) == (1, 2) else (48, 48)
            Image.fromarray(rng.integers(0, 256, (*cshape, 3), dtype=np.uint8)).save(tmp_path / f"t{t}c{c}.png")
            pairs.append((f"t{t}.png", f"t{t}c{c}.png"))
    return Folder(tmp_path), pairs


def _files(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.pt*"))}


def _mapping_of(address: int) -> str:
    """The file (or ``""``) that the memory at ``address`` of this process is mapped from."""
    for row in Path("/proc/self/maps").read_text().splitlines():
        span, *rest = row.split(maxsplit=5)
        low, high = (int(v, 16) for v in span.split("-"))
        if low <= address < high:
            return rest[4] if len(rest) > 4 else ""
    return ""


def test_features_in_a_tiny_budget_equal_all_at_once_bit_for_bit(study, alex, tmp_path, monkeypatch):
    folder, pairs = study
    monkeypatch.setattr(features, "_KEPT", features._Kept())
    monkeypatch.setenv("CLPIPS_CACHE", str(tmp_path / "whole"))
    whole = pair_features(folder, pairs, metric=alex, progress=False)          # one chunk: 20 images << 1.5 GiB

    # a budget of about three images' activations: chunks of a pair or two, and a matrix over the budget
    monkeypatch.setattr(features, "MEMORY_BUDGET", 3 * activation_bytes("alex", 48, 48))
    monkeypatch.setattr(features, "_KEPT", features._Kept())                   # nothing kept: all run again
    real_load, live, most = features.load_image, set(), [0]

    def load(path):
        x = real_load(path)
        live.add(id(x))
        weakref.finalize(x, live.discard, id(x))
        most[0] = max(most[0], len(live))
        return x

    monkeypatch.setattr(features, "load_image", load)
    monkeypatch.setenv("CLPIPS_CACHE", str(tmp_path / "chunked"))
    chunked = pair_features(folder, pairs, metric=alex, progress=False)
    assert chunked.extracted == len(pairs) == 15
    assert chunked.keys == whole.keys and torch.equal(chunked.matrix, whole.matrix)
    assert most[0] <= 6, f"{most[0]} images decoded at once, of 20"           # all at once before
    assert _files(tmp_path / "chunked") == _files(tmp_path / "whole")          # the same entries, byte for byte


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_a_matrix_over_the_budget_is_memory_mapped_on_an_unlinked_file(study, alex, tmp_path, monkeypatch):
    folder, pairs = study
    monkeypatch.setenv("CLPIPS_CACHE", str(tmp_path / "cache"))
    in_memory = pair_features(folder, pairs, metric=alex, progress=False)
    assert not _mapping_of(in_memory.matrix.data_ptr()).startswith("/")      # anonymous memory, no file
    monkeypatch.setattr(features, "MEMORY_BUDGET", in_memory.matrix.numel() * 4 - 1)
    mapped = pair_features(folder, pairs, metric=alex, progress=False)        # from the cache, into the file
    source = _mapping_of(mapped.matrix.data_ptr())
    assert source.startswith(str(tmp_path / "cache")) and source.endswith("(deleted)"), source
    assert torch.equal(mapped.matrix, in_memory.matrix)
    assert not [p for p in (tmp_path / "cache").iterdir() if p.is_file()]     # nothing left behind on disk
    rows = mapped.rows(["t2.png"], ["t2c1.png"])
    assert torch.equal(mapped.matrix[rows], in_memory.matrix[rows])


def test_a_pass_keeps_its_activations_only_when_all_of_them_fit(study, alex, tmp_path, monkeypatch):
    """Keeping the first images of a pass too large to keep whole held memory for nothing: it keeps none."""
    folder, pairs = study
    monkeypatch.setenv("CLPIPS_CACHE", str(tmp_path / "cache"))
    one = activation_bytes("alex", 48, 48)
    monkeypatch.setattr(features, "_KEPT", features._Kept())
    monkeypatch.setattr(features, "KEEP_BUDGET", 5 * one)                     # 20 images do not fit
    pair_features(folder, pairs, metric=alex, progress=False, cache=False)
    assert features._KEPT.bytes == 0 and not features._KEPT.layers
    monkeypatch.setattr(features, "KEEP_BUDGET", 3 * 2 ** 29)
    pair_features(folder, pairs[:6], metric=alex, progress=False, cache=False)  # 2 targets, 8 images: kept
    assert len(features._KEPT.layers) == 8


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_a_matrix_over_the_budget_with_no_usable_cache_maps_a_system_temporary_file(study, alex, tmp_path,
                                                                                       monkeypatch):
    """The cache folder cannot be made (a file stands in its way): the matrix is mapped on an unlinked file in
    the system's temporary folder instead, with the same numbers."""
    folder, pairs = study
    monkeypatch.setenv("CLPIPS_CACHE", str(tmp_path / "cache"))
    in_memory = pair_features(folder, pairs[:3], metric=alex, progress=False, cache=False)
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("CLPIPS_CACHE", str(tmp_path / "file" / "cache"))
    monkeypatch.setattr(features, "MEMORY_BUDGET", in_memory.matrix.numel() * 4 - 1)
    mapped = pair_features(folder, pairs[:3], metric=alex, progress=False, cache=False)
    source = _mapping_of(mapped.matrix.data_ptr())
    assert Path(source).parent == Path(tempfile.gettempdir()) and source.endswith("(deleted)"), source
    assert torch.equal(mapped.matrix, in_memory.matrix)
