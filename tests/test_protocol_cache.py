"""The nested protocol's result cache checks what it reads: every file of a cached run (its tables, the
refitted weights, its settings) and every stored target bootstrap is verified against the sha256 recorded
when it was written. A bad one (one digit changed, truncated, bytes flipped, no checksum) is named in one
warning line and computed again: the result is the one a run without the cache gives."""
from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from clpips import protocol, train
from clpips.features import CacheWarning, PairFeatures
from clpips.model import CHANNELS

DIM = sum(CHANNELS["alex"])
RUN = protocol.Settings(folds=3, repeats=2, inner_folds=2, grid=protocol.Grid.parse("0.02,0.05", "0.01", "1,2"),
                       mode="target")
ONE = protocol.Compute(workers=1)
BOOT = dict(n_boot=60, seed=3)


class Toy:
    """Twelve images, each a target with five candidates ranked by two raters (the runs take a second)."""

    name = "toy"

    def __init__(self, root: Path, n_images: int = 12, k: int = 5):
        rng = np.random.default_rng(0)
        self.root = root
        for i in range(n_images):   # cache_key hashes each image's bytes
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / f"i{i}.png")
        rows = []
        for t in range(n_images):
            cands = rng.choice([i for i in range(n_images) if i != t], size=k, replace=False)
            for r in ("a", "b"):
                for rank, c in enumerate(rng.permutation(cands), start=1):
                    rows.append({"set_id": f"s{t}", "target": f"i{t}.png", "candidate": f"i{c}.png", "rater": r,
                                 "rank": rank})
        self.table = pd.DataFrame(rows)

    def image_path(self, ref: str) -> Path:
        return self.root / ref


def _features(dataset, table, **_):
    """Fixed pair features (the cache, not the backbone, is under test): a random row per pair, by seed."""
    keys = sorted(set(table[["target", "candidate"]].itertuples(index=False, name=None)))
    gen = torch.Generator().manual_seed(7)
    return PairFeatures(keys=keys, matrix=torch.rand(len(keys), DIM, generator=gen) * 0.02, net="alex", extracted=0)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """The toy dataset and its run computed without the cache (the reference every re-run must equal)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train, "pair_features_for", _features)
        data = Toy(tmp_path_factory.mktemp("toy"))
        plain = protocol.crossval(data, RUN, compute=ONE, cache=False)
        return data, plain, plain.summary(**BOOT)


@pytest.fixture()
def cached(toy, monkeypatch, tmp_path):
    """A fresh cache holding the toy run and one stored bootstrap; (dataset, reference, its summary, folder)."""
    data, plain, summary = toy
    monkeypatch.setattr(train, "pair_features_for", _features)
    monkeypatch.setattr(protocol, "cache_folder", lambda key: tmp_path / "crossval" / key)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        first = protocol.crossval(data, RUN, compute=ONE)
        pd.testing.assert_frame_equal(first.summary(**BOOT), summary)
    (folder,) = [p for p in (tmp_path / "crossval").iterdir() if p.is_dir()]
    assert first.store == folder and len(list(folder.glob("boot-*.npz"))) == 1
    return data, plain, summary, folder


def _same(got: protocol.CrossvalResult, want: protocol.CrossvalResult) -> None:
    pd.testing.assert_frame_equal(got.folds, want.folds)
    pd.testing.assert_frame_equal(got.inner, want.inner)
    pd.testing.assert_frame_equal(got.oof, want.oof, check_dtype=False)
    assert np.array_equal(got.weights, want.weights)
    assert got.settings == want.settings


def _one_line_naming(record, path: Path) -> None:
    assert len(record) == 1, [str(w.message) for w in record]
    message = str(record[0].message)
    assert "\n" not in message and message.startswith(f"{path}:") and "rebuilding" in message


def _change_a_digit(path: Path) -> None:
    """The first fold's CLPIPS ICC(A,k): one digit of its printed value changed (the file stays a valid table)."""
    lines = path.read_text().splitlines(keepends=True)
    column = lines[0].rstrip("\n").split(",").index("clpips_icc_A_k")
    cells = lines[1].split(",")
    value = cells[column]
    at = max(i for i, ch in enumerate(value) if ch.isdigit() and ch != "0")
    cells[column] = value[:at] + str((int(value[at]) + 3) % 10) + value[at + 1:]
    lines[1] = ",".join(cells)
    path.write_text("".join(lines))
    assert float(cells[column]) != float(value)


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 3])


def _flip_bytes(path: Path) -> None:
    """Three bytes inverted in the middle of the file (past a .npy header: np.load still reads it)."""
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 3):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _other_seed(path: Path) -> None:
    """settings.json still valid JSON, one value changed."""
    text = path.read_text()
    changed = re.sub(r'"seed": (\d+)', lambda m: f'"seed": {int(m.group(1)) + 1}', text)
    assert changed != text
    path.write_text(changed)


@pytest.mark.parametrize("name, damage", [("folds.csv", _change_a_digit), ("inner.csv", _truncate),
                                          ("oof.csv", _truncate), ("weights.npy", _flip_bytes),
                                          ("settings.json", _other_seed), ("settings.json", _truncate)])
def test_a_damaged_run_file_is_named_and_the_run_computed_again(cached, name, damage):
    data, plain, summary, folder = cached
    damage(folder / name)
    with pytest.warns(CacheWarning) as record:
        again = protocol.crossval(data, RUN, compute=ONE)
    _one_line_naming(record, folder / name)
    _same(again, plain)
    # the run was written again, checked: the next read is silent and gives what a read of the first did
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        read = protocol.crossval(data, RUN, compute=ONE)
        pd.testing.assert_frame_equal(read.summary(**BOOT), summary)
    assert read.store == folder
    _same(read, plain)


@pytest.mark.parametrize("damage", [_flip_bytes, _truncate])
def test_a_damaged_stored_bootstrap_is_named_and_computed_again(cached, damage, monkeypatch):
    data, plain, summary, folder = cached
    (boot,) = folder.glob("boot-*.npz")
    damage(boot)
    with pytest.warns(CacheWarning) as record:
        got = protocol.crossval(data, RUN, compute=ONE).summary(**BOOT)
    _one_line_naming(record, boot)
    pd.testing.assert_frame_equal(got, summary)
    # rewritten with its checksum: read again, not recomputed
    import clpips.experiment

    def no_recompute(*args, **kwargs):
        raise AssertionError("the stored bootstrap should have been read")
    monkeypatch.setattr(clpips.experiment, "bootstrap_result", no_recompute)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        pd.testing.assert_frame_equal(protocol.crossval(data, RUN, compute=ONE).summary(**BOOT), summary)


@pytest.mark.parametrize("name", ["oof.csv", "boot"])
def test_an_entry_without_its_checksum_is_not_trusted(cached, name):
    """An entry an older clpips wrote (no .sha256 beside it) cannot be verified: it is computed again."""
    data, plain, summary, folder = cached
    entry = next(folder.glob("boot-*.npz")) if name == "boot" else folder / name
    Path(f"{entry}.sha256").unlink()
    with pytest.warns(CacheWarning, match="no recorded checksum") as record:
        res = protocol.crossval(data, RUN, compute=ONE)
        got = res.summary(**BOOT)
    _one_line_naming(record, entry)
    _same(res, plain)
    pd.testing.assert_frame_equal(got, summary)


def test_a_missing_file_of_a_run_is_named_and_the_run_computed_again(cached):
    data, plain, summary, folder = cached
    (folder / "weights.npy").unlink()
    with pytest.warns(CacheWarning, match="missing") as record:
        again = protocol.crossval(data, RUN, compute=ONE)
    _one_line_naming(record, folder / "weights.npy")
    _same(again, plain)
    assert (folder / "weights.npy").is_file()



def test_a_cache_that_cannot_be_written_still_gives_the_run(toy, monkeypatch, tmp_path):
    data, plain, summary = toy
    monkeypatch.setattr(train, "pair_features_for", _features)
    monkeypatch.setattr(protocol, "cache_folder", lambda key: tmp_path / "crossval" / key)

    def refuse(path, data):
        raise PermissionError(f"{path}: read-only file system")

    monkeypatch.setattr(protocol.atomic, "write_checked", refuse)
    got = protocol.crossval(data, RUN, compute=ONE)
    _same(got, plain)
    assert got.store is None                              # nothing cached, nothing pointed at
    assert not [p for p in (tmp_path / "crossval").iterdir() if not p.name.endswith(".lock")]   # no half-written folder
    pd.testing.assert_frame_equal(got.summary(**BOOT), summary)   # its bootstrap computed, not stored

def test_a_result_written_for_people_is_spreadsheet_safe(tmp_path):
    """write_result (the CLI's folder) neutralises text a spreadsheet would run as a formula."""
    evil = '=HYPERLINK("http://evil.example","click")'
    oof = pd.DataFrame({"set_id": [evil, "s2"], "rater": ["@SUM(1+9)", "ana"], "rank": [1, 2], "lpips": [-0.5, 0.25]})
    folds = pd.DataFrame({"fold": [0], "delta_icc_A_k": [-0.1]})
    result = protocol.CrossvalResult(folds=folds, inner=folds.iloc[:0], oof=oof, weights=np.zeros((1, 3)))
    protocol.write_result(result, tmp_path)
    written = pd.read_csv(tmp_path / "oof.csv", keep_default_na=False)
    assert list(written["set_id"]) == ["'" + evil, "s2"] and list(written["rater"]) == ["'@SUM(1+9)", "ana"]
    assert list(written["lpips"]) == [-0.5, 0.25]                       # numbers, negative ones too, untouched
    assert pd.read_csv(tmp_path / "folds.csv")["delta_icc_A_k"].tolist() == [-0.1]
    assert result.oof.at[0, "set_id"] == evil                           # the result itself keeps its values


def test_the_old_keyword_form_warns_and_gives_the_same_run(toy, monkeypatch):
    """``crossval(dataset, mode=..., folds=..., workers=...)``, the form before Settings and Compute, still
    works for one release: a DeprecationWarning, and the run the new form gives."""
    data, plain, _ = toy
    monkeypatch.setattr(train, "pair_features_for", _features)
    with pytest.warns(DeprecationWarning, match="Settings"):
        old = protocol.crossval(data, cache=False, folds=3, repeats=2, inner_folds=2, grid=RUN.grid, mode="target",
                                workers=1, metric="clpips", transform_rank=4)
    _same(old, plain)
    with pytest.warns(DeprecationWarning), pytest.raises(TypeError, match="margin"):
        protocol.crossval(data, cache=False, margin=0.1)
