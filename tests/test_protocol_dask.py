"""The nested protocol on a Dask cluster (issue #22): ``crossval`` with a cluster's executor, and ``clpips
crossval --dask ADDRESS``, give the folds table local processes give, to the last bit. A small study with
fixed random pair features (the backbone is not under test), so each run takes seconds; the cluster is
local (``distributed.LocalCluster``: two worker processes of one thread each)."""
from __future__ import annotations

import concurrent.futures
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from clpips import protocol, train
import clpips.apps.cli as cli
from clpips.apps.cli import main
from clpips.experiment import load_dataset
from clpips.features import PairFeatures
from clpips.model import CHANNELS

distributed = pytest.importorskip("distributed")

SETTINGS = protocol.Settings(folds=3, repeats=2, inner_folds=2, grid=protocol.Grid.parse("0.02,0.05", "0.01", "1,2"))


def _study(root: Path) -> Path:
    """Twelve 32 x 32 images, each a target with five candidates ranked by two raters, as a study CSV."""
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / f"i{i}.png")
    rows = []
    for t in range(12):
        cands = rng.choice([i for i in range(12) if i != t], size=5, replace=False)
        for r in ("a", "b"):
            for rank, c in enumerate(rng.permutation(cands), start=1):
                rows.append({"set_id": f"s{t}", "target": f"i{t}.png", "candidate": f"i{c}.png", "rater": r,
                             "rank": rank})
    pd.DataFrame(rows).to_csv(root / "study.csv", index=False)
    return root / "study.csv"


def _features(dataset, table, **_):
    """Fixed pair features: a random row per (target, candidate), by seed."""
    keys = sorted(set(table[["target", "candidate"]].itertuples(index=False, name=None)))
    gen = torch.Generator().manual_seed(7)
    dim = sum(CHANNELS["alex"])
    return PairFeatures(keys=keys, matrix=torch.rand(len(keys), dim, generator=gen) * 0.02, net="alex", extracted=0)


class Counted(concurrent.futures.Executor):
    """An executor that hands every task to ``inner`` and counts them (so the test knows the cluster ran them)."""

    def __init__(self, inner: concurrent.futures.Executor):
        self.inner, self.submitted = inner, 0

    def submit(self, fn, /, *args, **kwargs):
        self.submitted += 1
        return self.inner.submit(fn, *args, **kwargs)


def test_crossval_on_a_dask_cluster_gives_the_folds_of_local_processes(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(train, "pair_features_for", _features)
    monkeypatch.setattr(protocol, "cache_folder", lambda key: tmp_path / "cache" / key)
    csv = _study(tmp_path)
    data = load_dataset(str(csv))
    local = protocol.crossval(data, SETTINGS, compute=protocol.Compute(workers=2), cache=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster, timeout="60s") as client:
        executor = Counted(client.get_executor())
        spread = protocol.crossval(data, SETTINGS, compute=protocol.Compute(executor=executor), cache=False)
        assert executor.submitted > 0
        out = tmp_path / "cli"
        code = main(["crossval", "--dataset", str(csv), "--out", str(out), "--folds", "3", "--repeats", "2",
                     "--inner-folds", "2", "--margins", "0.02,0.05", "--lrs", "0.01", "--epochs-grid", "1,2",
                     "--n-boot", "20", "--quiet", "--dask", cluster.scheduler_address])
        assert code == 0, capsys.readouterr().err
    for name in ("folds", "inner", "oof"):
        pd.testing.assert_frame_equal(getattr(spread, name), getattr(local, name), check_exact=True)
    assert np.array_equal(spread.weights, local.weights)
    mine = tmp_path / "local"
    mine.mkdir()
    protocol.write_result(local, mine)
    assert (out / "folds.csv").read_bytes() == (mine / "folds.csv").read_bytes()


def test_crossval_names_a_bad_dask_address_in_one_line(tmp_path, capsys):
    """Its form is checked while the options are read; an address where no scheduler answers is named the
    same way when the command starts, after the client's 30 s of trying (not waited for here)."""
    from helpers import run_cli
    for address, named in (("tpc://127.0.0.1:8786", "unknown address scheme 'tpc'"),
                           ("tcp://127.0.0.1", "[SCHEME://]HOST:PORT"), ("localhost:99999", "[SCHEME://]HOST:PORT")):
        code, _, err = run_cli(["crossval", "--dataset", "mur92", "--out", str(tmp_path / "o"), "--dask", address],
                               capsys)
        last = err.strip().splitlines()[-1]           # argparse's usage, then the one line naming it
        assert code == 2 and "--dask" in last and named in last, err
    for address in ("tcp://10.0.0.5:8786", "localhost:8786", "tls://[::1]:8786", "inproc://10.0.0.5/1234/2"):
        assert cli._dask_address(address) == address
