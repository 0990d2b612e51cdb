"""Figure data and figures of the training (03), evaluation (04) and bootstrap (05) chapters,
the target (cluster) bootstrap and the Spearman–Brown identity they rely on."""
from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402
from scipy.stats import rankdata, spearmanr  # noqa: E402

from clpips.book import layer_weights
from clpips.book import paper
from clpips.book import report
from clpips.book import set_scores# noqa: E402
from clpips.evaluate import alignment, alignment_table, ranking_ids, within_ranking_ranks  # noqa: E402
from clpips.apps.outputs import bootstrap_summary  # noqa: E402
from clpips.book.bootstrap_check import spearman_brown_check  # noqa: E402
from clpips.experiment import bootstrap_result  # noqa: E402
from clpips.stats import icc_ak_from_rho as spearman_brown_icc  # noqa: E402
from clpips.book.history import history_with_start  # noqa: E402
from clpips.model import CHANNELS  # noqa: E402
from clpips.book.plots import evaluation as pe  # noqa: E402
from clpips.book.plots import training as pt  # noqa: E402
from clpips.stats import icc_from_matrix, metric_statistics  # noqa: E402
from helpers import icc_ak as _icc_ak


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _scored(n_targets=6, raters=("r1", "r2", "r3"), k=6, seed=0) -> pd.DataFrame:
    """A held-out-like table: every rater ranks the same k candidates of each target (like mur92);
    metric a is noisier than metric b; ranks untied."""
    rng = np.random.default_rng(seed)
    rows = []
    for t in range(n_targets):
        truth = rng.normal(size=k)
        dist_a = truth + rng.normal(0, 1.5, k)
        dist_b = truth + rng.normal(0, 0.7, k)
        for r in raters:
            noisy = truth + rng.normal(0, 0.5, k)
            ranks = noisy.argsort().argsort() + 1
            for c in range(k):
                rows.append({"set_id": f"s{t}", "target": f"t{t}.png", "candidate": f"c{t}_{c}.png", "rater": r,
                             "rank": int(ranks[c]), "lpips": dist_a[c], "clpips": dist_b[c]})
    out = pd.DataFrame(rows)
    out["ranking"] = ranking_ids(out)
    return out


# =========================================================================== training figure data
def test_channel_weights_and_layer_summary():
    before = np.concatenate([np.full(c, 1.0) for c in CHANNELS["alex"]])
    before[:3] = 0.0                                   # 3 channels of layer 0 are 0 in "LPIPS"
    after = before.copy()
    after[3:5] = 0.0                                   # 2 pinned in layer 0
    after[0] = 0.5                                     # 1 released
    after[64:64 + 192] *= 3                            # layer 1 triples
    ch = layer_weights.channel_weights(before, after)
    assert len(ch) == 1152 and ch["pinned"].sum() == 2 and ch["released"].sum() == 1
    summary = layer_weights.layer_summary(ch)
    assert list(summary["layer"]) == [0, 1, 2, 3, 4, "all"]
    layers = summary[summary["layer"] != "all"]
    assert layers["share_before"].sum() == pytest.approx(1) and layers["share_after"].sum() == pytest.approx(1)
    assert layers["share_change"].sum() == pytest.approx(0, abs=1e-12)
    assert summary.iloc[1]["share_change"] > 0 > summary.iloc[2]["share_change"]
    total = summary.iloc[-1]
    assert (total["zero_before"], total["zero_after"], total["pinned"], total["released"]) == (3, 4, 2, 1)
    assert total["channels"] == 1152 and total["share_after"] == pytest.approx(1)
    with pytest.raises(ValueError, match="1152"):
        layer_weights.channel_weights(before[:10], after[:10])


def test_history_with_start_scores_the_starting_weights_on_the_fit_pairs():
    """Epoch 0 uses the fit's own train/validation pairs: with a vanishing learning rate, epoch 1 equals it."""
    from types import SimpleNamespace

    import torch

    from clpips.features import PairFeatures
    from clpips.train import fit
    rng = np.random.default_rng(0)
    rows = []
    for t in range(10):
        for r in ("r1", "r2"):
            order = rng.permutation(5) + 1
            rows += [{"set_id": f"s{t}", "target": f"t{t}", "candidate": f"c{t}_{c}", "rater": r, "rank": int(order[c])}
                     for c in range(5)]
    table = pd.DataFrame(rows)
    keys = list(dict.fromkeys(zip(table["target"], table["candidate"])))
    features = PairFeatures(keys=keys, matrix=torch.rand(len(keys), 1152), net="alex", extracted=0)
    result = fit(None, table, features=features, lr=1e-12, epochs=1, val_size=0.3, seed=2, progress=False)
    hist = history_with_start(SimpleNamespace(result=result, features=features, train_table=table))
    assert list(hist["epoch"]) == [0, 1]
    for col in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
        assert hist.at[0, col] == pytest.approx(hist.at[1, col], abs=1e-6), col
    assert isinstance(pt.plot_learning_curves(hist, best_epoch=1), Figure)


def test_training_figures():
    hist = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [0.05, 0.04, 0.039], "train_accuracy": [0.6, 0.62, 0.63],
                         "val_loss": [0.05, 0.045, 0.046], "val_accuracy": [0.58, 0.6, 0.6]})
    assert isinstance(pt.plot_learning_curves(hist, best_epoch=2), Figure)
    rng = np.random.default_rng(0)
    before = rng.uniform(0, 1, 1152)
    after = np.clip(before + rng.normal(0, 0.3, 1152), 0, None)
    ch = layer_weights.channel_weights(before, after)
    assert isinstance(pt.plot_channel_weights(ch), Figure)
    assert isinstance(pt.plot_layer_shares(layer_weights.layer_summary(ch)), Figure)


# =========================================================================== evaluation figure data
def test_per_ranking_spearman_matches_scipy_and_alignment():
    scored = _scored()
    per = set_scores.per_ranking_spearman(scored, ["lpips", "clpips"])
    assert len(per) == scored["ranking"].nunique()
    for _, row in per.sample(5, random_state=0).iterrows():
        part = scored[scored["ranking"] == row["ranking"]]
        assert row["lpips"] == pytest.approx(spearmanr(part["rank"], part["lpips"])[0], abs=1e-12)
        assert row["clpips"] == pytest.approx(spearmanr(part["rank"], part["clpips"])[0], abs=1e-12)
    assert per["clpips"].mean() == pytest.approx(alignment(scored, "clpips")["spearman_per_ranking"], abs=1e-12)


def test_set_gains_and_example_rule():
    scored = _scored()
    per = set_scores.per_ranking_spearman(scored, ["lpips", "clpips"])
    gains = set_scores.set_gains(per)
    assert list(gains["gain"]) == sorted(gains["gain"], reverse=True)
    assert gains["n_rankings"].eq(3).all()
    s0 = per[per["set_id"] == "s0"]
    row = gains.set_index("set_id").loc["s0"]
    assert row["gain"] == pytest.approx(s0["clpips"].mean() - s0["lpips"].mean())
    chosen = set_scores.example_sets(gains)
    assert chosen == {"gain": gains["set_id"].iloc[0], "loss": gains["set_id"].iloc[-1]}
    # ties go to the first set id
    tied = pd.DataFrame({"set_id": ["b", "a", "c"], "gain": [0.2, 0.2, -0.1]})
    assert set_scores.example_sets(tied) == {"gain": "a", "loss": "c"}


def test_set_orders():
    scored = _scored()
    orders = set_scores.set_orders(scored, "s1", ["lpips", "clpips"])
    part = scored[scored["set_id"] == "s1"]
    assert list(orders["human_mean_rank"]) == sorted(orders["human_mean_rank"])
    assert orders["n_raters"].eq(3).all()
    assert sorted(orders["lpips_rank"]) == list(range(1, 7))
    best = part.loc[part["lpips"].idxmin(), "candidate"]
    assert orders.at[best, "lpips_rank"] == 1
    with pytest.raises(ValueError, match="no rows"):
        set_scores.set_orders(scored, "nope", ["lpips"])


def test_table3_and_table4_layout():
    scored = _scored()
    table = alignment_table(scored, ["lpips", "clpips"])
    reported = {"LPIPS (paper)": {"spearman_raw": paper.value("lpips_spearman"),
                                  "icc_A_k": paper.value("lpips_icc_A_k")}}
    t3 = report.table3(table, reported, cluster_ci={"clpips": (0.1, 0.25)})
    assert list(t3.index) == ["LPIPS (AlexNet, v0.1)", "CLPIPS (AlexNet, fine-tuned)", "LPIPS (paper)"]
    assert t3.loc["LPIPS (paper)", "ρ raw pooled (paper)"] == "0.432" and t3.loc["LPIPS (paper)", "p (ρ ranks)"] == "—"
    assert t3.loc["CLPIPS (AlexNet, fine-tuned)", "ICC(A,k) [F 95% CI, rows independent]"].count("[") == 1
    assert t3.loc["CLPIPS (AlexNet, fine-tuned)", "[95% CI, targets resampled]"] == "[0.100, 0.250]"
    assert t3.loc["LPIPS (AlexNet, v0.1)", "[95% CI, targets resampled]"] == "—"
    assert t3.loc["LPIPS (AlexNet, v0.1)", "ρ raw pooled (paper)"] == f"{table.at['lpips', 'spearman_raw']:.3f}"
    res = bootstrap_result(scored, "lpips", "clpips", n_boot=200)
    bca = bootstrap_result(scored, "lpips", "clpips", n_boot=200, method="bca")
    t4 = report.table4({"ranking": res}, {"ranking": bca},
                   paper={"paper": {"statistic": "ΔICC(A,k)", "ci_low": 0.071, "ci_high": 0.10}})
    assert t4.index.tolist() == [("ranking", "ΔICC(A,k)"), ("ranking", "Δrho"), ("paper", "ΔICC(A,k)")]
    assert t4.loc[("paper", "ΔICC(A,k)"), "95% CI (percentile)"] == "[+0.071, +0.100]"


def test_evaluation_figures(tmp_path):
    scored = _scored(n_targets=3, k=4)
    for ref in set(scored["target"]) | set(scored["candidate"]):
        Image.new("RGB", (16, 16), (hash(ref) % 255, 80, 120)).save(tmp_path / ref)

    class Data:
        def open_image(self, ref):
            return Image.open(tmp_path / ref)

    table = alignment_table(scored, ["lpips", "clpips"])
    assert isinstance(pe.plot_alignment(table, ceiling=0.6), Figure)
    fig = pe.plot_orders(Data(), scored, "s0", rho={"lpips": 0.1, "clpips": 0.3})
    assert isinstance(fig, Figure) and len(fig.axes) == 3 * 5
    per = set_scores.per_ranking_spearman(scored, ["lpips", "clpips"])
    assert isinstance(pe.plot_rho_scatter(per, highlight=["s0"]), Figure)
    res = {"ranking": bootstrap_result(scored, "lpips", "clpips", n_boot=100)}
    assert isinstance(pe.plot_bootstrap(res, paper_ci=(0.071, 0.10)), Figure)


# =========================================================================== bootstrap by ranking and by target


def test_ranking_unit_equals_bootstrap_summary():
    """The ranking bootstrap against a direct resampling loop: resample b draws 18 rankings with
    replacement (numpy.random.default_rng(seed).integers, the documented draws of bootstrap_counts, the
    rankings in sorted id order); on the rows of the drawn rankings, each metric's ICC(A,k) of (human
    rank, the metric's rank within its ranking) and scipy's Spearman of the two, pooled. Δ = clpips -
    lpips; the 95% interval is the 2.5% and 97.5% quantiles of the 500 Δ's, p = (1 + #{Δ <= 0}) / 501.
    bootstrap_summary reports the same numbers."""
    # the ICC formula on a hand-worked table: rows (1, 1), (2, 3), (3, 2): MSR = 1.5, MSC = 0, MSE = 0.5,
    # ICC(A,k) = (1.5 - 0.5) / (1.5 - 0.5 / 3) = 0.75
    assert _icc_ak(np.array([[1.0, 1.0], [2.0, 3.0], [3.0, 2.0]])) == pytest.approx(0.75, abs=1e-15)
    scored = _scored()
    n_boot, seed = 500, 3
    res = bootstrap_result(scored, "lpips", "clpips", unit="ranking", n_boot=n_boot, seed=seed)
    ids = sorted(scored["ranking"].unique())
    assert list(res.set_ids) == ids and len(ids) == 18
    human, ranks = {}, {}
    for rid in ids:
        part = scored[scored["ranking"] == rid]
        human[rid] = part["rank"].to_numpy(float)
        ranks[rid] = {m: rankdata(part[m].to_numpy(float)) for m in ("lpips", "clpips")}

    def stats(drawn):
        h = np.concatenate([human[ids[i]] for i in drawn])
        out = {}
        for m in ("lpips", "clpips"):
            r = np.concatenate([ranks[ids[i]][m] for i in drawn])
            out[m] = (_icc_ak(np.column_stack([h, r])), spearmanr(h, r).statistic)
        return out

    draws = np.random.default_rng(seed).integers(0, len(ids), size=(n_boot, len(ids)))   # one block of <= 1,000
    boot = np.array([[s["clpips"][j] - s["lpips"][j] for j in (0, 1)] for s in map(stats, draws)])   # B x (icc, rho)
    np.testing.assert_allclose(res.distribution[["delta_icc", "delta_rho"]].to_numpy(), boot, rtol=0, atol=1e-10)
    full = stats(range(len(ids)))
    summary = bootstrap_summary(scored, "lpips", "clpips", n_boot=n_boot, seed=seed, unit="ranking")["differences"]
    for j, stat in enumerate(("ΔICC(A,k)", "Δrho")):
        expected = {"delta": full["clpips"][j] - full["lpips"][j],
                    "ci_low": np.quantile(boot[:, j], 0.025), "ci_high": np.quantile(boot[:, j], 0.975),
                    "p_value": (1 + np.sum(boot[:, j] <= 0)) / (n_boot + 1)}
        for key, value in expected.items():
            assert res.summary().at[stat, key] == pytest.approx(value, abs=1e-10), (stat, key)
            assert summary[stat][key] == pytest.approx(value, abs=1e-10), (stat, key)
    assert res.metric_a == "lpips" and res.metric_b == "clpips"


def test_target_unit_against_explicit_resamples():
    """Each resample equals the statistics of the table built by concatenating the drawn targets'
    rankings (fresh ranking ids for repeated draws)."""
    from clpips.stats import bootstrap_counts
    scored = _scored(n_targets=5, raters=("r1", "r2"), k=5, seed=2)
    res = bootstrap_result(scored, "lpips", "clpips", unit="target", n_boot=20, seed=7)
    targets = list(res.set_ids)
    assert targets == sorted(scored["target"].unique())
    counts = bootstrap_counts(len(targets), 20, 7)
    frame = scored.assign(a=within_ranking_ranks(scored, "lpips"), b=within_ranking_ranks(scored, "clpips"))
    for b in (0, 5, 19):
        parts = []
        for t, n in zip(targets, counts[b]):
            for copy in range(n):
                part = frame[frame["target"] == t].copy()
                part["ranking"] = part["ranking"] + f"#{copy}"
                parts.append(part)
        resample = pd.concat(parts, ignore_index=True)
        for col, key in (("a", "a"), ("b", "b")):
            stats = metric_statistics(resample, "ranking", "rank", col)
            assert res.distribution.at[b, f"icc_{key}"] == pytest.approx(stats["icc"], abs=1e-10)
            assert res.distribution.at[b, f"rho_{key}"] == pytest.approx(stats["rho"], abs=1e-10)


def test_target_unit_with_one_ranking_per_target_is_the_ranking_bootstrap():
    scored = _scored(n_targets=8, raters=("r1",), k=5, seed=4)
    by_target = bootstrap_result(scored, "lpips", "clpips", unit="target", n_boot=300, seed=1, method="bca")
    by_ranking = bootstrap_result(scored, "lpips", "clpips", unit="ranking", n_boot=300, seed=1, method="bca")
    pd.testing.assert_frame_equal(by_target.distribution, by_ranking.distribution, atol=1e-14, rtol=0)
    pd.testing.assert_frame_equal(by_target.summary(), by_ranking.summary(), atol=1e-14, rtol=0)


def test_target_unit_is_wider_when_raters_share_targets():
    scored = _scored(n_targets=12, raters=("r1", "r2", "r3", "r4"), k=6, seed=5)
    width = {}
    for unit in ("ranking", "target"):
        s = bootstrap_result(scored, "lpips", "clpips", unit=unit, n_boot=2000).summary().loc["ΔICC(A,k)"]
        width[unit] = s["ci_high"] - s["ci_low"]
    assert width["target"] > width["ranking"]


def test_bootstrap_result_rejects_bad_options():
    scored = _scored(n_targets=3)
    with pytest.raises(ValueError, match="unit"):
        bootstrap_result(scored, "lpips", "clpips", unit="rater")
    with pytest.raises(ValueError, match="method"):
        bootstrap_result(scored, "lpips", "clpips", method="basic")


def test_spearman_brown_identity_on_untied_ranks():
    scored = _scored()
    frame = scored.assign(m=within_ranking_ranks(scored, "lpips"))
    wide = np.column_stack([frame["rank"].to_numpy(float), frame["m"].to_numpy(float)])
    icc = float(icc_from_matrix(wide, "ICC(A,k)"))
    rho = spearmanr(frame["rank"], frame["m"])[0]
    assert icc == pytest.approx(float(spearman_brown_icc(rho, len(frame))), abs=1e-12)
    # and on every resample: ΔICC and Δrho share their sign, so the one-sided p-values agree
    res = bootstrap_result(scored, "lpips", "clpips", unit="target", n_boot=500)
    d = res.distribution
    assert (np.sign(d["delta_icc"]) == np.sign(d["delta_rho"])).all()
    assert res.p_values["ΔICC(A,k)"] == res.p_values["Δrho"]
    for unit in ("ranking", "target"):
        check = spearman_brown_check(bootstrap_result(scored, "lpips", "clpips", unit=unit, n_boot=300), scored)
        assert check["max_abs_error"] < 1e-12 and check["same_sign_share"] == 1.0 and check["p_equal"]


def test_spearman_brown_check_uses_each_resample_size():
    """Targets with different numbers of rankings: n varies between resamples and must be rebuilt."""
    scored = pd.concat([_scored(n_targets=4, raters=("r1", "r2", "r3"), seed=1),
                        _scored(n_targets=4, raters=("r1",), seed=2).assign(
                            set_id=lambda f: "u" + f["set_id"], target=lambda f: "u" + f["target"])])
    scored["ranking"] = ranking_ids(scored)
    check = spearman_brown_check(bootstrap_result(scored, "lpips", "clpips", unit="target", n_boot=200), scored)
    assert check["max_abs_error"] < 1e-12


# =========================================================================== the paper's numbers
def test_paper_values_and_derived():
    assert paper.value("clpips_spearman") == 0.524
    assert paper.printed("lpips_icc_A_k") == "0.60" and paper.printed("delta_icc_ci_high") == "0.10"
    for r in paper.REPORTED.values():
        assert float(r.printed) == r.value
    derived = paper.derived()
    assert derived["delta_icc_A_k"] == pytest.approx(0.08)
    assert derived["lpips_icc_from_rho"] == pytest.approx(2 * 0.432 / 1.432)
    assert set(paper.table()["where"]) == {"Table 3", "Table 4"}
    with pytest.raises(KeyError, match="known"):
        paper.value("nope")


# =========================================================================== clpips evaluate --baselines
def test_cli_evaluate_lists_baselines(mur92_mirror, monkeypatch, tmp_path, capsys):
    from clpips.apps.cli import main
    monkeypatch.setenv("CLPIPS_DATA_MIRROR", str(mur92_mirror))
    out = tmp_path / "table.json"
    assert main(["evaluate", "--dataset", "mur92", "--baselines", "l2,psnr,lpips_ones", "--json", str(out),
                 "--quiet"]) == 0
    heldout = json.loads(out.read_text())["heldout"]
    assert list(heldout) == ["lpips", "l2", "psnr", "lpips_ones"]
    assert heldout["l2"]["spearman"] == heldout["psnr"]["spearman"]  # same order of every set
    assert "lpips_ones" in capsys.readouterr().out
    with pytest.raises(SystemExit) as refused:          # refused while parsing, before any work
        main(["evaluate", "--dataset", "mur92", "--baselines", "nope", "--quiet"])
    assert refused.value.code == 2 and "--baselines" in capsys.readouterr().err
