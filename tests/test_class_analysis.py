"""Chapter 10's statistics of a class (clpips.book.class_analysis) against hand-worked numbers, pingouin and scipy.

The hand-worked class (``CLASS``), ranks of candidates listed in candidate order:

====  ================  =================  ===============  =====
set   s1 (a1 a2 a3)     s2 (b1 b2 b3)      s3 (c1 .. c4)    s4
====  ================  =================  ===============  =====
A     1 2 3             1 2 3              1 2 3 4
B     1 3 2             2 3 1              2 1 3 4
C     1 2 3             .                  .
D     .                 1 3 2              .
E     .                 .                  .                1 2 3
====  ================  =================  ===============  =====

C and D ranked one set each (partial students), E ranked only a set nobody else ranked (a student
with nothing to compare).
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pingouin as pg
import pytest
import torch
from scipy import stats as sps

from clpips.book import class_analysis as ca
from clpips.features import PairFeatures
from clpips.model import CHANNELS, initial_weight_vector
from tolerance import UNIT_ROUNDOFF, icc_ak_bound, icc_bound, mean_bound, spearman_bound

U32 = UNIT_ROUNDOFF[torch.float32]

RANKS = {("A", "s1"): [1, 2, 3], ("A", "s2"): [1, 2, 3], ("A", "s3"): [1, 2, 3, 4],
         ("B", "s1"): [1, 3, 2], ("B", "s2"): [2, 3, 1], ("B", "s3"): [2, 1, 3, 4],
         ("C", "s1"): [1, 2, 3], ("D", "s2"): [1, 3, 2], ("E", "s4"): [1, 2, 3]}
PREFIX = {"s1": "a", "s2": "b", "s3": "c", "s4": "e"}


def class_table() -> pd.DataFrame:
    rows = [{"set_id": s, "target": f"t{s}.png", "candidate": f"{PREFIX[s]}{i + 1}.png", "rater": r, "rank": rank}
            for (r, s), ranks in RANKS.items() for i, rank in enumerate(ranks)]
    return pd.DataFrame(rows).sample(frac=1.0, random_state=0).reset_index(drop=True)  # row order must not matter


CLASS = class_table()

#: the tolerance of this file's float64 rank statistics (two programs, or a program and a rational): above their
#: error bounds from tests/tolerance.py for these classes' sizes (test_small_lies_above_the_float64_bounds)
SMALL = 1e-12

# pingouin 0.7 on pandas 3 warns about its own use of dropna(inplace=True)
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.dropna:Warning")


# --------------------------------------------------------------------------- pairwise rho
def test_pairwise_rho_by_hand():
    """rho = 1 - 6 sum(d^2) / (n (n^2 - 1)) per set, averaged over the sets both students ranked:
    A-B: s1 d=(0,-1,1) -> 1 - 12/24 = 0.5; s2 d=(-1,-1,2) -> 1 - 36/24 = -0.5;
         s3 d=(-1,1,0,0) -> 1 - 12/60 = 0.8; mean (0.5 - 0.5 + 0.8) / 3 = 0.8 / 3.
    A-C: s1 identical -> 1.   B-C: s1 as A-B -> 0.5.   A-D: s2 d=(0,-1,1) -> 0.5.
    B-D: s2 d=(1,0,-1) -> 0.5.   C-D: no shared set -> NaN.   E: no set shared with anyone, not even a
    second ranking of s4 -> its row and column (its diagonal too) are NaN."""
    got = ca.pairwise_rho(CLASS)
    nan = np.nan
    expected = pd.DataFrame([[1.0, 0.8 / 3, 1.0, 0.5, nan],
                             [0.8 / 3, 1.0, 0.5, 0.5, nan],
                             [1.0, 0.5, 1.0, nan, nan],
                             [0.5, 0.5, nan, 1.0, nan],
                             [nan, nan, nan, nan, nan]], index=list("ABCDE"), columns=list("ABCDE"))
    assert list(got.index) == list("ABCDE") and list(got.columns) == list("ABCDE")
    np.testing.assert_allclose(got.to_numpy(float), expected.to_numpy(), rtol=0, atol=SMALL)


def test_pairwise_rho_equals_a_loop_of_scipy_spearman_on_a_random_class():
    """Students who ranked random subsets of the sets: each entry is the mean of scipy's rho over the
    sets both ranked (a direct loop) among the sets at least two students ranked (a student alone on
    every set they ranked has compared with nobody: NaN, diagonal included), NaN where they share none."""
    table = _random_class(seed=1)
    got = ca.pairwise_rho(table)
    students = sorted(table["rater"].unique())
    for a in students:
        for b in students:
            rhos = []
            for _, part in table.groupby("set_id"):
                x = part[part["rater"] == a].sort_values("candidate")["rank"].to_numpy(float)
                y = part[part["rater"] == b].sort_values("candidate")["rank"].to_numpy(float)
                if len(x) and len(y) and part["rater"].nunique() >= 2:
                    rhos.append(sps.spearmanr(x, y).statistic)
            if rhos:
                assert got.at[a, b] == pytest.approx(np.mean(rhos), abs=SMALL), (a, b)
            else:
                assert np.isnan(got.at[a, b]), (a, b)
    assert got.isna().to_numpy().any() and not got.isna().to_numpy().all()  # the class really is partial


def _random_class(seed: int, n_students: int = 6, n_sets: int = 5, k: int = 5) -> pd.DataFrame:
    """Each student ranks a random subset of the sets (one ranks a single set, one none shared)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_students):
        if i == 0:
            sets = [0]                                   # a partial student: one set
        elif i == n_students - 1:
            sets = [n_sets]                              # a set nobody else ranked
        else:
            sets = sorted(rng.choice(n_sets, size=int(rng.integers(2, n_sets + 1)), replace=False))
        for s in sets:
            for c, rank in enumerate(rng.permutation(k) + 1):
                rows.append({"set_id": f"s{s}", "target": f"t{s}.png", "candidate": f"c{s}_{c}.png",
                             "rater": f"student {i:02d}", "rank": int(rank)})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- ICC per set
def test_class_icc_by_hand():
    """ICC(A,1) = (MSR - MSE) / (MSR + (k-1) MSE + k/n (MSC - MSE)), ICC(A,k) = (MSR - MSE) / (MSR + (MSC - MSE)/n)
    on the candidates (n rows) x students (k columns) ranks; MSC = 0 here (every student's ranks are 1..n).

    s1 (A, B, C; rows 1 1 1 / 2 3 2 / 3 2 3): grand mean 2, row means 1, 7/3, 8/3: SSR = 3 (1 + 1/9 + 4/9) = 14/3,
       MSR = 7/3; SST = 6, SSE = 6 - 14/3 = 4/3, MSE = (4/3)/4 = 1/3:
       ICC(A,1) = 2 / (7/3 + 2/3 - 1/3) = 3/4; ICC(A,k) = 2 / (7/3 - 1/9) = 9/10.
    s2 (A, B, D; rows 1 2 1 / 2 3 3 / 3 1 2): row means 4/3, 8/3, 2: SSR = 3 (8/9) = 8/3, MSR = 4/3; SST = 6,
       SSE = 10/3, MSE = 5/6: ICC(A,1) = (1/2) / (4/3 + 5/3 - 5/6) = 3/13; ICC(A,k) = (1/2) / (4/3 - 5/18) = 9/19.
    s3 (A, B; rows 1 2 / 2 1 / 3 3 / 4 4): grand mean 2.5, row means 1.5 1.5 3 4: SSR = 2 (4.5) = 9, MSR = 3;
       SST = 10, SSE = 1, MSE = 1/3: ICC(A,1) = (8/3) / (3 + 1/3 - 1/6) = 16/19; ICC(A,k) = (8/3) / (3 - 1/12) = 32/35.
    s4: one student, no ICC."""
    got = ca.class_icc(CLASS)
    assert list(got.index) == ["s1", "s2", "s3"]
    assert got["n_students"].tolist() == [3, 3, 2] and got["k"].tolist() == [3, 3, 4]
    np.testing.assert_allclose(got["icc_A_1"], [3 / 4, 3 / 13, 16 / 19], rtol=0, atol=SMALL)
    np.testing.assert_allclose(got["icc_A_k"], [9 / 10, 9 / 19, 32 / 35], rtol=0, atol=SMALL)
    three = ca.class_icc(CLASS, min_students=3)
    assert list(three.index) == ["s1", "s2"]
    pd.testing.assert_frame_equal(three, got.loc[["s1", "s2"]])
    empty = ca.class_icc(CLASS[CLASS["rater"] == "E"])
    assert empty.empty and list(empty.columns) == ["n_students", "k", "icc_A_1", "icc_A_k"]


def _denominators(wide: np.ndarray) -> tuple[float, float]:
    """The denominators of ICC(A,1) and ICC(A,k) from the two-way ANOVA mean squares (n rows x k raters)."""
    n, k = wide.shape
    grand = wide.mean()
    msr = k * ((wide.mean(axis=1) - grand) ** 2).sum() / (n - 1)
    msc = n * ((wide.mean(axis=0) - grand) ** 2).sum() / (k - 1)
    sse = ((wide - grand) ** 2).sum() - (n - 1) * msr - (k - 1) * msc
    mse = sse / ((n - 1) * (k - 1))
    return msr + (k - 1) * mse + k / n * (msc - mse), msr + (msc - mse) / n


def test_class_icc_equals_pingouin_on_a_random_class():
    """pingouin's ICC(A,1) and ICC(A,k) per set, except where a denominator (a variance estimate) is not
    positive: there the ICC is undefined and NaN (clpips.stats.icc's documented rule; pingouin returns a
    number outside [-1, 1]). Seed 2 has such a set: students who disagree more than chance."""
    table = _random_class(seed=2)
    got = ca.class_icc(table)
    undefined = 0
    for set_id, part in table.groupby("set_id"):
        if part["rater"].nunique() < 2:
            assert set_id not in got.index
            continue
        ref = pg.intraclass_corr(part, targets="candidate", raters="rater", ratings="rank").set_index("Type")
        wide = part.pivot(index="candidate", columns="rater", values="rank").to_numpy(float)
        bound = icc_bound(wide)                        # how far two float64 programs may lie (tests/tolerance.py)
        for column, label, den in zip(("icc_A_1", "icc_A_k"), ("ICC(A,1)", "ICC(A,k)"), _denominators(wide)):
            if den > 0:
                assert got.at[set_id, column] == pytest.approx(ref.at[label, "ICC"], abs=bound[label]["ICC"]), \
                    (set_id, column)
            else:
                assert np.isnan(got.at[set_id, column]), (set_id, column)
                undefined += 1
        assert got.at[set_id, "n_students"] == part["rater"].nunique()
    assert len(got) >= 3 and undefined >= 1


# --------------------------------------------------------------------------- each student against the others
def test_consensus_scores_by_hand():
    """C ranked s1 only; the others' (A, B) mean ranks of a1 a2 a3 are 1, 2.5, 2.5. C's ranks 1 2 3 against
    them: centred (-1, 0, 1) and (-1, 0.5, 0.5): rho = 1.5 / sqrt(2 * 1.5) = sqrt(3)/2. ICC(A,k) of the
    rows (1, 1), (2, 2.5), (3, 2.5): grand mean 2, SSR = 2 (1 + 1/16 + 9/16) = 3.25, MSR = 1.625,
    MSC = 0, SST = 3.5, SSE = 0.25, MSE = 0.125: (1.625 - 0.125) / (1.625 - 0.125/3) = 18/19.
    D ranked s2 only; A and B's mean ranks of b1 b2 b3 are 1.5, 2.5, 2: the order 1 3 2, D's own: rho =
    ICC = 1. E shares no set: no row."""
    got = ca.consensus_scores(CLASS)
    assert list(got.index) == ["A", "B", "C", "D"]
    assert got["n_rankings"].tolist() == [3, 3, 1, 1]
    for who, rho, icc in (("C", np.sqrt(3) / 2, 18 / 19), ("D", 1.0, 1.0)):
        _, _, _, (rho_tol, icc_tol) = _consensus_reference(CLASS, who)   # float64 bounds of these rows
        assert got.at[who, "spearman"] == pytest.approx(rho, abs=rho_tol), who
        assert got.at[who, "icc_A_k"] == pytest.approx(icc, abs=icc_tol), who


def _consensus_reference(table: pd.DataFrame, student: str) -> tuple[float, float, int, tuple[float, float]]:
    """Direct loop: per set the student shares, the others' mean rank of each candidate, ranked within the
    set (ties averaged); pooled scipy Spearman and pingouin ICC(A,k) of (student's rank, that rank) rows."""
    mine, theirs, n_sets = [], [], 0
    for _, part in table.groupby("set_id"):
        own = part[part["rater"] == student].set_index("candidate")["rank"]
        others = part[part["rater"] != student]
        if own.empty or others.empty:
            continue
        n_sets += 1
        mean = others.groupby("candidate")["rank"].mean().reindex(own.index)
        mine += own.astype(float).tolist()
        theirs += sps.rankdata(mean.to_numpy(float)).tolist()
    rho = sps.spearmanr(mine, theirs).statistic
    long = pd.DataFrame({"item": np.tile(np.arange(len(mine)), 2), "who": np.repeat(["me", "class"], len(mine)),
                         "y": mine + theirs})
    icc = pg.intraclass_corr(long, "item", "who", "y").set_index("Type").at["ICC(A,k)", "ICC"]
    # how far another float64 program's rho and ICC(A,k) of the same rows may lie (tests/tolerance.py)
    return float(rho), float(icc), n_sets, (spearman_bound(mine, theirs), icc_ak_bound(mine, theirs))


def test_consensus_scores_equal_a_direct_loop():
    for table in (CLASS, _random_class(seed=3)):
        got = ca.consensus_scores(table)
        students = sorted(table["rater"].unique())
        expected = []
        for s in students:
            shared = table[table["set_id"].isin(table.loc[table["rater"] != s, "set_id"])]
            if (shared["rater"] == s).sum() < 3:
                continue                          # nothing (or under 3 rows) shared with the others: no row
            expected.append(s)
            rho, icc, n_sets, (rho_tol, icc_tol) = _consensus_reference(table, s)
            assert got.at[s, "spearman"] == pytest.approx(rho, abs=rho_tol), s
            assert got.at[s, "icc_A_k"] == pytest.approx(icc, abs=icc_tol), s
            assert got.at[s, "n_rankings"] == n_sets, s
        assert list(got.index) == expected
        assert students[-1] not in expected       # the student with no shared set


# --------------------------------------------------------------------------- the simulated class
DIM = sum(CHANNELS["alex"])


def _design(n_sets: int = 4, k: int = 5, seed: int = 0):
    """A study of ``n_sets`` sets of ``k`` candidates with random positive pair features (no images)."""
    rng = np.random.default_rng(seed)
    rows, keys = [], []
    for s in range(n_sets):
        for c in range(k):
            keys.append((f"t{s}.png", f"c{s}_{c}.png"))
            for rater in ("p1", "p2"):               # the study's own raters: the simulation ignores them
                rows.append({"set_id": f"s{s}", "target": keys[-1][0], "candidate": keys[-1][1], "rater": rater,
                             "rank": c + 1})
    matrix = torch.from_numpy(rng.gamma(2.0, 0.01, size=(len(keys), DIM))).float()
    return SimpleNamespace(table=pd.DataFrame(rows)), PairFeatures(keys=keys, matrix=matrix, net="alex", extracted=0)


def test_simulate_class_without_noise_ranks_by_each_students_weights():
    design, features = _design()
    sets = ["s0", "s2", "s3"]
    table, truth = ca.simulate_class(design, features, sets, n_students=3, seed=5, noise=0.0)
    base = initial_weight_vector("alex", "lpips").numpy().astype(float)
    # the class's weights: LPIPS's, layer l scaled by the documented default taste (0.5, 0.7, 1, 1.5, 2)
    start = 0
    for taste, width in zip((0.5, 0.7, 1.0, 1.5, 2.0), CHANNELS["alex"]):
        block = slice(start, start + width)
        # the same float64 product, rounded to float32 once: relative u32
        np.testing.assert_allclose(truth["class"][block].numpy(), taste * base[block], rtol=U32, atol=0)
        for name in ("student 01", "student 02", "student 03"):    # one positive personal factor per layer
            mine, common = truth[name][block].numpy().astype(float), truth["class"][block].numpy().astype(float)
            factor = mine.sum() / common.sum()
            # mine / common = the factor up to two float32 roundings (u32 each); the float64 estimate of the
            # factor, a weighted mean of those ratios, within the same 2 u32: 4 u32 in all (float64's ~1e-16 aside)
            assert factor > 0 and np.allclose(mine, factor * common, rtol=4 * U32 + 1e-15, atol=0)
        start += width
    assert set(truth) == {"class", "student 01", "student 02", "student 03"}
    assert list(table.columns) == ["set_id", "target", "candidate", "rater", "rank"]
    assert len(table) == 3 * 3 * 5 and set(table["set_id"]) == set(sets)
    for (student, set_id), part in table.groupby(["rater", "set_id"]):
        assert sorted(part["rank"]) == [1, 2, 3, 4, 5]
        w = truth[student].numpy().astype(float)
        dist = [float(features.matrix[features.index[(t, c)]].numpy().astype(float) @ w)
                for t, c in zip(part["target"], part["candidate"])]
        assert part["rank"].tolist() == list(sps.rankdata(dist).astype(int)), (student, set_id)


def test_simulate_class_is_seeded_and_noise_and_taste_matter():
    design, features = _design(seed=1)
    sets = ["s0", "s1", "s2", "s3"]
    a, _ = ca.simulate_class(design, features, sets, n_students=4, seed=2)
    b, _ = ca.simulate_class(design, features, sets, n_students=4, seed=2)
    pd.testing.assert_frame_equal(a, b)
    other, _ = ca.simulate_class(design, features, sets, n_students=4, seed=3)
    assert not a["rank"].equals(other["rank"])
    # personal_sd = 0 and no noise: every student is the class, so they all rank alike (rho = 1)
    same, truth = ca.simulate_class(design, features, sets, n_students=3, seed=2, personal_sd=0.0, noise=0.0)
    rho = ca.pairwise_rho(same).to_numpy(float)
    # identical ranks of 5: rho = 1 up to the float64 rounding of a correlation (spearman_bound), a mean of sets
    ranks = np.arange(1, 6)
    np.testing.assert_allclose(rho, 1.0, rtol=0, atol=spearman_bound(ranks, ranks) + mean_bound(np.ones(len(sets))))
    assert torch.equal(truth["student 02"], truth["class"])           # a factor exp(0) = 1: the same numbers
    flat, flat_truth = ca.simulate_class(design, features, sets, n_students=1, seed=2, class_taste=(1, 1, 1, 1, 1),
                                         personal_sd=0.0, noise=0.0)
    assert torch.equal(flat_truth["class"], initial_weight_vector("alex", "lpips"))   # x 1.0 in float64: exact
    # with judgement noise the students no longer all agree
    noisy, _ = ca.simulate_class(design, features, sets, n_students=3, seed=2, personal_sd=0.0, noise=1.0)
    off = ca.pairwise_rho(noisy).to_numpy(float)[~np.eye(3, dtype=bool)]
    assert (off < 1).any()


# --------------------------------------------------------------------------- the chapter's one entry
def test_load_class_reads_a_class_file_and_its_recorded_sets(tmp_path, monkeypatch):
    """A class file: its rankings as they are, the sets in the sidecar's order (those someone ranked: s9 was
    offered and never ranked), no truth, a source naming it; the features are those of the file's own pairs
    (every (target, candidate) once)."""
    csv = tmp_path / "lesson.csv"
    CLASS.to_csv(csv, index=False)
    (tmp_path / "lesson.json").write_text('{"study": "mur92", "sets": ["s3", "s1", "s9", "s4", "s2"]}')
    seen = {}

    def fake_features(data, table, net):
        seen["table"] = table
        return "F"

    monkeypatch.setattr(ca, "_features", fake_features)
    got = ca.load_class(str(csv))
    cols = ["set_id", "target", "candidate", "rater", "rank"]
    key = ["rater", "set_id", "candidate"]
    pd.testing.assert_frame_equal(got.rankings.table[cols].astype(str).sort_values(key).reset_index(drop=True),
                                  CLASS[cols].astype(str).sort_values(key).reset_index(drop=True))
    assert got.sets == ["s3", "s1", "s4", "s2"] and got.truth is None and got.features == "F"
    assert got.design is got.rankings and seen["table"] is got.rankings.table
    assert got.source == "the class file lesson.csv (5 students, study mur92)"
    assert got.students["sets_ranked"].to_dict() == {"A": 3, "B": 3, "C": 1, "D": 1, "E": 1}
    assert (got.students["of"] == 5).all() and not got.students["complete"].any()


def test_load_class_without_a_file_simulates_the_sets_the_classroom_serves(monkeypatch):
    """No class file: the study's sets as ``clpips classroom`` draws them, and exactly ``simulate_class``'s class
    on them, with features of those sets' pairs only."""
    design, features = _design(n_sets=6, k=5, seed=4)
    design.root, design.name = "/nowhere", "tiny"
    monkeypatch.setattr(ca.classroom, "load_study", lambda study, k, seed: design)
    asked = {}

    def fake_features(data, table, net):
        asked["sets"] = set(table["set_id"])
        return features

    monkeypatch.setattr(ca, "_features", fake_features)
    got = ca.load_class("", "tiny", k=5, n_sets=3, n_students=4, seed=7)
    sets = ca.classroom.class_sets(design, 3, 7)
    table, truth = ca.simulate_class(design, features, sets, 4, seed=7)
    pd.testing.assert_frame_equal(got.rankings.table, table)
    assert got.sets == sets and asked["sets"] == set(sets) and got.design is design
    assert set(got.truth) == set(truth) and all(torch.equal(got.truth[k], truth[k]) for k in truth)
    assert got.source.startswith("a simulated class: 4 students ranking the 3 sets of tiny")


# --------------------------------------------------------------------------- a class as it stands: partial, joined
def test_roster_counts_each_students_sets_and_lists_who_joined_without_ranking():
    """Sets per student from CLASS (A and B 3 of s1-s4, C, D and E one each); "a" joined as A already is
    (names compared as the classroom compares them) and "Zed" joined and ranked nothing: listed with 0."""
    got = ca.roster(CLASS, ["s1", "s2", "s3", "s4"], joined=["a", "Zed", "  C "])
    assert list(got.index) == ["A", "B", "C", "D", "E", "Zed"] and got.index.name == "student"
    assert got["sets_ranked"].tolist() == [3, 3, 1, 1, 1, 0]
    assert (got["of"] == 4).all() and not got["complete"].any()
    whole = ca.roster(CLASS[CLASS["rater"].isin(["A", "B"])], ["s1", "s2", "s3"])
    assert whole["complete"].tolist() == [True, True]
    assert list(ca.roster(CLASS, ["s1"], joined=["ben", "Ann"]).index) == ["A", "Ann", "B", "ben", "C", "D", "E"]


def test_coverage_sentence_in_words():
    complete = ca.roster(CLASS[CLASS["rater"].isin(["A", "B"])], ["s1", "s2", "s3"])
    assert ca.coverage_sentence(complete) == "Every one of the 2 students ranked all 3 sets."
    partial = ca.roster(CLASS, ["s1", "s2", "s3"], joined=["Zed", "Yan"])
    assert ca.coverage_sentence(partial) == (
        "2 of the 7 students ranked all 3 sets, 3 ranked some of them (1 set) and 2 joined but ranked none "
        "(Yan and Zed). Every ranking given counts: two students are compared on the sets both ranked.")
    nobody = ca.roster(CLASS[CLASS["rater"] == "C"], ["s1", "s2"], joined=["Zed"])
    assert ca.coverage_sentence(nobody).startswith(
        "None of the 2 students ranked all 2 sets, 1 ranked some of them (1 set) and 1 joined but ranked none (Zed).")


def test_agreement_note_says_what_the_numbers_rest_on_and_when_there_are_none():
    """Complete class: no note. CLASS: s1-s3 have two or more students (3 sets), E shares no set. One student
    alone: nothing can be computed. s2 alone, ranked by A, B, D: mean ICC(A,1) 3/13, ICC(A,k) 9/19 > 0, no
    words on negative ICCs; B and a reversed A on s1 disagree (ICC(A,1) < 0): the note explains it."""
    whole = CLASS[CLASS["rater"].isin(["A", "B"])]
    assert ca.agreement_note(ca.pairwise_rho(whole), ca.class_icc(whole), ca.roster(whole, ["s1", "s2", "s3"])) == ""
    students = ca.roster(CLASS, ["s1", "s2", "s3", "s4"])
    note = ca.agreement_note(ca.pairwise_rho(CLASS), ca.class_icc(CLASS), students)
    assert note.startswith("These numbers rest on the 3 sets that at least two students ranked")
    assert "E shared no set with anyone and is left out" in note and "below 0" not in note
    alone = CLASS[CLASS["rater"] == "A"]
    note = ca.agreement_note(ca.pairwise_rho(alone), ca.class_icc(alone), ca.roster(alone, ["s1", "s2", "s3", "s4"]))
    assert note.startswith("No two students have ranked the same set yet") and "cannot be computed" in note
    s2 = CLASS[CLASS["set_id"] == "s2"]
    assert "below 0" not in ca.agreement_note(ca.pairwise_rho(s2), ca.class_icc(s2), ca.roster(s2, ["s1", "s2"]))
    flipped = CLASS[(CLASS["set_id"] == "s1") & CLASS["rater"].isin(["A", "B"])].copy()
    flipped.loc[flipped["rater"] == "A", "rank"] = 4 - flipped.loc[flipped["rater"] == "A", "rank"]
    iccs = ca.class_icc(flipped)
    assert (iccs["icc_A_1"] < 0).all()                             # A: 3 2 1, B: 1 3 2 on a1 a2 a3
    note = ca.agreement_note(ca.pairwise_rho(flipped), iccs, ca.roster(flipped, ["s1", "s2"]))
    assert "An ICC below 0 means the students disagree more than they agree" in note


def test_consensus_scores_of_a_class_without_shared_sets_is_an_empty_table():
    got = ca.consensus_scores(CLASS[CLASS["rater"].isin(["A", "E"]) & CLASS["set_id"].isin(["s1", "s4"])])
    assert got.empty and list(got.columns) == ["spearman", "icc_A_k", "n_rankings"] and got.index.name == "student"


def _sets_class(n_sets: int, raters=("A", "B")) -> pd.DataFrame:
    rows = [{"set_id": f"s{s}", "target": f"t{s}.png", "candidate": f"c{s}_{c}.png", "rater": r, "rank": c + 1}
            for s in range(n_sets) for r in raters for c in range(3)]
    return pd.DataFrame(rows)


def test_can_fit_needs_a_held_out_set_and_two_to_fit_on():
    """split_by_target with test_size 0.3: 1 target cannot be split; 2 -> 1 + 1 (one to fit on: the pooled
    fit's early stopping needs two); 3 -> 2 + 1, enough. test_size 0.5: 3 -> 1 + 2, not enough; 4 -> 2 + 2."""
    assert [ca.can_fit(_sets_class(n), 0.3, 0) for n in (1, 2, 3, 4)] == [False, False, True, True]
    assert [ca.can_fit(_sets_class(n), 0.5, 0) for n in (3, 4)] == [False, True]


def test_fit_note_in_words():
    few = _sets_class(2)
    assert ca.fit_note(few, ca.roster(few, [f"s{i}" for i in range(10)]), 0.3, 0).startswith(
        "The class has ranked 2 sets so far: too few to fit and judge the models")
    whole = _sets_class(4)
    assert ca.fit_note(whole, ca.roster(whole, ["s0", "s1", "s2", "s3"]), 0.3, 0) == ""
    # B ranked only the sets that fall on the training side: no held-out score for B
    from clpips.datasets import split_by_target
    table = _sets_class(10)
    train, test = split_by_target(table, test_size=0.3, seed=0)
    partial = table[(table["rater"] == "A") | table["set_id"].isin(set(train["set_id"]))]
    note = ca.fit_note(partial, ca.roster(partial, sorted(table["set_id"].unique())), 0.3, 0)
    assert note == ("Each student is judged on the held-out sets they ranked (3 of the 10 sets ranked are held "
                    "out): with a few rankings each, these scores are rough; B ranked none of the held-out sets "
                    "and has no held-out scores.")
    # C ranked only held-out sets: no personal model for C
    partial = pd.concat([partial, table[(table["rater"] == "A") & table["set_id"].isin(set(test["set_id"]))]
                         .assign(rater="C")])
    note = ca.fit_note(partial, ca.roster(partial, sorted(table["set_id"].unique())), 0.3, 0)
    assert note.endswith("; B ranked none of the held-out sets and has no held-out scores; C ranked only held-out "
                         "sets and has no personal CLPIPS.")


def _class_file(folder, table: pd.DataFrame, sets, joined=()):
    """A class file as ``clpips classroom`` leaves it: the CSV, its sidecar and its list of names."""
    import json
    from clpips.apps import classroom
    csv = folder / "class.csv"
    table.to_csv(csv, index=False)
    (folder / "class.json").write_text(json.dumps({"study": "mur92", "root": str(folder), "sets": list(sets)}))
    register = classroom.NameRegister(csv)
    for name in joined:
        register.claim(name)
    return csv


def test_load_class_lists_a_student_who_joined_and_ranked_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(ca, "_features", lambda data, table, net: "F")
    csv = _class_file(tmp_path, CLASS[CLASS["rater"].isin(["A", "C"])], ["s1", "s2", "s3", "s9"],
                      joined=["A", "c", "Cleo"])
    got = ca.load_class(str(csv))
    assert got.students["sets_ranked"].to_dict() == {"A": 3, "C": 1, "Cleo": 0}
    assert got.sets == ["s1", "s2", "s3"]
    assert got.source == "the class file class.csv (2 students with rankings, 3 joined, study mur92)"


def test_load_class_of_a_class_without_rankings_is_one_line(tmp_path):
    csv = _class_file(tmp_path, CLASS.iloc[:0], ["s1"], joined=["Ana", "Ben"])
    for state in ("header only", "no file yet"):
        with pytest.raises(ValueError) as info:
            ca.load_class(str(csv))
        assert str(info.value) == (f"{csv}: no rankings yet (2 students joined: Ana, Ben); run chapter 10 once "
                                   f"a student has ranked a set"), state
        csv.unlink(missing_ok=True)


def test_small_lies_above_the_float64_bounds():
    """SMALL lies above the error bounds (tests/tolerance.py) of this file's statistics: every set's
    hand-worked ICC(A,1) and ICC(A,k) of CLASS, Spearman's rho of a set (up to 5 ranks; ranks have
    sum x^2 / S_xx <= 10) and a mean of up to 5 sets. (Other tests use each set's own bound.)"""
    for table in (CLASS,):
        for _, part in table.groupby("set_id"):
            wide = part.pivot(index="candidate", columns="rater", values="rank").to_numpy(float)
            if wide.shape[1] < 2:
                continue
            bound = icc_bound(wide)
            for label, den in zip(("ICC(A,1)", "ICC(A,k)"), _denominators(wide)):
                assert den <= 0 or bound[label]["ICC"] < SMALL, (label, bound[label]["ICC"])
    ranks = np.arange(1, 6)
    assert spearman_bound(ranks, ranks) + mean_bound(np.ones(5)) < SMALL
