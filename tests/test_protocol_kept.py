"""The nested protocol says what it kept, and its tuning can say no (issue #24, items 1 and 6), checked
against direct computations in the test.

A crowd-like study with fixed candidates: every image is a target, ranked with ``k`` candidates drawn
among the other images by a few raters. A split by image keeps, of a held-out target's ranking, only the
candidates in the target's fold of images (about 1/folds of them), so many held-out rankings shrink to
one or two candidates. Pair features are random (``train.pair_features_for`` is replaced), so a run takes
a few seconds; people rank either by a hidden weighting of them (training helps) or by LPIPS's own
distances (nothing to learn: LPIPS already ranks as they do).
"""
from __future__ import annotations

import json
import re
import warnings
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from clpips import protocol, train
from clpips.apps import outputs
from clpips.apps.outputs import crossval_json
from clpips.datasets import restrict_to_images
from clpips.datasets.splits import image_folds, split_folds
from clpips.features import PairFeatures
from clpips.model import CHANNELS, initial_weight_vector
from tolerance import assert_same_fit

DIM = sum(CHANNELS["alex"])
LAYER = np.repeat(np.arange(5), CHANNELS["alex"])
W0 = initial_weight_vector("alex", "lpips").numpy().astype(float)
GRID = protocol.Grid.parse("0.05", "1e-12,0.001,0.01", "1,2,4")     # lr 1e-12: LPIPS to float32 rounding
BASE = protocol.Settings(repeats=2, inner_folds=2, seed=0, grid=GRID)
ONE = protocol.Compute(workers=1, threads=1)     # every fit in this process


def crowd(n_images: int = 36, k: int = 12, raters: int = 2, by: str = "hidden", seed: int = 0):
    """The study (``table``, ``name``, ``image_path``) and its pair features. ``by="hidden"``: people weigh
    the last layer 100 times more than LPIPS does; ``by="lpips"``: people rank by LPIPS's distances."""
    rng = np.random.default_rng(seed)
    images = [f"i{i:02d}.png" for i in range(n_images)]
    keys, rows = [], []
    for t in range(n_images):
        cands = rng.choice([i for i in range(n_images) if i != t], size=k, replace=False)
        keys += [(images[t], images[c]) for c in cands]
    matrix = rng.gamma(1.0, 1.0, size=(len(keys), 5))[:, LAYER] * rng.gamma(4.0, 0.0025, size=(len(keys), DIM))
    matrix = matrix.astype(np.float32)
    if by == "hidden":
        d = matrix.astype(float) @ (W0 * np.array([.05, .05, .05, .05, 5.])[LAYER])
    else:                    # LPIPS's distances as the protocol computes them (float32)
        d = (torch.from_numpy(matrix) @ initial_weight_vector("alex", "lpips")).numpy().astype(float)
    for start in range(0, len(keys), k):
        for r in range(raters):
            judged = d[start:start + k] + (0.3 * d[start:start + k].std() * rng.standard_normal(k) if by == "hidden"
                                           else 0.0)
            for j, rank in enumerate(judged.argsort().argsort() + 1):
                t, c = keys[start + j]
                rows.append({"set_id": f"s{start // k}", "target": t, "candidate": c, "rater": f"r{r}",
                             "rank": int(rank)})
    features = PairFeatures(keys=keys, matrix=torch.from_numpy(matrix), net="alex", extracted=0)
    return SimpleNamespace(table=pd.DataFrame(rows), name="crowd", image_path=lambda ref: __file__), features


@pytest.fixture()
def patched(monkeypatch):
    """Replace the backbone's pair features by a study's own; returns the function that installs them."""
    def use(features):
        monkeypatch.setattr(train, "pair_features_for", lambda dataset, table, **kw: features)
    return use


def by_hand(table: pd.DataFrame, fold_images: set, least: int) -> dict:
    """One fold of a split by image, counted ranking by ranking: a ranking of a target in the fold keeps its
    candidates in the fold and is scored with ``least`` or more; one of a target outside keeps its candidates
    outside and is trained on with two or more."""
    out = {"scored": 0, "not_scored": 0, "trained": 0, "train_dropped": 0, "kept_rows": 0, "sizes": [],
           "targets": set()}
    for _, g in table.groupby(["set_id", "rater"]):
        held = g["target"].iloc[0] in fold_images
        n = sum((c in fold_images) == held for c in g["candidate"])
        if held and n >= least:
            out["scored"] += 1
            out["sizes"].append(n)
            out["kept_rows"] += n
            out["targets"].add(g["target"].iloc[0])
        elif held:
            out["not_scored"] += 1
        elif n >= 2:
            out["trained"] += 1
            out["kept_rows"] += n
        else:
            out["train_dropped"] += 1
    return out


def folds_by_hand(table: pd.DataFrame, folds: int, repeats: int, seed: int, least: int) -> list[dict]:
    """Every outer fold of a run split by image, by hand (the fold assignment: image_folds, with the seed the
    run derives for each repeat)."""
    out = []
    for r in range(repeats):
        fold_of = image_folds(table, folds, protocol.derived_seed(seed, r))
        for f in range(folds):
            out.append({"repeat": r, "fold": f,
                        **by_hand(table, {img for img, g in fold_of.items() if g == f}, least)})
    return out


# --------------------------------------------------------------------------- the minimum size
@pytest.mark.parametrize("least", [2, 3, 4])
def test_restrict_to_images_keeps_rankings_of_at_least_min_candidates(least):
    data, _ = crowd()
    keep = {f"i{i:02d}.png" for i in range(0, 36, 3)} | {f"i{i:02d}.png" for i in range(1, 36, 5)}
    got = restrict_to_images(data.table, keep, min_candidates=least)
    expected = 0
    for (s, r), g in data.table.groupby(["set_id", "rater"]):
        kept = g[g["target"].isin(keep) & g["candidate"].isin(keep)].sort_values("rank")
        mine = got[(got["set_id"] == s) & (got["rater"] == r)].sort_values("rank")
        if len(kept) < least:
            assert mine.empty, (s, r)
            continue
        expected += 1
        assert list(mine["candidate"]) == list(kept["candidate"])
        assert list(mine["rank"]) == list(range(1, len(kept) + 1))
    assert got.groupby(["set_id", "rater"]).ngroups == expected > 0
    with pytest.raises(ValueError, match="at least 2"):
        restrict_to_images(data.table, keep, min_candidates=1)


def test_split_by_image_scores_held_out_rankings_of_min_candidates_and_trains_on_pairs():
    data, _ = crowd()
    fold_of = image_folds(data.table, 3, 7)
    for f, (tr, te) in enumerate(split_folds(data.table, "image", 3, 7, min_candidates=3)):
        ref = by_hand(data.table, {img for img, g in fold_of.items() if g == f}, 3)
        assert te.groupby(["set_id", "rater"]).ngroups == ref["scored"] and sorted(
            te.groupby(["set_id", "rater"]).size()) == sorted(ref["sizes"])
        assert tr.groupby(["set_id", "rater"]).ngroups == ref["trained"]
        assert len(tr) + len(te) == ref["kept_rows"]
        assert ref["not_scored"] > 0        # the rule really dropped some: held-out rankings of 1 or 2 candidates


# --------------------------------------------------------------------------- what the folds kept
def test_fold_rows_and_summary_say_what_the_split_by_image_kept(patched):
    data, features = crowd()
    patched(features)
    res = protocol.crossval(data, BASE.replace(mode="image", folds=3), compute=ONE, cache=False)
    ref = folds_by_hand(data.table, 3, 2, 0, 3)
    common = set.intersection(*(set().union(*(x["targets"] for x in ref if x["repeat"] == r)) for r in (0, 1)))
    assert len(res.folds) == len(ref) == 6
    for (_, row), x in zip(res.folds.iterrows(), ref):
        assert (row["repeat"], row["fold"]) == (x["repeat"], x["fold"])
        assert row["n_test_rankings"] == x["scored"] and row["n_test_rankings_dropped"] == x["not_scored"]
        assert row["n_train_rankings"] == x["trained"] and row["n_train_rankings_dropped"] == x["train_dropped"]
        assert row["rows_on_neither_side"] == len(data.table) - x["kept_rows"]
        assert (row["test_candidates_min"], row["test_candidates_median"], row["test_candidates_max"]) == (
            min(x["sizes"]), float(np.median(x["sizes"])), max(x["sizes"]))
        assert row["n_test_targets"] == len(x["targets"]) and row["n_boot_targets"] == len(x["targets"] & common)
    # every scored held-out ranking has 3 candidates or more
    assert res.oof.groupby(["repeat", "fold", "ranking"]).size().min() >= 3
    kept = outputs.kept(res)
    sizes = [n for x in ref for n in x["sizes"]]
    table_rows = len(data.table)
    assert kept == {
        "folds": 6, "min_candidates": 3, "test_rows": sum(sizes), "test_rankings": len(sizes),
        "test_rankings_dropped": sum(x["not_scored"] for x in ref),
        "train_rankings_dropped": sum(x["train_dropped"] for x in ref),
        "rows_on_neither_side": sum(table_rows - x["kept_rows"] for x in ref),
        "rows_on_neither_side_share": pytest.approx(np.mean([1 - x["kept_rows"] / table_rows for x in ref]), abs=1e-12),
        "test_candidates_min": min(sizes), "test_candidates_median": float(np.median(sizes)),
        "test_candidates_max": max(sizes), "boot_targets": len(common),
        "heldout_targets": len(set().union(*(x["targets"] for x in ref))),
        "untrained_folds": int((~res.folds["trained"]).sum())}
    assert kept["boot_targets"] < kept["heldout_targets"]      # the bootstrap really left targets out
    summary = res.summary(n_boot=30)
    assert (summary.loc[["icc_A_k", "spearman"], "boot_targets"] == len(common)).all()
    assert summary.loc[["spearman_raw", "pair_accuracy"], "boot_targets"].isna().all()
    assert np.isnan(res.summary(bootstrap=False)["boot_targets"]).all()
    report = crossval_json(res, n_boot=30)
    json.dumps(report, allow_nan=False)
    assert report["kept"]["boot_targets"] == len(common)


def test_split_by_target_drops_nothing(patched):
    data, features = crowd()
    patched(features)
    res = protocol.crossval(data, BASE.replace(mode="target", folds=3), compute=ONE, cache=False)
    assert (res.folds[["n_test_rankings_dropped", "n_train_rankings_dropped", "rows_on_neither_side"]] == 0).all().all()
    assert (res.folds["test_candidates_min"] == 12).all() and (res.folds["test_candidates_max"] == 12).all()
    assert outputs.kept(res)["boot_targets"] == outputs.kept(res)["heldout_targets"] == 36


def test_a_split_by_image_leaving_too_little_is_refused_in_one_line(monkeypatch):
    """Five folds keep about a fifth of each held-out ranking: most keep fewer than 3 candidates. The rule:
    refused when an outer fold scores fewer than half of its held-out targets' rankings; the line names the
    worst fold's counts and the totals, and is raised before any feature is computed."""
    data, _ = crowd()
    ref = folds_by_hand(data.table, 5, 2, 0, 3)
    worst = min(ref, key=lambda x: (x["scored"] / (x["scored"] + x["not_scored"]), x["repeat"], x["fold"]))
    assert worst["scored"] < (worst["scored"] + worst["not_scored"]) / 2
    expected = (f"outer fold {worst['fold']} of repeat {worst['repeat']} scores {worst['scored']} of its "
                f"{worst['scored'] + worst['not_scored']} held-out rankings, all 10 folds "
                f"{sum(x['scored'] for x in ref)} of {sum(x['scored'] + x['not_scored'] for x in ref)}")
    with pytest.raises(protocol.SplitRefused) as refused:
        protocol.check_split(data, BASE.replace(mode="image", folds=5))
    assert expected in str(refused.value) and "\n" not in str(refused.value)
    assert "split by target" in str(refused.value) and "fewer folds" in str(refused.value)

    def no_features(*args, **kwargs):
        raise AssertionError("a refused split computed features")
    monkeypatch.setattr(train, "pair_features_for", no_features)
    with pytest.raises(protocol.SplitRefused, match=re.escape(expected)):
        protocol.crossval(data, BASE.replace(mode="image", folds=5), compute=ONE, cache=False)
    # three folds keep enough in every fold (by hand), so they pass; the split by target always does
    three = folds_by_hand(data.table, 3, 2, 0, 3)
    assert all(x["scored"] >= (x["scored"] + x["not_scored"]) / 2 for x in three)
    protocol.check_split(data, BASE.replace(mode="image", folds=3))
    protocol.check_split(data, BASE.replace(mode="target", folds=5))
    with pytest.warns(DeprecationWarning), pytest.raises(protocol.SplitRefused, match=re.escape(expected)):
        protocol.check_split(data, mode="image", folds=5, repeats=2, seed=0)     # the old form, for one release


# --------------------------------------------------------------------------- grid edges
def _chosen(rows):
    return pd.DataFrame(rows, columns=["margin", "lr", "epochs"])


def test_grid_edges_by_hand():
    """Four folds on the grid margins 0.01-0.05, lrs 0.003-0.03, epochs 5-20: lr 0.03 (highest) in 3 of 4
    folds (0.75 > 1/2: warned), margin 0.05 (highest) in 2 of 4 (1/2: not more than half), epochs 5 (lowest)
    in 2 of 4; the fold that chose not to train sits at no edge."""
    grid = protocol.Grid.parse("0.01,0.02,0.05", "0.003,0.01,0.03", "5,10,20")
    folds = _chosen([(0.05, 0.03, 5), (0.05, 0.03, 10), (0.02, 0.03, 5), protocol.UNTRAINED])
    with pytest.warns(protocol.GridEdgeWarning) as caught:
        table = protocol.grid_edges(folds, grid, where="toy: ")
    assert list(table.index) == ["margin", "lr", "epochs"]
    expected = {"margin": (0.01, 0.05, 0.0, 0.5), "lr": (0.003, 0.03, 0.0, 0.75), "epochs": (5, 20, 0.5, 0.0)}
    for name, (low, high, at_low, at_high) in expected.items():
        assert tuple(table.loc[name, ["low", "high", "at_low", "at_high"]]) == (low, high, at_low, at_high)
        assert table.loc[name, "n_folds"] == 4
    assert [str(w.message) for w in caught] == [
        "toy: lr = 0.03, the highest value offered, was chosen in 3 of 4 outer folds: the best setting may lie "
        "beyond the grid (widen it past 0.03)"]
    assert list(table["warning"]) == ["", str(caught[0].message), ""]


def test_grid_edges_of_two_values_are_shown_but_not_warned_about():
    """The lowest edge (epochs 10 in 2 of 3 folds, of 10, 20, 40) is warned about; margin 0.01 in 3 of 3
    folds is not, as margins 0.01 and 0.05 are the whole grid (every choice is at an edge); a parameter
    offered once (lr 0.01) is not in the table."""
    low = _chosen([(0.01, 0.01, 10), (0.01, 0.01, 10), (0.01, 0.01, 40)])
    grid = protocol.Grid.parse("0.01,0.05", "0.01", "10,20,40")
    with pytest.warns(protocol.GridEdgeWarning) as caught:
        table = protocol.grid_edges(low, grid)
    assert list(table.index) == ["margin", "epochs"] and table.loc["margin", "at_low"] == 1.0
    assert table.loc["epochs", "at_low"] == pytest.approx(2 / 3)
    assert table.loc["epochs", "at_high"] == pytest.approx(1 / 3)
    assert [str(w.message) for w in caught] == [
        "epochs = 10, the lowest value offered, was chosen in 2 of 3 outer folds: the best setting may lie beyond "
        "the grid (widen it past 10)"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet = protocol.grid_edges(low, grid, warn=False)
    pd.testing.assert_frame_equal(quiet, table)


def test_crossval_warns_at_grid_edges_computed_or_cached(patched, monkeypatch, tmp_path):
    """The toy's people weigh one layer far above LPIPS: every fold chooses lr 0.01, the grid's highest
    (lr 1e-12 cannot learn), so the run names that edge, when computed and again when read from the cache."""
    data, features = crowd()
    patched(features)
    monkeypatch.setattr(protocol, "cache_folder", lambda key: tmp_path / "crossval" / key)
    for _ in range(2):
        with pytest.warns(protocol.GridEdgeWarning, match=r"^crowd split by target: lr = 0.01, the highest value "
                                                          r"offered, was chosen in 6 of 6 outer folds") as caught:
            res = protocol.crossval(data, BASE.replace(mode="target", folds=3), compute=ONE)
        assert all(w.filename == __file__ for w in caught)          # pointing at the caller
    assert (res.folds["lr"] == 0.01).all()
    assert len([p for p in (tmp_path / "crossval").iterdir() if p.is_dir()]) == 1


# --------------------------------------------------------------------------- "do not train"
def test_not_training_is_chosen_when_people_rank_as_lpips_does(patched):
    """People rank exactly by LPIPS's distances: LPIPS's weights already agree perfectly, training can at
    best tie them. "Do not train" wins every fold (outright or on a tie, where the simpler model is
    preferred), its refit is LPIPS's weights exactly, and every held-out difference is 0."""
    data, features = crowd(by="lpips")
    patched(features)
    res = protocol.crossval(data, BASE.replace(mode="target", folds=3), compute=ONE, cache=False)
    w0 = initial_weight_vector("alex", "lpips").numpy()
    untrained = res.inner[res.inner["epochs"] == 0]
    assert len(untrained) == 6 and untrained[["margin", "lr"]].isna().all().all()
    for (_, fold), (_, part) in zip(res.folds.iterrows(), res.inner.groupby(["repeat", "fold"])):
        assert fold["inner_score"] == part["inner_icc_A_k"].max() == part["inner_icc_A_k"].iloc[0]
    assert not res.folds["trained"].any() and (res.folds["epochs"] == 0).all()
    assert np.array_equal(res.weights, np.broadcast_to(w0, res.weights.shape))
    for stat in protocol.STATISTICS:
        assert (res.folds[f"delta_{stat}"] == 0).all(), stat
    assert outputs.kept(res)["untrained_folds"] == 6
    chosen = res.chosen()
    assert len(chosen) == 1 and chosen.at[0, "folds"] == 6 and chosen.at[0, "epochs"] == 0
    # with a signal to learn, the same grid never declines to train
    signal, feats = crowd(by="hidden")
    patched(feats)
    trained = protocol.crossval(signal, BASE.replace(mode="target", folds=3), compute=ONE, cache=False)
    assert trained.folds["trained"].all()


def test_a_followed_choice_not_to_train_refits_nothing():
    """A metric that takes CLPIPS's choice in each fold (global CLPIPS, the teacher's student) keeps the
    starting weights where CLPIPS chose not to train, and fits the others as fit_pairs does."""
    _, features = crowd()
    features = PairFeatures(keys=features.keys, matrix=features.matrix.double(), net="alex", extracted=0)  # float64
    w0 = initial_weight_vector("alex", "lpips")
    follow = {(0, 0): {"margin": float("nan"), "lr": float("nan"), "epochs": 0},
              (0, 1): {"margin": 0.05, "lr": 0.01, "epochs": 2}}
    settings = protocol.Settings(seed=3, net="alex", loss="margin", batch_size=64, layers="all", project=True,
                                 grid=GRID)
    keys = pd.DataFrame(features.keys[:200], columns=["target", "candidate"])
    table = keys.assign(set_id=np.arange(200) // 8, rater="a", rank=np.arange(200) % 8 + 1)
    outer = [{"repeat": 0, "fold": 0}, {"repeat": 0, "fold": 1}]
    inputs = protocol.RunInputs(None, settings, ONE, outer, table, features, w0)
    fits = protocol.linear_fits(inputs, follow=follow)
    assert not fits.tuned
    jobs = [protocol.FitJob(0, None, table), protocol.FitJob(1, None, table)]
    got = fits.fit(jobs)
    assert np.array_equal(got[0], w0.numpy()[None])
    ref = train.fit_pairs(features.matrix, train.ranking_pair_index(features, table), None, w0, margin=0.05, lr=0.01,
                          epochs=2, seed=3, batch_size=64).weights
    assert_same_fit(torch.from_numpy(got[1][0]), ref, "the followed trained setting")
    assert not np.allclose(got[1][0], w0.numpy())
    assert fits.describe(0) == {"margin": pytest.approx(float("nan"), nan_ok=True), "lr": pytest.approx(
        float("nan"), nan_ok=True), "epochs": 0}


# --------------------------------------------------------------------------- the command line
def _csv_study(root, data):
    """The study as a CSV with 32 x 32 images beside it (the CLI reads a study from its CSV)."""
    rng = np.random.default_rng(1)
    for img in sorted(set(data.table["target"]) | set(data.table["candidate"])):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / img)
    path = root / "rankings.csv"
    data.table.to_csv(path, index=False)
    return path


def test_cli_refuses_in_one_line_and_prints_what_it_kept(patched, monkeypatch, tmp_path, capsys):
    from clpips.apps.cli import main
    data, features = crowd()
    patched(features)
    monkeypatch.setattr(protocol, "cache_folder", lambda key: tmp_path / "cache" / key)
    study = _csv_study(tmp_path, data)
    common = ["crossval", "--dataset", str(study), "--repeats", "2", "--inner-folds", "2", "--margins", "0.05",
              "--lrs", "1e-12,0.001,0.01", "--epochs-grid", "1,2,4", "--n-boot", "30", "--quiet", "--workers", "1"]
    assert main([*common, "--out", str(tmp_path / "no"), "--split-mode", "both", "--folds", "5"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"clpips crossval: error: {study}: split by image refused: outer fold") and "\n" not in err
    assert not (tmp_path / "no" / "crossval.json").exists() and not (tmp_path / "cache").exists()   # before any run
    out = tmp_path / "cv"
    assert main([*common, "--out", str(out), "--split-mode", "image", "--folds", "3"]) == 0
    printed = capsys.readouterr()
    body = json.loads((out / "crossval.json").read_text())["modes"]["image"]
    kept, summary = body["kept"], {row["statistic"]: row for row in body["summary"]}
    folds = pd.read_csv(out / "folds.csv")
    assert kept["test_rankings"] == folds["n_test_rankings"].sum()
    assert kept["test_rankings_dropped"] == folds["n_test_rankings_dropped"].sum() > 0
    assert (f"  kept: {kept['test_rankings']} held-out rankings scored over 6 folds "
            f"({kept['test_candidates_min']}-{kept['test_candidates_max']} candidates, median "
            f"{kept['test_candidates_median']:g}), {kept['test_rankings_dropped']} not scored (fewer than 3 "
            "candidates left)") in printed.out
    assert f"bootstrap over {kept['boot_targets']} of {kept['heldout_targets']} held-out targets" in printed.out
    icc = summary["icc_A_k"]
    assert (f"boot {icc['boot_delta']:+.3f} [{icc['boot_low']:+.3f}, {icc['boot_high']:+.3f}]") in printed.out
    # the grid edge as one warning line (every fold chose lr 0.01, the highest offered)
    assert ("clpips: warning: split by image: lr = 0.01, the highest value offered, was chosen in 6 of 6 outer "
            "folds") in printed.err
    assert {row["parameter"] for row in body["grid_edges"]} == {"lr", "epochs"}
