"""The dataset chapter's figure data (on hand-made tables with known answers) and its figures."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from scipy import stats  # noqa: E402

from clpips import datasets  # noqa: E402
from clpips.book import labels
from clpips.book import summaries
from clpips.book import truth# noqa: E402
from clpips.book.plots import datasets as plots  # noqa: E402

STUDY = Path(__file__).parent / "data" / "study" / "rankings.csv"


def ranking_table(ranks_by_rater: dict[str, list[float]], set_id: str = "s1", target: str = "t.png") -> pd.DataFrame:
    """One set (candidates c0.png, c1.png...), ranked by each rater."""
    return pd.DataFrame([(set_id, target, f"c{c}.png", rater, rank)
                         for rater, ranks in ranks_by_rater.items() for c, rank in enumerate(ranks)],
                        columns=["set_id", "target", "candidate", "rater", "rank"])


@pytest.fixture
def categories() -> pd.DataFrame:
    return pd.DataFrame({"image": ["t.png", "u.png", "c0.png", "c1.png", "c2.png", "c3.png"],
                         "category": ["face", "plant", "face", "body", "face", "object"]})


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


# ----------------------------------------------------------------------------- figure data
def test_same_category(categories):
    table = ranking_table({"a": [1, 2, 3, 4]})
    same = labels.same_category(table, categories)
    assert same.tolist() == [True, False, True, False] and same.name == "same_category"
    with pytest.raises(ValueError, match="no 'category'"):
        labels.same_category(table, categories.iloc[:3])


def test_top_rank_share(categories):
    table = pd.concat([ranking_table({"a": [2, 1, 3, 4], "b": [1, 2, 3, 4]}),
                       ranking_table({"a": [1, 2, 3, 4]}, set_id="s2", target="u.png")], ignore_index=True)
    top = labels.top_rank_share(table, labels.same_category(table, categories)).set_index(["set_id", "rater"])
    assert top.loc[("s1", "a"), "top_flagged"] == False  # noqa: E712 (rank 1 is c1, a body)
    assert top.loc[("s1", "b"), "top_flagged"] == True  # noqa: E712 (rank 1 is c0, a face)
    assert top.loc[("s1", "a"), "chance"] == pytest.approx(2 / 4)
    assert top.loc[("s2", "a"), "n_flagged"] == 0 and top.loc[("s2", "a"), "chance"] == 0


def test_category_mean_rank(categories):
    table = ranking_table({"a": [1, 2, 3, 4], "b": [3, 4, 1, 2]})
    mean = labels.category_mean_rank(table, categories)
    assert mean.loc["face", "face"] == pytest.approx((1 + 3 + 3 + 1) / 4)
    assert mean.loc["face", "object"] == pytest.approx(3)


def test_noise_ceiling_bounds():
    rng = np.random.default_rng(0)
    table = pd.concat([ranking_table({r: list(rng.permutation(5) + 1) for r in "abcd"}, set_id=f"s{i}")
                       for i in range(6)] + [ranking_table({"a": [1, 2]}, set_id="solo")], ignore_index=True)
    bounds = summaries.noise_ceiling_bounds(table)
    assert set(bounds["set_id"]) == {f"s{i}" for i in range(6)}        # one-rater sets are left out
    overall = summaries.noise_ceiling(table).set_index("rater").loc["all", "rho"]
    assert bounds["lower"].mean() == pytest.approx(overall)
    one = table.loc[table["set_id"] == "s0"].pivot(index="candidate", columns="rater", values="rank")
    row = bounds.set_index(["set_id", "rater"]).loc[("s0", "b")]
    assert row["lower"] == pytest.approx(stats.spearmanr(one["b"], one.drop(columns="b").mean(axis=1)).statistic)
    assert row["upper"] == pytest.approx(stats.spearmanr(one["b"], one.mean(axis=1)).statistic)
    assert summaries.noise_ceiling_bounds(ranking_table({"a": [1, 2]})).empty


@pytest.fixture
def tiny_study():
    """Two raters in two groups, one set each of three candidates; attributes x, y."""
    table = pd.DataFrame({
        "set_id": ["s1"] * 3 + ["s2"] * 3, "target": ["t.png"] * 6,
        "candidate": ["a.png", "b.png", "c.png", "d.png", "e.png", "f.png"],
        "rater": ["r1"] * 3 + ["r2"] * 3, "rank": [1, 2, 3, 3, 1, 2]})
    info = pd.DataFrame({"image": ["t.png", "a.png", "b.png", "c.png", "d.png", "e.png", "f.png"],
                         "x": [0, 0, 0, 1, 0, 1, 1], "y": [0, 0, 1, 0, 0, 1, 1]})
    weights = pd.DataFrame({"rater": ["r1", "r2"], "group": ["g1", "g2"], "x": [0.9, 0.2], "y": [0.1, 0.8]})
    group_weights = pd.DataFrame({"group": ["g1", "g2"], "x": [0.5, 0.4], "y": [0.5, 0.6]})
    return table, info, weights, group_weights


def test_attribute_matches(tiny_study):
    table, info, _, _ = tiny_study
    m = truth.attribute_matches(table, info, ["x", "y"])
    assert m["n_match"].tolist() == [2, 1, 1, 2, 0, 0]
    assert m["x"].tolist() == [True, True, False, True, False, False]
    with pytest.raises(ValueError, match="lacks attributes"):
        truth.attribute_matches(table, info.iloc[:-1], ["x", "y"])


def test_truth_agreement(tiny_study):
    table, info, weights, group_weights = tiny_study
    m = truth.attribute_matches(table, info, ["x", "y"])
    agreement = truth.truth_agreement(table, m, weights, group_weights).set_index("set_id")
    assert list(agreement.columns) == ["rater", "group", *truth.WEIGHTINGS]
    # s1, rater r1 (x weighs 0.9): utilities a=1.0, b=0.9, c=0.1 -> same order as the ranks 1, 2, 3
    assert agreement.loc["s1", "own weights"] == pytest.approx(1.0)
    # equal weights: a=1, b=0.5, c=0.5 -> tie; scipy on the same values
    expected = stats.spearmanr([1, 2, 3], [-1.0, -0.5, -0.5]).statistic
    assert agreement.loc["s1", "equal weights"] == pytest.approx(expected)
    # s2, rater r2: d matches both attributes (utility 1), e and f neither (0, tied); ranks 3, 1, 2
    own = stats.spearmanr([3, 1, 2], [-1.0, 0.0, 0.0]).statistic
    assert agreement.loc["s2", "own weights"] == pytest.approx(own)
    assert agreement.loc["s2", "group"] == "g2"


def test_truth_agreement_refuses_shared_sets(tiny_study):
    table, info, weights, group_weights = tiny_study
    s1 = table.loc[table["set_id"] == "s1"]
    shared = pd.concat([s1, s1.assign(rater="r2")], ignore_index=True)     # two raters of one set
    with pytest.raises(ValueError, match="one rater per set"):
        truth.truth_agreement(shared, truth.attribute_matches(shared, info, ["x", "y"]), weights, group_weights)


# ----------------------------------------------------------------------------- figures
def test_plot_ranking_sets():
    study = datasets.from_csv(STUDY)
    views = [plots.SetView(study, "s1", "alice", title="alice", notes={"images/green.png": "green"},
                           highlight={"images/green.png": True}),
             plots.SetView(study, "s2", "alice")]
    fig = plots.plot_ranking_sets(views)
    assert isinstance(fig, Figure) and len(fig.axes) == 2 * 4              # target + up to 3 candidates per row
    assert fig.axes[1].get_title() == "rank 1"
    with pytest.raises(ValueError, match="no ranking"):
        plots.plot_ranking_sets([plots.SetView(study, "s2", "bob")])


def test_plot_category_ranks_agreement_and_truth(categories, tiny_study):
    table = ranking_table({"a": [1, 2, 3, 4], "b": [2, 1, 4, 3], "c": [4, 3, 2, 1]})
    same = labels.same_category(table, categories)
    dist = summaries.rank_distribution(table.assign(same_category=same), "same_category")
    fig = plots.plot_category_ranks(dist, "same_category", labels.category_mean_rank(table, categories), k=4)
    assert isinstance(fig, Figure) and len(fig.axes) == 3                  # two panels and a colour bar
    fig = plots.plot_agreement(summaries.rater_agreement(table), summaries.noise_ceiling_bounds(table))
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    study, info, weights, group_weights = tiny_study
    m = truth.attribute_matches(study, info, ["x", "y"])
    fig = plots.plot_truth_agreement(study, m, truth.truth_agreement(study, m, weights, group_weights))
    assert isinstance(fig, Figure) and len(fig.axes) == 2
