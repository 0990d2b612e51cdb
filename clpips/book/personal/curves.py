"""Learning curves of personal models: how the held-out advantage grows with the rankings a person gives."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd
import torch

from clpips.book.defaults import DEFAULTS
from clpips.evaluate import heldout_scores
from clpips.train import torch_threads
from clpips.book.personal.inference import paired_tests, people_interval
from clpips.book.personal.names import STATISTICS
from clpips.book.personal.study import _FIT_OPTIONS, PersonalStudy, _person_tables, fit_personals


def parse_sizes(sizes: str | Sequence[int]) -> tuple[int, ...]:
    """``"5,10,20,40"`` or ``[5, 10]`` -> sorted tuple of distinct positive ints."""
    if isinstance(sizes, str):
        try:
            sizes = [int(s) for s in sizes.split(",") if s.strip() and s.strip() != "all"]
        except ValueError:
            raise ValueError(f"sizes must be comma-separated whole numbers, got {sizes!r}") from None
    out = tuple(sorted({int(s) for s in sizes}))
    if any(s < 1 for s in out):
        raise ValueError(f"sizes must be positive, got {sizes!r}")
    return out


@dataclass
class LearningCurve:
    """How a personal model's held-out advantage grows with the rankings a person gives.

    ``runs``: one row per (rater, size, repeat): ``n_rankings`` used, the
    personal model's ``icc`` and ``rho`` on the person's held-out rankings,
    the base model's (``icc_base``, ``rho_base``) and ``delta_icc``, ``delta_rho``.
    A size equal to all of a person's training rankings is labelled ``"all"``
    in ``size_label`` and run once (the subsample is the whole set).
    ``weights``: the scored weight vectors, keyed by (rater, size_label, repeat) as the rows of
    ``runs`` (a statistic can be recomputed from the very weights that gave it).
    """

    runs: pd.DataFrame
    base: str
    settings: dict[str, Any] = field(default_factory=dict)
    weights: dict[tuple[str, str, int], torch.Tensor] = field(default_factory=dict)

    def per_person(self) -> pd.DataFrame:
        """Mean Δ over repeats, one row per (size_label, rater)."""
        return (self.runs.groupby(["size_order", "size_label", "rater"], sort=True)
                [["n_rankings", "delta_icc", "delta_rho"]].mean().reset_index())

    def summary(self, n_boot: Optional[int] = None, ci: Optional[float] = None,
                seed: Optional[int] = None) -> pd.DataFrame:
        """Per size: people, mean rankings, mean Δ of ICC(A,k) and rho with a bootstrap CI over
        people (each person's Δ averaged over repeats first), people with Δ > 0, and the
        Wilcoxon signed-rank p-value."""
        n_boot = self.settings.get("n_boot", DEFAULTS.n_boot) if n_boot is None else n_boot
        ci = self.settings.get("ci", DEFAULTS.ci) if ci is None else ci
        seed = self.settings.get("seed", DEFAULTS.seed) if seed is None else seed
        rows = []
        for (order, label), part in self.per_person().groupby(["size_order", "size_label"], sort=True):
            row = {"size": label, "n_people": int(len(part)), "mean_rankings": float(part["n_rankings"].mean())}
            for stat in STATISTICS:
                mean, lo, hi = people_interval(part[f"delta_{stat}"], n_boot=n_boot, ci=ci, seed=seed)
                tests = paired_tests(part[f"delta_{stat}"])
                row.update({f"delta_{stat}": mean, f"ci_low_{stat}": lo, f"ci_high_{stat}": hi,
                            f"n_positive_{stat}": tests["n_positive"], f"wilcoxon_p_{stat}": tests["wilcoxon_p"]})
            rows.append(row)
        return pd.DataFrame(rows).set_index("size")

    def first_size_beating(self, stat: str = "icc", summary: Optional[pd.DataFrame] = None) -> Optional[str]:
        """The smallest size from which on every size's CI of the mean Δ lies above 0 (None if none)."""
        summary = self.summary() if summary is None else summary
        above = (summary[f"ci_low_{stat}"] > 0).to_numpy()
        for i in range(len(above)):
            if above[i:].all():
                return str(summary.index[i])
        return None


def learning_curve(study: PersonalStudy, sizes: str | Sequence[int] = DEFAULTS.personal_sizes,
                   repeats: int = DEFAULTS.personal_repeats, base: str = "lopo", *,
                   seed: Optional[int] = None, threads: Optional[int] = 1) -> LearningCurve:
    """Refit each person's model on random subsets of their training rankings.

    For each person and each ``size`` smaller than the person's number of
    training rankings, ``repeats`` subsets of ``size`` training targets are drawn
    (``numpy.random.default_rng([seed, person, size, repeat])``), a personal
    model is fitted from the base weights with the study's settings, and its
    held-out ICC(A,k) and rho are compared with the base model's on the same
    held-out rankings. The full set (``"all"``) reuses the study's personal model.

    Parameters
    ----------
    study : PersonalStudy
    sizes : "5,10,20,40" or ints
    repeats : int
    base : {"lopo", "pooled"}
        Start from (and compare with) the pooled model without the person
        (``"lopo"``: the new-user scenario; needs ``personal_study(lopo=True)``)
        or the pooled model.
    """
    if base not in ("lopo", "pooled"):
        raise ValueError(f"base must be 'lopo' or 'pooled', got {base!r}")
    if base == "lopo" and not study.lopo:
        raise ValueError("base='lopo' needs a study fitted with lopo=True")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    sizes = parse_sizes(sizes)
    s = study.settings
    seed = s["seed"] if seed is None else seed
    options = {k: s[k] for k in _FIT_OPTIONS if k in s}
    trains, tests = _person_tables(study.train_table), _person_tables(study.test_table)
    people = []          # (rater, base weights, full model, [(key, label, order, repeat, n, chosen targets)])
    for person_index, r in enumerate(study.raters):
        if r not in trains or r not in tests:
            continue
        b = study.lopo.get(r) if base == "lopo" else study.weights["pooled"]
        full = study.personal_lopo.get(r) if base == "lopo" else study.personal.get(r)
        if b is None or full is None:
            continue
        targets = np.array(sorted(trains[r]["target"].unique()), dtype=object)
        subsets = []
        for size in sizes:
            if size >= len(targets):
                continue
            for rep in range(repeats):
                rng = np.random.default_rng([seed, person_index, size, rep])
                chosen = targets[rng.choice(len(targets), size=size, replace=False)]
                subsets.append((f"{size}/{rep}", str(size), size, rep, size, chosen))
        people.append((r, b, full, len(targets), subsets))
    # every subset's personal model in one batched call (:func:`fit_personals`)
    fits = [{"pairs": study.bank.select(rater=r, targets=chosen), "base": b, "l2": s["l2"], "seed": seed + rep}
            for r, b, _, _, subsets in people for _, _, _, rep, _, chosen in subsets]
    with torch_threads(threads):
        fitted = iter(fit_personals(study.features, fits, epochs=s["epochs"], net=s["net"],
                                    device=s.get("device", DEFAULTS.device), **options))
    rows, kept = [], {}
    for r, b, full, n_targets, subsets in people:
        candidates: dict[str, torch.Tensor] = {"base": b}
        meta = []
        for key, label, order, rep, n, _ in subsets:
            candidates[key] = next(fitted)
            meta.append((key, label, order, rep, n))
        candidates["all"] = full
        meta.append(("all", "all", n_targets, 0, n_targets))
        scores = heldout_scores(tests[r], study.features, candidates)
        for key, label, order, rep, n in meta:
            kept[(r, label, rep)] = candidates[key]
            rows.append({"rater": r, "size_label": label, "size_order": order if label != "all" else 10 ** 9,
                         "repeat": rep, "n_rankings": n,
                         "icc": scores.at[key, "icc_A_k"], "rho": scores.at[key, "spearman"],
                         "icc_base": scores.at["base", "icc_A_k"], "rho_base": scores.at["base", "spearman"]})
    runs = pd.DataFrame(rows)
    if not runs.empty:
        runs["delta_icc"] = runs["icc"] - runs["icc_base"]
        runs["delta_rho"] = runs["rho"] - runs["rho_base"]
    return LearningCurve(runs, base, {"sizes": sizes, "repeats": repeats, "seed": seed, "n_boot": s["n_boot"],
                                      "ci": s["ci"]}, kept)
