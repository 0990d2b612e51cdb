"""The two-way bootstrap of a personal study: people and held-out targets resampled together.

:func:`two_way_bootstrap` scores every person with every model on resamples of people and of
held-out targets (:func:`two_way_counts`); :class:`TwoWayBootstrap` turns that into per-person
and mean-over-people differences between models with their intervals. :func:`score_people`
builds its input, each person's held-out rankings scored by that person's models.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import pandas as pd
import torch

from clpips.defaults import DEFAULTS
from clpips.evaluate import ranking_ids
from clpips.stats import bootstrap_counts, percentile_interval, resampled_statistics
from clpips.book.personal.names import MODELS, STATISTICS


def two_way_counts(n_people: int, n_targets: int, n_boot: int = DEFAULTS.n_boot,
                   seed: Optional[int] = DEFAULTS.seed) -> tuple[np.ndarray, np.ndarray]:
    """The draws of :func:`two_way_bootstrap`: people and targets, each with replacement.

    Returns ``(people, targets)``, count matrices of shape ``(n_boot, n_people)`` and
    ``(n_boot, n_targets)`` (how often each person / target is drawn in each resample):
    :func:`clpips.stats.bootstrap_counts` with ``seed`` for people and ``seed + 1`` for
    targets, two streams, so that people and targets are drawn independently.
    """
    people = bootstrap_counts(n_people, n_boot, seed)
    targets = bootstrap_counts(n_targets, n_boot, None if seed is None else seed + 1)
    return people, targets


@dataclass
class TwoWayBootstrap:
    """Each person's ICC(A,k) and rho for several models, on resamples of people and targets.

    Built by :func:`two_way_bootstrap`. ``values[stat]`` has shape
    ``(n_boot, n_people, n_models)``: person ``p``'s statistic (``"icc"`` or ``"rho"``)
    on the held-out rankings of the targets drawn in resample ``b``, each as often as
    drawn (NaN where the person ranked none of them); ``observed`` holds the same on
    all held-out rankings (columns ``icc_<model>``, ``rho_<model>``).
    ``people_counts`` weight the people of each resample.
    """

    people: list[str]
    targets: np.ndarray
    models: list[str]
    observed: pd.DataFrame
    values: dict[str, np.ndarray]
    people_counts: np.ndarray
    target_counts: np.ndarray
    ci: float = DEFAULTS.ci

    def person_deltas(self, a: str, b: str, stat: str = "icc") -> tuple[np.ndarray, np.ndarray]:
        """Δ = b − a per person: observed ``(n_people,)`` and per resample ``(n_boot, n_people)``."""
        ia, ib = self.models.index(a), self.models.index(b)
        observed = (self.observed[f"{stat}_{b}"] - self.observed[f"{stat}_{a}"]).to_numpy(float)
        return observed, self.values[stat][:, :, ib] - self.values[stat][:, :, ia]

    def mean_distribution(self, a: str, b: str, stat: str = "icc") -> np.ndarray:
        """The mean Δ over the drawn people (each as often as drawn; people without a value left out),
        one value per resample."""
        _, boot = self.person_deltas(a, b, stat)
        ok = np.isfinite(boot)
        weights = self.people_counts * ok
        with np.errstate(invalid="ignore", divide="ignore"):
            return (weights * np.where(ok, boot, 0.0)).sum(axis=1) / weights.sum(axis=1)

    def compare(self, a: str, b: str, stat: str = "icc") -> dict[str, float]:
        """Mean over people of Δ = b − a with the percentile interval of the two-way bootstrap.

        Returns ``mean_delta`` (observed: the mean of the people's Δ on all their held-out
        rankings), ``ci_low``, ``ci_high``, ``n`` (people with a Δ).
        """
        observed, _ = self.person_deltas(a, b, stat)
        ok = ~np.isnan(observed)
        if not ok.any():
            return {"mean_delta": np.nan, "ci_low": np.nan, "ci_high": np.nan, "n": 0}
        boot = self.mean_distribution(a, b, stat)
        lo, hi = percentile_interval(boot, self.ci) if np.isfinite(boot).sum() >= 2 else (np.nan, np.nan)
        return {"mean_delta": float(observed[ok].mean()), "ci_low": lo, "ci_high": hi, "n": int(ok.sum())}


def two_way_bootstrap(scored: pd.DataFrame, models: Sequence[str], *, n_boot: int = DEFAULTS.n_boot,
                      ci: float = DEFAULTS.ci, seed: Optional[int] = DEFAULTS.seed) -> TwoWayBootstrap:
    """Resample people and targets together: intervals for a mean over people of per-person agreement.

    Each resample draws people with replacement and, independently, held-out targets with
    replacement (:func:`two_way_counts`); every drawn person is scored on their rankings of
    the drawn targets (a target drawn twice counts twice), each model with the same draws,
    so differences between models are paired. The statistic of a resample is the mean over
    the drawn people (:meth:`TwoWayBootstrap.mean_distribution`). Per person, ICC(A,k) and
    pooled rho of within-ranking ranks are those of :func:`clpips.evaluate.heldout_scores`,
    computed from per-ranking sums (:func:`clpips.stats.resampled_statistics`), equal to
    rebuilding each resampled table (checked against a direct loop in the tests).

    What it assumes: people and targets are two independent random samples (a crossed
    design, every drawn person meets every drawn target they ranked), and the person ×
    target residual is not resampled separately. For a mean under the crossed
    random-effects model, this *pigeonhole* bootstrap is somewhat conservative: it counts
    the person × target interaction about three times instead of once (Owen 2007, *Ann.
    Appl. Stat.* 1, 386), while resampling people alone counts the target variance not
    at all. The models are held fixed (not refitted on each resample), so training
    variability is not in the interval.

    Parameters
    ----------
    scored : DataFrame
        Held-out rankings (``set_id, target, rater, rank``) with one distance column per
        model, each person's rows scored by that person's models (NaN where a model does
        not exist for the person). Every ranking (``set_id`` and ``rater``) has one target.
    models : the distance columns
    n_boot, ci, seed
        Resamples, confidence level of :meth:`TwoWayBootstrap.compare`, seed of the draws.
    """
    models = list(models)
    raters = scored["rater"].astype(str)
    people = sorted(raters.unique())
    targets = np.array(sorted(scored["target"].astype(str).unique()), dtype=object)
    target_index = {t: i for i, t in enumerate(targets)}
    people_counts, target_counts = two_way_counts(len(people), len(targets), n_boot, seed)
    values = {stat: np.full((n_boot, len(people), len(models)), np.nan) for stat in STATISTICS}
    observed = np.full((len(people), len(STATISTICS) * len(models)), np.nan)
    for p, person in enumerate(people):
        part = scored[(raters == person).to_numpy()]
        present = [m for m in models if part[m].notna().all()]
        if part.empty or not present:
            continue
        ids = ranking_ids(part).to_numpy()
        per_ranking = part.groupby(ids, sort=True)["target"].agg(["first", "nunique"])
        if (per_ranking["nunique"] > 1).any():
            raise ValueError(f"two_way_bootstrap: a ranking of {person} holds several targets")
        frame = pd.DataFrame({"ranking": ids, "rank": part["rank"].to_numpy(float)})
        for m in present:
            frame[m] = part[m].groupby(ids, sort=False).rank(method="average").to_numpy(float)
        columns = [target_index[str(t)] for t in per_ranking["first"]]
        counts = np.vstack([np.ones((1, len(columns)), dtype=np.int64), target_counts[:, columns]])
        with np.errstate(invalid="ignore", divide="ignore"):
            set_ids, res = resampled_statistics(frame, "ranking", "rank", present, counts)
        assert list(set_ids) == list(per_ranking.index)  # sets in sorted order, as the counts
        for m in present:
            j = models.index(m)
            for s, stat in enumerate(STATISTICS):
                observed[p, s * len(models) + j] = res[f"{stat}_{m}"][0]
                values[stat][:, p, j] = res[f"{stat}_{m}"][1:]
    columns = [f"{stat}_{m}" for stat in STATISTICS for m in models]
    return TwoWayBootstrap(people, targets, models, pd.DataFrame(observed, index=pd.Index(people, name="rater"),
                                                                 columns=columns),
                           values, people_counts, target_counts, ci)


def score_people(test_table: pd.DataFrame, features, models_of) -> pd.DataFrame:
    """The held-out table with one distance column per model, each person's rows scored by
    ``models_of(person)`` (a dict model -> weights; NaN for a model a person lacks)."""
    parts = []
    for person, part in test_table.groupby(test_table["rater"].astype(str), sort=True):
        models = models_of(person)
        rows = features.rows(part["target"], part["candidate"])
        # in the features' precision, as heldout_scores
        W = torch.stack([torch.as_tensor(w, dtype=features.matrix.dtype).flatten() for w in models.values()], dim=1)
        dist = (features.matrix[rows] @ W).numpy().astype(float)
        parts.append(part.assign(**{m: dist[:, i] for i, m in enumerate(models)}))
    out = pd.concat(parts) if parts else test_table.iloc[:0].copy()
    for m in MODELS:
        if m not in out.columns:
            out[m] = np.nan
    return out
