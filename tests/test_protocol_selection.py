"""The nested protocol's choice of setting (inner folds) and its comparisons (summary, versus),
against direct computations in the test.

A toy study with no images: random positive pair features, and three raters who rank each
target's candidates by a hidden weighting (LPIPS's weights with the last layer counting 100 times
more than the others) plus some noise. ``train.pair_features_for`` is replaced by these features, so
a run takes a few seconds. The grid holds a learning rate of 1e-12, which leaves the weights where
they start (LPIPS, to float32 rounding): its settings are LPIPS itself, known in advance to be worse
than trained weights on this study, and equal to each other and to "do not train", the grid's first
setting (a tie the selection must break by its rule: the first setting in Grid.settings() order,
np.nanargmax in protocol._choose, so "do not train" wins it).
"""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pingouin as pg
import pytest
import torch
from scipy import stats as sps

from clpips import evaluate, protocol, train
from clpips.features import PairFeatures
from clpips.model import CHANNELS, initial_weight_vector
from helpers import icc_ak

# pingouin 0.7 on pandas 3 warns about its own use of dropna(inplace=True)
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.dropna:Warning")

DIM = sum(CHANNELS["alex"])
LAYER = np.repeat(np.arange(5), CHANNELS["alex"])
RUN = protocol.Settings(mode="target", folds=3, repeats=2, inner_folds=2, seed=0)
ONE = protocol.Compute(workers=1, threads=1)     # every fit in this process
GRID = protocol.Grid.parse("0.01,0.05", "1e-12,0.01", "1,8")          # 8 settings, 4 of them LPIPS (lr 1e-12)
FROZEN = protocol.Grid.parse("0.01,0.05", "1e-12", "1,8")             # 4 settings, all LPIPS: a four-way tie


def toy_study(n_images: int = 18, k: int = 6, raters: int = 3, noise: float = 0.3, seed: int = 0):
    rng = np.random.default_rng(seed)
    images = [f"i{i:02d}.png" for i in range(n_images)]
    keys = []
    for t in range(n_images):
        cands = rng.choice([i for i in range(n_images) if i != t], size=k, replace=False)
        keys += [(images[t], images[c]) for c in cands]
    matrix = rng.gamma(1.0, 1.0, size=(len(keys), 5))[:, LAYER] * rng.gamma(4.0, 0.0025, size=(len(keys), DIM))
    hidden = initial_weight_vector("alex", "lpips").numpy().astype(float) * np.array([.05, .05, .05, .05, 5.])[LAYER]
    d = matrix @ hidden
    rows = []
    for start in range(0, len(keys), k):
        for r in range(raters):
            judged = d[start:start + k] + noise * d[start:start + k].std() * rng.standard_normal(k)
            for j, rank in enumerate(judged.argsort().argsort() + 1):
                t, c = keys[start + j]
                rows.append({"set_id": f"s{start // k}", "target": t, "candidate": c, "rater": f"r{r}",
                             "rank": int(rank)})
    features = PairFeatures(keys=keys, matrix=torch.tensor(matrix, dtype=torch.float32), net="alex", extracted=0)
    # image_path: the cache key hashes every image's bytes; any readable file will do here
    return SimpleNamespace(table=pd.DataFrame(rows), name="toy", image_path=lambda ref: __file__), features


@pytest.fixture(scope="module")
def runs():
    """Three runs on the same folds, each with every call of distance_scores it made (the inner folds'
    held-out tables and distances first, then the outer test sides')."""
    data, features = toy_study()
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train, "pair_features_for", lambda dataset, table, **kw: features)
        real = evaluate.distance_scores
        for name, grid, select in (("icc", GRID, "icc_A_k"), ("rho", GRID, "spearman_raw"),
                                   ("frozen", FROZEN, "icc_A_k")):
            calls = []
            mp.setattr(evaluate, "distance_scores",
                       lambda table, dist, names, calls=calls: calls.append((table, np.array(dist), list(names)))
                       or real(table, dist, names))
            res = protocol.crossval(data, RUN.replace(grid=grid, select=select), compute=ONE, cache=False)
            out[name] = SimpleNamespace(res=res, calls=calls, grid=grid, select=select)
    return SimpleNamespace(features=features, data=data, **out)


# --------------------------------------------------------------------------- references


def statistics(table: pd.DataFrame, dist: np.ndarray) -> list[dict[str, float]]:
    """The four protocol statistics of each distance column, directly: ranks within each (set, rater)
    ranking (ties averaged), ICC(A,k) of (human rank, that rank), scipy's Spearman pooled on those ranks
    and on the raw distances, and the share of each ranking's (better, worse) pairs the metric orders
    the same way (ties 1/2)."""
    human = table["rank"].to_numpy(float)
    within = np.empty_like(dist)
    hits = []
    for rows in table.groupby(["set_id", "rater"]).indices.values():
        within[rows] = sps.rankdata(dist[rows], axis=0)
        better, worse = np.nonzero(human[rows, None] < human[None, rows])
        gap = dist[rows][worse] - dist[rows][better]                  # pairs x columns
        hits.append((gap > 0) + 0.5 * (gap == 0))
    hits = np.concatenate(hits)
    return [{"icc_A_k": icc_ak(np.column_stack([human, within[:, j]])),
             "spearman_raw": float(sps.spearmanr(human, dist[:, j]).statistic),
             "spearman": float(sps.spearmanr(human, within[:, j]).statistic),
             "pair_accuracy": float(hits[:, j].mean())} for j in range(dist.shape[1])]


def test_icc_reference_is_pingouins():
    rng = np.random.default_rng(0)
    y = np.column_stack([np.tile(np.arange(1.0, 7.0), 5), rng.permutation(30) % 6 + 1.0])
    long = pd.DataFrame({"item": np.tile(np.arange(30), 2), "rater": np.repeat(["h", "m"], 30),
                         "y": y.T.ravel()})
    ref = pg.intraclass_corr(long, "item", "rater", "y").set_index("Type").at["ICC(A,k)", "ICC"]
    assert icc_ak(y) == pytest.approx(ref, abs=1e-12)


# --------------------------------------------------------------------------- the inner folds
@pytest.mark.parametrize("name", ["icc", "frozen"])
def test_inner_table_is_the_mean_over_inner_folds_of_each_settings_held_out_statistics(runs, name):
    run = getattr(runs, name)
    res, settings = run.res, run.grid.settings()
    inner_calls = [c for c in run.calls if c[2] == [str(i) for i in range(len(settings))]]
    assert len(inner_calls) == len(res.folds) * RUN.inner_folds        # one per inner fold of each outer fold
    assert len(res.inner) == len(res.folds) * len(settings)
    for i, (_, fold) in enumerate(res.folds.iterrows()):
        part = res.inner[(res.inner["repeat"] == fold["repeat"]) & (res.inner["fold"] == fold["fold"])]
        pd.testing.assert_frame_equal(part[["margin", "lr", "epochs"]].reset_index(drop=True), settings,
                                      check_dtype=False)
        per_fold = [statistics(table, dist)
                     for table, dist, _ in inner_calls[i * RUN.inner_folds:(i + 1) * RUN.inner_folds]]
        for s in range(len(settings)):
            for stat in protocol.STATISTICS:
                expected = np.mean([p[s][stat] for p in per_fold])
                assert part[f"inner_{stat}"].iloc[s] == pytest.approx(expected, abs=1e-9), (i, s, stat)


@pytest.mark.parametrize("name", ["icc", "rho", "frozen"])
def test_each_outer_fold_chooses_the_best_mean_inner_criterion_first_setting_on_ties(runs, name):
    """The chosen setting maximises the mean inner criterion (``select``); among tied settings the
    first in Grid.settings() order wins ("do not train", then margins, learning rates, epochs, each
    ascending)."""
    run = getattr(runs, name)
    res, settings = run.res, run.grid.settings()
    ties = 0
    for _, fold in res.folds.iterrows():
        part = res.inner[(res.inner["repeat"] == fold["repeat"]) & (res.inner["fold"] == fold["fold"])]
        crit = part[f"inner_{run.select}"].to_list()
        best = 0
        for s in range(1, len(crit)):                  # a direct loop: strictly better replaces
            if crit[s] > crit[best]:
                best = s
        ties += sum(c == crit[best] for c in crit) > 1
        # (NaN-aware: "do not train" has no margin and no learning rate)
        np.testing.assert_equal(fold[["margin", "lr", "epochs"]].to_numpy(float), settings.iloc[best].to_numpy(float),
                                err_msg=str(fold[["repeat", "fold"]].to_dict()))
        assert fold["inner_score"] == crit[best]
    if name != "rho":      # the tie rule really was exercised (the raw-distance rho of the toy never ties)
        assert ties >= 1


def test_the_frozen_settings_are_lpips_and_not_training_is_chosen(runs):
    """lr = 1e-12 cannot move the weights (beyond float32 rounding of the smallest): every such setting
    is LPIPS, all tie with "do not train" on every fold, so the first setting, "do not train", is chosen
    everywhere (changed with "do not train": the first frozen setting, margin 0.01, lr 1e-12, 1 epoch,
    won before), its refit is LPIPS's weights exactly and every held-out difference is 0."""
    res, features = runs.frozen.res, runs.features
    w0 = initial_weight_vector("alex", "lpips").numpy()
    for table, dist, names in runs.frozen.calls[:2 * RUN.inner_folds]:
        lpips = features.matrix[features.rows(table["target"], table["candidate"])].numpy() @ w0
        np.testing.assert_allclose(dist, np.repeat(lpips[:, None], len(names), axis=1), rtol=1e-6)
    assert (res.inner.groupby(["repeat", "fold"])["inner_icc_A_k"].nunique() == 1).all()   # five-way ties
    assert res.folds[["margin", "lr"]].isna().all().all() and (res.folds["epochs"] == 0).all()
    assert not res.folds["trained"].any()
    assert np.array_equal(res.weights, np.broadcast_to(w0, res.weights.shape))
    for stat in protocol.STATISTICS:
        assert res.folds[f"delta_{stat}"].abs().max() < 1e-9, stat


def test_a_learning_rate_that_cannot_learn_is_never_chosen(runs):
    """On a study whose people weigh one layer far above LPIPS, trained weights beat the unmoved
    (lr 1e-12) ones on every inner fold, whatever the criterion: no outer fold chooses lr 1e-12, and the
    chosen settings agree better with people held out than LPIPS in every outer fold."""
    for run in (runs.icc, runs.rho):
        assert (run.res.folds["lr"] == 0.01).all()
        assert (run.res.folds["delta_icc_A_k"] > 0).all()
    # the criterion matters: the two runs share their inner table but not every choice (the toy makes
    # margins 0.01 and 0.05 differ in raw-distance rho where they tie in ICC)
    pd.testing.assert_frame_equal(runs.icc.res.inner, runs.rho.res.inner)
    chosen = ["margin", "lr", "epochs"]
    assert not runs.icc.res.folds[chosen].equals(runs.rho.res.folds[chosen])


# --------------------------------------------------------------------------- summary and versus
def corrected_t(d: np.ndarray, ratio: float, ci: float) -> dict[str, float]:
    """Nadeau & Bengio's corrected resampled t, written out: se^2 = (1/J + n_test/n_train) s^2,
    interval mean +- t_{J-1, (1+ci)/2} se, two-sided p of mean / se on J - 1 degrees of freedom."""
    J = len(d)
    mean = d.sum() / J
    s2 = ((d - mean) ** 2).sum() / (J - 1)
    se = np.sqrt((1 / J + ratio) * s2)
    half = sps.t.ppf((1 + ci) / 2, J - 1) * se
    return {"mean": mean, "sd": np.sqrt(s2), "low": mean - half, "high": mean + half,
            "pval": 2 * sps.t.sf(abs(mean / se), J - 1)}


@pytest.mark.parametrize("ci", [0.95, 0.8])
def test_summary_equals_a_direct_computation_from_the_folds(runs, ci):
    res = runs.icc.res
    f = res.folds
    ratio = np.mean([te / tr for te, tr in zip(f["n_test_targets"], f["n_train_targets"])])
    got = res.summary(ci=ci, bootstrap=False)
    assert list(got.index) == list(protocol.STATISTICS)
    for stat in protocol.STATISTICS:
        d = np.array([c - lp for c, lp in zip(f[f"clpips_{stat}"], f[f"lpips_{stat}"])])
        ref = corrected_t(d, ratio, ci)
        row = got.loc[stat]
        assert row["lpips"] == pytest.approx(f[f"lpips_{stat}"].sum() / len(f), abs=1e-12)
        assert row["clpips"] == pytest.approx(f[f"clpips_{stat}"].sum() / len(f), abs=1e-12)
        for key, ref_key in (("delta", "mean"), ("sd", "sd"), ("nb_low", "low"), ("nb_high", "high"),
                             ("nb_pval", "pval")):
            assert row[key] == pytest.approx(ref[ref_key], rel=1e-9, abs=1e-12), (stat, key)
        assert row["positive_share"] == pytest.approx(sum(x > 0 for x in d) / len(d))
        assert row["n_folds"] == len(f) == 6
        assert np.isnan(row[["boot_delta", "boot_low", "boot_high"]].astype(float)).all()


@pytest.mark.parametrize("stat", protocol.STATISTICS)
def test_versus_equals_a_direct_computation_from_both_runs_folds(runs, stat):
    a, b = runs.icc.res, runs.frozen.res
    d = (a.folds[f"clpips_{stat}"] - b.folds[f"clpips_{stat}"]).to_numpy(float)
    ratio = float(np.mean(a.folds["n_test_targets"] / a.folds["n_train_targets"]))
    ref = corrected_t(d, ratio, 0.9)
    got = a.versus(b, statistic=stat, ci=0.9)
    for key, ref_key in (("delta", "mean"), ("low", "low"), ("high", "high"), ("pval", "pval")):
        assert got[key] == pytest.approx(ref[ref_key], rel=1e-9, abs=1e-12), key
    assert got["positive_share"] == pytest.approx(np.mean(d > 0)) and got["n_folds"] == 6
    # the frozen run's fitted metric is LPIPS: the comparison is the summary's CLPIPS - LPIPS
    assert got["delta"] == pytest.approx(a.summary(bootstrap=False).at[stat, "delta"], abs=1e-9)
    back = b.versus(a, statistic=stat, ci=0.9)
    assert back["delta"] == pytest.approx(-got["delta"]) and back["low"] == pytest.approx(-got["high"])


def _folds(clpips_icc, n_test=4, n_train=8):
    n = len(clpips_icc)
    return pd.DataFrame({"repeat": 0, "fold": range(n), "n_train_targets": n_train, "n_test_targets": n_test,
                         "n_test_rows": 24, "clpips_icc_A_k": clpips_icc})


def test_versus_by_hand():
    """d = (0.1, 0.3, 0.2, 0.4): mean 0.25, s^2 = (0.0225 + 0.0025 + 0.0025 + 0.0225) / 3 = 1/60;
    n_test/n_train = 4/8: se^2 = (1/4 + 1/2) / 60 = 1/80, t = 0.25 sqrt(80) = sqrt(5) on 3 degrees of
    freedom; 95% half-width t_{3, 0.975} sqrt(1/80) = 3.18245 x 0.111803 = 0.355808."""
    mine = protocol.CrossvalResult(folds=_folds([0.5, 0.7, 0.6, 0.8]), inner=pd.DataFrame(), oof=pd.DataFrame(),
                                   weights=np.zeros((4, 1)))
    other = dataclasses.replace(mine, folds=_folds([0.4, 0.4, 0.4, 0.4]))
    got = mine.versus(other)
    assert got["delta"] == pytest.approx(0.25, abs=1e-12)
    assert got["low"] == pytest.approx(0.25 - 0.355808, abs=1e-6)
    assert got["high"] == pytest.approx(0.25 + 0.355808, abs=1e-6)
    assert got["pval"] == pytest.approx(2 * sps.t.sf(np.sqrt(5), 3), rel=1e-9)
    assert got["positive_share"] == 1.0 and got["n_folds"] == 4
    # runs on other folds are refused: another test side, or other sizes
    for bad in (_folds([0.4] * 4, n_test=5, n_train=7), _folds([0.4] * 4).assign(n_test_rows=25),
                _folds([0.4] * 4).assign(fold=[0, 1, 2, 4])):
        with pytest.raises(ValueError, match="same folds"):
            mine.versus(dataclasses.replace(mine, folds=bad))
