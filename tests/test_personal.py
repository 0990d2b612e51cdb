"""Personal CLPIPS metrics (clpips.book.personal) on synthetic raters with known, different weights.

No images and no backbone: a random feature matrix plays the pair features, and each
rater ranks candidates by ``phi . w_rater`` with their own ``w_rater``.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats as sps

from clpips.book import personal as ps
from clpips.book.defaults import DEFAULTS
from clpips.datasets import RankingDataset, drop_shared_pairs, shared_pair_share, split_by_target
from clpips.evaluate import alignment, heldout_scores, ranking_ids, score_rankings
from clpips.features import PairFeatures
from clpips.model import CHANNELS, initial_weight_vector, layer_slices
from clpips.pairs import ranking_pairs
from clpips.train import fit, pair_index
from tolerance import (UNIT_ROUNDOFF, assert_order_kept, assert_same_computation, assert_same_fit, assert_within,
                       dot_bound, icc_ak_bound, iterative_bound, mean_bound, spearman_bound,
                       typical_dot_bound)

DIM = sum(CHANNELS["alex"])
U64 = UNIT_ROUNDOFF[np.dtype(np.float64)]


def _interval_bound(x) -> float:
    """How far two programs' percentile-bootstrap interval ends over the same resamples of ``x`` may lie
    apart: each resample's mean within :func:`tolerance.mean_bound` of ``n`` values up to ``max|x|``, and the
    quantile's interpolation between two of them, 4 more roundings of ``max|x|``."""
    top = float(np.abs(np.asarray(x, float)).max())
    return mean_bound(np.full(len(x), top)) + 4 * U64 * top


def synthetic_study(tmp_path: Path, n_targets: int = 30, k: int = 6, n_raters: int = 4, seed: int = 0,
                    spread: float = 1.5, noise: float = 0.0):
    """A dataset whose raters all rank the same candidates by their own weights, and its features.

    Raters differ in how much they weigh each LPIPS layer (``base * exp(spread * z_layer)``);
    each pair's features scale per layer by a random factor, so the raters disagree.
    """
    rng = np.random.default_rng(seed)
    base = initial_weight_vector("alex", "lpips").numpy()
    layer = np.repeat(np.arange(5), CHANNELS["alex"])
    true = {f"r{i}": base * np.exp(spread * rng.standard_normal(5))[layer] for i in range(n_raters)}
    images = [f"img/{i:03d}.png" for i in range(n_targets)]
    keys, rows = [], []
    for t_i, target in enumerate(images):
        others = [im for im in images if im != target]
        cands = [others[j] for j in rng.choice(len(others), size=k, replace=False)]
        keys += [(target, c) for c in cands]
    scale = rng.gamma(1.0, 1.0, size=(len(keys), 5))[:, layer]
    matrix = torch.from_numpy(scale * rng.gamma(4.0, 0.0025, size=(len(keys), DIM))).float()
    features = PairFeatures(keys=keys, matrix=matrix, net="alex", extracted=0)
    for rater, w in true.items():
        for t_i, target in enumerate(images):
            block = [(i, key) for i, key in enumerate(keys) if key[0] == target]
            d = np.array([matrix[i].numpy() @ w for i, _ in block]) + noise * rng.standard_normal(len(block))
            ranks = sps.rankdata(d, method="ordinal")
            for (i, (t, c)), rank in zip(block, ranks):
                rows.append({"set_id": f"s{t_i:03d}", "target": t, "candidate": c, "rater": rater,
                             "rank": int(rank)})
    data = RankingDataset(table=pd.DataFrame(rows), root=tmp_path, name="synthetic")
    return data, features, true


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return synthetic_study(tmp_path_factory.mktemp("synth"))


def float32_distances(phi: torch.Tensor, w, dtype=torch.float32) -> tuple[np.ndarray, np.ndarray]:
    """The distances ``phi . w`` computed in float64 (the exact ones, to float64's rounding) and how far
    one float32 (or ``dtype``) evaluation, in any order, may lie from each (:func:`tolerance.dot_bound`,
    one computation, plus the float64 reference's own)."""
    phi64, w64 = phi.double(), torch.as_tensor(w).double().flatten()
    abs_sum = (phi64.abs() @ w64.abs()).numpy()
    n = phi.shape[1]
    return (phi64 @ w64).numpy(), (dot_bound(abs_sum, n, dtype, computations=1)
                                   + dot_bound(abs_sum, n, torch.float64, computations=1))


def within_ranking_ranks(table: pd.DataFrame, dist: np.ndarray) -> np.ndarray:
    """``dist`` ranked within each ranking of ``table`` (average ties), as the scorer ranks a metric."""
    return pd.Series(dist).groupby(ranking_ids(table).to_numpy()).rank(method="average").to_numpy()


def person_bounds(study, rater: str, model: str) -> tuple[float, float]:
    """How far two computations of ``rater``'s held-out ICC(A,k) and rho of ``model`` may lie apart (the
    study scores a person's models batched in one float32 product, other code one at a time): no two of
    the person's distances of a ranking lie within float32's rounding, so both see the same ranks, whose
    statistics then differ by float64 bounds only (tests/tolerance.py)."""
    test = study.test_table[study.test_table["rater"] == rater]
    return weight_bounds(test, study.features, study.models_of(rater)[model], f"{model} for {rater}")


def weight_bounds(test: pd.DataFrame, features, w, what: str = "") -> tuple[float, float]:
    """How far two computations (two summation orders, in the features' precision) of the held-out
    ICC(A,k) and rho of the weights ``w`` on the rankings ``test`` may lie apart: as :func:`person_bounds`."""
    phi = features.matrix[features.rows(test["target"], test["candidate"])]
    exact, slack = float32_distances(phi, w, dtype=features.matrix.dtype)
    assert_order_kept(exact, slack, ranking_ids(test), what)
    metric = within_ranking_ranks(test, exact)
    return icc_ak_bound(test["rank"], metric), spearman_bound(test["rank"], metric)


@pytest.fixture(scope="module")
def study(synth):
    data, features, _ = synth
    return ps.personal_study(data, features=features, epochs=8, n_boot=300, l2=0.001, lr=1e-2, margin=0.01)


def float64_features(features) -> PairFeatures:
    """The same pair features in float64: every fit (clpips.train.compute_dtype) and every score
    (heldout_scores) then runs in float64, so two ways of computing a fit compare by assert_same_fit."""
    return PairFeatures(keys=features.keys, matrix=features.matrix.double(), net="alex", extracted=0)


@pytest.fixture(scope="module")
def study64(synth):
    """:func:`study` on float64 features (no per-person bootstrap: the tests of it use :func:`study`)."""
    data, features, _ = synth
    return ps.personal_study(data, features=float64_features(features), epochs=8, n_boot=300, l2=0.001, lr=1e-2,
                             margin=0.01, person_bootstrap=False)


# --------------------------------------------------------------------------- statistics helpers
@pytest.mark.float_sensitive
def test_heldout_scores_equal_evaluate_alignment(synth):
    data, features, _ = synth
    rng = np.random.default_rng(3)
    table = data.table[data.table["rater"] == "r1"]
    tied = torch.from_numpy(np.round(rng.random(DIM), 1)).float()   # coarse weights: some tied distances
    weights = {"a": torch.rand(DIM, generator=torch.Generator().manual_seed(3)),   # seeded: not the test order
               "b": initial_weight_vector("alex", "lpips"), "tied": tied * 0}
    weights["tied"][0] = 1.0
    ours = heldout_scores(table, features, weights)
    scored = score_rankings(table, features, weights)
    phi = features.matrix[features.rows(table["target"], table["candidate"])]
    for name, w in weights.items():
        ref = alignment(scored, name)
        # the two multiply in other orders (one matrix product, one per metric); no two distances of a
        # ranking lie within those roundings, so both rank them the same: these ranks
        exact, slack = float32_distances(phi, w)
        assert_order_kept(exact, slack, ranking_ids(table), name)
        metric = within_ranking_ranks(table, exact)
        # the statistics of the same ranks, batched or alone: float64 error bounds (tests/tolerance.py)
        assert ours.at[name, "icc_A_k"] == pytest.approx(ref["icc_A_k"], abs=icc_ak_bound(table["rank"], metric))
        assert ours.at[name, "spearman"] == pytest.approx(ref["spearman"], abs=spearman_bound(table["rank"], metric))
        assert ours.at[name, "n_rankings"] == ref["n_rankings"]


def test_heldout_scores_of_an_empty_table_are_nan(synth):
    data, features, _ = synth
    out = heldout_scores(data.table.iloc[:0], features, {"a": torch.rand(DIM)})
    assert np.isnan(out.at["a", "icc_A_k"]) and out.at["a", "n_rankings"] == 0


def test_holm_matches_hand_computation():
    p = [0.01, 0.04, 0.03, np.nan, 0.5]
    # sorted 0.01, 0.03, 0.04, 0.5 with m = 4: 0.04, 0.09, 0.09 (monotone), 0.5
    # decimal inputs and literals each rounded once, Holm's product and maximum once: 3 roundings of u
    assert ps.holm(p)[[0, 2, 1, 4]] == pytest.approx([0.04, 0.09, 0.09, 0.5], rel=3 * U64, abs=0)
    assert np.isnan(ps.holm(p)[3])


def test_paired_tests_all_positive():
    out = ps.paired_tests(np.arange(1, 17) / 100)
    assert out["n_positive"] == 16 and out["n_negative"] == 0
    # scipy's binomial tail (Boost's incomplete beta, relative error below 1e-13 in its published tables)
    assert out["sign_p"] == pytest.approx(2 / 2 ** 16, rel=1e-13, abs=0)
    # the exact signed-rank distribution sees only the signs and the order of |x|: the same p
    assert out["wilcoxon_p"] == sps.wilcoxon(np.arange(1, 17)).pvalue


def test_people_interval_is_seeded_and_brackets_the_mean():
    x = np.random.default_rng(0).normal(0.1, 0.05, 16)
    a = ps.people_interval(x, n_boot=2000, seed=4)
    assert a == ps.people_interval(x, n_boot=2000, seed=4)
    assert a[1] < a[0] < a[2]
    assert np.isnan(ps.people_interval([0.3])[1])


def test_parse_sizes():
    assert ps.parse_sizes("20, 5,10,all") == (5, 10, 20)
    with pytest.raises(ValueError):
        ps.parse_sizes("5,x")
    with pytest.raises(ValueError):
        ps.parse_sizes([0, 3])


# --------------------------------------------------------------------------- pairs and leakage
def test_pair_bank_selects_the_same_pairs_as_building_them(synth):
    data, features, _ = synth
    train, _ = split_by_target(data.table)
    bank = ps.PairBank(train, features)
    targets = sorted(train["target"].unique())[:5]
    subset = train[(train["rater"] == "r2") & train["target"].isin(targets)]
    expected = pair_index(features, ranking_pairs(subset))
    got = bank.select(rater="r2", targets=targets)
    assert sorted(map(tuple, got.tolist())) == sorted(map(tuple, expected.tolist()))
    assert len(bank.select(exclude_rater="r2")) == len(bank.index) - len(bank.select(rater="r2"))


def test_drop_shared_pairs_removes_every_shared_pair_and_reranks():
    train = pd.DataFrame({"set_id": "a", "target": "X", "candidate": ["Y", "Z", "W"], "rater": "p",
                          "rank": [2, 1, 3]})
    test = pd.DataFrame({"set_id": "b", "target": "Y", "candidate": ["X", "V"], "rater": "p", "rank": [1, 2]})
    assert shared_pair_share(train, test) == pytest.approx(0.5)
    out = drop_shared_pairs(train, test)
    assert list(out["candidate"]) == ["Z", "W"] and list(out["rank"]) == [1, 2]
    assert shared_pair_share(out, test) == 0


# --------------------------------------------------------------------------- two-way bootstrap
def _hand_made_scored():
    """3 people, 5 targets, 4 candidates; person c ranked only targets t0, t1; model m1 has ties."""
    rng = np.random.default_rng(7)
    rows = []
    for person, targets in (("a", range(5)), ("b", range(5)), ("c", range(2))):
        for t in targets:
            ranks = rng.permutation(4) + 1
            for c in range(4):
                rows.append({"set_id": f"s{t}", "target": f"t{t}", "candidate": f"c{t}_{c}", "rater": person,
                             "rank": int(ranks[c]), "m0": float(ranks[c] + rng.normal(0, 1.5)),
                             "m1": float(np.round(ranks[c] + rng.normal(0, 2.0)))})
    return pd.DataFrame(rows)


def _rank_bounds(table: pd.DataFrame, columns) -> tuple[list[float], list[float]]:
    """Per distance column of ``table``: how far two float64 programs' ICC(A,k) and rho of its
    within-ranking ranks against the human ranks may lie apart (0 where the statistic is undefined)."""
    icc_tol, rho_tol = [], []
    for column in columns:
        metric = within_ranking_ranks(table, table[column].to_numpy(float))
        with np.errstate(all="ignore"):
            icc_tol.append(float(np.nan_to_num(icc_ak_bound(table["rank"], metric))))
            rho_tol.append(float(np.nan_to_num(spearman_bound(table["rank"], metric))))
    return icc_tol, rho_tol


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the reference on one-ranking tables
def test_two_way_bootstrap_equals_a_direct_resampling_loop():
    """Every resample rebuilt by concatenation and scored by evaluate.distance_scores."""
    from clpips.evaluate import distance_scores
    scored = _hand_made_scored()
    n_boot = 40
    # a seed whose draws leave person c (targets t0, t1) without a target at least once
    seed = next(s for s in range(100) if (ps.two_way_counts(3, 5, n_boot, s)[1][:, :2].sum(axis=1) == 0).any())
    boot = ps.two_way_bootstrap(scored, ["m0", "m1"], n_boot=n_boot, seed=seed)
    people_counts, target_counts = ps.two_way_counts(3, 5, n_boot, seed)
    assert boot.people == ["a", "b", "c"] and list(boot.targets) == [f"t{i}" for i in range(5)]
    n_empty = 0
    for b in range(n_boot):
        per_person = {}
        for p, person in enumerate(boot.people):
            parts = []
            for t, target in enumerate(boot.targets):
                rows = scored[(scored["rater"] == person) & (scored["target"] == target)]
                for copy in range(target_counts[b, t] if len(rows) else 0):   # drawn twice: two sets
                    parts.append(rows.assign(set_id=f"{target}#{copy}"))
            if not parts:
                n_empty += 1
                assert np.isnan(boot.values["icc"][b, p]).all()
                continue
            table = pd.concat(parts, ignore_index=True)
            ref = distance_scores(table, table[["m0", "m1"]].to_numpy(float), ["m0", "m1"])
            # the same float64 distances, so the same ranks; their statistics batched otherwise (float64 bounds)
            icc_tol, rho_tol = _rank_bounds(table, ["m0", "m1"])
            assert boot.values["icc"][b, p] == pytest.approx(ref["icc_A_k"].to_numpy(), abs=max(icc_tol), nan_ok=True)
            assert boot.values["rho"][b, p] == pytest.approx(ref["spearman"].to_numpy(), abs=max(rho_tol), nan_ok=True)
            delta = ref.at["m1", "icc_A_k"] - ref.at["m0", "icc_A_k"]
            if np.isfinite(delta):                  # an undefined statistic leaves the person out
                per_person[p] = (delta, sum(icc_tol))
        # the mean over the drawn people, each as often as drawn: each delta within its two ICCs' bounds,
        # then a mean of them (mean_bound)
        drawn = [p for p in range(3) for _ in range(people_counts[b, p]) if p in per_person]
        deltas = [per_person[p][0] for p in drawn]
        expected = np.mean(deltas) if drawn else np.nan
        tol = (np.mean([per_person[p][1] for p in drawn]) + mean_bound(deltas)) if drawn else 0.0
        got = boot.mean_distribution("m0", "m1", "icc")[b]
        assert got == pytest.approx(expected, abs=tol, nan_ok=True)
    assert n_empty > 0        # person c drew none of their targets at least once: left out, not zero
    # observed: all targets once, each person once
    full = distance_scores(scored[scored["rater"] == "c"], scored.loc[scored["rater"] == "c", ["m0", "m1"]]
                           .to_numpy(float), ["m0", "m1"])
    assert boot.observed.loc["c", "icc_m1"] == pytest.approx(
        full.at["m1", "icc_A_k"], abs=_rank_bounds(scored[scored["rater"] == "c"], ["m1"])[0][0])
    summary = boot.compare("m0", "m1", "icc")
    observed = boot.observed["icc_m1"] - boot.observed["icc_m0"]
    assert summary["mean_delta"] == pytest.approx(observed.mean(), abs=mean_bound(observed))   # a mean of 3, twice
    assert summary["ci_low"] < summary["ci_high"] and summary["n"] == 3


def test_two_way_draws_people_and_targets_independently():
    people, targets = ps.two_way_counts(6, 6, 200, seed=0)
    assert (people.sum(axis=1) == 6).all() and (targets.sum(axis=1) == 6).all()
    assert not np.array_equal(people, targets)
    again = ps.two_way_counts(6, 6, 200, seed=0)
    assert np.array_equal(again[0], people) and np.array_equal(again[1], targets)


def test_two_way_interval_is_wider_than_people_alone_when_targets_vary():
    """Targets that differ in difficulty (shared by everybody) widen the two-way interval;
    resampling people alone cannot see that variability."""
    rng = np.random.default_rng(1)
    rows = []
    for t in range(12):
        noise_b = 0.5 if t % 2 else 6.0          # model b is good on half of the targets only
        for person in range(8):
            ranks = rng.permutation(5) + 1
            for c in range(5):
                rows.append({"set_id": f"s{t}", "target": f"t{t}", "rater": f"p{person}", "rank": int(ranks[c]),
                             "a": ranks[c] + rng.normal(0, 2.0), "b": ranks[c] + rng.normal(0, noise_b)})
    scored = pd.DataFrame(rows)
    boot = ps.two_way_bootstrap(scored, ["a", "b"], n_boot=2000, seed=0)
    two_way = boot.compare("a", "b")
    observed, _ = boot.person_deltas("a", "b")
    _, lo, hi = ps.people_interval(observed, n_boot=2000, seed=0)
    assert two_way["ci_high"] - two_way["ci_low"] > 1.5 * (hi - lo)


# --------------------------------------------------------------------------- the study
def test_study_shapes_and_split(study, synth):
    data, _, _ = synth
    per = study.per_person
    assert list(per.index) == ["r0", "r1", "r2", "r3"]
    assert set(study.personal) == set(study.lopo) == set(study.personal_lopo) == set(per.index)
    assert not set(study.train_table["target"]) & set(study.test_table["target"])
    assert (per["n_train"] + per["n_test"] == data.table["set_id"].nunique()).all()
    assert set(study.fits["model"]) == {"pooled", "personal", "lopo", "personal_lopo"}
    assert set(study.comparisons["comparison"]) == set(ps.COMPARISONS)


@pytest.mark.float_sensitive
def test_personal_models_beat_pooled_when_raters_differ(study):
    deltas = study.per_person["icc_personal"] - study.per_person["icc_pooled"]
    assert (deltas > 0).all()
    across = study.across_people()
    # the two-way bootstrap's own scores of each person (person_bounds), then a mean of 4 (mean_bound)
    apart = np.mean([person_bounds(study, r, "personal")[0] + person_bounds(study, r, "pooled")[0]
                     for r in study.raters])
    assert across.loc[("personal_vs_pooled", "icc"), "mean_delta"] == pytest.approx(
        deltas.mean(), abs=apart + mean_bound(deltas))
    assert across.loc[("personal_vs_pooled", "icc"), "n_positive"] == 4
    boot = study.two_way()
    for name, (a, b) in ps.COMPARISONS.items():        # the two-way interval is around the observed mean
        row = across.loc[(name, "icc")]
        assert row["mean_delta"] == boot.compare(a, b)["mean_delta"]          # the same numbers, passed on
        assert row["ci_low"] <= row["mean_delta"] <= row["ci_high"]


@pytest.mark.float_sensitive
def test_two_way_observed_values_are_the_per_person_scores(study):
    boot = study.two_way()
    per = study.per_person
    for m in ps.MODELS:
        for r in study.raters:
            icc_tol, rho_tol = person_bounds(study, r, m)
            assert boot.observed.at[r, f"icc_{m}"] == pytest.approx(per.at[r, f"icc_{m}"], abs=icc_tol), (r, m)
            assert boot.observed.at[r, f"rho_{m}"] == pytest.approx(per.at[r, f"rho_{m}"], abs=rho_tol), (r, m)
    assert study.two_way() is boot                      # computed once


@pytest.mark.float_sensitive
def test_bootstrap_observed_values_match_the_scores(study):
    part = study.comparison("personal_vs_pooled")
    per = study.per_person
    for r in part.index:                    # the bootstrap scores the person again (person_bounds)
        assert part.at[r, "a_icc"] == pytest.approx(per.at[r, "icc_pooled"], abs=person_bounds(study, r, "pooled")[0])
        assert part.at[r, "b_rho"] == pytest.approx(per.at[r, "rho_personal"],
                                                    abs=person_bounds(study, r, "personal")[1])
    assert (part["ci_low_icc"] <= part["delta_icc"]).all() and (part["delta_icc"] <= part["ci_high_icc"]).all()
    assert ((part["p_holm_icc"] >= part["p_icc"] - 1e-12) & (part["p_holm_icc"] <= 1)).all()


def _close(got, ref, what):
    """Two float32 computations of the same fit (the study fits them batched): within
    :func:`tolerance.assert_same_computation`'s growth of float32's rounding on the weights' scale,
    ``max(1, max|ref|)``. Float32 because this study is the chapters' float32 one; the fits themselves are
    compared in float64 in ``test_fit_personals_equals_fit_personal_one_at_a_time`` (and :func:`study64`'s)."""
    scale = max(1.0, float(torch.as_tensor(ref).abs().max()))
    assert_same_computation(got, ref, str(what), scale=scale, dtype=torch.float32)


@pytest.mark.float_sensitive
def test_lopo_model_never_saw_the_person(study, synth):
    """The LOPO model of r1 is the pooled fit on the other raters' training rankings, as train.fit
    fits it (the study fits them all together)."""
    data, features, _ = synth
    others = study.train_table[study.train_table["rater"] != "r1"]
    again = fit(data, others, features=features, progress=False, epochs=8, lr=1e-2, margin=0.01)
    _close(study.lopo["r1"], again.weights, "lopo r1")
    assert not torch.equal(study.lopo["r1"], study.weights["pooled"])
    pooled = fit(data, study.train_table, features=features, progress=False, epochs=8, lr=1e-2, margin=0.01)
    _close(study.weights["pooled"], pooled.weights, "pooled")
    row = study.fits.query("model == 'pooled'").iloc[0]
    assert (row["epochs"], row["n_pairs"]) == (len(pooled.history), pooled.config["n_train_pairs"])


@pytest.mark.float_sensitive
def test_every_personal_model_equals_its_own_fit_personal(study, synth):
    """The study's personal models, fitted together (fit_personals), each equal fit_personal from the
    model they start at, on the person's training pairs."""
    _, features, _ = synth
    for r in study.raters:
        pairs = study.bank.select(rater=r)
        for model, base in (("personal", study.weights["pooled"]), ("personal_lopo", study.lopo[r])):
            ref = ps.fit_personal(features, pairs, base, l2=0.001, epochs=8, lr=1e-2, margin=0.01).weights
            _close(getattr(study, model)[r], ref, f"{model} {r}")


@pytest.mark.float_sensitive
def test_fit_personals_equals_fit_personal_one_at_a_time(synth):
    """Fits of other people, strengths, seeds, bases and subsets in one call, each as its own call."""
    data, features, _ = synth
    # float64 features: float64 fits (clpips.train.compute_dtype), compared by assert_same_fit
    features = float64_features(features)
    train, _ = split_by_target(data.table)
    bank = ps.PairBank(train, features)
    lpips = initial_weight_vector("alex", "lpips")
    fits = [{"pairs": bank.select(rater="r0"), "base": lpips, "l2": 0.01, "seed": 0},
            {"pairs": bank.select(rater="r1"), "base": lpips * 1.2, "l2": 1.0, "seed": 3},
            {"pairs": bank.select(rater="r1", targets=sorted(set(train["target"]))[:4]), "base": lpips, "l2": 0.0},
            {"pairs": bank.select(rater="r2"), "base": lpips}]                       # the default l2 and seed
    options = {"epochs": 4, "lr": 1e-2, "margin": 0.01, "batch_size": 16}
    got = ps.fit_personals(features, fits, **options)
    for fit_, w in zip(fits, got):
        ref = ps.fit_personal(features, fit_["pairs"], fit_["base"], l2=fit_.get("l2", DEFAULTS.personal_l2),
                              seed=fit_.get("seed", DEFAULTS.seed), **options).weights
        assert_same_fit(w, ref, str(fit_))
    assert ps.fit_personals(features, [], **options) == []
    with pytest.raises(TypeError, match="patience"):
        ps.fit_personals(features, fits, patience=3)


def test_personal_model_is_pulled_towards_its_base(synth):
    data, features, _ = synth
    train, _ = split_by_target(data.table)
    pairs = ps.PairBank(train, features).select(rater="r0")
    base = initial_weight_vector("alex", "lpips")
    loose = ps.fit_personal(features, pairs, base, l2=0.0, epochs=5, lr=1e-2, margin=0.01).weights
    tight = ps.fit_personal(features, pairs, base, l2=10.0, epochs=5, lr=1e-2, margin=0.01).weights
    assert (tight - base).norm() < (loose - base).norm()


def test_study_without_bootstrap_reports_observed_deltas(synth):
    data, features, _ = synth
    quick = ps.personal_study(data, features=features, epochs=3, lopo=False, person_bootstrap=False,
                              exclude_shared_pairs=True)
    part = quick.comparison("personal_vs_pooled")
    per = quick.per_person
    assert np.array_equal(part["delta_icc"].to_numpy(), (per["icc_personal"] - per["icc_pooled"]).to_numpy(),
                          equal_nan=True)                                # the same subtraction
    assert part["ci_low_icc"].isna().all()
    assert not quick.lopo and "new_user" not in set(quick.comparisons["comparison"])
    assert quick.settings["shared_pair_share"] > 0
    assert shared_pair_share(quick.train_table, quick.test_table) == 0
    with pytest.raises(TypeError):
        ps.personal_study(data, features=features, epochs=1, lopo=False, not_an_option=1)


@pytest.mark.float_sensitive
def test_cross_person_diagonal_is_each_persons_own_gain(study):
    cross = ps.cross_person(study, "icc")
    per = study.per_person
    # cross_person scores each person's models in another batch (person_bounds)
    apart = [person_bounds(study, r, "personal")[0] + person_bounds(study, r, "pooled")[0] for r in per.index]
    assert_within(np.diag(cross.to_numpy()), (per["icc_personal"] - per["icc_pooled"]).to_numpy(), np.array(apart),
                  what="own models against the per-person scores")
    own = ps.own_versus_others(cross, n_boot=200)
    assert own["own"] == pytest.approx(np.diag(cross.to_numpy()).mean(), abs=mean_bound(np.diag(cross.to_numpy())))
    assert own["n"] == 4


@pytest.mark.float_sensitive
def test_learning_curve(study, study64):
    curve = ps.learning_curve(study, sizes="2,4,1000", repeats=2, base="lopo")
    runs = curve.runs
    n_train = int(study.per_person["n_train"].iloc[0])
    assert set(runs["size_label"]) == {"2", "4", "all"}           # 1000 > training rankings: skipped
    assert len(runs) == 4 * (2 * 2 + 1)
    assert (runs.loc[runs["size_label"] == "all", "n_rankings"] == n_train).all()
    full = runs[runs["size_label"] == "all"].set_index("rater")["delta_icc"]
    per = study.per_person
    # the curve scores the full model in another batch than the study (person_bounds)
    apart = [person_bounds(study, r, "personal_lopo")[0] + person_bounds(study, r, "lopo")[0] for r in full.index]
    direct = (per.loc[full.index, "icc_personal_lopo"] - per.loc[full.index, "icc_lopo"]).to_numpy()
    assert_within(full.to_numpy(), direct, np.array(apart), what="the curve's full models against the study's")
    again = ps.learning_curve(study, sizes="2,4,1000", repeats=2, base="lopo")
    pd.testing.assert_frame_equal(runs, again.runs)
    # one subset by hand, in float64 (study64): its targets drawn as documented, its model from fit_personal
    # (the curve fits them all together), scored on the person's held-out rankings
    curve64 = ps.learning_curve(study64, sizes="2,4,1000", repeats=2, base="lopo")
    r, person_index, size, rep = study64.raters[1], 1, 4, 1
    mine = study64.train_table[study64.train_table["rater"] == r]
    targets = np.array(sorted(mine["target"].unique()), dtype=object)
    chosen = targets[np.random.default_rng([study64.settings["seed"], person_index, size, rep]).choice(
        len(targets), size=size, replace=False)]
    w = ps.fit_personal(study64.features, study64.bank.select(rater=r, targets=chosen), study64.lopo[r], l2=0.001,
                        epochs=8, seed=study64.settings["seed"] + rep, lr=1e-2, margin=0.01).weights
    kept = curve64.weights[(r, "4", rep)]
    assert_same_fit(kept, w, f"the curve's model of {r} on 4 targets")    # two summation orders of one fit
    test = study64.test_table[study64.test_table["rater"] == r]
    # the very weights the curve scored, scored again alone (the curve scores a person's models in one
    # product): no two held-out distances within float64's rounding, so the same ranks (weight_bounds)
    direct = heldout_scores(test, study64.features, {"w": kept}).at["w", "icc_A_k"]
    got = curve64.runs.query("rater == @r and size_label == '4' and repeat == 1")["icc"].item()
    assert got == pytest.approx(direct, abs=weight_bounds(test, study64.features, kept, f"curve model of {r}")[0])
    # the summary by a direct computation from the runs: per size, each person's Δ averaged over repeats;
    # their mean, the percentile bootstrap over people (numpy.random.default_rng(seed), 200 draws of 4
    # people), people with Δ > 0 and scipy's Wilcoxon signed-rank p
    summary = curve.summary(n_boot=200, ci=0.9, seed=7)
    assert list(summary.index) == ["2", "4", "all"]
    lows = []
    for label in ("2", "4", "all"):
        for stat in ("icc", "rho"):
            x = np.array([runs.loc[(runs["size_label"] == label) & (runs["rater"] == person), f"delta_{stat}"].mean()
                          for person in study.raters])
            means = x[np.random.default_rng(7).integers(0, len(x), size=(200, len(x)))].mean(axis=1)
            lo, hi = np.quantile(means, [0.05, 0.95])
            row = summary.loc[label]
            assert row[f"delta_{stat}"] == pytest.approx(x.mean(), abs=mean_bound(x))   # a mean of 4, twice
            assert (row[f"ci_low_{stat}"], row[f"ci_high_{stat}"]) == pytest.approx((lo, hi), abs=_interval_bound(x))
            assert row[f"n_positive_{stat}"] == (x > 0).sum()
            # the exact signed-rank distribution (4 people) sees only the signs and the order of |x|
            assert row[f"wilcoxon_p_{stat}"] == sps.wilcoxon(x[x != 0]).pvalue
            if stat == "icc":
                lows.append(lo)
    # the first size from which every size's lower limit is above 0, by a direct loop over those limits
    expected = next((label for i, label in enumerate(("2", "4", "all")) if all(lo > 0 for lo in lows[i:])), None)
    assert curve.first_size_beating("icc", summary) == expected
    pooled = ps.learning_curve(study, sizes=[2], repeats=1, base="pooled")
    assert set(pooled.runs["size_label"]) == {"2", "all"}
    with pytest.raises(ValueError):
        ps.learning_curve(study, base="nobody")


def test_first_size_beating_needs_every_later_size_above_zero():
    curve = ps.LearningCurve(pd.DataFrame(), "lopo")
    summary = pd.DataFrame({"ci_low_icc": [0.01, -0.01, 0.02, 0.03]}, index=["5", "10", "20", "all"])
    assert curve.first_size_beating("icc", summary) == "20"


@pytest.mark.float_sensitive
def test_l2_sensitivity_reuses_the_default_and_orders_by_strength(study, study64):
    table = ps.l2_sensitivity(study, [0.0, 1.0])
    assert list(table.index) == [0.0, 0.001, 1.0]
    assert table.loc[0.001, "is_default"]
    per_delta = study.per_person["icc_personal"] - study.per_person["icc_pooled"]
    # l2_sensitivity scores the default's models in another batch (person_bounds), then a mean of 4
    apart = np.mean([person_bounds(study, r, "personal")[0] + person_bounds(study, r, "pooled")[0]
                     for r in study.raters])
    assert table.loc[0.001, "delta_icc"] == pytest.approx(per_delta.mean(), abs=apart + mean_bound(per_delta))
    assert table.loc[1.0, "distance_from_pooled"] < table.loc[0.0, "distance_from_pooled"]
    # l2 = 1 by a direct loop of fit_personal (l2_sensitivity fits them all together), in float64 (study64)
    pooled, moved, apart = study64.weights["pooled"], [], []
    for r in study64.raters:
        w = ps.fit_personal(study64.features, study64.bank.select(rater=r), pooled, l2=1.0, epochs=8, lr=1e-2,
                            margin=0.01).weights
        moved.append(float((w - pooled).norm()))
        apart.append(_distance_bound(w, pooled))
    table64 = ps.l2_sensitivity(study64, [1.0])
    assert table64.loc[1.0, "distance_from_pooled"] == pytest.approx(np.mean(moved),
                                                                     abs=np.mean(apart) + mean_bound(moved))


def _distance_bound(w: torch.Tensor, pooled: torch.Tensor) -> float:
    """How far two float64 computations of ``||w - pooled||`` may lie apart when the two ``w`` are two
    summation orders of the same fit. The fits differ entry by entry by at most assert_same_fit's
    ``iterative_bound(max(1, max|w|))``, so the exact norms by at most ``sqrt(D)`` times that (triangle
    inequality, then Cauchy-Schwarz); each computed norm of ``d = w - pooled`` rounds the D differences
    (relative u), the D squares and their sum (gamma_(D+1) of ``||d||^2``, half of that relative on the
    root) and the root (u): within ``gamma_(D+3) ||d||`` of its exact norm, twice that for two programs."""
    scale = max(1.0, float(w.abs().max()))
    d = float((w - pooled).norm())
    return math.sqrt(w.numel()) * iterative_bound(scale, torch.float64) + dot_bound(d, w.numel() + 3, torch.float64)


# --------------------------------------------------------------------------- layer weights
@pytest.mark.float_sensitive
def test_layer_shares_and_changes():
    base = initial_weight_vector("alex", "lpips")
    shares = ps.layer_shares({"lpips": base, "double": 2 * base})
    # float64: 5 shares v / total (a rounding each) of a total summed from 5 (gamma_5), added up (gamma_5)
    assert shares.sum(axis=1).to_numpy() == pytest.approx([1, 1], abs=dot_bound(1.0, 6, np.float64))
    assert np.array_equal(shares.loc["lpips"].to_numpy(), shares.loc["double"].to_numpy())   # x2 is exact
    manual = [float(base[:64].sum() / base.sum())]
    # the same float32 sum of layer 1 over float32's sum of all 1,152 weights (positive) or the float64 sum
    # of the 5 layers' float32 sums: two orders of a positive sum, relative 2 gamma_1152, and a division
    assert shares.at["lpips", "layer 1"] == pytest.approx(manual[0], rel=dot_bound(1.0, DIM + 1, torch.float32))
    phi = torch.rand(10, DIM, generator=torch.Generator().manual_seed(5))
    dshare = ps.layer_shares({"lpips": base}, features=phi)
    # against float64: each share is a ratio of means of float32 sums of nonnegative terms, one layer's
    # over all layers'; relative error within gamma_(DIM + 16) of each (sums of DIM products, a mean of 10,
    # a sum of 5, a division), two of them (dot_bound, computations=2): worst case and typical
    exact = [float((phi.double()[:, part] @ base.double()[part]).mean() / (phi.double() @ base.double()).mean())
             for part in layer_slices("alex")]
    assert_within(dshare.loc["lpips"].to_numpy(), exact, dot_bound(np.asarray(exact), DIM + 16, torch.float32),
                  typical_dot_bound(np.asarray(exact), DIM + 16, torch.float32), "layer shares of the distance")
    changes = ps.layer_changes({"same": base, "double": 2 * base}, base)
    assert np.array_equal(changes.loc["same"].to_numpy(), np.zeros(5))     # w - base = 0 exactly
    assert np.array_equal(changes.loc["double"].to_numpy(), np.ones(5))    # 2 base - base = base exactly


# --------------------------------------------------------------------------- simulated truth
def test_attribute_sensitivity_recovers_known_coefficients(tmp_path):
    from clpips.book.scenes import NAMES
    rng = np.random.default_rng(1)
    images = [f"i{j}.png" for j in range(12)]
    scenes = pd.DataFrame({"image": images, **{a: rng.integers(0, 3, len(images)).astype(str) for a in NAMES}})
    pairs = [(t, c) for t in images for c in images if t != c][:80]
    coef = np.arange(1, len(NAMES) + 1, dtype=float)
    mism = np.array([[scenes.set_index("image").at[t, a] != scenes.set_index("image").at[c, a] for a in NAMES]
                     for t, c in pairs], dtype=float)
    matrix = torch.zeros(len(pairs), DIM)
    matrix[:, 0] = torch.from_numpy(mism @ coef + 0.5).float()    # distance = phi . e_0
    features = PairFeatures(keys=pairs, matrix=matrix, net="alex", extracted=0)
    table = pd.DataFrame({"set_id": [t for t, _ in pairs], "target": [t for t, _ in pairs],
                          "candidate": [c for _, c in pairs], "rater": "p", "rank": 1})

    class Truth:
        pass
    truth = Truth()
    truth.scenes = scenes
    data = RankingDataset(table=table, root=tmp_path, truth=truth)
    e0 = torch.zeros(DIM)
    e0[0] = 1
    sens = ps.attribute_sensitivity(data, features, {"m": e0})
    # the distances are exact (integers + 0.5 in float32, phi . e_0 adds zeros) and fit exactly: a
    # backward-stable least-squares solve then errs by at most ~ m n kappa(X) u ||beta|| (Higham 2002, 20.3)
    X = np.column_stack([np.ones(len(pairs)), mism])
    beta = np.concatenate([[0.5], coef])
    tol = 10 * dot_bound(np.linalg.cond(X) * np.linalg.norm(beta), X.size, np.float64, computations=1)
    assert sens.loc["m"].to_numpy() == pytest.approx(coef, abs=tol)
    with pytest.raises(ValueError):
        ps.attribute_sensitivity(RankingDataset(table=table, root=tmp_path), features, {"m": e0})


# --------------------------------------------------------------------------- figures
def test_chapter_figures_draw(study):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    from clpips.book.plots import personal as pp
    curve = ps.learning_curve(study, sizes=[2], repeats=1)
    people = list(study.personal)
    figures = [
        pp.plot_person_deltas(study.comparisons, study.across_people(n_boot=100)),
        pp.plot_learning_curve(curve.summary(n_boot=100), curve.per_person()),
        pp.plot_layer_weights(ps.layer_shares({"pooled": study.weights["pooled"], **study.personal}),
                              ps.layer_changes({r: study.personal[r] for r in people}, study.weights["pooled"])),
        pp.plot_cross_person(ps.cross_person(study)),
        pp.plot_truth_recovery(pd.DataFrame({"cos_pooled": [0.5, 0.7], "cos_personal": [0.6, 0.65],
                                             "cos_shift": [0.3, -0.1]}, index=["a", "b"])),
    ]
    for fig in figures:
        assert isinstance(fig, Figure) and fig.axes
        fig.canvas.draw()
        plt.close(fig)
    # the forest plot has one row per person plus the mean
    assert len(figures[0].axes[0].get_yticks()) == len(people) + 1


def test_people_interval_equals_the_direct_percentile_bootstrap():
    # scipy.stats.bootstrap (percentile) draws the same resamples as the direct formula with the same generator
    x = np.random.default_rng(11).normal(size=16)
    rng = np.random.default_rng(3)
    means = x[rng.integers(0, len(x), size=(5000, len(x)))].mean(axis=1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    mean, low, high = ps.people_interval(x, n_boot=5000, ci=0.95, seed=3)
    assert mean == x.mean()                                              # numpy's mean of the same array
    assert (low, high) == pytest.approx((lo, hi), abs=_interval_bound(x))


def test_every_public_name_is_importable_from_the_package():
    """clpips.book.personal is a package by concern; chapters and the widget import its names from the top."""
    import importlib
    for name in ps.__all__:
        assert getattr(ps, name) is not None, name
    for module in ("names", "study", "bootstrap", "inference", "curves", "recovery"):
        importlib.import_module(f"clpips.book.personal.{module}")
    from clpips.book.layer_weights import layer_changes, layer_shares
    assert ps.layer_shares is layer_shares and ps.layer_changes is layer_changes  # chapters 07, 08
