"""Personal CLPIPS metrics (clpips.book.personal) on synthetic raters with known, different weights.

No images and no backbone: a random feature matrix plays the pair features, and each
rater ranks candidates by ``phi . w_rater`` with their own ``w_rater``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats as sps

from clpips.book import personal as ps
from clpips.defaults import DEFAULTS
from clpips.datasets import RankingDataset, drop_shared_pairs, shared_pair_share, split_by_target
from clpips.evaluate import alignment, heldout_scores, score_rankings
from clpips.features import PairFeatures
from clpips.model import CHANNELS, initial_weight_vector
from clpips.pairs import ranking_pairs
from clpips.train import fit, pair_index

DIM = sum(CHANNELS["alex"])


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


@pytest.fixture(scope="module")
def study(synth):
    data, features, _ = synth
    return ps.personal_study(data, features=features, epochs=8, n_boot=300, l2=0.001, lr=1e-2, margin=0.01)


# --------------------------------------------------------------------------- statistics helpers
def test_heldout_scores_equal_evaluate_alignment(synth):
    data, features, _ = synth
    rng = np.random.default_rng(3)
    table = data.table[data.table["rater"] == "r1"]
    tied = torch.from_numpy(np.round(rng.random(DIM), 1)).float()   # coarse weights: some tied distances
    weights = {"a": torch.rand(DIM), "b": initial_weight_vector("alex", "lpips"), "tied": tied * 0}
    weights["tied"][0] = 1.0
    ours = heldout_scores(table, features, weights)
    scored = score_rankings(table, features, weights)
    for name in weights:
        ref = alignment(scored, name)
        assert ours.at[name, "icc_A_k"] == pytest.approx(ref["icc_A_k"], abs=1e-10)
        assert ours.at[name, "spearman"] == pytest.approx(ref["spearman"], abs=1e-10)
        assert ours.at[name, "n_rankings"] == ref["n_rankings"]


def test_heldout_scores_of_an_empty_table_are_nan(synth):
    data, features, _ = synth
    out = heldout_scores(data.table.iloc[:0], features, {"a": torch.rand(DIM)})
    assert np.isnan(out.at["a", "icc_A_k"]) and out.at["a", "n_rankings"] == 0


def test_holm_matches_hand_computation():
    p = [0.01, 0.04, 0.03, np.nan, 0.5]
    # sorted 0.01, 0.03, 0.04, 0.5 with m = 4: 0.04, 0.09, 0.09 (monotone), 0.5
    assert ps.holm(p)[[0, 2, 1, 4]] == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert np.isnan(ps.holm(p)[3])


def test_paired_tests_all_positive():
    out = ps.paired_tests(np.arange(1, 17) / 100)
    assert out["n_positive"] == 16 and out["n_negative"] == 0
    assert out["sign_p"] == pytest.approx(2 / 2 ** 16)
    assert out["wilcoxon_p"] == pytest.approx(sps.wilcoxon(np.arange(1, 17)).pvalue)


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
            assert boot.values["icc"][b, p] == pytest.approx(ref["icc_A_k"].to_numpy(), abs=1e-10, nan_ok=True)
            assert boot.values["rho"][b, p] == pytest.approx(ref["spearman"].to_numpy(), abs=1e-10, nan_ok=True)
            delta = ref.at["m1", "icc_A_k"] - ref.at["m0", "icc_A_k"]
            if np.isfinite(delta):                  # an undefined statistic leaves the person out
                per_person[p] = delta
        # the mean over the drawn people, each as often as drawn
        drawn = [p for p in range(3) for _ in range(people_counts[b, p]) if p in per_person]
        expected = np.mean([per_person[p] for p in drawn]) if drawn else np.nan
        got = boot.mean_distribution("m0", "m1", "icc")[b]
        assert got == pytest.approx(expected, abs=1e-10, nan_ok=True)
    assert n_empty > 0        # person c drew none of their targets at least once: left out, not zero
    # observed: all targets once, each person once
    full = distance_scores(scored[scored["rater"] == "c"], scored.loc[scored["rater"] == "c", ["m0", "m1"]]
                           .to_numpy(float), ["m0", "m1"])
    assert boot.observed.loc["c", "icc_m1"] == pytest.approx(full.at["m1", "icc_A_k"], abs=1e-12)
    summary = boot.compare("m0", "m1", "icc")
    assert summary["mean_delta"] == pytest.approx((boot.observed["icc_m1"] - boot.observed["icc_m0"]).mean())
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


def test_personal_models_beat_pooled_when_raters_differ(study):
    deltas = study.per_person["icc_personal"] - study.per_person["icc_pooled"]
    assert (deltas > 0).all()
    across = study.across_people()
    assert across.loc[("personal_vs_pooled", "icc"), "mean_delta"] == pytest.approx(deltas.mean())
    assert across.loc[("personal_vs_pooled", "icc"), "n_positive"] == 4
    boot = study.two_way()
    for name, (a, b) in ps.COMPARISONS.items():        # the two-way interval is around the observed mean
        row = across.loc[(name, "icc")]
        assert row["mean_delta"] == pytest.approx(boot.compare(a, b)["mean_delta"])
        assert row["ci_low"] <= row["mean_delta"] <= row["ci_high"]


def test_two_way_observed_values_are_the_per_person_scores(study):
    boot = study.two_way()
    per = study.per_person
    for m in ps.MODELS:
        assert boot.observed[f"icc_{m}"].to_numpy() == pytest.approx(per[f"icc_{m}"].to_numpy(), abs=1e-9)
        assert boot.observed[f"rho_{m}"].to_numpy() == pytest.approx(per[f"rho_{m}"].to_numpy(), abs=1e-9)
    assert study.two_way() is boot                      # computed once


def test_bootstrap_observed_values_match_the_scores(study):
    part = study.comparison("personal_vs_pooled")
    per = study.per_person
    assert part["a_icc"].to_numpy() == pytest.approx(per.loc[part.index, "icc_pooled"].to_numpy(), abs=1e-9)
    assert part["b_rho"].to_numpy() == pytest.approx(per.loc[part.index, "rho_personal"].to_numpy(), abs=1e-9)
    assert (part["ci_low_icc"] <= part["delta_icc"]).all() and (part["delta_icc"] <= part["ci_high_icc"]).all()
    assert ((part["p_holm_icc"] >= part["p_icc"] - 1e-12) & (part["p_holm_icc"] <= 1)).all()


def _close(got, ref, what):
    """Equal up to float32 sums run in another order (the batched fits: test_protocol's tolerances for
    the margin loss, whose hinge may flip for a pair sitting on the margin)."""
    diff = (torch.as_tensor(got) - torch.as_tensor(ref)).abs()
    assert float(diff.max()) < 5e-3 and float(diff.median()) < 1e-6, what


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


def test_every_personal_model_equals_its_own_fit_personal(study, synth):
    """The study's personal models, fitted together (fit_personals), each equal fit_personal from the
    model they start at, on the person's training pairs."""
    _, features, _ = synth
    for r in study.raters:
        pairs = study.bank.select(rater=r)
        for model, base in (("personal", study.weights["pooled"]), ("personal_lopo", study.lopo[r])):
            ref = ps.fit_personal(features, pairs, base, l2=0.001, epochs=8, lr=1e-2, margin=0.01).weights
            _close(getattr(study, model)[r], ref, f"{model} {r}")


def test_fit_personals_equals_fit_personal_one_at_a_time(synth):
    """Fits of other people, strengths, seeds, bases and subsets in one call, each as its own call."""
    data, features, _ = synth
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
        _close(w, ref, fit_)
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
    assert part["delta_icc"].to_numpy() == pytest.approx((per["icc_personal"] - per["icc_pooled"]).to_numpy())
    assert part["ci_low_icc"].isna().all()
    assert not quick.lopo and "new_user" not in set(quick.comparisons["comparison"])
    assert quick.settings["shared_pair_share"] > 0
    assert shared_pair_share(quick.train_table, quick.test_table) == 0
    with pytest.raises(TypeError):
        ps.personal_study(data, features=features, epochs=1, lopo=False, not_an_option=1)


def test_cross_person_diagonal_is_each_persons_own_gain(study):
    cross = ps.cross_person(study, "icc")
    per = study.per_person
    assert np.diag(cross.to_numpy()) == pytest.approx((per["icc_personal"] - per["icc_pooled"]).to_numpy())
    own = ps.own_versus_others(cross, n_boot=200)
    assert own["own"] == pytest.approx(np.diag(cross.to_numpy()).mean())
    assert own["n"] == 4


def test_learning_curve(study):
    curve = ps.learning_curve(study, sizes="2,4,1000", repeats=2, base="lopo")
    runs = curve.runs
    n_train = int(study.per_person["n_train"].iloc[0])
    assert set(runs["size_label"]) == {"2", "4", "all"}           # 1000 > training rankings: skipped
    assert len(runs) == 4 * (2 * 2 + 1)
    assert (runs.loc[runs["size_label"] == "all", "n_rankings"] == n_train).all()
    full = runs[runs["size_label"] == "all"].set_index("rater")["delta_icc"]
    per = study.per_person
    assert full.to_numpy() == pytest.approx((per["icc_personal_lopo"] - per["icc_lopo"]).to_numpy())
    again = ps.learning_curve(study, sizes="2,4,1000", repeats=2, base="lopo")
    pd.testing.assert_frame_equal(runs, again.runs)
    # one subset by hand: its targets drawn as documented, its model from fit_personal (the curve fits
    # them all together), scored on the person's held-out rankings
    r, person_index, size, rep = study.raters[1], 1, 4, 1
    mine = study.train_table[study.train_table["rater"] == r]
    targets = np.array(sorted(mine["target"].unique()), dtype=object)
    chosen = targets[np.random.default_rng([study.settings["seed"], person_index, size, rep]).choice(
        len(targets), size=size, replace=False)]
    w = ps.fit_personal(study.features, study.bank.select(rater=r, targets=chosen), study.lopo[r], l2=0.001, epochs=8,
                        seed=study.settings["seed"] + rep, lr=1e-2, margin=0.01).weights
    test = study.test_table[study.test_table["rater"] == r]
    direct = heldout_scores(test, study.features, {"w": w}).at["w", "icc_A_k"]
    got = runs.query("rater == @r and size_label == '4' and repeat == 1")["icc"].item()
    assert got == pytest.approx(direct, abs=1e-3)
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
            assert row[f"delta_{stat}"] == pytest.approx(x.mean(), abs=1e-12)
            assert (row[f"ci_low_{stat}"], row[f"ci_high_{stat}"]) == pytest.approx((lo, hi), abs=1e-12)
            assert row[f"n_positive_{stat}"] == (x > 0).sum()
            assert row[f"wilcoxon_p_{stat}"] == pytest.approx(sps.wilcoxon(x[x != 0]).pvalue, abs=1e-12)
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


def test_l2_sensitivity_reuses_the_default_and_orders_by_strength(study):
    table = ps.l2_sensitivity(study, [0.0, 1.0])
    assert list(table.index) == [0.0, 0.001, 1.0]
    assert table.loc[0.001, "is_default"]
    deltas = (study.per_person["icc_personal"] - study.per_person["icc_pooled"]).mean()
    assert table.loc[0.001, "delta_icc"] == pytest.approx(deltas)
    assert table.loc[1.0, "distance_from_pooled"] < table.loc[0.0, "distance_from_pooled"]
    # l2 = 1 by a direct loop of fit_personal (l2_sensitivity fits them all together)
    pooled, moved = study.weights["pooled"], []
    for r in study.raters:
        w = ps.fit_personal(study.features, study.bank.select(rater=r), pooled, l2=1.0, epochs=8, lr=1e-2,
                            margin=0.01).weights
        moved.append(float((w - pooled).norm()))
    assert table.loc[1.0, "distance_from_pooled"] == pytest.approx(np.mean(moved), rel=1e-3)


# --------------------------------------------------------------------------- layer weights
def test_layer_shares_and_changes():
    base = initial_weight_vector("alex", "lpips")
    shares = ps.layer_shares({"lpips": base, "double": 2 * base})
    assert shares.sum(axis=1).to_numpy() == pytest.approx([1, 1])
    assert shares.loc["lpips"].to_numpy() == pytest.approx(shares.loc["double"].to_numpy())
    manual = [float(base[:64].sum() / base.sum())]
    assert shares.at["lpips", "layer 1"] == pytest.approx(manual[0])
    phi = torch.rand(10, DIM)
    dshare = ps.layer_shares({"lpips": base}, features=phi)
    assert dshare.at["lpips", "layer 2"] == pytest.approx(float((phi[:, 64:256] @ base[64:256]).mean()
                                                               / (phi @ base).mean()), rel=1e-5)
    changes = ps.layer_changes({"same": base, "double": 2 * base}, base)
    assert changes.loc["same"].to_numpy() == pytest.approx(np.zeros(5))
    assert changes.loc["double"].to_numpy() == pytest.approx(np.ones(5))


# --------------------------------------------------------------------------- simulated truth
def test_attribute_sensitivity_recovers_known_coefficients(tmp_path):
    from clpips.datasets.scenes import NAMES
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
    assert sens.loc["m"].to_numpy() == pytest.approx(coef, abs=1e-4)
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
    assert mean == pytest.approx(x.mean())
    assert (low, high) == pytest.approx((lo, hi), rel=1e-12, abs=1e-14)


def test_every_public_name_is_importable_from_the_package():
    """clpips.book.personal is a package by concern; chapters and the widget import its names from the top."""
    import importlib
    for name in ps.__all__:
        assert getattr(ps, name) is not None, name
    for module in ("names", "study", "bootstrap", "inference", "curves", "recovery"):
        importlib.import_module(f"clpips.book.personal.{module}")
    from clpips.book.layer_weights import layer_changes, layer_shares
    assert ps.layer_shares is layer_shares and ps.layer_changes is layer_changes  # chapters 07, 08
