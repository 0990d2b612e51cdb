"""The personal study: pooled, leave-one-person-out and personal CLPIPS models, fitted and judged.

:func:`personal_study` splits by target, fits every model of :data:`~clpips.book.personal.names.MODELS`
on one shared feature matrix (:class:`PairBank` selects a person's training pairs,
:func:`fit_personal` fits one personal model) and scores each on each person's held-out
rankings, with the two-way bootstrap (:mod:`clpips.book.personal.bootstrap`) for intervals.
:func:`l2_sensitivity` refits the personal models with other pull strengths. The design, the
leakage it avoids and the statistics are described in :mod:`clpips.book.personal`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import pandas as pd
import torch

from clpips.datasets.splits import drop_shared_pairs, shared_pair_share
from clpips.book.defaults import DEFAULTS
from clpips.evaluate import heldout_scores
from clpips.book.batched_fits import fit_together
from clpips.experiment import fit_options_except
from clpips.model import initial_weight_vector
from clpips.stats import one_sided_pvalue, percentile_interval
from clpips.train import GridJob, compute_dtype, fit_many, fit_pairs, torch_threads
from clpips.book.personal.bootstrap import TwoWayBootstrap, score_people, two_way_bootstrap
from clpips.book.personal.inference import holm, paired_tests, people_interval
from clpips.book.personal.names import COMPARISON_LABELS, COMPARISONS, MODELS, STATISTICS


# --------------------------------------------------------------------------- pairs
class PairBank:
    """Every training pair of a ranking table, indexed once, selectable by rater and target.

    Building pairs (:func:`clpips.pairs.ranking_pairs`) and looking up their
    feature rows is the slow part of a small fit; the bank does it once for the
    whole training table, so a fit on any person's subset of targets is a
    boolean mask.
    """

    def __init__(self, table: pd.DataFrame, features):
        from clpips.pairs import ranking_pairs
        from clpips.train import pair_index
        pairs = ranking_pairs(table) if len(table) else None
        if pairs is None or pairs.empty:
            self.index = torch.zeros(0, 2, dtype=torch.long)
            self.rater = np.array([], dtype=object)
            self.target = np.array([], dtype=object)
            return
        self.index = pair_index(features, pairs)
        self.rater = pairs["rater"].astype(str).to_numpy(dtype=object)
        self.target = pairs["target"].astype(str).to_numpy(dtype=object)

    def select(self, rater: Optional[object] = None, targets: Optional[Sequence[str]] = None,
               exclude_rater: Optional[object] = None) -> torch.Tensor:
        """``N x 2`` (better, worse) rows of one rater's (or everybody's) pairs on some targets."""
        mask = np.ones(len(self.rater), dtype=bool)
        if rater is not None:
            mask &= self.rater == str(rater)
        if exclude_rater is not None:
            mask &= self.rater != str(exclude_rater)
        if targets is not None:
            mask &= np.isin(self.target, np.asarray(list(targets), dtype=object))
        return self.index[torch.from_numpy(mask)]


# --------------------------------------------------------------------------- fitting
def fit_personal(features, pairs: torch.Tensor, base: torch.Tensor, *, l2: float = DEFAULTS.personal_l2,
                 epochs: int = DEFAULTS.epochs, seed: int = DEFAULTS.seed, net: str = DEFAULTS.net,
                 **options):
    """One personal model: start from ``base``, fit ``pairs``, penalise ``l2 * ||w - base||^2``.

    Parameters
    ----------
    features : PairFeatures
    pairs : N x 2 tensor of (better, worse) feature rows (one person's training pairs)
    base : weight vector (the pooled model, or the pooled model without this person)
    l2, epochs, seed, net
        Pull strength, epochs (all run, the last kept: no early stopping), seed, backbone.
    **options
        More :func:`clpips.train.fit_pairs` options (loss, margin, lr, batch_size, layers, project).

    Returns
    -------
    clpips.train.FitResult
    """
    base = torch.as_tensor(base, dtype=compute_dtype(features.matrix))   # the fit's precision (float32 for float32 features)
    return fit_pairs(features.matrix, pairs, None, base, net=net, epochs=epochs, seed=seed, l2=l2, l2_to=base,
                     init="base", **options)


#: the fit options of a personal fit: all run (no early stopping) from the base weights
_FIT_OPTIONS = fit_options_except("epochs", "patience", "init")


def fit_personals(features, fits: Sequence[Mapping[str, Any]], *, epochs: int = DEFAULTS.epochs,
                  net: str = DEFAULTS.net, device: str = DEFAULTS.device, **options) -> list[torch.Tensor]:
    """Many personal models at once: each of ``fits`` as its own :func:`fit_personal` would fit it.

    A fit is a mapping with ``pairs`` and ``base`` (as :func:`fit_personal`) and optionally ``l2``
    (default :data:`DEFAULTS.personal_l2 <clpips.book.defaults.BookDefaults>`) and ``seed``. All train
    together in one :func:`clpips.train.fit_many` call (each column equals its own ``fit_pairs``
    up to float rounding; tested), so a step multiplies the shared feature rows once for every
    person: the study's 400-odd personal fits took 23 s one at a time on mur92 (profiled).
    ``options``: loss, margin, lr, batch_size, layers, project. Returns each fit's weights.
    """
    unknown = set(options) - set(_FIT_OPTIONS)
    if unknown:
        raise TypeError(f"fit_personals: unknown fit options {sorted(unknown)}")
    chosen = {name: options.get(name, getattr(DEFAULTS, name)) for name in _FIT_OPTIONS}
    jobs = []
    for fit in fits:
        base = torch.as_tensor(fit["base"], dtype=compute_dtype(features.matrix))   # as fit_personal
        jobs.append(GridJob(fit["pairs"], (float(chosen["margin"]),), (float(chosen["lr"]),), (int(epochs),),
                            int(fit.get("seed", DEFAULTS.seed)), initial_weights=base,
                            l2=float(fit.get("l2", DEFAULTS.personal_l2)), l2_to=base))
    if not jobs:
        return []
    trained = fit_many(features.matrix, jobs, jobs[0].initial_weights, net=net, loss=chosen["loss"],
                       batch_size=int(chosen["batch_size"]), layers=chosen["layers"], project=bool(chosen["project"]),
                       device=device, threads=None, workers=DEFAULTS.workers)
    return [w[-1, 0] for w in trained]


@dataclass
class PersonalStudy:
    """Everything :func:`personal_study` produced.

    Attributes
    ----------
    weights : dict
        ``"lpips"`` and ``"pooled"`` weight vectors.
    personal, lopo, personal_lopo : dict rater -> weight vector
        See the module docstring (``lopo`` and ``personal_lopo`` empty when ``lopo=False``).
    per_person : DataFrame
        One row per rater: ``n_train``, ``n_test`` (rankings) and, for each model
        in :data:`MODELS`, ``icc_<model>`` and ``rho_<model>`` on the person's
        held-out rankings.
    comparisons : DataFrame
        One row per (rater, comparison of :data:`COMPARISONS`): observed
        ``a_<stat>``, ``b_<stat>``, ``delta_<stat>`` and, from the person's
        column of :meth:`PersonalStudy.two_way` (a bootstrap over the person's
        held-out targets), ``ci_low_<stat>``, ``ci_high_<stat>``, ``p_<stat>``
        (one-sided, H0: Δ <= 0), plus Holm-adjusted p-values over people
        (``p_holm_icc``, ``p_holm_rho``).
    fits : DataFrame
        One row per fit: ``model``, ``rater``, ``seconds``, ``epochs``, ``n_pairs``.
    """

    dataset: Any
    features: Any
    train_table: pd.DataFrame
    test_table: pd.DataFrame
    bank: PairBank
    weights: dict[str, torch.Tensor]
    personal: dict[str, torch.Tensor]
    lopo: dict[str, torch.Tensor]
    personal_lopo: dict[str, torch.Tensor]
    per_person: pd.DataFrame
    comparisons: pd.DataFrame
    fits: pd.DataFrame
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def raters(self) -> list[str]:
        return list(self.per_person.index)

    def models_of(self, rater: str) -> dict[str, torch.Tensor]:
        """Every model's weights as seen by ``rater`` (personal models are ``rater``'s own)."""
        out = {"lpips": self.weights["lpips"], "pooled": self.weights["pooled"]}
        for name, bank in (("personal", self.personal), ("lopo", self.lopo), ("personal_lopo", self.personal_lopo)):
            if rater in bank:
                out[name] = bank[rater]
        return out

    def comparison(self, name: str) -> pd.DataFrame:
        """The per-person rows of one comparison, indexed by rater."""
        return self.comparisons[self.comparisons["comparison"] == name].set_index("rater")

    def two_way(self, n_boot: Optional[int] = None, seed: Optional[int] = None,
                ci: Optional[float] = None) -> TwoWayBootstrap:
        """The two-way bootstrap (people and held-out targets, :func:`two_way_bootstrap`) of every
        model's agreement with each person; computed once per (n_boot, seed, ci)."""
        n_boot = self.settings["n_boot"] if n_boot is None else n_boot
        seed = self.settings["seed"] if seed is None else seed
        ci = self.settings["ci"] if ci is None else ci
        cache = self.__dict__.setdefault("_two_way", {})
        key = (int(n_boot), seed, float(ci))
        if key not in cache:
            scored = score_people(self.test_table, self.features, self.models_of)
            cache[key] = two_way_bootstrap(scored, MODELS, n_boot=n_boot, ci=ci, seed=seed)
        return cache[key]

    def across_people(self, n_boot: Optional[int] = None, ci: Optional[float] = None,
                      seed: Optional[int] = None) -> pd.DataFrame:
        """Per comparison and statistic: the mean Δ over people with a two-way bootstrap CI
        (people and held-out targets resampled together, :meth:`two_way`), how many people
        improved, a sign test and a Wilcoxon signed-rank test (these two over people, targets fixed).

        Index (comparison, statistic); columns ``label``, ``n``, ``mean_delta``,
        ``ci_low``, ``ci_high``, ``n_positive``, ``n_negative``,
        ``n_significant`` (people whose own bootstrap CI lies above 0),
        ``sign_p``, ``wilcoxon_p``.
        """
        boot = self.two_way(n_boot=n_boot, seed=seed, ci=ci)
        rows = []
        for name in self.comparisons["comparison"].unique():
            part = self.comparison(name)
            a, b = COMPARISONS[name]
            for stat in STATISTICS:
                summary = boot.compare(a, b, stat)
                tests = paired_tests(part[f"delta_{stat}"])
                rows.append({"comparison": name, "statistic": stat, "label": COMPARISON_LABELS.get(name, name),
                             "mean_delta": summary["mean_delta"], "ci_low": summary["ci_low"],
                             "ci_high": summary["ci_high"],
                             "n_significant": int((part[f"ci_low_{stat}"] > 0).sum()), **tests})
        return pd.DataFrame(rows).set_index(["comparison", "statistic"])


def _person_tables(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {str(r): part for r, part in table.groupby(table["rater"].astype(str), sort=True)}


def personal_study(dataset, *, test_size: float = DEFAULTS.test_size, seed: int = DEFAULTS.seed,
                   net: str = DEFAULTS.net, device: str = DEFAULTS.device, l2: float = DEFAULTS.personal_l2,
                   epochs: int = DEFAULTS.epochs, lopo: bool = True, exclude_shared_pairs: bool = False,
                   n_boot: int = DEFAULTS.n_boot, ci: float = DEFAULTS.ci, person_bootstrap: bool = True,
                   features=None, threads: Optional[int] = 1, progress: bool = False,
                   **fit_options) -> PersonalStudy:
    """Fit and judge pooled, leave-one-person-out and personal CLPIPS models (see the module docstring).

    Parameters
    ----------
    dataset : RankingDataset
    test_size, seed
        The standard split by target (:func:`clpips.datasets.split_by_target`);
        ``seed`` also seeds the fits and the bootstraps.
    net, device
        Backbone and torch device of the feature extraction and fits.
    l2 : float
        Pull of each personal model towards its starting weights.
    epochs : int
        Epochs of each personal fit (all run), and the most epochs of the pooled
        fits (which keep their early stopping).
    lopo : bool
        Also fit the leave-one-person-out pooled models and the new-user
        personal models (one pooled fit per person: the slow part).
    exclude_shared_pairs : bool
        Drop from training the image pairs that held-out rankings contain
        (:func:`drop_shared_pairs`).
    n_boot, ci
        Bootstrap resamples and confidence level of all intervals.
    person_bootstrap : bool
        Give each person's comparisons an interval and p-value from the two-way
        bootstrap now (False: only the observed differences, e.g. for a quick
        robustness check; :meth:`PersonalStudy.across_people` still runs the
        two-way bootstrap when called).
    features : PairFeatures, optional
        Precomputed features of the dataset's pairs.
    threads : int or None
        torch threads during the fits (:func:`torch_threads`).
    **fit_options
        Training options shared by every fit (loss, margin, lr, batch_size, layers, project;
        ``patience`` and ``init`` reach the pooled fits only).
    """
    from clpips.datasets import split_by_target
    from clpips.train import pair_features_for

    unknown = set(fit_options) - set(_FIT_OPTIONS) - {"patience", "init"}
    if unknown:
        raise TypeError(f"personal_study: unknown fit options {sorted(unknown)}")
    personal_options = {k: v for k, v in fit_options.items() if k in _FIT_OPTIONS}
    train_table, test_table = split_by_target(dataset.table, test_size=test_size, seed=seed)
    shared = shared_pair_share(train_table, test_table)
    if exclude_shared_pairs:
        train_table = drop_shared_pairs(train_table, test_table)
    if features is None:
        features = pair_features_for(dataset, dataset.table, net=net, device=device, progress=progress)
    bank = PairBank(train_table, features)
    w_lpips = initial_weight_vector(net, "lpips")
    trains, tests = _person_tables(train_table), _person_tables(test_table)
    raters = sorted(set(trains) | set(tests))
    own = {r: bank.select(rater=r) for r in raters}
    fitted: dict[tuple[str, Optional[str]], dict[str, Any]] = {}     # (model, rater) -> weights and its row
    with torch_threads(threads):
        # the pooled model and each person's leave-one-out pooled model, as train.fit fits them (early
        # stopping on held-out targets), together; then every personal model, from the one it starts at
        pooled_like = [("pooled", None, train_table)]
        if lopo:
            for r in raters:
                others = train_table[train_table["rater"].astype(str) != r]
                if not others.empty:
                    pooled_like.append(("lopo", r, others))
        for (model, r, table), result in zip(pooled_like, fit_together(dataset, [
                {"table": table, "features": features, "net": net, "seed": seed, "device": device,
                 "epochs": epochs, **fit_options} for _, _, table in pooled_like], device=device)):
            fitted[(model, r)] = {"weights": result.weights, "seconds": result.seconds,
                                  "epochs": result.epochs_run, "n_pairs": result.n_train_pairs}
        personal_like = [("personal", r, fitted[("pooled", None)]["weights"]) for r in raters if len(own[r])]
        personal_like += [("personal_lopo", r, fitted[("lopo", r)]["weights"]) for r in raters
                          if len(own[r]) and ("lopo", r) in fitted]
        t0 = time.perf_counter()
        weights_of = fit_personals(features, [{"pairs": own[r], "base": base, "l2": l2, "seed": seed}
                                              for _, r, base in personal_like], epochs=epochs, net=net,
                                   device=device, **personal_options)
        seconds = (time.perf_counter() - t0) / max(len(personal_like), 1)   # the batch's time, shared equally
        for (model, r, _), w in zip(personal_like, weights_of):
            fitted[(model, r)] = {"weights": w, "seconds": seconds, "epochs": int(epochs), "n_pairs": len(own[r])}
    order = [("pooled", None)] + [(model, r) for r in raters for model in ("personal", "lopo", "personal_lopo")]
    fit_rows = [{"model": model, "rater": r, "seconds": fitted[(model, r)]["seconds"],
                 "epochs": int(fitted[(model, r)]["epochs"]), "n_pairs": int(fitted[(model, r)]["n_pairs"])}
                for model, r in order if (model, r) in fitted]
    pooled = fitted[("pooled", None)]["weights"]
    personal = {r: f["weights"] for (model, r), f in fitted.items() if model == "personal"}
    lopo_w = {r: f["weights"] for (model, r), f in fitted.items() if model == "lopo"}
    personal_lopo = {r: f["weights"] for (model, r), f in fitted.items() if model == "personal_lopo"}

    weights = {"lpips": w_lpips, "pooled": pooled}
    settings = {"dataset": getattr(dataset, "name", "custom"), "test_size": test_size, "seed": seed, "net": net,
                "device": device,
                "l2": l2, "epochs": epochs, "lopo": lopo, "exclude_shared_pairs": exclude_shared_pairs,
                "n_boot": n_boot, "ci": ci, "person_bootstrap": person_bootstrap, **fit_options,
                "shared_pair_share": shared}   # before exclude_shared_pairs removed them
    study = PersonalStudy(dataset, features, train_table, test_table, bank, weights, personal, lopo_w,
                          personal_lopo, pd.DataFrame(), pd.DataFrame(), pd.DataFrame(fit_rows), settings)
    _evaluate_study(study, raters, trains, tests)
    return study


def _evaluate_study(study: PersonalStudy, raters: list[str], trains: dict, tests: dict) -> None:
    empty = study.test_table.iloc[:0]
    rows, comps = [], []
    boot = study.two_way() if study.settings.get("person_bootstrap", True) else None
    for r in raters:
        test = tests.get(r, empty)
        models = study.models_of(r)
        scores = heldout_scores(test, study.features, models)
        row = {"rater": r, "n_train": int(trains[r]["set_id"].nunique()) if r in trains else 0,
               "n_test": int(test["set_id"].nunique())}
        for m in MODELS:
            row[f"icc_{m}"] = float(scores.at[m, "icc_A_k"]) if m in scores.index else np.nan
            row[f"rho_{m}"] = float(scores.at[m, "spearman"]) if m in scores.index else np.nan
        rows.append(row)
        for name, (a, b) in COMPARISONS.items():
            if a not in models or b not in models:
                continue
            res = {}
            for stat in STATISTICS:
                res.update({f"a_{stat}": row[f"{stat}_{a}"], f"b_{stat}": row[f"{stat}_{b}"],
                            f"delta_{stat}": row[f"{stat}_{b}"] - row[f"{stat}_{a}"],
                            f"ci_low_{stat}": np.nan, f"ci_high_{stat}": np.nan, f"p_{stat}": np.nan})
                if boot is not None and r in boot.people and len(test) and test["target"].nunique() >= 2:
                    _, deltas = boot.person_deltas(a, b, stat)
                    d = deltas[:, boot.people.index(r)]
                    if np.isfinite(d).sum() >= 2:
                        lo, hi = percentile_interval(d, study.settings["ci"])
                        res.update({f"ci_low_{stat}": lo, f"ci_high_{stat}": hi,
                                    f"p_{stat}": one_sided_pvalue(d[np.isfinite(d)])})
            comps.append({"rater": r, "comparison": name, **res})
    study.per_person = pd.DataFrame(rows).set_index("rater")
    comparisons = pd.DataFrame(comps)
    if not comparisons.empty:
        for stat in STATISTICS:
            comparisons[f"p_holm_{stat}"] = comparisons.groupby("comparison")[f"p_{stat}"].transform(
                lambda p: pd.Series(holm(p.to_numpy()), index=p.index))
    study.comparisons = comparisons


def l2_sensitivity(study: PersonalStudy, values: Sequence[float], *, threads: Optional[int] = 1) -> pd.DataFrame:
    """Refit the personal models (from the pooled one) with other pull strengths.

    One row per ``l2`` (the study's own value reuses its models): mean held-out
    Δ (personal − pooled) of ICC(A,k) and rho over people with bootstrap CIs
    over people, people with Δ > 0, and the mean distance ``||w - w_pooled||``.
    """
    s = study.settings
    options = {k: s[k] for k in _FIT_OPTIONS if k in s}
    tests = _person_tables(study.test_table)
    pooled = study.weights["pooled"]
    people = [r for r in study.raters if r in tests and r in study.personal]
    strengths = sorted(set(float(v) for v in values) | {float(s["l2"])})
    refits = [(l2, r) for l2 in strengths if l2 != float(s["l2"]) for r in people]   # all in one batched call
    with torch_threads(threads):
        refitted = dict(zip(refits, fit_personals(
            study.features, [{"pairs": study.bank.select(rater=r), "base": pooled, "l2": l2, "seed": s["seed"]}
                             for l2, r in refits], epochs=s["epochs"], net=s["net"],
            device=s.get("device", DEFAULTS.device), **options)))
    rows = []
    for l2 in strengths:
        deltas = {"icc": [], "rho": []}
        moved = []
        for r in people:
            w = study.personal[r] if l2 == float(s["l2"]) else refitted[(l2, r)]
            sc = heldout_scores(tests[r], study.features, {"pooled": pooled, "personal": w})
            deltas["icc"].append(sc.at["personal", "icc_A_k"] - sc.at["pooled", "icc_A_k"])
            deltas["rho"].append(sc.at["personal", "spearman"] - sc.at["pooled", "spearman"])
            moved.append(float((w - pooled).norm()))
        row = {"l2": l2, "is_default": l2 == float(s["l2"]), "distance_from_pooled": float(np.mean(moved))}
        for stat in STATISTICS:
            mean, lo, hi = people_interval(deltas[stat], n_boot=s["n_boot"], ci=s["ci"], seed=s["seed"])
            row.update({f"delta_{stat}": mean, f"ci_low_{stat}": lo, f"ci_high_{stat}": hi,
                        f"n_positive_{stat}": int((np.asarray(deltas[stat]) > 0).sum())})
        rows.append(row)
    return pd.DataFrame(rows).set_index("l2")
