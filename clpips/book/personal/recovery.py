"""What personal models learned: whose rankings they fit, where their weight sits, which truth they recover.

* :func:`cross_person`, :func:`own_versus_others`: each person's model on everybody's rankings;
* where the weight sits, per layer: :func:`clpips.book.layer_weights.layer_shares` and
  :func:`~clpips.book.layer_weights.layer_changes` (re-exported by :mod:`clpips.book.personal`);
* :func:`attribute_sensitivity`, :func:`truth_recovery`: on simulated data, each model's
  sensitivity to the scene attributes against each rater's true weights.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd
import torch
from scipy import stats as sps

from clpips.defaults import DEFAULTS
from clpips.evaluate import heldout_scores
from clpips.book.personal.inference import paired_tests, people_interval
from clpips.book.personal.study import PersonalStudy, _person_tables
from clpips.book.scenes import NAMES


def cross_person(study: PersonalStudy, statistic: str = "icc") -> pd.DataFrame:
    """Each person's personal model scored on every person's held-out rankings.

    Entry (i, j): ICC(A,k) (``statistic="icc"``) or rho (``"rho"``) of person
    ``j``'s personal model on person ``i``'s held-out rankings, minus that of
    the pooled model on the same rankings. If personal models capture the
    person and not just more training, the diagonal (own model) is high and
    the rest (somebody else's model, fitted the same way) is not.
    """
    column = {"icc": "icc_A_k", "rho": "spearman"}[statistic]
    tests = _person_tables(study.test_table)
    owners = [r for r in study.raters if r in study.personal]
    rows = {}
    for r in study.raters:
        if r not in tests:
            continue
        scores = heldout_scores(tests[r], study.features, {"pooled": study.weights["pooled"],
                                                           **{f"m:{o}": study.personal[o] for o in owners}})
        rows[r] = [scores.at[f"m:{o}", column] - scores.at["pooled", column] for o in owners]
    out = pd.DataFrame.from_dict(rows, orient="index", columns=owners)
    out.index.name, out.columns.name = "rankings of", "model of"
    return out


def own_versus_others(matrix: pd.DataFrame, n_boot: int = DEFAULTS.n_boot, ci: float = DEFAULTS.ci,
                      seed: int = DEFAULTS.seed) -> dict[str, float]:
    """Summary of :func:`cross_person`: own model versus other people's models, over people.

    Returns the mean Δ (vs pooled) of the own model and of others' models (each
    person's row mean without the diagonal), their difference with a bootstrap
    CI over people, and the sign and Wilcoxon tests of the per-person difference.
    """
    people = [r for r in matrix.index if r in matrix.columns]
    own = np.array([matrix.at[r, r] for r in people], dtype=float)
    others = np.array([matrix.loc[r].drop(r).mean() for r in people], dtype=float)
    diff = own - others
    mean, lo, hi = people_interval(diff, n_boot=n_boot, ci=ci, seed=seed)
    return {"own": float(np.nanmean(own)), "others": float(np.nanmean(others)), "difference": mean,
            "ci_low": lo, "ci_high": hi, **paired_tests(diff)}


# --------------------------------------------------------------------------- simulated truth
def attribute_sensitivity(dataset, features, weights: Mapping[str, torch.Tensor]) -> pd.DataFrame:
    """How strongly each model's distance reacts to each scene attribute (simulated data).

    For every (target, candidate) pair of the dataset, a least-squares fit of
    the model's distance on an intercept and one indicator per attribute
    (1 where the candidate's attribute differs from the target's) gives one
    coefficient per attribute: the distance added by getting that attribute
    wrong. Needs ``dataset.truth.scenes`` (:mod:`clpips.book.simulated`).

    Returns
    -------
    DataFrame: rows = models, columns = attributes.
    """
    truth = getattr(dataset, "truth", None)
    if truth is None or not hasattr(truth, "scenes"):
        raise ValueError("attribute_sensitivity needs a simulated dataset (dataset.truth.scenes)")
    scenes = truth.scenes.set_index("image")
    pairs = dataset.table[["target", "candidate"]].drop_duplicates()
    t = scenes.loc[pairs["target"], list(NAMES)].to_numpy()
    c = scenes.loc[pairs["candidate"], list(NAMES)].to_numpy()
    X = np.column_stack([np.ones(len(pairs)), (t != c).astype(float)])
    rows = features.rows(pairs["target"], pairs["candidate"])
    W = torch.stack([torch.as_tensor(w, dtype=features.matrix.dtype).flatten() for w in weights.values()], dim=1)
    D = (features.matrix[rows] @ W).numpy().astype(float)
    beta, *_ = np.linalg.lstsq(X, D, rcond=None)
    return pd.DataFrame(beta[1:].T, index=list(weights), columns=list(NAMES))


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    den = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / den) if den > 0 else np.nan


def truth_recovery(study: PersonalStudy) -> pd.DataFrame:
    """Do personal models move towards each simulated rater's true attribute weights?

    Per rater (rows): ``cos_pooled`` and ``cos_personal``, the cosine between
    the model's attribute sensitivities (:func:`attribute_sensitivity`) and the
    rater's true weights; ``cos_shift``, the cosine between the personal
    model's change of sensitivities (personal − pooled) and the rater's
    deviation from the mean true weights (0 on average if personalisation only
    fitted noise); ``spearman_pooled`` / ``spearman_personal``, rank
    correlations of sensitivities with true weights over the attributes.
    """
    truth = study.dataset.truth.weights.assign(rater=lambda t: t["rater"].astype(str)).set_index("rater")
    raters = [r for r in study.raters if r in study.personal and r in truth.index]
    models = {"pooled": study.weights["pooled"], **{f"personal:{r}": study.personal[r] for r in raters}}
    sens = attribute_sensitivity(study.dataset, study.features, models)
    true = truth.loc[raters, list(NAMES)].to_numpy(float)
    mean_true = truth[list(NAMES)].to_numpy(float).mean(axis=0)
    pooled = sens.loc["pooled"].to_numpy(float)
    rows = []
    for r, w in zip(raters, true):
        own = sens.loc[f"personal:{r}"].to_numpy(float)
        rows.append({"rater": r, "cos_pooled": _cosine(pooled, w), "cos_personal": _cosine(own, w),
                     "cos_shift": _cosine(own - pooled, w - mean_true),
                     "spearman_pooled": float(sps.spearmanr(pooled, w).statistic),
                     "spearman_personal": float(sps.spearmanr(own, w).statistic)})
    return pd.DataFrame(rows).set_index("rater")
