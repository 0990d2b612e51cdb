"""`clpips fit` and `clpips evaluate` on mur92, and their one-line errors."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

import clpips
from clpips.apps.cli import main
from clpips.evaluate import ranking_ids
from clpips.experiment import load_dataset
from clpips.train import pair_features_for
from tolerance import icc_ak_bound, spearman_bound


def heldout_bounds(fitted, weights) -> tuple[float, float]:
    """How far two programs' ICC(A,k) and rho of the same held-out ranks of ``weights`` on mur92 may lie
    apart (float64 bounds, tests/tolerance.py). The ranks are ranked here from float64 distances; the run's
    own float32 distances may order a few close neighbours otherwise (32 lie within float32's worst-case
    rounding), which leaves each ranking's ranks the same numbers, and the bounds, which depend on their
    squares and sums of squares, unchanged to first order."""
    params = clpips.CLPIPS(linear=fitted / "weights.pth").provenance["parameters"]
    dataset = load_dataset("mur92", **{key: params[key] for key in ("k", "candidates", "seed") if key in params})
    test_targets = json.loads((fitted / "metrics.json").read_text())["split"]["test_targets"]
    test = dataset.table[dataset.table["target"].isin(test_targets)]
    features = pair_features_for(dataset, test, net="alex", progress=False)        # the runs' cached features
    phi = features.matrix[features.rows(test["target"], test["candidate"])].double()
    w = torch.as_tensor(weights).double().flatten()
    exact = (phi @ w).numpy()
    metric = pd.Series(exact).groupby(ranking_ids(test).to_numpy()).rank(method="average").to_numpy()
    return icc_ak_bound(test["rank"], metric), spearman_bound(test["rank"], metric)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, mur92_mirror):
    mp = pytest.MonkeyPatch()
    mp.setenv("CLPIPS_DATA_MIRROR", str(mur92_mirror))
    out = tmp_path_factory.mktemp("run")
    assert main(["fit", "--dataset", "mur92", "--out", str(out), "--epochs", "3", "--n-boot", "200",
                 "--seed", "3", "--quiet"]) == 0
    yield out
    mp.undo()


def test_cli_fit_writes_weights_sidecar_and_metrics(fitted):
    metrics = json.loads((fitted / "metrics.json").read_text())
    for name in ("lpips", "clpips"):
        for key in ("spearman", "spearman_pval", "icc_A_k", "icc_A_k_ci_low", "icc_A_k_ci_high", "icc_A_k_pval"):
            assert isinstance(metrics["heldout"][name][key], float), (name, key)
        row = metrics["heldout"][name]
        assert row["icc_A_k_ci_low"] <= row["icc_A_k"] <= row["icc_A_k_ci_high"]
    split = metrics["split"]
    assert not set(split["train_targets"]) & set(split["test_targets"])
    assert len(split["test_targets"]) == round(0.3 * 92)
    assert metrics["bootstrap"]["differences"]["ΔICC(A,k)"]["ci_low"] <= \
        metrics["bootstrap"]["differences"]["ΔICC(A,k)"]["ci_high"]
    meta = json.loads((fitted / "weights.json").read_text())
    assert meta["trained_on"] == "mur92" and meta["seed"] == 3
    assert meta["metrics"]["heldout"]["clpips"]["icc_A_k"] == metrics["heldout"]["clpips"]["icc_A_k"]
    model = clpips.CLPIPS(linear=fitted / "weights.pth")
    assert float(model.weight_vector().min()) >= 0


def test_cli_evaluate_reproduces_fit_table(fitted, mur92_mirror, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("CLPIPS_DATA_MIRROR", str(mur92_mirror))
    out = tmp_path / "table.json"
    assert main(["evaluate", "--dataset", "mur92", "--weights", str(fitted / "weights.pth"),
                 "--json", str(out), "--n-boot", "200", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "icc_A_k" in printed and "lpips" in printed
    table = json.loads(out.read_text())
    fit_metrics = json.loads((fitted / "metrics.json").read_text())["heldout"]
    name = fitted.name  # weights.pth is named after its folder
    # the same arithmetic on the same numbers: score_rankings of the same held-out rows (the same split),
    # the same cached features and the weights as saved (float32, bit for bit), then alignment_table
    for ours, theirs in ((name, "clpips"), ("lpips", "lpips")):
        assert table["heldout"][ours] == fit_metrics[theirs], ours


def test_cli_fit_icc_is_spearman_brown_of_rho(fitted, mur92_mirror, monkeypatch):
    """With ranks on both sides ICC(C,k) = 2 rho / (1 + rho) for the pooled rank correlation when
    neither side has ties, and ICC(A,k) = (MSR - MSE) / (MSR - MSE / n) = ICC(C,k) / (1 - 1 / (n F)) with
    F = MSR / MSE, the ICC's F (n = 4,480 held-out items here): an identity, up to each side's rounding."""
    monkeypatch.setenv("CLPIPS_DATA_MIRROR", str(mur92_mirror))
    weights = {"lpips": clpips.model.initial_weight_vector("alex", "lpips"),
               "clpips": clpips.CLPIPS(linear=fitted / "weights.pth").weight_vector()}
    for name, row in json.loads((fitted / "metrics.json").read_text())["heldout"].items():
        rho, n = row["spearman"], row["n_rows"]
        icc_tol, rho_tol = heldout_bounds(fitted, weights[name])   # no ties either side; each value's rounding
        expected = 2 * rho / (1 + rho) / (1 - 1 / (n * row["icc_A_k_F"]))
        # d expected / d rho = 2 / (1 + rho)^2 / (...) < 3 here; F's own rounding moves it by < 1e-16
        assert row["icc_A_k"] == pytest.approx(expected, abs=icc_tol + 3 * rho_tol), name


@pytest.mark.parametrize("argv, message", [
    (["fit", "--dataset", "nosuch", "--out", "x"], "unknown dataset 'nosuch'"),
    (["fit", "--dataset", "missing.csv", "--out", "x"], "missing.csv: no such CSV file"),
    (["evaluate", "--dataset", "mur92", "--weights", "absent.pth"], "no such weights file"),
])
def test_cli_errors_are_one_line(argv, message, capsys, mur92_mirror, monkeypatch, tmp_path):
    monkeypatch.setenv("CLPIPS_DATA_MIRROR", str(mur92_mirror))
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_cli_bad_csv_is_one_line(tmp_path, capsys):
    bad = tmp_path / "study.csv"
    bad.write_text("set_id,target,candidate,rater\ns1,t.png,a.png,ann\n")
    assert main(["fit", "--dataset", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "rank" in err and "study.csv" in err and len(err.splitlines()) == 1
