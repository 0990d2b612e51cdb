"""Chapter 05's check that the bootstrap's two statistics tell one story (the Spearman–Brown step-up).

On rank data ICC(A,k) of two untied rankings follows from their pooled Spearman rho and number of
rows (:func:`clpips.stats.icc_ak_from_rho`, ``book/method.md``); :func:`spearman_brown_check` measures
how exactly it does on every resample of a paired bootstrap.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from clpips.evaluate import RANKING
from clpips.stats import bootstrap_counts, icc_ak_from_rho

__all__ = ["spearman_brown_check"]


def spearman_brown_check(result, scored: pd.DataFrame) -> dict[str, Any]:
    """How exactly ICC(A,k) follows from rho on every resample of a :func:`clpips.experiment.bootstrap_result`:
    each resample's rows ``n`` rebuilt from its draw (:func:`clpips.stats.bootstrap_counts`), both metrics'
    ICC(A,k) against :func:`clpips.stats.icc_ak_from_rho`. ``max_abs_error``; ``same_sign_share`` of
    ΔICC(A,k) and Δrho (zero a sign of its own); ``p_equal``: the two one-sided p-values are equal.
    """
    units = scored[RANKING] if set(result.set_ids) <= set(scored[RANKING]) else scored["target"].astype(str)
    sizes = units.value_counts().reindex(result.set_ids).to_numpy(float)
    n = bootstrap_counts(len(result.set_ids), result.n_boot, result.seed) @ sizes
    d = result.distribution
    errors = [np.abs(d[f"icc_{m}"].to_numpy() - icc_ak_from_rho(d[f"rho_{m}"].to_numpy(), n)) for m in "ab"]
    same = np.sign(d["delta_icc"].to_numpy()) == np.sign(d["delta_rho"].to_numpy())
    return {"max_abs_error": float(np.nanmax(np.concatenate(errors))), "same_sign_share": float(np.mean(same)),
            "p_equal": bool(result.p_values["ΔICC(A,k)"] == result.p_values["Δrho"])}
