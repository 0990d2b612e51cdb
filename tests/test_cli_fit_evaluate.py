"""`clpips fit` and `clpips evaluate` on mur92, and their one-line errors."""
from __future__ import annotations

import json

import pytest
import torch

import clpips
from clpips.apps.cli import main


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
    assert table["heldout"][name]["icc_A_k"] == pytest.approx(fit_metrics["clpips"]["icc_A_k"], abs=1e-6)
    assert table["heldout"]["lpips"]["spearman"] == pytest.approx(fit_metrics["lpips"]["spearman"], abs=1e-12)


def test_cli_fit_icc_is_spearman_brown_of_rho(fitted):
    """With ranks on both sides ICC(C,k) = 2 rho / (1 + rho) for the pooled rank correlation when
    neither side has ties, and ICC(A,k) = (MSR - MSE) / (MSR - MSE / n) is within O(1/n) of it
    (n = 4,480 held-out items here)."""
    for row in json.loads((fitted / "metrics.json").read_text())["heldout"].values():
        rho = row["spearman"]
        assert row["icc_A_k"] == pytest.approx(2 * rho / (1 + rho), abs=1e-3)


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
