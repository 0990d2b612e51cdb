"""clpips.book.agreement: split-half reliability of raters, against a direct loop; one estimator per dataset."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats as sps

from clpips.book.agreement import reliability, split_half_raters
from helpers import toy_table


def test_split_half_raters_equals_a_direct_loop():
    table = toy_table(n_images=9, k=5, raters=("ana", "ben", "cy", "dee", "eve"), seed=3)
    got = split_half_raters(table, seed=11)
    raters = sorted(table["rater"].unique())
    order = np.random.default_rng(11).permutation(len(raters))
    half_a = {raters[i] for i in order[: len(raters) // 2]}
    a, b = [], []
    for _, rows in table.groupby("set_id"):       # per set: each half's mean rank, then ranked
        mean_a = rows[rows["rater"].isin(half_a)].groupby("candidate")["rank"].mean()
        mean_b = rows[~rows["rater"].isin(half_a)].groupby("candidate")["rank"].mean()
        a += list(sps.rankdata(mean_a.sort_index()))
        b += list(sps.rankdata(mean_b.sort_index()))
    rho = sps.spearmanr(a, b).statistic          # pooled over sets, as metric_statistics pools
    assert got["rho_half"] == pytest.approx(rho, abs=1e-12)      # ranks of ranks: exact up to rounding
    assert got["rho_spearman_brown"] == pytest.approx(2 * rho / (1 + rho), abs=1e-12)
    assert got["n_sets"] == 9 and got["n_rows"] == 45


def test_split_half_raters_refuses_one_rater_and_reliability_says_why_it_has_none():
    table = toy_table(raters=("solo",))
    with pytest.raises(ValueError, match="two raters or more"):
        split_half_raters(table)
    none = reliability(SimpleNamespace(name="mine", table=table))
    assert np.isnan(none["rho_spearman_brown"]) and none["halves"].startswith("none")
    many = reliability(SimpleNamespace(name="mine", table=toy_table(raters=("a", "b", "c", "d"))))
    assert many["halves"] == "the raters" and np.isfinite(many["rho_spearman_brown"])
