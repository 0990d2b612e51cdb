"""The nested protocol: batched fits equal sequential ones, splits keep sides apart, statistics
equal direct computations, and on data with a known gain the protocol finds it."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pingouin as pg
import pytest
import torch
from scipy import stats as sps

from clpips import protocol
from clpips.datasets import restrict_to_images, split_folds
from clpips.datasets.splits import image_folds, shared_pairs
from clpips.evaluate import distance_scores, ranking_ids
from clpips.model import CHANNELS, initial_weight_vector
from clpips.stats import bootstrap_counts, corrected_resampled_t
from clpips.train import GridJob, fit_grid, fit_many, fit_pairs
from tolerance import assert_same_fit, assert_within, dot_bound, typical_dot_bound

DIM = sum(CHANNELS["alex"])


@pytest.fixture(params=["rows", "pairs"])
def step_path(request, monkeypatch):
    """Each lockstep step taken both ways (train._gathers_pairs): over all the group's rows, and on its
    batches' pair differences; both must equal fit_pairs."""
    from clpips import train
    monkeypatch.setattr(train, "_gathers_pairs", lambda *args: request.param == "pairs")
    return request.param


def _pairs_problem(n_rows=60, n_pairs=700, seed=0):
    gen = torch.Generator().manual_seed(seed)
    # float64 features make float64 fits: two summation orders then agree to ~1e-14 on any CPU (tolerance.py)
    features = (torch.rand(n_rows, DIM, generator=gen) * 0.02).double()
    pairs = torch.randint(0, n_rows, (n_pairs, 2), generator=gen)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    return features, pairs


@pytest.mark.parametrize("loss", ["logistic", "margin"])
@pytest.mark.float_sensitive
def test_fit_grid_equals_a_loop_of_fit_pairs(loss):
    features, pairs = _pairs_problem()
    w0 = initial_weight_vector("alex", "lpips")
    margins, lrs = (0.01, 0.05, 0.01), (1e-3, 1e-3, 1e-2)
    grid = fit_grid(features, pairs, w0, margins=margins, lrs=lrs, checkpoints=(1, 3), seed=4, loss=loss,
                    batch_size=64)
    assert grid.shape == (2, 3, DIM)
    for b in range(3):
        for e_i, epochs in enumerate((1, 3)):
            ref = fit_pairs(features, pairs, None, w0, margin=margins[b], lr=lrs[b], epochs=epochs, seed=4,
                            loss=loss, batch_size=64).weights
            assert_same_fit(grid[e_i, b], ref, f"setting {b}, {epochs} epochs")
    assert not torch.equal(grid[1, 0], grid[1, 1])  # the columns really differ


@pytest.mark.float_sensitive
def test_fit_many_equals_each_job_alone_and_respects_frozen_layers():
    features, pairs = _pairs_problem(seed=1)
    w0 = initial_weight_vector("alex", "lpips")
    jobs = [GridJob(pairs[:300], (0.05,), (1e-2,), (2,), seed=0),
            GridJob(pairs[200:], (0.02, 0.05), (1e-3, 3e-3), (1, 2), seed=7)]
    together = fit_many(features, jobs, w0, layers="0,1", loss="logistic")
    for job, got in zip(jobs, together):
        alone = fit_grid(features, job.pairs, w0, margins=job.margins, lrs=job.lrs, checkpoints=job.checkpoints,
                         seed=job.seed, layers="0,1", loss="logistic")
        assert_same_fit(got, alone, "a job in fit_many against fit_grid alone")
        frozen = slice(sum(CHANNELS["alex"][:2]), DIM)
        assert torch.equal(got[..., frozen], w0[frozen].expand_as(got[..., frozen]))


@pytest.mark.parametrize("loss", ["logistic", "margin"])
@pytest.mark.float_sensitive
def test_fit_many_mixing_layers_init_project_loss_equals_each_fit_pairs(loss, step_path):
    """Jobs of one call differing in starting weights, trained layers, projection and loss (some
    sharing pairs and seed, so they share shuffles) each equal their own fit_pairs."""
    features, pairs = _pairs_problem(seed=2)
    lpips, ones = initial_weight_vector("alex", "lpips"), initial_weight_vector("alex", "ones")
    rand = initial_weight_vector("alex", "random", seed=3) - 0.5  # some negative starting weights
    other = "margin" if loss == "logistic" else "logistic"
    jobs = [GridJob(pairs, (0.05, 0.02), (1e-2, 3e-3), (1, 3), seed=5),                     # the call's options
            GridJob(pairs, (0.05,), (1e-2,), (3,), seed=5, layers="0,4", initial_weights=ones),
            GridJob(pairs, (0.05,), (1e-2,), (2, 3), seed=5, project=False, initial_weights=rand),
            GridJob(pairs, (0.02,), (1e-2,), (3,), seed=5, loss=other),                     # mixed losses, one stream
            GridJob(pairs[100:], (0.05,), (3e-3,), (3,), seed=1, loss=other, layers=[2]),
            # a short job of many columns: when it ends, the finished columns leave the products
            GridJob(pairs[:200], (0.05, 0.02) * 4, (1e-3, 3e-3, 1e-2, 3e-2) * 2, (1, 2), seed=9)]
    together = fit_many(features, jobs, lpips, loss=loss, batch_size=64)
    for job, got in zip(jobs, together):
        assert got.shape == (len(job.checkpoints), len(job.margins), DIM)
        w0 = lpips if job.initial_weights is None else job.initial_weights
        job_loss = job.loss or loss
        for b in range(len(job.margins)):
            for e_i, epochs in enumerate(job.checkpoints):
                ref = fit_pairs(features, job.pairs, None, w0, margin=job.margins[b], lr=job.lrs[b], epochs=epochs,
                                seed=job.seed, loss=job_loss, batch_size=64,
                                layers="all" if job.layers is None else job.layers,
                                project=True if job.project is None else job.project).weights
                assert_same_fit(got[e_i, b], ref, f"column {b}, {epochs} epochs")
    frozen = torch.ones(DIM, dtype=torch.bool)
    frozen[:CHANNELS["alex"][0]] = False
    frozen[-CHANNELS["alex"][4]:] = False
    assert torch.equal(together[1][-1, 0, frozen], ones[frozen])
    assert (together[2][-1, 0] < 0).any() and (together[0] >= 0).all()  # unprojected vs projected


@pytest.mark.float_sensitive
def test_early_stopped_selection_equals_fit_on_a_small_problem():
    """train.fit (validation targets split off by split_by_target) and the batched path (every epoch
    recorded by fit_many, then early_stopped) keep the same weights, best epoch and epochs run."""
    from types import SimpleNamespace

    from clpips.datasets import split_by_target
    from clpips.features import PairFeatures
    from clpips.pairs import ranking_pairs
    from clpips.train import early_stopped, fit, pair_index
    table = _toy_table(n_images=16, k=6, raters=("a", "b", "c"), seed=4)
    keys = list(dict.fromkeys(zip(table["target"], table["candidate"])))
    gen = torch.Generator().manual_seed(1)
    feats = PairFeatures(keys=keys, matrix=(torch.rand(len(keys), DIM, generator=gen) * 0.02).double(), net="alex",
                         extracted=0)                                # float64: see tolerance.py
    data = SimpleNamespace(table=table, name="toy")
    settings = [dict(loss="margin", margin=0.05, lr=1e-2, patience=2), dict(loss="logistic", margin=0.02, lr=3e-2,
                                                                            patience=3, init="ones", layers="1,2")]
    seen_early = False
    for seed in (0, 3):
        fit_rows, val_rows = split_by_target(table, test_size=0.2, seed=seed)
        train_pairs = pair_index(feats, ranking_pairs(fit_rows))
        val_pairs = pair_index(feats, ranking_pairs(val_rows))
        jobs = [GridJob(train_pairs, (s["margin"],), (s["lr"],), tuple(range(1, 13)), seed=seed, loss=s["loss"],
                        layers=s.get("layers"), initial_weights=initial_weight_vector("alex", s.get("init", "lpips"),
                                                                                      seed))
                for s in settings]
        batched = fit_many(feats.matrix, jobs, initial_weight_vector("alex", "lpips"), batch_size=32)
        for s, job, got in zip(settings, jobs, batched):
            ref = fit(data, table, features=feats, seed=seed, epochs=12, batch_size=32, progress=False, **s)
            w, best_epoch, epochs_run = early_stopped(got[:, 0], feats.matrix, val_pairs, loss=s["loss"],
                                                      margin=s["margin"], patience=s["patience"],
                                                      initial_weights=job.initial_weights)
            assert (best_epoch, epochs_run) == (ref.best_epoch, len(ref.history))
            assert_same_fit(w, ref.weights, f"{s['loss']} seed {seed}")
            seen_early |= epochs_run < 12
    assert seen_early  # the problem really stops early somewhere
    # no validation pairs: the last epoch, as fit_pairs without val_pairs
    w, best_epoch, epochs_run = early_stopped(batched[0][:, 0], feats.matrix, None)
    assert (best_epoch, epochs_run) == (12, 12) and torch.equal(w, batched[0][-1, 0])


@pytest.mark.float_sensitive
def test_early_stopped_with_l2_equals_fit_pairs_history():
    """With an L2 pull the selection adds the penalty to the validation loss, as fit_pairs does
    (checked on fit_pairs' own path: the batched path trains without a pull)."""
    from clpips.train import early_stopped
    features, pairs = _pairs_problem(seed=3)
    w0 = initial_weight_vector("alex", "lpips")
    val = pairs[:150]
    anchor = w0 * 1.1
    ref = fit_pairs(features, pairs[150:], val, w0, margin=0.05, lr=1e-2, epochs=10, patience=2, seed=2,
                    loss="logistic", l2=0.5, l2_to=anchor)
    path = torch.stack([fit_pairs(features, pairs[150:], None, w0, margin=0.05, lr=1e-2, epochs=e, seed=2,
                                  loss="logistic", l2=0.5, l2_to=anchor).weights for e in range(1, 11)])
    w, best_epoch, epochs_run = early_stopped(path, features, val, loss="logistic", margin=0.05, patience=2, l2=0.5,
                                              l2_to=anchor)
    assert (best_epoch, epochs_run) == (ref.best_epoch, len(ref.history))
    assert_same_fit(w, ref.weights, "early-stopped weights")


@pytest.mark.parametrize("loss", ["logistic", "margin"])
@pytest.mark.float_sensitive
def test_fit_many_with_an_l2_pull_equals_fit_pairs(loss, step_path):
    """Jobs pulled towards their own anchors (personal models: l2_to is the starting weights) beside
    jobs without a pull, in one call, each equal fit_pairs(l2=..., l2_to=...); l2 without l2_to, or
    l2=0, is no pull, as in fit_pairs. Over all rows, and on pair differences."""
    features, pairs = _pairs_problem(n_rows=400, n_pairs=900, seed=5)
    w0 = initial_weight_vector("alex", "lpips")
    start = w0 * 1.5
    jobs = [GridJob(pairs[:300], (0.05,), (1e-2,), (2, 4), seed=1, initial_weights=start, l2=0.5, l2_to=start),
            # (lr 3e-2 against this strong pull makes Adam oscillate chaotically about its balance: two
            # summation orders then part by 6e-8 even in float64 after 4 epochs, so no fit comparison holds)
            GridJob(pairs[300:], (0.05, 0.02), (1e-2, 1e-2), (4,), seed=2, l2=2.0, l2_to=w0 * 0.5),
            GridJob(pairs[300:], (0.05,), (1e-2,), (4,), seed=2, l2=2.0),             # no anchor: no pull
            GridJob(pairs[100:500], (0.02,), (3e-2,), (3,), seed=3)]
    for batch_size in (64, 8):
        together = fit_many(features, jobs, w0, loss=loss, batch_size=batch_size)
        for job, got in zip(jobs, together):
            w_start = w0 if job.initial_weights is None else job.initial_weights
            for b in range(len(job.margins)):
                for e_i, epochs in enumerate(job.checkpoints):
                    ref = fit_pairs(features, job.pairs, None, w_start, margin=job.margins[b], lr=job.lrs[b],
                                    epochs=epochs, seed=job.seed, loss=loss, batch_size=batch_size, l2=job.l2,
                                    l2_to=job.l2_to).weights
                    assert_same_fit(got[e_i, b], ref, f"column {b}, {epochs} epochs")
        # the pull matters: without it the first job ends elsewhere
        free = fit_many(features, [dataclasses.replace(jobs[0], l2=0.0)], w0, loss=loss, batch_size=batch_size)[0]
        assert float((free[-1, 0] - together[0][-1, 0]).abs().max()) > 1e-3


def test_fit_many_refuses_bad_grids():
    features, pairs = _pairs_problem()
    w0 = initial_weight_vector("alex", "lpips")
    for bad in (GridJob(pairs, (float("nan"),), (1e-3,), (1,)), GridJob(pairs, (0.05,), (0.0,), (1,)),
                GridJob(pairs, (0.05,), (1e-3,), (0,)), GridJob(pairs[:0], (0.05,), (1e-3,), (1,)),
                GridJob(pairs, (0.05,), (1e-3,), (1,), l2=-1.0, l2_to=w0),
                GridJob(pairs, (0.05,), (1e-3,), (1,), l2=0.1, l2_to=w0[:5])):
        with pytest.raises(ValueError):
            fit_many(features, [bad], w0)


# --------------------------------------------------------------------------- splits
def _toy_table(n_images=12, k=5, raters=("a", "b"), seed=0):
    """Every image a target with k random candidates among the others; each rater a random order."""
    rng = np.random.default_rng(seed)
    rows = []
    for t in range(n_images):
        cands = rng.choice([i for i in range(n_images) if i != t], size=k, replace=False)
        for r in raters:
            for rank, c in enumerate(rng.permutation(cands), start=1):
                rows.append({"set_id": f"s{t}", "target": f"i{t}.png", "candidate": f"i{c}.png", "rater": r,
                             "rank": rank})
    return pd.DataFrame(rows)


def test_split_by_image_leaves_no_image_on_both_sides():
    table = _toy_table()
    for train, test in split_folds(table, "image", 3, seed=2):
        both = (set(train["target"]) | set(train["candidate"])) & (set(test["target"]) | set(test["candidate"]))
        assert not both
        assert not shared_pairs(train, test).any()
        # every kept ranking is re-ranked 1..k' with k' >= 2
        for _, g in pd.concat([train, test]).groupby(["set_id", "rater"]):
            assert sorted(g["rank"]) == list(range(1, len(g) + 1)) and len(g) >= 2


def test_split_by_target_matches_kfold_targets_of_split_by_image():
    table = _toy_table()
    folds = image_folds(table, 3, seed=5)
    for f, (train, test) in enumerate(split_folds(table, "target", 3, seed=5)):
        assert set(test["target"]) == {t for t in table["target"].unique() if folds[t] == f}
        assert not set(train["target"]) & set(test["target"])


def test_restrict_to_images_direct_loop():
    table = _toy_table()
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
    table = _toy_table(raters=("a",))
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
        t = _toy_table(n_images=10, k=4, raters=("a", "b"), seed=seed)
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
    protocol._check_nested("target", test, [pd.DataFrame({"target": ["z"], "candidate": ["x"]})], "here")
    with pytest.raises(AssertionError, match="here"):
        protocol._check_nested("image", test, [pd.DataFrame({"target": ["z"], "candidate": ["x"]})], "here")
    with pytest.raises(AssertionError, match="targets"):
        protocol._check_nested("target", test, [pd.DataFrame({"target": ["x"], "candidate": ["q"]})], "here")


def test_grid_parse_and_refusals():
    g = protocol.Grid.parse("0.01,0.05", "0.003", "20,5,5")
    assert g.epochs == (5, 20) and len(g.settings()) == 1 + 4        # "do not train", then 2 x 1 x 2 trained
    assert g.settings().iloc[0, :2].isna().all() and g.settings().at[0, "epochs"] == 0
    for bad in (("0.01,nan", "0.1", "5"), ("0.01", "-1", "5"), ("0.01", "0.1", "2.5"), ("", "0.1", "5")):
        with pytest.raises(ValueError):
            protocol.Grid.parse(*bad)


# --------------------------------------------------------------------------- the protocol end to end
SMALL = dict(folds=3, repeats=2, inner_folds=2, grid=protocol.Grid.parse("0.01,0.05", "0.01", "2,4"))


@pytest.mark.parametrize("mode", ["target", "image"])
def test_crossval_on_mur92_is_nested_deterministic_and_cached(mode, mur92_mirror, monkeypatch, tmp_path):
    monkeypatch.setenv("CLPIPS_DATA_MIRROR", str(mur92_mirror))
    from clpips import datasets
    data = datasets.load("mur92")
    res = protocol.crossval(data, mode=mode, cache=False, **SMALL)
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
    again = protocol.crossval(data, mode=mode, cache=False, **SMALL)
    pd.testing.assert_frame_equal(res.folds, again.folds)
    summary = res.summary(n_boot=200)
    assert set(summary.index) == set(protocol.STATISTICS)
    assert np.isfinite(summary.loc["icc_A_k", ["nb_low", "nb_high", "boot_low", "boot_high"]].astype(float)).all()
    json.dumps(res.to_json(n_boot=50), allow_nan=False)


def _record_calls(monkeypatch, module, name):
    """Replace ``module.name`` by a wrapper that records each call as ``(*args, kwargs, result)``;
    returns the list of calls and the real function."""
    calls, real = [], getattr(module, name)

    def recording(*args, **kw):
        out = real(*args, **kw)
        calls.append((*args, kw, out))
        return out
    monkeypatch.setattr(module, name, recording)
    return calls, real


def test_refits_train_the_chosen_setting_alone_as_its_grid_column_would(mur92_mirror, monkeypatch):
    """After the inner folds choose, each outer training side is refitted with its chosen setting only
    (one fit_many column, the chosen epochs): what the run reports is that fit, which equals the chosen
    column of the whole grid trained on the same pairs (float rounding apart) and fit_pairs itself."""
    monkeypatch.setenv("CLPIPS_DATA_MIRROR", str(mur92_mirror))
    from clpips import datasets, train
    calls, real = _record_calls(monkeypatch, train, "fit_many")
    res = protocol.crossval(datasets.load("mur92"), mode="target", cache=False, **SMALL)
    assert len(calls) == 2                                   # the inner grids, then the refits
    features, jobs, w0, kw, out = calls[1]
    assert len(jobs) == len(res.folds)
    grid = SMALL["grid"]
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
    monkeypatch.setattr(protocol, "_cache_folder", lambda key: tmp_path / "crossval" / key)
    first = protocol.crossval(data, **SMALL)
    assert len([p for p in (tmp_path / "crossval").iterdir() if p.is_dir()]) == 1
    second = protocol.crossval(data, **SMALL)
    pd.testing.assert_frame_equal(first.folds, second.folds)
    pd.testing.assert_frame_equal(first.oof, second.oof, check_dtype=False)
    assert np.array_equal(first.weights, second.weights)
    # the target bootstrap is kept beside the cached result: a later load reads the same numbers
    computed = first.summary(n_boot=120, seed=5)
    assert len(list((tmp_path / "crossval").glob("*/boot-*.npz"))) == 1
    again = protocol.crossval(data, **SMALL)
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
    res = protocol.crossval(data, folds=3, repeats=1, inner_folds=2, cache=False,
                            grid=protocol.Grid.parse("0.05", "0.01", "5,10"))
    summary = res.summary(n_boot=300)
    assert summary.loc["icc_A_k", "delta"] > 0 and summary.loc["pair_accuracy", "delta"] > 0
    assert summary.loc["icc_A_k", "boot_low"] > 0


def test_cli_crossval_writes_strict_json_and_fold_csvs(mur92_mirror, monkeypatch, tmp_path, capsys):
    from clpips.apps.cli import main
    monkeypatch.setenv("CLPIPS_DATA_MIRROR", str(mur92_mirror))
    monkeypatch.setattr(protocol, "_cache_folder", lambda key: tmp_path / "cache" / key)
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


def test_fit_many_gives_the_same_weights_in_worker_processes():
    features, pairs = _pairs_problem(seed=2)
    w0 = initial_weight_vector("alex", "lpips")
    jobs = [GridJob(pairs[:250], (0.05, 0.02), (1e-2, 1e-3), (1, 2), seed=s) for s in range(3)]
    alone = fit_many(features, jobs, w0, max_columns=2)           # three groups, in this process
    spread = fit_many(features, jobs, w0, max_columns=2, workers=2)
    for a, b in zip(alone, spread):
        assert torch.equal(a, b)


@pytest.mark.parametrize("loss", ["logistic", "margin"])
@pytest.mark.float_sensitive
def test_fit_many_by_its_own_choice_of_step_equals_fit_pairs(loss, monkeypatch):
    """Many rows and small batches (fit_many steps on pair differences: train._gathers_pairs), few rows
    and many streams (it steps over the rows): each column still equals its own fit_pairs; streams of
    equal widths (one batched product) and of unequal ones."""
    from clpips import train
    choose, chosen = train._gathers_pairs, []
    monkeypatch.setattr(train, "_gathers_pairs", lambda *args: chosen.append(choose(*args)) or chosen[-1])
    for n_rows, jobs_of in ((1500, lambda p: [GridJob(p, (0.02, 0.05), (1e-2, 3e-3), (1, 2), seed=3),
                                              GridJob(p[300:], (0.05, 0.02), (1e-2, 1e-2), (2,), seed=8)]),
                            (1500, lambda p: [GridJob(p, (0.02, 0.05), (1e-2, 3e-3), (1, 2), seed=3),
                                              GridJob(p[300:], (0.05,), (1e-2,), (2,), seed=8)]),
                            (40, lambda p: [GridJob(p[:400 + 50 * i], (0.05,), (1e-2,), (2,), seed=i)
                                            for i in range(4)])):
        features, pairs = _pairs_problem(n_rows=n_rows, n_pairs=900, seed=6)
        w0 = initial_weight_vector("alex", "lpips")
        jobs = jobs_of(pairs)
        chosen.clear()
        together = fit_many(features, jobs, w0, loss=loss, batch_size=32)
        assert chosen == [n_rows > 100]
        for job, got in zip(jobs, together):
            for b, (margin, lr) in enumerate(zip(job.margins, job.lrs)):
                for e_i, epochs in enumerate(job.checkpoints):
                    ref = fit_pairs(features, job.pairs, None, w0, margin=margin, lr=lr, epochs=epochs,
                                    seed=job.seed, loss=loss, batch_size=32).weights
                    assert_same_fit(got[e_i, b], ref, f"column {b}, {epochs} epochs")


# -- beyond the linear weights: the metrics of chapter 09 under the same protocol ------------------

BEYOND = dict(folds=3, repeats=1, inner_folds=2, grid=protocol.Grid.parse("0.02,0.05", "0.01", "2,4"),
              transform_lambdas="0.001,0.1", transform_lrs="0.01", transform_steps="20,50", transform_rank=4)


@pytest.mark.parametrize("mode", ["target", "image"])
def test_global_clpips_is_fit_many_on_pooled_features_in_lpips_units(mode, mur92_mirror, monkeypatch, tmp_path):
    """The global metric's out-of-fold distances are its refitted weights times the pooled features
    (a direct computation from the image embeddings), scaled by one constant: mean LPIPS distance
    over mean global LPIPS distance of the run's rows. Same folds as CLPIPS's run."""
    monkeypatch.setenv("CLPIPS_DATA_MIRROR", str(mur92_mirror))
    monkeypatch.setattr(protocol, "_cache_folder", lambda key: tmp_path / "crossval" / key)
    from clpips import datasets
    from clpips.book import aligned
    data = datasets.load("mur92")
    glob = protocol.crossval(data, mode=mode, metric="global", **BEYOND)
    plain = protocol.crossval(data, mode=mode, **BEYOND)
    assert glob.settings["metric"] == "global" and "metric" not in plain.settings
    pd.testing.assert_frame_equal(glob.oof[["set_id", "target", "candidate", "rater", "rank", "repeat", "fold"]],
                                  plain.oof[["set_id", "target", "candidate", "rater", "rank", "repeat", "fold"]])
    assert np.allclose(glob.oof["lpips"], plain.oof["lpips"])
    # the pooled features are the one change: CLPIPS's chosen setting in each fold, no second tuning
    pd.testing.assert_frame_equal(glob.folds[["margin", "lr", "epochs"]], plain.folds[["margin", "lr", "epochs"]])
    assert glob.folds["inner_score"].isna().all() and glob.setting_columns() == ["margin", "lr", "epochs"]
    emb = aligned.image_embeddings(data, sorted(set(data.table["target"]) | set(data.table["candidate"])))
    for fold, part in glob.oof.groupby("fold"):
        psi = (emb.of(list(part["target"])) - emb.of(list(part["candidate"]))) ** 2
        w = torch.as_tensor(glob.weights[fold], dtype=torch.float32)
        raw = (psi @ w).numpy()
        ratio = part["clpips"].to_numpy() / raw
        # one scale for the whole run. Each float32 dot product of D terms (the library's and this one) errs by
        # at most gamma_D sum|psi w| (tolerance.py), so ratio / ratio[0] - 1 by at most four of those, relative
        cond = ((psi @ w.abs()).numpy() / np.abs(raw))
        rel = cond + cond[0]
        D = psi.shape[1]
        assert ratio[0] > 0
        assert_within(ratio / ratio[0], np.ones_like(ratio), dot_bound(rel, D, torch.float32),
                      typical_dot_bound(rel, D, torch.float32), "one scale per run")


def test_transform_and_teacher_runs_are_nested_deterministic_and_the_teacher_stays_on_its_side(
        mur92_mirror, monkeypatch, tmp_path):
    monkeypatch.setenv("CLPIPS_DATA_MIRROR", str(mur92_mirror))
    monkeypatch.setattr(protocol, "_cache_folder", lambda key: tmp_path / "crossval" / key)
    from clpips import datasets
    from clpips.book import aligned
    data = datasets.load("mur92")
    seen = []
    real = aligned.teacher_rankings

    def recording(distance, targets, images, **kw):
        made = real(distance, targets, images, **kw)
        seen.append((set(targets), set(images), made))
        return made
    monkeypatch.setattr(aligned, "teacher_rankings", recording)
    teacher = protocol.crossval(data, mode="image", metric="teacher", teacher_weight=0.5, teacher_sets=1, **BEYOND)
    transform = protocol.crossval(data, mode="image", metric="transform", **BEYOND)   # cached by the teacher run
    plain = protocol.crossval(data, mode="image", **BEYOND)
    assert set(transform.setting_columns()) == {"margin", "lam", "lr", "steps"}
    assert len(seen) == len(teacher.folds)          # one teacher per outer fold (the student is not re-tuned)
    for (targets, images, made), (_, fold) in zip(seen, teacher.oof.groupby(["repeat", "fold"])):
        held = set(fold["target"]) | set(fold["candidate"])
        assert not (targets | images) & held         # split by image: no held-out image reaches the teacher
        assert set(made["target"]) <= targets and set(made["candidate"]) <= images
        assert (made["rater"] == aligned.TEACHER).all()
    # the student takes the setting CLPIPS's inner folds chose in the same fold
    pd.testing.assert_frame_equal(teacher.folds[["margin", "lr", "epochs"]], plain.folds[["margin", "lr", "epochs"]])
    assert teacher.folds["inner_score"].isna().all()
    again = protocol.crossval(data, mode="image", metric="teacher", teacher_weight=0.5, teacher_sets=1, cache=False,
                              **BEYOND)
    assert np.array_equal(again.weights, teacher.weights)
    pd.testing.assert_frame_equal(again.folds, teacher.folds)
    with pytest.raises(ValueError, match="metric must be one of"):
        protocol.crossval(data, metric="dreamsim", **BEYOND)


def test_transform_refits_train_the_chosen_setting_alone(mur92_mirror, monkeypatch, tmp_path):
    """The transform's refit of each outer fold is its chosen (margin, lam, lr, steps) alone, and equals
    that setting's column of the whole grid fitted on the same pairs (to float rounding)."""
    monkeypatch.setenv("CLPIPS_DATA_MIRROR", str(mur92_mirror))
    monkeypatch.setattr(protocol, "_cache_folder", lambda key: tmp_path / "crossval" / key)
    from clpips import datasets
    from clpips.book import aligned
    calls, real = _record_calls(monkeypatch, aligned, "fit_transform_many")
    res = protocol.crossval(datasets.load("mur92"), mode="target", metric="transform", **BEYOND)
    full = aligned.TransformGrid((0.001, 0.1), (0.01,), (20, 50), 4)
    refits = [c for c in calls if len(c[2].lambdas) == 1]
    assert sum(len(c[1]) for c in refits) == len(res.folds)
    checked = 0
    for n, row in res.folds.iterrows():          # find the refit that gave this fold's weights, exactly
        (delta, job, grid, kw), = [(d, job, g, kw) for d, jobs, g, kw, out in refits for job, got in zip(jobs, out)
                                   for k in range(len(g.steps)) if np.array_equal(got[k, 0].numpy(), res.weights[n])
                                   and g.steps[k] == row["steps"]]
        assert (grid.lambdas, grid.lrs, kw["margin"]) == ((row["lam"],), (row["lr"],), row["margin"])
        # the chosen column of the whole grid equals the setting alone: compared in float64 (tolerance.py)
        delta64 = delta.double()
        kw64 = dict(kw, factors=None if kw.get("factors") is None else (kw["factors"][0].double(), kw["factors"][1]))
        whole = real(delta64, [job], full, **kw64)[0]
        alone = real(delta64, [job], grid, **kw64)[0]
        column = full.columns().index((row["lam"], row["lr"]))
        assert_same_fit(whole[full.steps.index(int(row["steps"])), column], alone[grid.steps.index(int(row["steps"])), 0],
                        f"fold {n}")
        checked += 1
    assert checked == len(res.folds)


def test_split_by_image_reuses_the_split_by_target_where_they_coincide(monkeypatch, tmp_path):
    """On the simulated study no candidate is ranked with two targets and no target is a candidate:
    image_folds then puts every image in its target's fold, so the split by image is the split by
    target fold for fold (checked here directly), and the protocol runs it once."""
    from clpips import datasets
    from clpips.datasets.splits import split_modes_coincide
    monkeypatch.setattr(protocol, "_cache_folder", lambda key: tmp_path / "crossval" / key)
    data = datasets.load("simulated")
    assert split_modes_coincide(data.table)
    by_image = list(split_folds(data.table, "image", 3, 5))
    by_target = list(split_folds(data.table, "target", 3, 5))
    for (ti, hi), (tt, ht) in zip(by_image, by_target):
        pd.testing.assert_frame_equal(ti, tt)
        pd.testing.assert_frame_equal(hi, ht)
    small = dict(folds=3, repeats=1, inner_folds=2, grid=protocol.Grid.parse("0.05", "0.01", "2"))
    image = protocol.crossval(data, mode="image", **small)
    target = protocol.crossval(data, mode="target", **small)
    assert image.settings["mode"] == "image" and image.settings["same_folds_as"] == "target"
    pd.testing.assert_frame_equal(image.folds, target.folds)
    assert len([p for p in (tmp_path / "crossval").iterdir() if p.is_dir()]) == 1
    mur = pd.DataFrame({"set_id": ["a"] * 2 + ["b"] * 2, "target": ["x", "x", "y", "y"],
                        "candidate": ["y", "z", "x", "z"], "rater": "r", "rank": [1, 2, 1, 2]})
    assert not split_modes_coincide(mur)   # targets are candidates of each other, z is ranked with both
