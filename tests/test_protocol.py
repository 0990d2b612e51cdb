"""The nested protocol: splits keep sides apart, statistics equal direct computations, refits are the
chosen setting's fit, and on data with a known gain the protocol finds it. (Its fits, clpips.train.fit_many,
are tested in test_fit_many.py; chapter 09's metric families in test_protocol_families.py.)"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pingouin as pg
import pytest
from scipy import stats as sps

from clpips import protocol
from clpips.apps.outputs import crossval_json
from clpips.datasets import restrict_to_images, split_folds
from clpips.datasets.splits import image_folds, shared_pairs
from clpips.evaluate import distance_scores, ranking_ids
from clpips.model import CHANNELS
from clpips.stats import bootstrap_counts, corrected_resampled_t
from clpips.train import fit_pairs
from helpers import record_calls, toy_table

DIM = sum(CHANNELS["alex"])


# --------------------------------------------------------------------------- splits
def test_split_by_image_leaves_no_image_on_both_sides():
    table = toy_table()
    for train, test in split_folds(table, "image", 3, seed=2):
        both = (set(train["target"]) | set(train["candidate"])) & (set(test["target"]) | set(test["candidate"]))
        assert not both
        assert not shared_pairs(train, test).any()
        # every kept ranking is re-ranked 1..k' with k' >= 2
        for _, g in pd.concat([train, test]).groupby(["set_id", "rater"]):
            assert sorted(g["rank"]) == list(range(1, len(g) + 1)) and len(g) >= 2


def test_split_by_target_matches_kfold_targets_of_split_by_image():
    table = toy_table()
    folds = image_folds(table, 3, seed=5)
    for f, (train, test) in enumerate(split_folds(table, "target", 3, seed=5)):
        assert set(test["target"]) == {t for t in table["target"].unique() if folds[t] == f}
        assert not set(train["target"]) & set(test["target"])


def test_restrict_to_images_direct_loop():
    table = toy_table()
    keep = {f"i{i}.png" for i in range(0, 12, 2)}
    out = restrict_to_images(table, keep)
    for (s, r), g in table.groupby(["set_id", "rater"]):
        kept = g[g["target"].isin(keep) & g["candidate"].isin(keep)].sort_values("rank")
        got = out[(out["set_id"] == s) & (out["rater"] == r)]
        if len(kept) < 2:
            assert got.empty
        else:
            assert list(got.sort_values("rank")["candidate"]) == list(kept["candidate"])


def test_mur92_within_redraws_candidates_inside_the_side(mur92_mirror, monkeypatch):
    monkeypatch.setenv("CLPIPS_DATA_MIRROR", str(mur92_mirror))
    from clpips import datasets
    data = datasets.load("mur92")
    assert data.within(data.images(), 0).reset_index(drop=True).equals(data.table.reset_index(drop=True))
    for train, test in split_folds(data.table, "image", 5, seed=1, within=data.within):
        test_images = set(test["target"]) | set(test["candidate"])
        assert not test_images & (set(train["target"]) | set(train["candidate"]))
        assert test.groupby("set_id")["candidate"].nunique().eq(10).all()  # 18+ images: k stays 10


# --------------------------------------------------------------------------- statistics
def test_paper_rho_is_scipy_spearman_on_pooled_raw_distances_and_pair_accuracy_a_loop():
    table = toy_table(raters=("a",))
    rng = np.random.default_rng(3)
    dist = rng.random((len(table), 2))
    dist[:5, 1] = dist[0, 1]  # some ties
    got = distance_scores(table, dist, ["x", "y"])
    for j, name in enumerate(["x", "y"]):
        assert got.at[name, "spearman_raw"] == pytest.approx(sps.spearmanr(table["rank"], dist[:, j]).statistic)
        # pair accuracy by a direct loop over each ranking's ordered pairs
        hits = total = 0
        for _, g in table.assign(d=dist[:, j]).groupby(["set_id", "rater"]):
            for (_, p), (_, q) in ((a, b) for a in g.iterrows() for b in g.iterrows() if a[1]["rank"] < b[1]["rank"]):
                total += 1
                hits += 1.0 if q["d"] > p["d"] else 0.5 if q["d"] == p["d"] else 0.0
        assert got.at[name, "pair_accuracy"] == pytest.approx(hits / total)
        # within-ranking ranks: ICC(A,k) as pingouin computes it
        ranks = table.assign(m=dist[:, j]).groupby(ranking_ids(table))["m"].rank(method="average")
        long = pd.concat([pd.DataFrame({"item": range(len(table)), "rater": "h", "y": table["rank"]}),
                          pd.DataFrame({"item": range(len(table)), "rater": "m", "y": ranks.to_numpy()})])
        ref = pg.intraclass_corr(long, "item", "rater", "y").set_index("Type").at["ICC(A,k)", "ICC"]
        assert got.at[name, "icc_A_k"] == pytest.approx(ref, abs=1e-10)


def test_corrected_resampled_t_by_hand():
    d = np.array([0.02, 0.05, -0.01, 0.04, 0.03, 0.01])
    res = corrected_resampled_t(d, 0.25, ci=0.9)
    se = np.sqrt(d.var(ddof=1) * (1 / 6 + 0.25))
    assert res["se"] == pytest.approx(se)
    assert res["low"] == pytest.approx(d.mean() - sps.t.ppf(0.95, 5) * se)
    plain = corrected_resampled_t(d, None, ci=0.9)
    assert plain["se"] == pytest.approx(d.std(ddof=1) / np.sqrt(6)) and plain["se"] < res["se"]


def _oof_toy(seed=0):
    """An out-of-fold table of two repeats: the same targets, distances of two metrics."""
    rng = np.random.default_rng(seed)
    parts = []
    for r in range(2):
        t = toy_table(n_images=10, k=4, raters=("a", "b"), seed=seed)
        truth = t["rank"].to_numpy(float)
        t = t.assign(repeat=r, fold=0, lpips=truth + rng.normal(0, 3, len(t)),
                     clpips=truth + rng.normal(0, 2, len(t)))
        t["ranking"] = ranking_ids(t)
        parts.append(t)
    return pd.concat(parts, ignore_index=True)


def test_target_bootstrap_equals_a_direct_resampling_loop():
    oof = _oof_toy()
    res = protocol.CrossvalResult(folds=pd.DataFrame(), inner=pd.DataFrame(), oof=oof, weights=np.zeros((1, 1)),
                                  settings={"seed": 3})
    n_boot = 40
    got = res.target_bootstrap(ci=0.9, n_boot=n_boot, seed=3)
    targets = np.array(sorted(oof["target"].unique()))
    counts = bootstrap_counts(len(targets), n_boot, 3)
    deltas = np.zeros(n_boot)
    for r, part in oof.groupby("repeat"):
        for b in range(n_boot):
            copies = []
            for t, c in zip(targets, counts[b]):
                for j in range(int(c)):  # each copy of a drawn target is its own set of rankings
                    g = part[part["target"] == t]
                    copies.append(g.assign(set_id=g["set_id"] + f"#{j}"))
            draw = pd.concat(copies, ignore_index=True)
            scores = distance_scores(draw, draw[["lpips", "clpips"]].to_numpy(float), ["lpips", "clpips"])
            deltas[b] += (scores.at["clpips", "icc_A_k"] - scores.at["lpips", "icc_A_k"]) / 2
    lo, hi = np.percentile(deltas, [5, 95])
    assert got["icc_A_k"]["boot_low"] == pytest.approx(lo, abs=1e-9)
    assert got["icc_A_k"]["boot_high"] == pytest.approx(hi, abs=1e-9)


def test_nested_check_refuses_a_leak():
    test = pd.DataFrame({"target": ["x"], "candidate": ["y"]})
    protocol.check_nested("target", test, [pd.DataFrame({"target": ["z"], "candidate": ["x"]})], "here")
    with pytest.raises(AssertionError, match="here"):
        protocol.check_nested("image", test, [pd.DataFrame({"target": ["z"], "candidate": ["x"]})], "here")
    with pytest.raises(AssertionError, match="targets"):
        protocol.check_nested("target", test, [pd.DataFrame({"target": ["x"], "candidate": ["q"]})], "here")


def test_grid_parse_and_refusals():
    g = protocol.Grid.parse("0.01,0.05", "0.003", "20,5,5")
    assert g.epochs == (5, 20) and len(g.settings()) == 1 + 4        # "do not train", then 2 x 1 x 2 trained
    assert g.settings().iloc[0, :2].isna().all() and g.settings().at[0, "epochs"] == 0
    for bad in (("0.01,nan", "0.1", "5"), ("0.01", "-1", "5"), ("0.01", "0.1", "2.5"), ("", "0.1", "5")):
        with pytest.raises(ValueError):
            protocol.Grid.parse(*bad)


# --------------------------------------------------------------------------- the protocol end to end
SMALL = protocol.Settings(folds=3, repeats=2, inner_folds=2, grid=protocol.Grid.parse("0.01,0.05", "0.01", "2,4"))


@pytest.mark.parametrize("mode", ["target", "image"])
def test_crossval_on_mur92_is_nested_deterministic_and_cached(mode, mur92_mirror, monkeypatch, tmp_path):
    monkeypatch.setenv("CLPIPS_DATA_MIRROR", str(mur92_mirror))
    from clpips import datasets
    data = datasets.load("mur92")
    res = protocol.crossval(data, SMALL.replace(mode=mode), cache=False)
    assert len(res.folds) == 6 and res.weights.shape == (6, DIM)
    # every target is held out exactly once per repeat
    for _, part in res.oof.groupby("repeat"):
        assert part.groupby("target")["fold"].nunique().eq(1).all()
        assert set(part["target"]) == set(data.table["target"])
    if mode == "image":
        assert (res.folds["shared_pair_share"] == 0).all()
    # mur92 draws its candidates: every repeat re-draws them (the same draw within a repeat)
    sets = {r: part.groupby("target")["candidate"].apply(frozenset) for r, part in res.oof.groupby("repeat")}
    assert (sets[0] != sets[1]).any()
    # the fold rows' deltas are the held-out statistics recomputed from the out-of-fold distances
    row = res.folds.iloc[0]
    part = res.oof[(res.oof["repeat"] == row["repeat"]) & (res.oof["fold"] == row["fold"])]
    scores = distance_scores(part, part[["lpips", "clpips"]].to_numpy(float), ["lpips", "clpips"])
    assert row["delta_icc_A_k"] == pytest.approx(scores.at["clpips", "icc_A_k"] - scores.at["lpips", "icc_A_k"])
    again = protocol.crossval(data, SMALL.replace(mode=mode), cache=False)
    pd.testing.assert_frame_equal(res.folds, again.folds)
    summary = res.summary(n_boot=200)
    assert set(summary.index) == set(protocol.STATISTICS)
    assert np.isfinite(summary.loc["icc_A_k", ["nb_low", "nb_high", "boot_low", "boot_high"]].astype(float)).all()
    json.dumps(crossval_json(res, n_boot=50), allow_nan=False)


def test_refits_train_the_chosen_setting_alone_as_its_grid_column_would(mur92_mirror, monkeypatch):
    """After the inner folds choose, each outer training side is refitted with its chosen setting only
    (one fit_many column, the chosen epochs): what the run reports is that fit, which equals the chosen
    column of the whole grid trained on the same pairs (float rounding apart) and fit_pairs itself."""
    monkeypatch.setenv("CLPIPS_DATA_MIRROR", str(mur92_mirror))
    from clpips import datasets, train
    calls, real = record_calls(monkeypatch, train, "fit_many")
    res = protocol.crossval(datasets.load("mur92"), SMALL.replace(mode="target"), cache=False)
    assert len(calls) == 2                                   # the inner grids, then the refits
    features, jobs, w0, kw, out = calls[1]
    assert len(jobs) == len(res.folds)
    grid = SMALL.grid
    for (_, row), job, got, reported in zip(res.folds.iterrows(), jobs, out, res.weights):
        assert (job.margins, job.lrs, job.checkpoints) == ((row["margin"],), (row["lr"],), (row["epochs"],))
        assert np.array_equal(got[-1, 0].numpy(), reported)
        whole = real(features, [train.GridJob(job.pairs, tuple(m for m, _ in grid.columns()),
                                              tuple(lr for _, lr in grid.columns()), grid.epochs, job.seed)],
                     w0, **kw)[0]
        column = grid.columns().index((row["margin"], row["lr"]))
        for ref in (whole[grid.epochs.index(row["epochs"]), column],
                    fit_pairs(features, job.pairs, None, w0, margin=row["margin"], lr=row["lr"],
                              epochs=int(row["epochs"]), seed=job.seed, batch_size=kw["batch_size"]).weights):
            diff = np.abs(reported - ref.numpy())
            assert diff.max() < 5e-3 and np.median(diff) < 1e-6   # test_fit_grid's tolerances (margin loss)


def test_crossval_cache_round_trip(mur92_mirror, monkeypatch, tmp_path):
    monkeypatch.setenv("CLPIPS_DATA_MIRROR", str(mur92_mirror))
    from clpips import datasets
    data = datasets.load("mur92")
    monkeypatch.setattr(protocol, "cache_folder", lambda key: tmp_path / "crossval" / key)
    first = protocol.crossval(data, SMALL)
    assert len([p for p in (tmp_path / "crossval").iterdir() if p.is_dir()]) == 1
    second = protocol.crossval(data, SMALL)
    pd.testing.assert_frame_equal(first.folds, second.folds)
    pd.testing.assert_frame_equal(first.oof, second.oof, check_dtype=False)
    assert np.array_equal(first.weights, second.weights)
    # the target bootstrap is kept beside the cached result: a later load reads the same numbers
    computed = first.summary(n_boot=120, seed=5)
    assert len(list((tmp_path / "crossval").glob("*/boot-*.npz"))) == 1
    again = protocol.crossval(data, SMALL)
    import clpips.experiment

    def no_recompute(*args, **kwargs):
        raise AssertionError("the stored bootstrap should have been read")
    monkeypatch.setattr(clpips.experiment, "bootstrap_result", no_recompute)
    pd.testing.assert_frame_equal(again.summary(n_boot=120, seed=5), computed)


def test_crossval_finds_the_gain_on_the_simulated_study():
    """Simulated people judge attribute matches that LPIPS's starting weights barely follow:
    trained weights must agree better held-out, with the interval above zero."""
    from clpips import datasets
    data = datasets.load("simulated")
    res = protocol.crossval(data, protocol.Settings(folds=3, repeats=1, inner_folds=2,
                                                    grid=protocol.Grid.parse("0.05", "0.01", "5,10")), cache=False)
    summary = res.summary(n_boot=300)
    assert summary.loc["icc_A_k", "delta"] > 0 and summary.loc["pair_accuracy", "delta"] > 0
    assert summary.loc["icc_A_k", "boot_low"] > 0


def test_cli_crossval_writes_strict_json_and_fold_csvs(mur92_mirror, monkeypatch, tmp_path, capsys):
    from clpips.apps.cli import main
    monkeypatch.setenv("CLPIPS_DATA_MIRROR", str(mur92_mirror))
    monkeypatch.setattr(protocol, "cache_folder", lambda key: tmp_path / "cache" / key)
    out = tmp_path / "cv"
    assert main(["crossval", "--dataset", "mur92", "--out", str(out), "--split-mode", "both", "--folds", "2",
                 "--repeats", "1", "--inner-folds", "2", "--margins", "0.05", "--lrs", "0.01", "--epochs-grid", "1",
                 "--n-boot", "50", "--quiet"]) == 0
    report = json.loads((out / "crossval.json").read_text(), parse_constant=lambda c: pytest.fail(f"bare {c}"))
    assert set(report["modes"]) == {"target", "image"}
    for mode, body in report["modes"].items():
        folds = pd.read_csv(out / mode / "folds.csv")
        assert len(folds) == 2 == len(body["folds"])
        summary = {row["statistic"]: row for row in body["summary"]}
        assert summary["icc_A_k"]["delta"] == pytest.approx(folds["delta_icc_A_k"].mean())
    assert "split by image" in capsys.readouterr().out
    # a bad grid is one line naming the options
    with pytest.raises(SystemExit) as refused:          # refused while parsing, before any work
        main(["crossval", "--dataset", "mur92", "--out", str(out), "--margins", "0.05,x"])
    assert refused.value.code == 2
    assert "--margins" in capsys.readouterr().err


def test_options_from_chapter_parameters_match_the_defaults_and_overrides():
    from clpips.defaults import DEFAULTS
    opts = protocol.options({"seed": 3, "protocol_folds": 4, "protocol_epochs": "7", "unrelated": 1})
    assert opts["seed"] == 3 and opts["folds"] == 4 and "unrelated" not in opts
    assert opts["grid"] == protocol.Grid.parse(DEFAULTS.protocol_margins, DEFAULTS.protocol_lrs, "7")
    assert protocol.options({})["grid"] == protocol.Grid()
    settings = protocol.Settings.from_parameters({"seed": 3, "protocol_folds": 4, "protocol_epochs": "7"}, mode="image")
    assert settings == protocol.Settings(mode="image", seed=3, folds=4, grid=opts["grid"])


def test_settings_refuse_bad_values_in_one_line():
    for bad, named in ((dict(mode="pixel"), "split mode"), (dict(select="auc"), "select"), (dict(folds=1), "folds"),
                       (dict(repeats=0), "repeats"), (dict(min_candidates=1), "min_candidates")):
        with pytest.raises(ValueError, match=named) as refused:
            protocol.Settings(**bad)
        assert "\n" not in str(refused.value)


def test_split_by_image_reuses_the_split_by_target_where_they_coincide(monkeypatch, tmp_path):
    """On the simulated study no candidate is ranked with two targets and no target is a candidate:
    image_folds then puts every image in its target's fold, so the split by image is the split by
    target fold for fold (checked here directly), and the protocol runs it once."""
    from clpips import datasets
    from clpips.datasets.splits import split_modes_coincide
    monkeypatch.setattr(protocol, "cache_folder", lambda key: tmp_path / "crossval" / key)
    data = datasets.load("simulated")
    assert split_modes_coincide(data.table)
    by_image = list(split_folds(data.table, "image", 3, 5))
    by_target = list(split_folds(data.table, "target", 3, 5))
    for (ti, hi), (tt, ht) in zip(by_image, by_target):
        pd.testing.assert_frame_equal(ti, tt)
        pd.testing.assert_frame_equal(hi, ht)
    small = protocol.Settings(folds=3, repeats=1, inner_folds=2, grid=protocol.Grid.parse("0.05", "0.01", "2"))
    image = protocol.crossval(data, small.replace(mode="image"))
    target = protocol.crossval(data, small.replace(mode="target"))
    assert image.settings["mode"] == "image" and image.settings["same_folds_as"] == "target"
    pd.testing.assert_frame_equal(image.folds, target.folds)
    assert len([p for p in (tmp_path / "crossval").iterdir() if p.is_dir()]) == 1
    mur = pd.DataFrame({"set_id": ["a"] * 2 + ["b"] * 2, "target": ["x", "x", "y", "y"],
                        "candidate": ["y", "z", "x", "z"], "rater": "r", "rank": [1, 2, 1, 2]})
    assert not split_modes_coincide(mur)   # targets are candidates of each other, z is ranked with both


def test_target_bootstrap_of_one_repeat_equals_a_direct_resampling_loop():
    oof = _oof_toy(seed=1)
    res = protocol.CrossvalResult(folds=pd.DataFrame(), inner=pd.DataFrame(), oof=oof, weights=np.zeros((1, 1)),
                                  settings={"seed": 3})
    n_boot = 30
    got = res.target_bootstrap_repeat(1, ci=0.9, n_boot=n_boot, seed=3)
    part = oof[oof["repeat"] == 1]
    targets = np.array(sorted(oof["target"].unique()))
    counts = bootstrap_counts(len(targets), n_boot, 3)

    def delta(table: pd.DataFrame) -> float:
        scores = distance_scores(table, table[["lpips", "clpips"]].to_numpy(float), ["lpips", "clpips"])
        return scores.at["clpips", "icc_A_k"] - scores.at["lpips", "icc_A_k"]
    deltas = []
    for b in range(n_boot):
        copies = [part[part["target"] == t].assign(set_id=lambda g, j=j: g["set_id"] + f"#{j}")
                  for t, c in zip(targets, counts[b]) for j in range(int(c))]
        deltas.append(delta(pd.concat(copies, ignore_index=True)))
    lo, hi = np.percentile(deltas, [5, 95])
    assert got["delta"] == pytest.approx(delta(part), abs=1e-12)
    assert got["low"] == pytest.approx(lo, abs=1e-9) and got["high"] == pytest.approx(hi, abs=1e-9)


def test_a_run_without_fold_columns_names_no_setting():
    res = protocol.CrossvalResult(folds=pd.DataFrame({"repeat": [0]}), inner=pd.DataFrame(), oof=pd.DataFrame(),
                                  weights=np.zeros((1, 1)), settings={})
    assert res.setting_columns() == []


def test_the_old_keyword_form_names_an_unknown_metric():
    from clpips.datasets import RankingDataset
    data = RankingDataset(table=toy_table(), root=Path("."), name="toy")
    with pytest.warns(DeprecationWarning), \
            pytest.raises(ValueError, match=r"^metric must be one of .*'clpips'.*, got 'nonsense'$"):
        protocol.crossval(data, metric="nonsense", folds=3)


def test_corrected_resampled_t_below_two_finite_differences_is_nan():
    """One difference (a NaN fold left out): its mean, and no spread, interval, t or p."""
    for d in ([0.25], [0.25, float("nan")], [0.25, float("inf")]):
        res = corrected_resampled_t(d, 0.2)
        assert res["n"] == 1 and res["mean"] == 0.25
        assert all(np.isnan(res[key]) for key in ("sd", "se", "low", "high", "t", "pval"))
    empty = corrected_resampled_t([], None)
    assert empty["n"] == 0 and np.isnan(empty["mean"]) and np.isnan(empty["low"])
