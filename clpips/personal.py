"""Personal CLPIPS metrics: one model per person, pulled towards the pooled one.

The paper fits one CLPIPS for everybody (all raters' rankings pooled) and names
a metric adapted to each person as future work. This module builds and judges
such metrics, on any dataset whose raters each ranked several targets
(``mur92``: 16 people, the same 92 targets and candidates for all).

Models, for each person ``r`` (all fits share one feature matrix, computed once):

``lpips``
    Baseline LPIPS (v0.1 weights).
``pooled``
    CLPIPS fitted on every person's *training* rankings (the paper's model),
    exactly as :func:`clpips.experiment.run` fits it.
``personal``
    Starts from the pooled weights and is fitted on ``r``'s training rankings
    only, with the penalty ``l2 * ||w - w_pooled||^2`` pulling it back towards
    the pooled weights (:func:`clpips.train.fit_pairs` with ``l2_to``).
``lopo``
    *Leave one person out*: pooled CLPIPS fitted on everybody's training
    rankings except ``r``'s: what a new user gets before giving any ranking.
``personal_lopo``
    A personal model of ``r`` that starts from (and is pulled towards) ``lopo``
    instead: the honest "new user" personalisation, in which no model has seen
    any of ``r``'s rankings before ``r`` gives them.

Split and leakage. Targets are split once (:func:`clpips.datasets.split_by_target`,
the standard split), so every model is judged on targets that none of them was
trained on, for every person. ``pooled`` has, however, seen ``r``'s *training*
rankings: comparing ``personal`` with ``pooled`` credits the pooled model with
some of ``r``'s own data; ``personal_lopo`` versus ``lopo`` does not. A second,
smaller overlap comes from candidates: a held-out ranking of target ``X``
may contain candidate ``Y`` while the training ranking of target ``Y`` contains
``X``, the same image pair (LPIPS is symmetric). :func:`shared_pair_share`
measures it and ``exclude_shared_pairs=True`` removes those pairs from training.

Personal fits use all of the person's training rankings, no early stopping
(``epochs`` epochs, the last kept): the pull towards the starting weights is
their regulariser. Because the loss is a mean over pairs, the pull does not
weaken as a person gives more rankings.

Evaluation on a person's held-out rankings (:func:`clpips.evaluate.heldout_scores`): ICC(A,k)
and pooled Spearman's rho of the metric's within-ranking ranks against the
person's, exactly :func:`clpips.evaluate.alignment`. Intervals come from one
two-way bootstrap (:func:`two_way_bootstrap`): people and held-out targets are
drawn with replacement, independently, and both models of a comparison are
scored on the same draws. The mean Δ = challenger − reference over people gets
its percentile interval (:meth:`PersonalStudy.across_people`, with a sign test
and a Wilcoxon signed-rank test over people); each person's Δ gets the interval
and a one-sided p-value of the same target draws.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import pandas as pd
import torch
from scipy import stats as sps

from .datasets.splits import drop_shared_pairs, shared_pair_share
from .defaults import DEFAULTS
from .experiment import fit_options_except
from .report import format_p  # noqa: F401  (the chapters' p-values in words; its home is clpips.report)
from .train import torch_threads
from .evaluate import heldout_scores, ranking_ids
from .model import initial_weight_vector, layer_slices
from .stats import bootstrap_counts, one_sided_pvalue, percentile_interval, resampled_statistics

#: model columns of :attr:`PersonalStudy.per_person`, in display order
MODELS = ("lpips", "pooled", "personal", "lopo", "personal_lopo")
#: the comparisons reported: name -> (reference model a, challenger model b); Δ = b − a
COMPARISONS = {
    "personal_vs_pooled": ("pooled", "personal"),
    "new_user": ("lopo", "personal_lopo"),
    "pooled_vs_lpips": ("lpips", "pooled"),
    "personal_vs_lpips": ("lpips", "personal"),
    "new_user_vs_lpips": ("lpips", "personal_lopo"),
    "lopo_vs_lpips": ("lpips", "lopo"),
}
#: what each comparison means, for tables and captions
COMPARISON_LABELS = {
    "personal_vs_pooled": "personal − pooled",
    "new_user": "new user: personal − LOPO",
    "pooled_vs_lpips": "pooled − LPIPS",
    "personal_vs_lpips": "personal − LPIPS",
    "new_user_vs_lpips": "new user: personal − LPIPS",
    "lopo_vs_lpips": "LOPO − LPIPS",
}
STATISTICS = ("icc", "rho")
_STAT_LABEL = {"icc": "ΔICC(A,k)", "rho": "Δrho"}


# --------------------------------------------------------------------------- small helpers
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


def people_interval(values: Sequence[float], n_boot: int = DEFAULTS.n_boot, ci: float = DEFAULTS.ci,
                    seed: int = DEFAULTS.seed) -> tuple[float, float, float]:
    """Mean of per-person values with a percentile bootstrap interval over people
    (:func:`scipy.stats.bootstrap`, ``rng = numpy.random.default_rng(seed)``).

    NaN values (people without a result) are left out. Returns ``(mean, low, high)``;
    with fewer than two values the interval is NaN.
    """
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return np.nan, np.nan, np.nan
    if len(x) < 2:
        return float(x.mean()), np.nan, np.nan
    res = sps.bootstrap((x,), np.mean, n_resamples=int(n_boot), confidence_level=ci, method="percentile",
                        vectorized=True, rng=np.random.default_rng(seed))
    return float(x.mean()), float(res.confidence_interval.low), float(res.confidence_interval.high)


def paired_tests(deltas: Sequence[float]) -> dict[str, float]:
    """Sign test and Wilcoxon signed-rank test (two-sided) of per-person differences against 0.

    Returns ``n`` (people with a value), ``n_positive``, ``n_negative``,
    ``sign_p`` (exact binomial test on the non-zero signs) and ``wilcoxon_p``
    (:func:`scipy.stats.wilcoxon`, exact for small samples without ties;
    NaN with fewer than two non-zero differences).
    """
    d = np.asarray(deltas, dtype=float)
    d = d[~np.isnan(d)]
    pos, neg = int((d > 0).sum()), int((d < 0).sum())
    sign_p = float(sps.binomtest(pos, pos + neg, 0.5).pvalue) if pos + neg else np.nan
    nonzero = d[d != 0]
    if len(nonzero) >= 2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # scipy's note on exact p with ties
            wil = float(sps.wilcoxon(nonzero).pvalue)
    else:
        wil = np.nan
    return {"n": int(len(d)), "n_positive": pos, "n_negative": neg, "sign_p": sign_p, "wilcoxon_p": wil}


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (NaN stays NaN): :func:`pingouin.multicomp`."""
    import pingouin
    p = np.asarray(pvalues, dtype=float)
    if np.isnan(p).all():
        return np.full_like(p, np.nan)
    return np.asarray(pingouin.multicomp(p, method="holm")[1], dtype=float)


# --------------------------------------------------------------------------- two-way bootstrap
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
        W = torch.stack([torch.as_tensor(w, dtype=torch.float32).flatten() for w in models.values()], dim=1)
        dist = (features.matrix[rows] @ W).numpy().astype(float)
        parts.append(part.assign(**{m: dist[:, i] for i, m in enumerate(models)}))
    out = pd.concat(parts) if parts else test_table.iloc[:0].copy()
    for m in MODELS:
        if m not in out.columns:
            out[m] = np.nan
    return out


# --------------------------------------------------------------------------- pairs
class PairBank:
    """Every training pair of a ranking table, indexed once, selectable by rater and target.

    Building pairs (:func:`clpips.pairs.ranking_pairs`) and looking up their
    feature rows is the slow part of a small fit; the bank does it once for the
    whole training table, so a fit on any person's subset of targets is a
    boolean mask.
    """

    def __init__(self, table: pd.DataFrame, features):
        from .pairs import ranking_pairs
        from .train import pair_index
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
    from .train import fit_pairs
    base = torch.as_tensor(base, dtype=torch.float32)
    return fit_pairs(features.matrix, pairs, None, base, net=net, epochs=epochs, seed=seed, l2=l2, l2_to=base,
                     init="base", **options)


#: the fit options of a personal fit: all run (no early stopping) from the base weights
_FIT_OPTIONS = fit_options_except("epochs", "patience", "init")


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
    from .datasets import split_by_target
    from .train import fit, pair_features_for

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
    fit_rows: list[dict[str, Any]] = []

    def record(model: str, rater: Optional[str], result) -> torch.Tensor:
        fit_rows.append({"model": model, "rater": rater, "seconds": result.seconds,
                         "epochs": int(len(result.history)), "n_pairs": int(result.config["n_train_pairs"])})
        return result.weights

    trains, tests = _person_tables(train_table), _person_tables(test_table)
    raters = sorted(set(trains) | set(tests))
    personal, lopo_w, personal_lopo = {}, {}, {}
    with torch_threads(threads):
        pooled = record("pooled", None, fit(dataset, train_table, net=net, seed=seed, device=device,
                                            features=features, progress=False, epochs=epochs, **fit_options))
        for r in raters:
            pairs = bank.select(rater=r)
            if len(pairs):
                personal[r] = record("personal", r, fit_personal(features, pairs, pooled, l2=l2, epochs=epochs,
                                                                 seed=seed, net=net, device=device,
                                                                 **personal_options))
            if lopo:
                others = train_table[train_table["rater"].astype(str) != r]
                if others.empty:
                    continue
                lopo_w[r] = record("lopo", r, fit(dataset, others, net=net, seed=seed, device=device,
                                                  features=features, progress=False, epochs=epochs,
                                                  **fit_options))
                if len(pairs):
                    personal_lopo[r] = record("personal_lopo", r, fit_personal(
                        features, pairs, lopo_w[r], l2=l2, epochs=epochs, seed=seed, net=net, device=device,
                        **personal_options))

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
    rows = []
    for l2 in sorted(set(float(v) for v in values) | {float(s["l2"])}):
        deltas = {"icc": [], "rho": []}
        moved = []
        with torch_threads(threads):
            for r in study.raters:
                if r not in tests or r not in study.personal:
                    continue
                if l2 == float(s["l2"]):
                    w = study.personal[r]
                else:
                    w = fit_personal(study.features, study.bank.select(rater=r), pooled, l2=l2, epochs=s["epochs"],
                                     seed=s["seed"], net=s["net"], device=s.get("device", DEFAULTS.device),
                                     **options).weights
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


# --------------------------------------------------------------------------- learning curve
@dataclass
class LearningCurve:
    """How a personal model's held-out advantage grows with the rankings a person gives.

    ``runs``: one row per (rater, size, repeat): ``n_rankings`` used, the
    personal model's ``icc`` and ``rho`` on the person's held-out rankings,
    the base model's (``icc_base``, ``rho_base``) and ``delta_icc``, ``delta_rho``.
    A size equal to all of a person's training rankings is labelled ``"all"``
    in ``size_label`` and run once (the subsample is the whole set).
    """

    runs: pd.DataFrame
    base: str
    settings: dict[str, Any] = field(default_factory=dict)

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
    rows = []
    with torch_threads(threads):
        for person_index, r in enumerate(study.raters):
            if r not in trains or r not in tests:
                continue
            b = study.lopo.get(r) if base == "lopo" else study.weights["pooled"]
            full = study.personal_lopo.get(r) if base == "lopo" else study.personal.get(r)
            if b is None or full is None:
                continue
            targets = np.array(sorted(trains[r]["target"].unique()), dtype=object)
            candidates: dict[str, torch.Tensor] = {"base": b}
            meta = []
            for size in sizes:
                if size >= len(targets):
                    continue
                for rep in range(repeats):
                    rng = np.random.default_rng([seed, person_index, size, rep])
                    chosen = targets[rng.choice(len(targets), size=size, replace=False)]
                    result = fit_personal(study.features, study.bank.select(rater=r, targets=chosen), b,
                                          l2=s["l2"], epochs=s["epochs"], seed=seed + rep, net=s["net"],
                                          device=s.get("device", DEFAULTS.device), **options)
                    key = f"{size}/{rep}"
                    candidates[key] = result.weights
                    meta.append((key, str(size), size, rep, size))
            candidates["all"] = full
            meta.append(("all", "all", len(targets), 0, len(targets)))
            scores = heldout_scores(tests[r], study.features, candidates)
            for key, label, order, rep, n in meta:
                rows.append({"rater": r, "size_label": label, "size_order": order if label != "all" else 10 ** 9,
                             "repeat": rep, "n_rankings": n,
                             "icc": scores.at[key, "icc_A_k"], "rho": scores.at[key, "spearman"],
                             "icc_base": scores.at["base", "icc_A_k"], "rho_base": scores.at["base", "spearman"]})
    runs = pd.DataFrame(rows)
    if not runs.empty:
        runs["delta_icc"] = runs["icc"] - runs["icc_base"]
        runs["delta_rho"] = runs["rho"] - runs["rho_base"]
    return LearningCurve(runs, base, {"sizes": sizes, "repeats": repeats, "seed": seed, "n_boot": s["n_boot"],
                                      "ci": s["ci"]})


# --------------------------------------------------------------------------- whose model?
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


# --------------------------------------------------------------------------- layer weights
def layer_shares(weights: Mapping[str, torch.Tensor], net: str = DEFAULTS.net, features=None) -> pd.DataFrame:
    """Each model's share of its total weight per LPIPS layer (rows: models; columns: layers 1..5).

    With ``features`` (a :class:`~clpips.features.PairFeatures` or a matrix), the
    share of the mean *distance* each layer contributes instead: the mean over
    feature rows of ``phi_l . w_l`` divided by the mean distance. Rows sum to 1.
    """
    slices = layer_slices(net)
    matrix = None
    if features is not None:
        matrix = getattr(features, "matrix", features)
        matrix = torch.as_tensor(matrix, dtype=torch.float32)
    rows = {}
    for name, w in weights.items():
        w = torch.as_tensor(w, dtype=torch.float32).flatten()
        if matrix is not None:
            per_layer = [float((matrix[:, part] @ w[part]).mean()) for part in slices]
        else:
            per_layer = [float(w[part].sum()) for part in slices]
        total = sum(per_layer)
        rows[name] = [v / total if total > 0 else np.nan for v in per_layer]
    return pd.DataFrame.from_dict(rows, orient="index", columns=[f"layer {i + 1}" for i in range(len(slices))])


def layer_changes(weights: Mapping[str, torch.Tensor], base: torch.Tensor, net: str = DEFAULTS.net) -> pd.DataFrame:
    """How far each model moved from ``base`` within each layer: ``||w_l - base_l|| / ||base_l||``.

    Rows: models; columns: layers 1..5. Complements :func:`layer_shares`: a
    model can keep every layer's share and still reweight the channels inside it.
    """
    slices = layer_slices(net)
    base = torch.as_tensor(base, dtype=torch.float32).flatten()
    rows = {}
    for name, w in weights.items():
        w = torch.as_tensor(w, dtype=torch.float32).flatten()
        rows[name] = [float((w[part] - base[part]).norm() / base[part].norm()) if float(base[part].norm()) > 0
                      else np.nan for part in slices]
    return pd.DataFrame.from_dict(rows, orient="index", columns=[f"layer {i + 1}" for i in range(len(slices))])


# --------------------------------------------------------------------------- simulated truth
def attribute_sensitivity(dataset, features, weights: Mapping[str, torch.Tensor]) -> pd.DataFrame:
    """How strongly each model's distance reacts to each scene attribute (simulated data).

    For every (target, candidate) pair of the dataset, a least-squares fit of
    the model's distance on an intercept and one indicator per attribute
    (1 where the candidate's attribute differs from the target's) gives one
    coefficient per attribute: the distance added by getting that attribute
    wrong. Needs ``dataset.truth.scenes`` (:mod:`clpips.datasets.simulated`).

    Returns
    -------
    DataFrame: rows = models, columns = attributes.
    """
    from .datasets.scenes import NAMES
    truth = getattr(dataset, "truth", None)
    if truth is None or not hasattr(truth, "scenes"):
        raise ValueError("attribute_sensitivity needs a simulated dataset (dataset.truth.scenes)")
    scenes = truth.scenes.set_index("image")
    pairs = dataset.table[["target", "candidate"]].drop_duplicates()
    t = scenes.loc[pairs["target"], list(NAMES)].to_numpy()
    c = scenes.loc[pairs["candidate"], list(NAMES)].to_numpy()
    X = np.column_stack([np.ones(len(pairs)), (t != c).astype(float)])
    rows = features.rows(pairs["target"], pairs["candidate"])
    W = torch.stack([torch.as_tensor(w, dtype=torch.float32).flatten() for w in weights.values()], dim=1)
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
    from .datasets.scenes import NAMES
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
