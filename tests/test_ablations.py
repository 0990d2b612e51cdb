"""The ablation runner's bookkeeping: levels applied, shared fits, learning-curve samples, per-rater scoring."""
from __future__ import annotations

import json
from types import SimpleNamespace

import matplotlib
import numpy as np
import pandas as pd

from clpips.datasets import drop_shared_pairs
import pytest
import torch

matplotlib.use("Agg")

from clpips.book import ablations as ab# noqa: E402
from clpips.book import batched_fits  # noqa: E402
from clpips.book import report# noqa: E402
from clpips.book.ablations import runner  # noqa: E402
from clpips import train  # noqa: E402
from clpips.book.defaults import DEFAULTS  # noqa: E402
from clpips.features import PairFeatures  # noqa: E402
from clpips.model import CHANNELS, initial_weight_vector  # noqa: E402
from tolerance import (UNIT_ROUNDOFF, assert_order_kept, assert_same_fit, dot_bound, icc_bound,  # noqa: E402
                       mean_bound, spearman_bound)

U64 = UNIT_ROUNDOFF[np.dtype(np.float64)]


def held_out_ranks(test: pd.DataFrame, feats, w) -> np.ndarray:
    """``w``'s distances of ``test``'s rows ranked within each ranking, once checked that no two of a ranking
    lie within two float32 products' rounding (dot_bound): any order of the product gives these ranks."""
    from clpips.evaluate import ranking_ids
    phi = feats.matrix[feats.rows(test["target"], test["candidate"])].double()
    w = torch.as_tensor(w).double().flatten()
    exact = (phi @ w).numpy()
    abs_sum = (phi.abs() @ w.abs()).numpy()
    ids = ranking_ids(test).to_numpy()
    slack = dot_bound(abs_sum, len(w), torch.float32, 1) + dot_bound(abs_sum, len(w), torch.float64, 1)
    assert_order_kept(exact, slack, ids, "held-out distances")
    return pd.Series(exact).groupby(ids).rank(method="average").to_numpy()


DIM = sum(CHANNELS["alex"])
FAST = {"epochs": 3, "patience": 2, "batch_size": 64}


def _study(n_targets=12, raters=("a", "b", "c"), k=5, seed=0):
    """A small ranking study with random pair features, ranked by a noisy per-rater linear metric."""
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    w = initial_weight_vector("alex", "lpips")
    rows, keys, vectors = [], [], []
    for t in range(n_targets):
        target = f"t{t:02d}.png"
        cands = [f"c{t:02d}_{j}.png" for j in range(k)]
        phi = torch.rand(k, DIM, generator=gen) * 0.01
        keys += [(target, c) for c in cands]
        vectors.append(phi)
        d = (phi @ w).numpy()
        for r, rater in enumerate(raters):
            noisy = d * (1 + 0.3 * r) + rng.normal(0, d.std() * 0.5, k)
            ranks = noisy.argsort().argsort() + 1
            rows += [{"set_id": f"s{t:02d}", "target": target, "candidate": c, "rater": rater, "rank": int(q)}
                     for c, q in zip(cands, ranks)]
    table = pd.DataFrame(rows)
    features = PairFeatures(keys=keys, matrix=torch.cat(vectors), net="alex", extracted=0)
    return SimpleNamespace(table=table, name="toy"), features


@pytest.fixture(scope="module")
def study():
    return _study()


@pytest.fixture()
def fit_calls(monkeypatch):
    """Record every fit the runners ask for, as the arguments of a clpips.train.fit call (the training
    table and the options), then fit for real. The runners fit in batches (runner.fit_together, each
    request equal to its own train.fit: test_fit_together_equals_train_fit), so the requests are recorded."""
    calls = []
    real = runner.fit_together

    def recording(dataset, requests, **kwargs):
        calls.extend(dict(r) for r in requests)
        return real(dataset, requests, **kwargs)

    monkeypatch.setattr(runner, "fit_together", recording)
    return calls


# ------------------------------------------------------------------------------- levels and grids
def test_parse_levels_of_each_kind():
    assert ab.parse_levels("margin", "0.01, 0.05") == [0.01, 0.05]
    assert ab.parse_levels("layers", "0;1,4;all") == ["0", "1,4", "all"]
    assert ab.parse_levels("project", "on,off") == [True, False]
    assert ab.parse_levels("train_size", "10,all") == [10, None]
    with pytest.raises(ValueError):
        ab.parse_levels("project", "maybe")
    with pytest.raises(ValueError):
        ab.factor_variants("colour", "red")


def test_reference_level_is_the_default():
    for factor, option in (("margin", "margin"), ("lr", "lr"), ("layers", "layers"), ("init", "init"),
                           ("loss", "loss"), ("net", "net")):
        variants = [v for v in ab.standard_grid() if v.factor == factor]
        refs = [v for v in variants if v.reference]
        assert len(refs) == 1, factor
        assert ab.Variant("x", "x", {option: getattr(DEFAULTS, option)}).key() == refs[0].key()
    curve = ab.learning_curve_variants("10,20,all")
    assert [v.reference for v in curve] == [False, False, True] and curve[-1].options == {}


def test_default_levels_share_one_key():
    grid = ab.standard_grid() + ab.learning_curve_variants()
    default_key = ab.Variant("none", "none").key()
    assert sum(v.key() == default_key for v in grid) == len({v.factor for v in grid})
    # "all" and the explicit list of every layer are the same fit
    assert ab.Variant("l", "a", {"layers": "all"}).key() == ab.Variant("l", "b", {"layers": "0,1,2,3,4"}).key()
    # a common option enters the key
    assert ab.Variant("m", "m").key(epochs=3) != ab.Variant("m", "m").key()


def test_grid_levels_come_from_defaults_or_arguments():
    grid = ab.standard_grid(factors=("margin", "layers"), margin="0.01,0.05")
    assert [(v.factor, v.level) for v in grid][:2] == [("margin", "0.01"), ("margin", "0.05")]
    assert [v.level for v in grid if v.factor == "layers"] == DEFAULTS.ablation_layers.split(";")
    with pytest.raises(ValueError):
        ab.standard_grid(colour="red")


# ------------------------------------------------------------------------------- replicates
def test_replicates_standard_split_and_folds(study):
    data, _ = study
    seeds = ab.replicates(data.table, folds=0, seeds=(0, 1, 2))
    assert [r.seed for r in seeds] == [0, 1, 2]
    assert all(r.test.equals(seeds[0].test) for r in seeds)  # the split stays fixed
    folds = ab.replicates(data.table, folds=3, seeds=(5,))
    tested = [set(r.test["target"]) for r in folds]
    assert set().union(*tested) == set(data.table["target"]) and sum(map(len, tested)) == 12
    for r in folds:
        assert not set(r.train["target"]) & set(r.test["target"]) and r.seed == 5
    with pytest.raises(ValueError):
        ab.replicates(data.table, folds=1)


def test_subsample_rankings_sizes_seeded_and_nested(study):
    data, _ = study
    ids = lambda t: set(t["set_id"] + "|" + t["rater"])  # noqa: E731
    small = ab.subsample_rankings(data.table, 5, seed=[0, 1])
    large = ab.subsample_rankings(data.table, 20, seed=[0, 1])
    assert len(ids(small)) == 5 and len(ids(large)) == 20
    assert ids(small) <= ids(large)  # nested for one seed
    assert ids(small) == ids(ab.subsample_rankings(data.table, 5, seed=[0, 1]))  # reproducible
    assert ids(small) != ids(ab.subsample_rankings(data.table, 5, seed=[0, 2]))
    assert (small.groupby(["set_id", "rater"]).size() == 5).all()  # whole rankings only
    assert ab.subsample_rankings(data.table, None, seed=0) is data.table
    with pytest.raises(ValueError):
        ab.subsample_rankings(data.table, 10_000, seed=0)


# ------------------------------------------------------------------------------- the runner
def test_levels_reach_fit_and_shared_fits_run_once(study, fit_calls):
    data, feats = study
    grid = (ab.factor_variants("margin", "0.01,0.05") + ab.factor_variants("lr", "0.001,0.01")
            + ab.factor_variants("init", "lpips,ones"))
    out = ab.run_ablation(data, grid, seeds=(0, 1), features={"alex": feats}, **FAST)
    assert len(out) == len(grid) * 2
    assert len(fit_calls) == 4 * 2  # default, margin 0.01, lr 0.01, init ones: per seed
    seen = {(c["seed"], c.get("margin"), c.get("lr"), c.get("init")) for c in fit_calls}
    assert (0, 0.01, None, None) in seen and (1, None, 0.01, None) in seen and (0, None, None, "ones") in seen
    assert all(c["epochs"] == 3 and c["features"] is feats for c in fit_calls)
    for row in out.itertuples():
        options = json.loads(row.options)
        assert options["epochs"] == 3
        if row.factor == "margin":
            assert options["margin"] == float(row.level)
    # the shared default fit gives identical numbers under every factor
    refs = out[out["reference"]].groupby("seed")["icc"].nunique()
    assert (refs == 1).all()
    assert np.array_equal(out["delta_icc"], out["icc"] - out["base_icc"], equal_nan=True)   # the same subtraction


def test_layers_level_only_moves_those_layers(study):
    data, feats = study
    grid = ab.factor_variants("layers", "0;1,4;all")
    out = ab.run_ablation(data, grid, features={"alex": feats}, **FAST).set_index("level")
    assert out.at["0", "changed_layers"] == "0"
    assert out.at["1,4", "changed_layers"] == "1,4"
    assert out.at["all", "changed_layers"] != "" and out.at["all", "reference"]


def test_changed_layers():
    w = initial_weight_vector("alex", "lpips")
    moved = w.clone()
    moved[0] += 1
    moved[-1] += 1
    assert ab.changed_layers(w, moved) == "0,4"
    assert ab.changed_layers(w, w) == ""


def test_learning_curve_sizes_respected_and_skipped(study, fit_calls):
    data, feats = study
    out = ab.run_ablation(data, ab.learning_curve_variants("4,8,1000,all"), folds=3, features={"alex": feats},
                          **FAST)
    # 1000 exceeds every fold's training rankings: skipped, not clipped
    assert set(out["level"]) == {"4", "8", "all"}
    sized = out[out["level"] != "all"]
    assert (sized["n_train_rankings"] == sized["level"].astype(int)).all()
    full = out[out["level"] == "all"]
    assert (full["n_train_rankings"] == 8 * 3).all()  # 8 training targets x 3 raters per fold
    n_rankings = [c["table"].groupby(["set_id", "rater"]).ngroups for c in fit_calls]
    assert sorted(n_rankings) == sorted([4, 8, 24] * 3)
    # seeded: the same call draws the same rankings
    first = [set(c["table"].index) for c in fit_calls]
    fit_calls.clear()
    ab.run_ablation(data, ab.learning_curve_variants("4,8,1000,all"), folds=3, features={"alex": feats}, **FAST)
    assert first == [set(c["table"].index) for c in fit_calls]


def test_per_rater_scores_each_rater_on_own_rankings(study, fit_calls, monkeypatch):
    data, feats = study
    scored_tables = []
    real_scores = runner._scores_many

    def recording(test, features, weights):
        scored_tables.append(test)
        return real_scores(test, features, weights)

    monkeypatch.setattr(runner, "_scores_many", recording)
    out = ab.run_per_rater(data, features=feats, **FAST)
    assert set(out["level"]) == {"pooled", "personal"} and set(out["rater"]) == {"a", "b", "c"}
    assert all(t["rater"].nunique() == 1 for t in scored_tables)
    _, test = ab.replicates(data.table)[0].train, ab.replicates(data.table)[0].test
    for row in out.itertuples():
        assert row.n_test_rankings == test[test["rater"] == row.rater]["set_id"].nunique()
    personal_calls = [c for c in fit_calls if c.get("rater") is not None]
    assert sorted(c["rater"] for c in personal_calls) == ["a", "b", "c"]
    assert len(fit_calls) == 4  # one pooled fit and three personal ones
    # personal models are fitted on the rater's training rankings only
    personal = out[out["level"] == "personal"].set_index("rater")
    assert (personal["n_train_rankings"] == 8).all()
    assert (out[out["level"] == "pooled"]["n_train_rankings"] == 24).all()


# ------------------------------------------------------------------------------- summaries
def _fake_results(diffs, folds=True, level="b"):
    """Rows of two levels of factor f: reference a, and b = a + diffs (one per replicate)."""
    rows = []
    for i, d in enumerate(diffs):
        split = f"fold {i + 1}/{len(diffs)}" if folds else "standard"
        seed = 0 if folds else i
        base = 0.3 + 0.05 * i
        for lv, value, ref in (("a", base + 0.1, True), (level, base + 0.1 + d, False)):
            rows.append({"factor": "f", "level": lv, "reference": ref, "split": split, "fold": i, "seed": seed,
                         "n_train_rankings": 80, "n_test_rankings": 20, "icc": value, "rho": value / 2,
                         "lpips_icc": base, "lpips_rho": base / 2, "base_icc": base, "base_rho": base / 2,
                         "delta_icc": value - base, "delta_rho": (value - base) / 2})
    return pd.DataFrame(rows)


def test_summary_paired_difference_and_verdicts():
    from scipy import stats
    diffs = np.array([0.05, 0.06, 0.04, 0.05, 0.055])
    summary = ab.summarize(_fake_results(diffs, folds=False)).set_index("level")
    assert summary.at["a", "verdict"] == "reference" and summary.at["a", "diff"] == 0
    row = summary.loc["b"]
    half = stats.t.ppf(0.975, 4) * diffs.std(ddof=1) / np.sqrt(5)
    # float64, two programs: the mean (mean_bound); the sd's sums of squares within 2 gamma_5 relative to
    # sum x^2 / S_xx (centring, tests/tolerance.py), and a few roundings of t, sqrt and the products
    sd_rel = dot_bound(np.sum(diffs ** 2) / np.sum((diffs - diffs.mean()) ** 2), len(diffs), np.float64) + 8 * U64
    assert row["diff"] == pytest.approx(diffs.mean(), abs=mean_bound(diffs))
    assert row["diff_low"] == pytest.approx(diffs.mean() - half, abs=mean_bound(diffs) + sd_rel * half)
    assert row["verdict"] == "higher" and "training only" in row["noise"]
    # the spread across replicates is large, but the paired difference is not
    assert row["sd"] > 0.05
    # re-splits: the Nadeau-Bengio factor 1/J + n_test/n_train widens the interval
    folds = ab.summarize(_fake_results(diffs, folds=True)).set_index("level").loc["b"]
    half_nb = stats.t.ppf(0.975, 4) * diffs.std(ddof=1) * np.sqrt(1 / 5 + 20 / 80)
    assert folds["diff_high"] - folds["diff"] == pytest.approx(half_nb, abs=2 * mean_bound(diffs) + sd_rel * half_nb)
    noisy = ab.summarize(_fake_results(np.array([0.05, -0.04, 0.03, -0.05, 0.01]))).set_index("level")
    assert noisy.at["b", "verdict"] == "within noise"
    lower = ab.summarize(_fake_results(-diffs)).set_index("level")
    assert lower.at["b", "verdict"] == "lower"


def test_facts_and_verdict_lists_are_plain_python():
    results = pd.concat([_fake_results(np.full(5, 0.05) + np.arange(5) * 1e-3),
                         _fake_results(np.array([0.05, -0.04, 0.03, -0.05, 0.01]), level="c")])
    results = results.drop_duplicates(["level", "split", "seed"])
    summary = ab.summarize(results)
    facts = report.factor_facts(summary, "f")
    assert facts["ref_level"] == "a" and facts["best_level"] == "b" and facts["worst_level"] == "c"
    assert facts["best_verdict"] == "reliably higher"
    assert all(type(v) in (str, float, int) for v in facts.values())
    lists = report.verdict_lists(summary, titles={"f": "the f factor"})
    assert lists == {"better": "the f factor", "worse": "none", "within": "none"}
    with pytest.raises(KeyError):
        report.factor_facts(summary, "g")


def test_noise_table():
    seeds = _fake_results(np.zeros(5), folds=False)
    folds = _fake_results(np.zeros(5), folds=True)
    table = ab.noise_table(seeds[seeds["reference"]], folds[folds["reference"]])
    assert list(table["n"]) == [5, 5] and table["icc_sd"].gt(0).all()


# ------------------------------------------------------------------------------- figures
def test_figures_draw(study):
    import matplotlib.pyplot as plt
    from clpips.book.plots import ablations as plots
    data, feats = study
    grid = ab.factor_variants("margin", "0.01,0.05") + ab.learning_curve_variants("6,all")
    out = ab.run_ablation(data, grid, folds=2, features={"alex": feats}, **FAST)
    raters = ab.run_per_rater(data, features=feats, **FAST)
    for fig in (plots.plot_factor(out, "margin"), plots.plot_factor(out, "margin", metric="delta_icc"),
                plots.plot_learning_curve(out), plots.plot_per_rater(raters),
                plots.plot_differences(ab.summarize(pd.concat([out, raters])))):
        assert fig.axes
        plt.close(fig)
    with pytest.raises(ValueError):
        plots.plot_factor(out, "lr")


def test_base_options_set_the_reference_levels():
    grid = ab.standard_grid(factors=("margin", "layers", "project"), base={"margin": 0.03, "layers": "0,1,2,3,4",
                                                                         "project": False})
    margins = [(v.level, v.reference) for v in grid if v.factor == "margin"]
    assert ("0.03", True) in margins and [lv for lv, _ in margins] == sorted([lv for lv, _ in margins], key=float)
    assert sum(r for _, r in margins) == 1
    assert [v.level for v in grid if v.factor == "layers" and v.reference] == ["all"]
    assert [v.level for v in grid if v.factor == "project" and v.reference] == ["off"]
    # the reference fit of every factor is the base fit
    keys = {v.key(margin=0.03, project=False) for v in grid if v.reference}
    assert len(keys) == 1


def test_default_rows_and_budget_limited(study):
    data, feats = study
    grid = ab.factor_variants("margin", "0.01,0.05") + ab.factor_variants("lr", "0.0001,0.001")
    out = ab.run_ablation(data, grid, folds=2, features={"alex": feats}, epochs=2, patience=5, batch_size=64)
    rows = ab.default_fit_rows(out)
    assert len(rows) == 2 and rows["reference"].all()
    limited = ab.budget_limited(out, share=0.0)
    assert set(limited.columns) == {"factor", "level", "share"}
    assert (out["best_epoch"] <= 2).all()
    assert len(ab.budget_limited(out.assign(best_epoch=1))) == 0
    assert len(ab.budget_limited(out.assign(best_epoch=2))) == 4


def test_budget_note():
    rows = _fake_results(np.zeros(3)).assign(best_epoch=30, options=json.dumps({"epochs": 30}))
    assert report.budget_note(rows.assign(best_epoch=3)) == "none"
    assert report.budget_note(rows) == "f a, f b"
    note = report.budget_note(rows, max_listed=1)
    assert note.startswith("2 of the 2 levels, the default fit among them,")


def test_drop_shared_pairs_and_runner_option(fit_calls):
    # every image is a target and a candidate of the others, as in mur92
    images = [f"i{i}.png" for i in range(8)]
    rows = [{"set_id": f"s{t}", "target": t_img, "candidate": c, "rater": "r", "rank": j + 1}
            for t, t_img in enumerate(images) for j, c in enumerate(x for x in images if x != t_img)]
    table = pd.DataFrame(rows)
    train, test = ab.replicates(table)[0].train, ab.replicates(table)[0].test
    kept = drop_shared_pairs(train, test)
    # direct loop: a training row goes when its unordered image pair is a held-out row's pair
    held_pairs = {frozenset(p) for p in zip(test["target"], test["candidate"])}
    n_shared = sum(frozenset(p) in held_pairs for p in zip(train["target"], train["candidate"]))
    assert n_shared > 0 and len(kept) == len(train) - n_shared
    # no held-out (target, candidate) pair is in training in either orientation
    held = set(zip(test["target"], test["candidate"]))
    assert not {(c, t) for t, c in zip(kept["target"], kept["candidate"])} & held
    gen = torch.Generator().manual_seed(0)
    keys = [(t, c) for t, c in zip(table["target"], table["candidate"])]
    feats = PairFeatures(keys=keys, matrix=torch.rand(len(keys), DIM, generator=gen) * 0.01, net="alex",
                         extracted=0)
    data = SimpleNamespace(table=table, name="toy")
    ab.run_ablation(data, ab.factor_variants("margin", "0.05"), features={"alex": feats},
                    exclude_shared_pairs=True, **FAST)
    assert not set(fit_calls[-1]["table"]["candidate"]) & set(test["target"])
    fit_calls.clear()
    ab.run_per_rater(data, features=feats, exclude_shared_pairs=True, **FAST)
    assert fit_calls and all(not set(c["table"]["candidate"]) & set(test["target"]) for c in fit_calls)


def test_report_table():
    summary = ab.summarize(_fake_results(np.array([0.05, 0.06, 0.04, 0.05, 0.055])))
    table = report.report_table(summary, titles={"f": "the f factor"})
    assert list(table.index) == [("the f factor", "a"), ("the f factor", "b")]
    assert table.loc[("the f factor", "a"), "95% interval"] == "(reference)"
    low, high = summary.iloc[1][["diff_low", "diff_high"]]
    assert table.loc[("the f factor", "b"), "95% interval"] == f"{low:+.3f} to {high:+.3f}"
    assert table.loc[("the f factor", "b"), "verdict"] == "higher"


@pytest.mark.float_sensitive
def test_scores_equal_evaluate_alignment(study):
    from clpips.evaluate import alignment, score_rankings
    data, feats = study
    test = ab.replicates(data.table)[0].test
    for how in ("lpips", "ones", "random"):
        # seed 4: seed 3's random weights left 3 held-out neighbours within float32's rounding of each other
        w = initial_weight_vector("alex", how, seed=4)
        ref = alignment(score_rankings(test, feats, {"m": w}), "m")
        got = runner._scores(test, feats, w)
        held_out_ranks(test, feats, w)        # the two products (matrix-matrix, matrix-vector) rank alike, so
        # both call rank_scores on one column of the same ranks: the same arithmetic, the same numbers
        assert (got["icc"], got["icc_ci_low"], got["icc_ci_high"], got["rho"], got["tau"]) == \
            (ref["icc_A_k"], ref["icc_A_k_ci_low"], ref["icc_A_k_ci_high"], ref["spearman"], ref["kendall"]), how


@pytest.mark.float_sensitive
def test_fit_together_equals_train_fit(study):
    """The batched fits of the runners and the personal study (batched_fits.fit_together: one fit_many
    call, then the early-stopping selection) keep the weights, best epoch, number of epochs and
    training pairs that train.fit keeps, request by request."""
    data, feats = study
    train_rows = ab.replicates(data.table)[0].train
    small = ab.subsample_rankings(train_rows, 10, seed=[0, 1])
    options = {"epochs": 8, "patience": 2, "batch_size": 32}
    requests = [{"table": train_rows, "seed": 0, **options},
                {"table": train_rows, "seed": 0, "margin": 0.01, **options},
                {"table": train_rows, "seed": 0, "lr": 0.01, **options},
                {"table": train_rows, "seed": 0, "layers": "1,4", "init": "ones", **options},
                {"table": train_rows, "seed": 0, "init": "random", "project": False, **options},
                {"table": train_rows, "seed": 0, "loss": "logistic", "lr": 0.01, **options},
                {"table": train_rows, "seed": 3, **options},
                {"table": train_rows, "seed": 0, "rater": "b", **options},
                {"table": small, "seed": 1, **options}]
    # in float64 (clpips.train.compute_dtype), so that both fits are the same to float64's rounding
    feats = PairFeatures(keys=feats.keys, matrix=feats.matrix.double(), net=feats.net, extracted=0)
    got = batched_fits.fit_together(data, [{**r, "features": feats} for r in requests])
    early = False
    for request, result in zip(requests, got):
        request = dict(request)
        ref = train.fit(data, request.pop("table"), features=feats, progress=False, **request)
        assert (result.best_epoch, result.epochs_run) == (ref.best_epoch, len(ref.history)), request
        assert_same_fit(result.weights, ref.weights, str(request))          # iterative_bound, float64
        assert torch.equal(result.initial_weights, ref.initial_weights)
        assert result.n_train_pairs == ref.config["n_train_pairs"]
        early |= result.epochs_run < 8
    assert early and len({r.seconds for r in got}) == 1  # the batch's time, shared equally
    with pytest.raises(ValueError):
        batched_fits.fit_together(data, [{"table": train_rows, "features": feats, "l2": 0.1}])


@pytest.mark.float_sensitive
def test_scores_of_many_vectors_equal_one_at_a_time(study):
    data, feats = study
    test = ab.replicates(data.table)[0].test
    weights = {how: initial_weight_vector("alex", how, seed=2) for how in ("lpips", "ones", "random", "uniform")}
    together = runner._scores_many(test, feats, weights)
    for name, w in weights.items():
        alone = runner._scores(test, feats, w)
        # the same ranks (held_out_ranks); their ICC and rho batched or alone: float64 bounds; Kendall's tau
        # is scipy's per column either way
        metric = held_out_ranks(test, feats, w)
        icc_tol = icc_bound(np.column_stack([test["rank"].to_numpy(float), metric]))["ICC(A,k)"]
        rho_tol = spearman_bound(test["rank"], metric)
        for key, tol in (("icc", icc_tol["ICC"]), ("icc_ci_low", icc_tol["ci_low"]),
                         ("icc_ci_high", icc_tol["ci_high"]), ("rho", rho_tol)):
            assert together[name][key] == pytest.approx(alone[key], abs=tol), (name, key)
        assert together[name]["tau"] == alone["tau"], name


def test_every_public_name_is_importable_from_the_package():
    for name in ab.__all__:
        assert getattr(ab, name) is not None, name
    assert not hasattr(ab, "factor_facts"), "the chapter's words are clpips.book.report's alone"
