"""The nested, repeated cross-validation protocol: does CLPIPS agree better with people on unseen targets?

The targets are cut into ``folds`` outer folds, ``repeats`` times (split by target as the paper, or by
image: no image on both sides; a dataset that draws its candidate sets draws them anew every repeat).
On each outer training side only, ``inner_folds`` inner folds score every setting of the :class:`Grid`
and "do not train" (LPIPS's weights); the setting of best mean ``select`` is refitted on the whole
training side and scored beside LPIPS on the held-out rankings, with the differences (CLPIPS - LPIPS).
Held-out rankings never reach the choice (asserted on every fold). Split by image, a study with fixed
candidates loses rows: a held-out ranking left with fewer than ``min_candidates`` is not scored, and a
split that would score under half of a fold's held-out rankings is refused (:class:`SplitRefused`).
Chapter 04 walks through a run; ``book/method.md`` gives the statistics.

A run is ``crossval(dataset, Settings(...), family, compute=Compute(...))``: :class:`Settings` holds
everything that changes its numbers (and keys its cache), :class:`Compute` how it is computed, and the
:class:`Family` the metric fitted beside LPIPS (:data:`LINEAR`: the paper's CLPIPS; chapter 09's in
:mod:`clpips.book.families`). Every inner fit of a run trains together in :func:`clpips.train.fit_many`,
then every refit. Results are cached on disk, each file verified against the sha256 written with it.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import io
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Optional, Protocol, Sequence

import numpy as np
import pandas as pd
import torch

import clpips.atomic as atomic
# called through their modules, so that a test replacing one of their functions replaces it here too
from clpips import evaluate, experiment, train
from clpips.choices import PROTOCOL_METRICS as METRICS, PROTOCOL_STATISTICS as STATISTICS, SELECT
from clpips.datasets.schema import spreadsheet_safe
from clpips.datasets.splits import check_split_mode, fold_targets, shared_pair_share, split_folds, split_modes_coincide
from clpips.defaults import DEFAULTS
from clpips.evaluate import RANKING, ranking_ids
from clpips.experiment import cache_key
from clpips.features import CacheWarning
from clpips.model import initial_weight_vector
from clpips.moved import moved_name
from clpips.paths import cache_dir
from clpips.stats import corrected_resampled_t, percentile_interval

PROTOCOL_VERSION = 7  #: bump when a change alters results: it keys the cache (7: train.steps_on_pairs' rule)
#: a split by image is refused when an outer fold scores fewer than this share of its held-out targets' rankings
MIN_SCORED_SHARE = 0.5
#: a chosen value at an edge of the grid in more than this share of the outer folds is warned about
EDGE_SHARE = 0.5


class GridEdgeWarning(UserWarning):
    """A tuned value was chosen at an edge of the grid in most outer folds (:func:`grid_edges`)."""


class SplitRefused(ValueError):
    """A split by image would leave too little held out to judge (:func:`check_split`)."""


def positive_numbers(text: str | Sequence[float]) -> tuple[float, ...]:
    """Positive finite numbers from a comma-separated string (the defaults' and the CLI's form) or a sequence."""
    values = [float(x) for x in (text.split(",") if isinstance(text, str) else text) if str(x).strip()]
    if not values or not all(np.isfinite(values)) or min(values) <= 0:
        raise ValueError(f"expected positive finite numbers, comma-separated, got {text!r}")
    return tuple(values)


@dataclass(frozen=True)
class Grid:
    """The settings the inner folds choose among: every (margin, lr, epochs), and first "do not train"
    (margin and lr NaN, 0 epochs: the starting weights unfitted), which also wins a tie: the simpler model."""

    margins: tuple[float, ...] = positive_numbers(DEFAULTS.protocol_margins)
    lrs: tuple[float, ...] = positive_numbers(DEFAULTS.protocol_lrs)
    epochs: tuple[int, ...] = tuple(int(e) for e in positive_numbers(DEFAULTS.protocol_epochs))

    @classmethod
    def parse(cls, margins: str | Sequence[float] = DEFAULTS.protocol_margins,
              lrs: str | Sequence[float] = DEFAULTS.protocol_lrs,
              epochs: str | Sequence[int] = DEFAULTS.protocol_epochs) -> "Grid":
        ep = positive_numbers(epochs)
        if any(e != int(e) for e in ep):
            raise ValueError(f"epochs must be whole numbers, got {epochs!r}")
        return cls(positive_numbers(margins), positive_numbers(lrs), tuple(sorted(set(int(e) for e in ep))))

    def columns(self) -> list[tuple[float, float]]:
        """(margin, lr) pairs, one per trained column."""
        return list(product(self.margins, self.lrs))

    def settings(self) -> pd.DataFrame:
        """Every setting in report order: "do not train" (:data:`UNTRAINED`), then by margin, lr and epochs."""
        return pd.DataFrame([UNTRAINED] + [(m, lr, e) for (m, lr) in self.columns() for e in self.epochs],
                            columns=["margin", "lr", "epochs"])


#: the setting "do not train" (:meth:`Grid.settings`' first row): no margin, no learning rate, 0 epochs
UNTRAINED = (float("nan"), float("nan"), 0)


@dataclass(frozen=True)
class Settings:
    """What a run computes: every option that changes its numbers (so they key its cache), checked here.

    ``mode``: one of :data:`clpips.datasets.SPLIT_MODES`. ``select``: the inner folds' criterion, one of
    :data:`SELECT` (higher is better). ``seed``: the fold assignments (repeat ``r`` uses one derived from
    ``(seed, r)``), the initial weights and the shuffles. ``net`` ... ``project``: as
    :func:`clpips.train.fit_pairs`. ``min_candidates``: the fewest candidates a held-out ranking split by
    image keeps to be scored (the refusal rule in the module docstring, :func:`check_split`).
    """

    mode: str = DEFAULTS.split_mode
    folds: int = DEFAULTS.protocol_folds
    repeats: int = DEFAULTS.protocol_repeats
    inner_folds: int = DEFAULTS.protocol_inner_folds
    grid: Grid = Grid()
    select: str = DEFAULTS.protocol_select
    seed: int = DEFAULTS.seed
    net: str = DEFAULTS.net
    init: str = DEFAULTS.init
    loss: str = DEFAULTS.loss
    batch_size: int = DEFAULTS.batch_size
    layers: str = DEFAULTS.layers
    project: bool = DEFAULTS.project
    min_candidates: int = DEFAULTS.protocol_min_candidates

    def __post_init__(self) -> None:
        check_split_mode(self.mode)
        if self.select not in SELECT:
            raise ValueError(f"select must be one of {SELECT}, got {self.select!r}")
        if self.folds < 2 or self.inner_folds < 2 or self.repeats < 1:
            raise ValueError(f"need folds >= 2, inner_folds >= 2 and repeats >= 1, got {self.folds}, "
                             f"{self.inner_folds}, {self.repeats}")
        if int(self.min_candidates) != self.min_candidates or self.min_candidates < 2:
            raise ValueError(f"min_candidates must be a whole number >= 2, got {self.min_candidates!r}")

    def replace(self, **changes: Any) -> "Settings":
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_parameters(cls, parameters: Mapping[str, Any], **changes: Any) -> "Settings":
        """A chapter's protocol, from its parameters (:func:`options`): every chapter shares the same runs."""
        return cls(**{**options(parameters), **changes})


@dataclass(frozen=True)
class Compute:
    """How a run is computed (it does not key the cache). ``threads``: torch threads per fitting process (1,
    the default, makes the cached numbers; other counts sum the fits' products in other orders and move the
    weights' last bits); ``workers``: local processes; ``executor``: any :class:`concurrent.futures.Executor`
    to run the fits on instead (a Dask cluster's, ``Client(...).get_executor()``); neither changes a number."""

    device: str = DEFAULTS.device
    progress: bool = False
    threads: Optional[int] = 1
    workers: int = DEFAULTS.workers
    executor: Optional[concurrent.futures.Executor] = None


#: notebook parameters (clpips.defaults names) -> field of :class:`Settings`
PARAMETERS = {"protocol_folds": "folds", "protocol_repeats": "repeats", "protocol_inner_folds": "inner_folds",
              "protocol_select": "select", "seed": "seed", "net": "net", "init": "init", "loss": "loss",
              "batch_size": "batch_size", "layers": "layers", "project": "project",
              "protocol_min_candidates": "min_candidates"}


def options(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """:class:`Settings` fields from a chapter's ``globals()``: :data:`PARAMETERS` and ``protocol_margins/lrs/epochs``."""
    out = {name: parameters[given] for given, name in PARAMETERS.items() if given in parameters}
    out["grid"] = Grid.parse(*(parameters.get(f"protocol_{n}", getattr(DEFAULTS, f"protocol_{n}"))
                               for n in ("margins", "lrs", "epochs")))
    return out


@dataclass
class CrossvalResult:
    """What :func:`crossval` returns (and what ``clpips crossval`` writes)."""

    folds: pd.DataFrame      #: one row per outer fold: sizes, chosen setting, LPIPS and CLPIPS statistics, deltas
    inner: pd.DataFrame      #: one row per (outer fold, setting): mean inner-fold statistics
    oof: pd.DataFrame        #: out-of-fold held-out rows with the ``lpips`` and ``clpips`` distances
    weights: np.ndarray      #: the refitted weights of each outer fold (folds x D)
    settings: dict[str, Any] = field(default_factory=dict)
    _boot: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    store: Optional[Path] = field(default=None, repr=False, compare=False)  #: its cache folder, if cached

    def summary(self, ci: float = DEFAULTS.ci, n_boot: int = DEFAULTS.n_boot,
                seed: Optional[int] = None, bootstrap: bool = True) -> pd.DataFrame:
        """Per statistic: LPIPS and CLPIPS means over folds, the mean Δ, and its intervals.

        ``nb_*``: corrected resampled t over the ``repeats x folds`` per-fold differences (training and test
        sets vary together; ``n_test / n_train`` from the target counts). ``boot_*`` (ICC(A,k) and
        within-ranking rho): :meth:`target_bootstrap` (test targets vary, given the fitted models).
        ``positive_share``: share of folds where CLPIPS agreed better. ``bootstrap=False`` leaves ``boot_*``
        NaN (it costs ~9 s on mur92).
        """
        f = self.folds
        ratio = float((f["n_test_targets"] / f["n_train_targets"]).mean())
        boot = self.target_bootstrap(ci=ci, n_boot=n_boot, seed=seed) if bootstrap else {}
        n_boot_targets = float(len(self.boot_targets())) if boot else np.nan
        rows = []
        for stat in STATISTICS:
            d = f[f"delta_{stat}"].to_numpy(float)
            nb = corrected_resampled_t(d, ratio, ci)
            row = {"statistic": stat, "lpips": float(f[f"lpips_{stat}"].mean()),
                   "clpips": float(f[f"clpips_{stat}"].mean()), "delta": nb["mean"], "sd": nb["sd"],
                   "nb_low": nb["low"], "nb_high": nb["high"], "nb_pval": nb["pval"],
                   "positive_share": float(np.mean(d > 0)), "n_folds": nb["n"],
                   "boot_delta": np.nan, "boot_low": np.nan, "boot_high": np.nan, "boot_targets": np.nan}
            if stat in boot:
                row.update(boot[stat], boot_targets=n_boot_targets)
            rows.append(row)
        return pd.DataFrame(rows).set_index("statistic")

    def _repeat_bootstraps(self, ci: float, n_boot: int, seed: Optional[int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Per repeat: the bootstrap distribution of (ΔICC(A,k), Δrho) over targets (n_boot x 2) and the
        observed pair; stored beside the cached run, so the chapters that show it share it."""
        seed = self.settings.get("seed", DEFAULTS.seed) if seed is None else seed
        key = (float(ci), int(n_boot), int(seed))
        if key in self._boot:
            return self._boot[key]
        if self.store is None:
            self._boot[key] = self._compute_bootstraps(ci, n_boot, seed)
            return self._boot[key]
        stored = self.store / f"boot-{ci:g}-{int(n_boot)}-{int(seed)}.npz"   # a checked entry beside the run

        def write(out: dict) -> None:
            if self.store.is_dir():   # not a run folder another process has just found bad and removed
                atomic.write_checked(stored, _boot_bytes(out))
        self._boot[key] = atomic.read_or_compute(_lock_path(self.store), lambda: _read_boot(stored),
                                                 lambda: self._compute_bootstraps(ci, n_boot, seed), write)
        return self._boot[key]

    def _compute_bootstraps(self, ci: float, n_boot: int, seed: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        common = self.boot_targets()
        out = {}
        for r, part in self.oof.groupby("repeat", sort=True):
            res = experiment.bootstrap_result(part[part["target"].isin(common)], "lpips", "clpips", unit="target",
                                              n_boot=n_boot, seed=seed, ci=ci)
            out[int(r)] = (res.distribution[["delta_icc", "delta_rho"]].to_numpy(float),
                           res.observed["delta"].to_numpy(float)[:2])
        return out

    def boot_targets(self) -> set:
        """The targets the target bootstrap draws: those every repeat scored out of fold (split by target: all)."""
        return set.intersection(*(set(part["target"]) for _, part in self.oof.groupby("repeat", sort=True)))

    def target_bootstrap(self, ci: float = DEFAULTS.ci, n_boot: int = DEFAULTS.n_boot,
                         seed: Optional[int] = None) -> dict[str, dict[str, float]]:
        """ΔICC(A,k) and Δrho of the out-of-fold rankings, bootstrapped over targets: each repeat's
        out-of-fold rows form one held-out table (every target scored by the model that did not see it);
        the same seed and targets give every repeat the same draws, so the repeats are averaged draw by draw.
        """
        results = self._repeat_bootstraps(ci, n_boot, seed)
        mean = np.mean([d for d, _ in results.values()], axis=0)
        obs = np.mean([o for _, o in results.values()], axis=0)
        out = {}
        for j, stat in enumerate(("icc_A_k", "spearman")):
            lo, hi = percentile_interval(mean[:, j], ci)
            out[stat] = {"boot_delta": float(obs[j]), "boot_low": float(lo), "boot_high": float(hi)}
        return out

    def target_bootstrap_repeat(self, repeat: int, ci: float = DEFAULTS.ci, n_boot: int = DEFAULTS.n_boot,
                                seed: Optional[int] = None) -> dict[str, float]:
        """ΔICC(A,k) of one repeat's out-of-fold rankings with its target-bootstrap percentile interval."""
        dist, obs = self._repeat_bootstraps(ci, n_boot, seed)[int(repeat)]
        lo, hi = percentile_interval(dist[:, 0], ci)
        return {"delta": float(obs[0]), "low": float(lo), "high": float(hi)}

    def versus(self, other: "CrossvalResult", statistic: str = "icc_A_k", ci: float = DEFAULTS.ci) -> dict[str, float]:
        """This run's fitted metric minus ``other``'s on the same folds: the mean per-fold difference of
        ``statistic``, its corrected resampled t interval and the share of folds where this one is ahead."""
        keys = ["repeat", "fold", "n_train_targets", "n_test_targets", "n_test_rows"]
        if not self.folds[keys].equals(other.folds[keys]):
            raise ValueError("the two runs were not made on the same folds (compare runs of one dataset and mode "
                             "with the same protocol settings)")
        d = (self.folds[f"clpips_{statistic}"] - other.folds[f"clpips_{statistic}"]).to_numpy(float)
        ratio = float((self.folds["n_test_targets"] / self.folds["n_train_targets"]).mean())
        nb = corrected_resampled_t(d, ratio, ci)
        return {"delta": nb["mean"], "low": nb["low"], "high": nb["high"], "pval": nb["pval"],
                "positive_share": float(np.mean(d > 0)), "n_folds": nb["n"]}

    def setting_columns(self) -> list[str]:
        """The fold columns naming the fitted setting (between ``fold`` and ``trained``): first any followed
        from another run (absent from the inner table), then those its inner folds chose among."""
        columns = list(self.folds.columns)
        if "fold" not in columns or "trained" not in columns:
            return []
        named = columns[columns.index("fold") + 1:columns.index("trained")]
        return sorted(named, key=lambda name: name in self.inner.columns)   # stable: each group keeps its order

    def chosen(self) -> pd.DataFrame:
        """How often each setting was chosen over the outer folds."""
        return (self.folds.groupby(self.setting_columns(), dropna=False).size().rename("folds").reset_index()
                .sort_values("folds", ascending=False, kind="stable").reset_index(drop=True))

    def __getattr__(self, name: str):
        # kept(), the CLI's report of what the folds kept, is clpips.apps.outputs.kept(result) now (one release)
        return functools.partial(moved_name(f"{__name__}.CrossvalResult", name), self)


def grid_edges(folds: pd.DataFrame, grid: "Grid | pd.DataFrame", where: str = "", warn: bool = True,
               stacklevel: int = 2) -> pd.DataFrame:
    """Per tuned parameter: its lowest and highest value offered (``grid``: a :class:`Grid` or a result's
    ``inner``) and the share of outer folds that chose each ("do not train" is at neither). A share over
    :data:`EDGE_SHARE` for a parameter offered with three values or more (with two, every choice is at an
    edge) is named in ``warning`` and, with ``warn``, a :class:`GridEdgeWarning` that ``where`` begins."""
    offered = grid.settings() if isinstance(grid, Grid) else grid
    rows = []
    tuned = [] if folds.empty else [c for c in offered.columns if c in folds.columns and c not in ("repeat", "fold")]
    for name in tuned:
        values = np.unique(offered[name].to_numpy(float))
        values = values[np.isfinite(values) & ((values > 0) if name == "epochs" else True)]  # not "do not train"
        if len(values) < 2:
            continue
        chosen = folds[name].to_numpy(float)
        row = {"parameter": name, "low": float(values[0]), "high": float(values[-1]), "n_folds": len(chosen),
               "at_low": float(np.isclose(chosen, values[0], rtol=1e-9, atol=0).mean()),
               "at_high": float(np.isclose(chosen, values[-1], rtol=1e-9, atol=0).mean()), "warning": ""}
        for edge, word in (("low", "lowest"), ("high", "highest")):
            if row[f"at_{edge}"] > EDGE_SHARE and len(values) >= 3:
                row["warning"] = (f"{where}{name} = {row[edge]:g}, the {word} value offered, was chosen in "
                                  f"{int(round(row[f'at_{edge}'] * len(chosen)))} of {len(chosen)} outer folds: "
                                  f"the best setting may lie beyond the grid (widen it past {row[edge]:g})")
        if warn and row["warning"]:
            warnings.warn(row["warning"], GridEdgeWarning, stacklevel=stacklevel)
        rows.append(row)
    table = pd.DataFrame(rows, columns=["parameter", "low", "high", "at_low", "at_high", "n_folds", "warning"])
    return table.set_index("parameter")


# --------------------------------------------------------------------------- metric families
@dataclass(frozen=True, eq=False)
class FitJob:
    """One fit of a run: outer fold ``outer``'s inner fold ``inner`` (None: the refit on its training side)."""

    outer: int
    inner: Optional[int]
    train: pd.DataFrame


@dataclass(frozen=True, eq=False)
class RunInputs:
    """What a family is given to fit one run: its outer folds (dicts with ``repeat``, ``fold``, ``train``,
    ``test``, ``inner``: (train, test) pairs, ``kept``), every row of their tables (``every``), LPIPS's
    pair features of those rows and the starting weights ``w0``."""

    dataset: Any
    settings: Settings
    compute: Compute
    outer: list
    every: pd.DataFrame
    features: Any
    w0: torch.Tensor


@dataclass(frozen=True, eq=False)
class Fits:
    """A family made ready for one run: what the protocol calls.

    ``settings``: one row per setting the inner folds choose among (its columns name it in the tables).
    ``fit(jobs, chosen=None)``: per :class:`FitJob`, a ``settings x P`` array of fitted parameters; with
    ``chosen`` (per job, a row of ``settings``) a ``1 x P`` array. ``distances(table, params)``: ``rows x
    len(params)``. ``describe``: only for an untuned family (one setting, no inner fits): outer fold
    ``i`` -> the columns naming the setting it fitted there."""

    settings: pd.DataFrame
    fit: Callable[..., list]
    distances: Callable[[pd.DataFrame, Any], np.ndarray]
    describe: Optional[Callable[[int], dict[str, Any]]] = None

    @property
    def tuned(self) -> bool:
        return self.describe is None


class Family(Protocol):
    """A metric the protocol fits and compares with LPIPS: :data:`LINEAR` or one of :mod:`clpips.book.families`.

    ``name`` labels its runs (``settings["metric"]``, absent for CLPIPS); ``options()``: its own settings
    (recorded, so they key the cache); ``prepare(inputs)``: its :class:`Fits` for one run."""

    name: ClassVar[str]

    def options(self) -> dict[str, Any]: ...

    def prepare(self, inputs: RunInputs) -> Fits: ...


@dataclass(frozen=True)
class LinearFamily:
    """CLPIPS, the paper's metric: ``d = features[row] @ w`` on LPIPS's pair features (:func:`linear_fits`)."""

    name: ClassVar[str] = "clpips"

    def options(self) -> dict[str, Any]:
        return {}

    def prepare(self, inputs: RunInputs) -> Fits:
        return linear_fits(inputs)


#: the paper's CLPIPS as a family: :func:`crossval`'s default
LINEAR = LinearFamily()


def linear_fits(inputs: RunInputs, store: Any = None,
                follow: Optional[Mapping[tuple[int, int], Mapping[str, Any]]] = None) -> Fits:
    """:class:`Fits` of a metric linear in per-pair feature rows (``d = store.matrix[row] @ w``, default
    ``store``: LPIPS's pair features), trained by :func:`clpips.train.fit_many` for every setting of the
    :class:`Grid`; or, with ``follow`` (by (repeat, fold): another run's choice,
    :func:`clpips.book.families.fold_choices`), refitted once per outer fold with that setting. ``store`` may
    be a callable ``jobs -> (store, pairs per job)`` (the teacher's student: its rows are known only once its
    teacher has ranked)."""
    fitter = _LinearFitter(inputs, inputs.features if store is None else store, follow)
    if follow is None:
        return Fits(inputs.settings.grid.settings(), fitter.fit, fitter.distances)
    return Fits(pd.DataFrame(index=[0]), fitter.fit, fitter.distances, describe=fitter.describe)


class _LinearFitter:
    """:func:`linear_fits`' callables, sharing the feature rows."""

    def __init__(self, inputs: RunInputs, source: Any, follow: Optional[Mapping]):
        self.inputs, self.source, self.follow = inputs, source, follow
        self.store = None if callable(source) else source
        self.every_setting = inputs.settings.grid.settings()
        # "do not train": a copy, not a view of w0 (a tensor handed to worker processes may be moved into
        # shared memory, which would leave a view pointing at freed memory)
        self.unfitted = torch.as_tensor(inputs.w0, dtype=torch.float32).numpy().copy().reshape(1, -1)

    def fit(self, jobs: Sequence[FitJob], chosen: Optional[Sequence[int]] = None) -> list[np.ndarray]:
        if callable(self.source):
            self.store, pairs = self.source(jobs)
        else:
            pairs = [train.ranking_pair_index(self.store, job.train) for job in jobs]
        grid, seed = self.inputs.settings.grid, self.inputs.settings.seed
        if self.follow is None and chosen is None:    # every setting: "do not train", then the grid's
            margins, lrs = zip(*grid.columns())
            whole = [train.GridJob(job_pairs, margins, lrs, grid.epochs, seed) for job_pairs in pairs]
            return [np.concatenate([self.unfitted, w]) for w in self._trained(whole)]
        picks = [self._pick(job.outer) if self.follow is not None else self.every_setting.iloc[chosen[n]]
                 for n, job in enumerate(jobs)]
        alone = [train.GridJob(pairs[n], (float(p["margin"]),), (float(p["lr"]),), (int(p["epochs"]),), seed)
                 for n, p in enumerate(picks) if int(p["epochs"]) > 0]   # the others: "do not train"
        trained = iter(self._trained(alone) if alone else [])
        return [next(trained) if int(p["epochs"]) > 0 else self.unfitted for p in picks]

    def _trained(self, grid_jobs: list) -> list[np.ndarray]:
        s, c = self.inputs.settings, self.inputs.compute
        trained = train.fit_many(self.store.matrix, grid_jobs, self.inputs.w0, net=s.net, loss=s.loss,
                                 batch_size=s.batch_size, layers=s.layers, project=s.project, device=c.device,
                                 threads=c.threads, workers=c.workers, executor=c.executor)
        # epochs x columns x D -> (column, then epochs: the order of Grid.settings) x D
        return [w.permute(1, 0, 2).reshape(-1, w.shape[-1]).numpy() for w in trained]

    def _pick(self, i: int) -> Mapping[str, Any]:
        o = self.inputs.outer[i]
        return self.follow[(o["repeat"], o["fold"])]

    def distances(self, table: pd.DataFrame, params) -> np.ndarray:
        return evaluate.pair_distances(self.store, table, torch.as_tensor(np.asarray(params), dtype=torch.float32).T)

    def describe(self, i: int) -> dict[str, Any]:
        pick = self._pick(i)   # "do not train": NaN, NaN, 0 as CLPIPS's row
        return {"margin": float(pick["margin"]), "lr": float(pick["lr"]), "epochs": int(pick["epochs"])}


def derived_seed(*parts: int) -> int:
    """A 32-bit seed from several integers (repeat r of seed s gets its own fold assignment)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


def table_images(table: pd.DataFrame) -> set[str]:
    """Every image a ranking table names, as target or candidate."""
    return set(table["target"]) | set(table["candidate"])


def check_nested(mode: str, test: pd.DataFrame, tuning: Sequence[pd.DataFrame], where: str) -> None:
    """No held-out target (split by image: no held-out image) is in a table used for tuning or refitting."""
    held = set(test["target"]) if mode == "target" else table_images(test)
    for table in tuning:
        seen = set(table["target"]) if mode == "target" else table_images(table)
        if held & seen:
            raise AssertionError(f"{where}: held-out {'targets' if mode == 'target' else 'images'} "
                                 f"{sorted(held & seen)[:3]} reached the tuning data")


# --------------------------------------------------------------------------- the run
def crossval(dataset, settings: Optional[Settings] = None, family: Optional[Family] = None, *,
             compute: Optional[Compute] = None, cache: bool = True, **keywords: Any) -> CrossvalResult:
    """Run the nested protocol on a dataset (see the module docstring), or read it from the cache.

    ``family``'s distances fill the result's ``clpips`` columns (default :data:`LINEAR`). ``keywords``:
    the old form, ``crossval(dataset, mode=..., folds=..., device=...)``, deprecated (it goes after 0.1).
    A value chosen at a grid edge in most outer folds is named in a :class:`GridEdgeWarning`.
    """
    if keywords:
        settings, family, compute = _from_keywords(settings, family, compute, keywords)
    settings, family, compute = settings or Settings(), family or LINEAR, compute or Compute()
    if settings.mode == "image" and getattr(dataset, "within", None) is None and split_modes_coincide(dataset.table):
        # a split by image that would repeat the split by target fold for fold: that run, named as this split's
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", GridEdgeWarning)
            same = crossval(dataset, settings.replace(mode="target"), family, compute=compute, cache=cache)
        result = dataclasses.replace(same, settings={**same.settings, "mode": "image", "same_folds_as": "target"})
    elif not cache:
        result = _run(dataset, settings, family, compute, run_settings(dataset, settings, family))
    else:
        record = run_settings(dataset, settings, family)
        key = cache_key(dataset, record)
        result = atomic.read_or_compute(_lock_path(cache_folder(key)), lambda: _read_cache(key),
                                        lambda: _run(dataset, settings, family, compute, record),
                                        lambda result: _write_cache(key, result))
    s = result.settings
    metric = f" ({s['metric']})" if s.get("metric", "clpips") != "clpips" else ""
    grid_edges(result.folds, result.inner, where=f"{s.get('dataset', 'custom')} split by {s.get('mode')}{metric}: ",
               stacklevel=3)
    return result


#: the old keywords of :func:`crossval` that are fields of :class:`Compute`
_COMPUTE_KEYWORDS = ("device", "progress", "threads", "workers", "executor")
#: the old keywords of chapter 09's metrics: options of its families now, ignored by CLPIPS's runs as before
_FAMILY_KEYWORDS = ("transform_lambdas", "transform_lrs", "transform_steps", "transform_rank", "transform_margins",
                    "teacher_weight", "teacher_sets")


def _from_keywords(settings: Optional[Settings], family: Optional[Family], compute: Optional[Compute],
                   keywords: Mapping[str, Any]) -> tuple[Settings, Family, Compute]:
    warnings.warn("crossval(dataset, mode=..., folds=..., ...) is deprecated: pass crossval(dataset, "
                  "Settings(...), family, compute=Compute(...)) (clpips.protocol)", DeprecationWarning, stacklevel=3)
    given = {k: v for k, v in keywords.items() if k not in _FAMILY_KEYWORDS and not (k == "grid" and v is None)}
    metric = given.pop("metric", LINEAR.name)
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if metric != LINEAR.name:
        raise ValueError(f"metric {metric!r} is a family of chapter 09: pass family=clpips.book.families."
                         f"family({metric!r}, options) to crossval")
    unknown = sorted(set(given) - {f.name for f in dataclasses.fields(Settings)} - set(_COMPUTE_KEYWORDS))
    if unknown:
        raise TypeError(f"crossval() got unexpected keyword arguments {unknown}")
    compute = dataclasses.replace(compute or Compute(), **{k: given.pop(k) for k in _COMPUTE_KEYWORDS if k in given})
    return dataclasses.replace(settings or Settings(), **given), family or LINEAR, compute


def run_settings(dataset, settings: Settings, family: Family) -> dict[str, Any]:
    """A run's settings as its result records them and its cache key hashes them (a CLPIPS run records no
    family name or options, so that its cached runs keep their keys)."""
    out = {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings) if f.name != "grid"}
    out.update(dataset=getattr(dataset, "name", "custom"), margins=list(settings.grid.margins),
               lrs=list(settings.grid.lrs), epochs=list(settings.grid.epochs), version=PROTOCOL_VERSION,
               min_candidates=int(settings.min_candidates))
    if family.name != LINEAR.name:
        out["metric"] = family.name
    out.update(family.options())
    return out


def _run(dataset, settings: Settings, family: Family, compute: Compute, record: dict[str, Any]) -> CrossvalResult:
    """The run itself (no cache); ``record``: its settings as the result records them."""
    # 1. every split first (tables only), so one feature pass covers them all; a split by image that would
    # leave too little held out to judge is refused here, before any work
    outer = _outer_splits(dataset, settings)
    if (refused := _refusal(outer, settings)) is not None:
        raise SplitRefused(refused)
    tables = [o["train"] for o in outer] + [o["test"] for o in outer] + \
             [t for o in outer for pair in o["inner"] for t in pair]
    every = pd.concat(tables, ignore_index=True)
    features = train.pair_features_for(dataset, every, net=settings.net, device=compute.device,
                                       progress=compute.progress)
    w0 = initial_weight_vector(settings.net, settings.init, settings.seed)
    fits = family.prepare(RunInputs(dataset, settings, compute, outer, every, features, w0))

    # 2. every inner fold's fits of every setting at once
    jobs = [FitJob(i, j, itrain) for i, o in enumerate(outer) if fits.tuned
            for j, (itrain, _) in enumerate(o["inner"])]
    by_job = {(job.outer, job.inner): fitted for job, fitted in zip(jobs, fits.fit(jobs))} if jobs else {}

    # 3. choose on the inner folds; then refit each outer training side with its chosen setting only (all
    # at once), and score it on the outer test side. Refitting the chosen setting alone gives what its
    # column of the whole grid gives, to float rounding, and cost a third of a run's fitting time
    # (measured: mur92 by target, 56 s with every refit training the whole grid, 38 s)
    inner_rows, best_of = _choose(outer, fits, by_job, settings.select)
    refitted = fits.fit([FitJob(i, None, o["train"]) for i, o in enumerate(outer)], [best for best, _ in best_of])
    scored = [_score_fold(o, fits, best_of[i], refitted[i], features, w0, None if fits.tuned else fits.describe(i))
              for i, o in enumerate(outer)]
    result = CrossvalResult(folds=pd.DataFrame([row for row, _ in scored]),
                            inner=pd.concat(inner_rows, ignore_index=True),
                            oof=pd.concat([held for _, held in scored], ignore_index=True),
                            weights=np.stack([np.asarray(w[0]) for w in refitted]), settings=record)
    result.oof[RANKING] = ranking_ids(result.oof)
    common = result.boot_targets()
    result.folds["n_boot_targets"] = [len(set(o["test"]["target"]) & common) for o in outer]
    return result


def _outer_splits(dataset, settings: Settings, inner: bool = True) -> list[dict[str, Any]]:
    """Every outer fold: its training and test tables, what it kept (:func:`_kept`) and, with ``inner``, its
    inner folds (checked: no held-out target, or image, reaches them). A dataset that draws its candidates
    draws them anew every repeat: no result should rest on one draw."""
    mode, seed, folds, least = settings.mode, settings.seed, settings.folds, settings.min_candidates
    within = getattr(dataset, "within", None)
    every_image = sorted(table_images(dataset.table))
    outer = []
    for r in range(settings.repeats):
        rseed = derived_seed(seed, r)
        table = within(every_image, rseed) if within is not None else dataset.table
        held = fold_targets(table, folds, rseed)
        for f, (training, test) in enumerate(split_folds(table, mode, folds, rseed, within=within,
                                                         min_candidates=least)):
            o = {"repeat": r, "fold": f, "train": training, "test": test,
                 "kept": _kept(table, training, test, held[f], drawn=within is not None)}
            if inner:
                o["inner"] = list(split_folds(training, mode, settings.inner_folds, derived_seed(seed, r, f),
                                              within=within, min_candidates=least))
                check_nested(mode, test, [training, *(t for pair in o["inner"] for t in pair)],
                             f"repeat {r}, fold {f}")
            outer.append(o)
    return outer


def _kept(table: pd.DataFrame, train: pd.DataFrame, test: pd.DataFrame, held: set, drawn: bool) -> dict[str, Any]:
    """What one outer fold kept of its repeat's ``table`` (``held``: its held-out targets), as the columns of
    its row: targets, rankings and rows per side, rankings left with too few candidates (``drawn``: none),
    rows on neither side, candidates per held-out ranking."""
    sizes = test.groupby(["set_id", "rater"]).size()
    is_held = table["target"].isin(held)
    n_train, n_test = _n_rankings(train), _n_rankings(test)
    return {"n_train_targets": int(train["target"].nunique()), "n_test_targets": int(test["target"].nunique()),
            "n_train_rankings": n_train, "n_test_rankings": n_test,
            "n_test_rankings_dropped": 0 if drawn else _n_rankings(table[is_held]) - n_test,
            "n_train_rankings_dropped": 0 if drawn else _n_rankings(table[~is_held]) - n_train,
            "n_train_rows": len(train), "n_test_rows": len(test),
            "rows_on_neither_side": 0 if drawn else int(len(table) - len(train) - len(test)),
            "test_candidates_min": int(sizes.min()) if len(sizes) else 0,
            "test_candidates_median": float(sizes.median()) if len(sizes) else float("nan"),
            "test_candidates_max": int(sizes.max()) if len(sizes) else 0}


def _refusal(outer: Sequence[Mapping[str, Any]], settings: Settings) -> Optional[str]:
    """The one line refusing a split by image that leaves too little to judge (an outer fold scoring under
    :data:`MIN_SCORED_SHARE` of its held-out rankings), or None."""
    if settings.mode != "image":
        return None
    kept = [o["kept"] for o in outer]
    counts = [(k["n_test_rankings"], k["n_test_rankings"] + k["n_test_rankings_dropped"], o)
              for k, o in zip(kept, outer)]
    short = [c for c in counts if c[0] < MIN_SCORED_SHARE * c[1]]
    if not short:
        return None
    scored, meant, worst = min(short, key=lambda c: (c[0] / max(c[1], 1), c[2]["repeat"], c[2]["fold"]))
    neither = np.mean([k["rows_on_neither_side"] / max(k["rows_on_neither_side"] + k["n_train_rows"]
                                                       + k["n_test_rows"], 1) for k in kept])
    return (f"split by image refused: outer fold {worst['fold']} of repeat {worst['repeat']} scores {scored} of "
            f"its {meant} held-out rankings, all {len(outer)} folds {sum(c[0] for c in counts)} of "
            f"{sum(c[1] for c in counts)} (a held-out ranking needs {settings.min_candidates} candidates among "
            f"its fold's images; {neither:.0%} of a fold's rows are on neither side); split by target instead, "
            f"or use fewer folds (a held-out ranking keeps about 1/folds of its candidates)")


def check_split(dataset, settings: Optional[Settings] = None, **keywords: Any) -> None:
    """Raise :class:`SplitRefused` when :func:`crossval` would refuse this split; only the outer split is
    computed, so the CLI and the chapters can ask before a run. ``keywords``: the old form, deprecated."""
    if keywords:
        warnings.warn("check_split(dataset, mode=..., folds=...) is deprecated: pass check_split(dataset, "
                      "Settings(...)) (clpips.protocol)", DeprecationWarning, stacklevel=2)
    settings = (settings or Settings()).replace(**keywords)
    if settings.mode != "image" or getattr(dataset, "within", None) is not None or split_modes_coincide(dataset.table):
        return
    if (refused := _refusal(_outer_splits(dataset, settings, inner=False), settings)) is not None:
        raise SplitRefused(refused)


def _choose(outer: Sequence[Mapping[str, Any]], fits: Fits, by_job: Mapping, select: str
            ) -> tuple[list[pd.DataFrame], list[tuple[int, float]]]:
    """Per outer fold: its inner table (each setting's statistics averaged over the inner folds) and its
    choice with its score: the setting of best mean ``select``, the first on a tie."""
    names = [str(n) for n in range(len(fits.settings))]
    inner_rows, best_of = [], []
    for i, o in enumerate(outer):
        scores = [evaluate.distance_scores(ival, fits.distances(ival, by_job[(i, j)]), names)[list(STATISTICS)]
                  for j, (_, ival) in enumerate(o["inner"] if fits.tuned else [])
                  if not ival.empty]    # split by image: an inner fold may keep no ranking with min_candidates
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an untuned family: all NaN
            mean = np.nanmean(np.stack([s.to_numpy(float) for s in scores]
                                       or [np.full((len(fits.settings), len(STATISTICS)), np.nan)]), axis=0)
        table = fits.settings.assign(**{f"inner_{stat}": mean[:, k] for k, stat in enumerate(STATISTICS)})
        table.insert(0, "fold", o["fold"])
        table.insert(0, "repeat", o["repeat"])
        inner_rows.append(table)
        crit = table[f"inner_{select}"].to_numpy(float)
        best = int(np.nanargmax(crit)) if np.isfinite(crit).any() else 0
        best_of.append((best, float(crit[best])))
    return inner_rows, best_of


def _score_fold(o: Mapping[str, Any], fits: Fits, best: tuple[int, float], refit, features, w0,
                described: Optional[Mapping[str, Any]]) -> tuple[dict[str, Any], pd.DataFrame]:
    """One outer fold's row (chosen setting, sizes, what it kept, both metrics' held-out statistics and their
    differences) and its out-of-fold rows with both distances."""
    choice = fits.settings.iloc[best[0]]   # one row: its numbers as floats, whole-number columns as ints again
    test = o["test"]
    lpips = evaluate.pair_distances(features, test, w0)[:, 0]
    fitted = fits.distances(test, refit[:1])[:, 0]
    held = evaluate.distance_scores(test, np.stack([lpips, fitted], axis=1), ["lpips", "clpips"])
    row = {"repeat": o["repeat"], "fold": o["fold"],
           **{c: int(v) if pd.api.types.is_integer_dtype(fits.settings[c]) else float(v) for c, v in choice.items()},
           **(described or {})}
    row["trained"] = bool(row.get("epochs", 1) != 0)        # False: "do not train" (LPIPS's weights) chosen
    row.update({"inner_score": best[1], **o["kept"], "n_boot_targets": 0,   # n_boot_targets: set once all are in
                "shared_pair_share": shared_pair_share(o["train"], test)})
    for stat in STATISTICS:
        row[f"lpips_{stat}"] = float(held.at["lpips", stat])
        row[f"clpips_{stat}"] = float(held.at["clpips", stat])
        row[f"delta_{stat}"] = row[f"clpips_{stat}"] - row[f"lpips_{stat}"]
    return row, test[["set_id", "target", "candidate", "rater", "rank"]].assign(
        repeat=o["repeat"], fold=o["fold"], lpips=lpips, clpips=fitted.astype(float))


def _n_rankings(table: pd.DataFrame) -> int:
    return int(table[["set_id", "rater"]].drop_duplicates().shape[0])


# --------------------------------------------------------------------------- the result cache
def cache_folder(key: str) -> Path:
    """The folder of the cached run keyed ``key``."""
    return cache_dir() / "crossval" / f"v{PROTOCOL_VERSION}-{key}"


def _lock_path(folder: Path) -> Path:
    """The lock of a run's cache folder (beside it): held while the run, or a bootstrap of it, is computed."""
    return folder.parent / f".{folder.name}.lock"


#: the strings of the out-of-fold table (its ids: numbers-looking ids stay as written)
_OOF_TEXT = {"set_id": str, "target": str, "candidate": str, "rater": str, "ranking": str}
#: the files of a cached run (named after the result's fields), each a checked entry
#: (:func:`clpips.atomic.write_checked`), and how each is read
_READERS = {"folds.csv": lambda data: pd.read_csv(io.BytesIO(data)),
            "inner.csv": lambda data: pd.read_csv(io.BytesIO(data)),
            "oof.csv": lambda data: pd.read_csv(io.BytesIO(data), dtype=_OOF_TEXT),
            "weights.npy": lambda data: np.load(io.BytesIO(data), allow_pickle=False),
            "settings.json": lambda data: json.loads(data.decode("utf-8"))}


def _read_cache(key: str) -> Optional[CrossvalResult]:
    """The cached run, every file verified against its checksum; None when absent. A bad file (altered,
    truncated, missing, unchecked) is named in one :class:`CacheWarning` line and its folder removed."""
    folder = cache_folder(key)
    if not folder.is_dir():
        return None
    parts = {}
    for name, parse in _READERS.items():
        parts[Path(name).stem] = atomic.read_entry(folder / name, parse, category=CacheWarning,
                                                   remove=lambda _: _discard(folder), stacklevel=3)
        if parts[Path(name).stem] is None:
            return None
    return CrossvalResult(**parts, store=folder)


def _discard(folder: Path) -> None:
    """Remove a run folder: renamed away first (one step: a reader sees all of it or none), then deleted."""
    away = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.bad."))
    try:
        with contextlib.suppress(FileNotFoundError):   # another process removed it first
            os.rename(folder, away / folder.name)
    finally:
        shutil.rmtree(away, ignore_errors=True)


def _read_boot(path: Path) -> Optional[dict[int, tuple[np.ndarray, np.ndarray]]]:
    """A stored target bootstrap (:func:`_boot_bytes`), verified; None when absent or bad (named, removed)."""
    if not path.is_file():
        return None
    return atomic.read_entry(path, _parse_boot, category=CacheWarning, stacklevel=4)


def _parse_boot(data: bytes) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return {int(r): (z[f"dist{r}"], z[f"obs{r}"]) for r in z["repeats"]}


def _boot_bytes(out: Mapping[int, tuple[np.ndarray, np.ndarray]]) -> bytes:
    """Per repeat the bootstrap distribution and the observed pair, as ``.npz`` bytes."""
    buffer = io.BytesIO()
    np.savez(buffer, repeats=np.array(sorted(out)), **{f"dist{r}": d for r, (d, _) in out.items()},
             **{f"obs{r}": o for r, (_, o) in out.items()})
    return buffer.getvalue()


def _write_cache(key: str, result: CrossvalResult) -> None:
    """Cache a run: its files written in a new folder, renamed into place in one step; then it is its store."""
    folder = cache_folder(key)
    folder.parent.mkdir(parents=True, exist_ok=True)   # an OSError (a read-only cache): read_or_compute goes on
    if not folder.is_dir():
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
        try:
            for name, data in _result_bytes(result).items():
                atomic.write_checked(tmp / name, data)   # each file with its sha256, verified when read
            os.rename(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    result.store = folder


def _result_bytes(result: CrossvalResult, for_people: bool = False) -> dict[str, bytes]:
    """Each file of a result (:data:`_READERS`) as bytes. ``for_people``: text cells a spreadsheet would run
    as formulas neutralised (:func:`clpips.datasets.schema.spreadsheet_safe`; the cache keeps them as they are)."""
    safe = spreadsheet_safe if for_people else (lambda frame: frame)
    out = {name: safe(frame).to_csv(index=False, lineterminator="\n").encode("utf-8")
           for name, frame in (("folds.csv", result.folds), ("inner.csv", result.inner), ("oof.csv", result.oof))}
    out["settings.json"] = (json.dumps(result.settings, sort_keys=True, indent=1) + "\n").encode("utf-8")
    buffer = io.BytesIO()
    np.save(buffer, result.weights, allow_pickle=False)
    out["weights.npy"] = buffer.getvalue()
    return out


def write_result(result: CrossvalResult, folder: str | os.PathLike) -> None:
    """A result's tables as CSV and its ``settings.json``, each written atomically."""
    for name, data in _result_bytes(result, for_people=True).items():
        if name != "weights.npy":
            atomic.write_bytes(Path(folder) / name, data)


def __getattr__(name: str):
    return moved_name(__name__, name)   # fold_choices: now chapter 09's (clpips.book.families)
