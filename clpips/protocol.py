"""The nested, repeated cross-validation protocol: does CLPIPS agree better with people on unseen targets?

One run answers the paper's question without resting on one split or one seed:

* **Outer folds.** The targets are cut into ``folds`` folds, ``repeats`` times
  with different fold assignments (:func:`clpips.datasets.split_folds`, split
  ``mode`` ``"target"`` as the paper or ``"image"``: no image on both sides).
  Every fold's held-out rankings are scored once. A dataset that draws its
  candidate sets (its ``within`` hook: mur92, zappos) draws them anew for every
  repeat, so the spread over repeats includes which candidates were drawn; a
  study CSV keeps its own sets.
* **Inner folds.** On each outer training side only, an inner ``inner_folds``-fold
  split (same mode) scores every setting of the :class:`Grid` (margin x learning
  rate x epochs) on the inner held-out rankings; the setting with the best mean
  inner score (``select``, ICC(A,k) by default) is chosen. Outer test rankings
  never reach this step (asserted on every fold).
* **Refit and score.** The chosen setting is trained on the whole outer training
  side and scored, beside LPIPS, on the outer test rankings: ICC(A,k), pooled
  Spearman under both definitions (:data:`clpips.evaluate.RHO_DEFINITIONS`) and
  pair accuracy, and their differences (CLPIPS - LPIPS).

Every fit of a run (each inner fold's grid and each refit) trains together in
:func:`clpips.train.fit_many`, each column exactly as its own
:func:`clpips.train.fit_pairs` would (no early stopping: the epochs are chosen by
the inner folds). Results are cached on disk, keyed by the data, the images'
content and every setting, so the chapters that show the same run share it.

:meth:`CrossvalResult.summary` turns the per-fold differences into the mean with
two intervals: the corrected resampled t over folds
(:func:`clpips.stats.corrected_resampled_t`), which allows for overlapping
training sets and varies training and test sets together; and a paired
bootstrap over targets of the out-of-fold rankings, which varies the test
targets only, given the fitted models.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from . import atomic
from .atomic import atomic_path, json_ready
from .defaults import DEFAULTS

PROTOCOL_VERSION = 2  #: bump when a change alters results: it keys the cache
#: the statistics scored on every held-out side, as :func:`clpips.evaluate.heldout_scores` names them
STATISTICS = ("icc_A_k", "spearman_raw", "spearman", "pair_accuracy")
#: inner-fold criteria a setting can be chosen by
SELECT = STATISTICS


def _floats(text: str | Sequence[float]) -> tuple[float, ...]:
    values = [float(x) for x in (text.split(",") if isinstance(text, str) else text) if str(x).strip()]
    if not values or not all(np.isfinite(values)) or min(values) <= 0:
        raise ValueError(f"expected positive finite numbers, comma-separated, got {text!r}")
    return tuple(values)


@dataclass(frozen=True)
class Grid:
    """The hyperparameter settings the inner folds choose among."""

    margins: tuple[float, ...] = _floats(DEFAULTS.protocol_margins)
    lrs: tuple[float, ...] = _floats(DEFAULTS.protocol_lrs)
    epochs: tuple[int, ...] = tuple(int(e) for e in _floats(DEFAULTS.protocol_epochs))

    @classmethod
    def parse(cls, margins: str | Sequence[float] = DEFAULTS.protocol_margins,
              lrs: str | Sequence[float] = DEFAULTS.protocol_lrs,
              epochs: str | Sequence[int] = DEFAULTS.protocol_epochs) -> "Grid":
        """From comma-separated strings (the defaults' and the CLI's form) or sequences."""
        ep = _floats(epochs)
        if any(e != int(e) for e in ep):
            raise ValueError(f"epochs must be whole numbers, got {epochs!r}")
        return cls(_floats(margins), _floats(lrs), tuple(sorted(set(int(e) for e in ep))))

    def columns(self) -> list[tuple[float, float]]:
        """(margin, lr) pairs, one per trained column."""
        return list(product(self.margins, self.lrs))

    def settings(self) -> pd.DataFrame:
        """Every (margin, lr, epochs) setting, in the order results are reported."""
        return pd.DataFrame([(m, lr, e) for (m, lr) in self.columns() for e in self.epochs],
                            columns=["margin", "lr", "epochs"])


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
                seed: Optional[int] = None) -> pd.DataFrame:
        """Per statistic: LPIPS and CLPIPS means over folds, the mean Δ, and its intervals.

        ``nb_low, nb_high``: corrected resampled t over the ``J = repeats x folds``
        per-fold differences with ``n_test / n_train`` from the folds' target counts.
        ``boot_low, boot_high`` (ICC(A,k) and within-ranking rho only): percentile
        interval of a paired bootstrap over targets of the out-of-fold rankings,
        the same draws for every repeat, the repeats' differences averaged per draw
        (targets missing from some repeat are left out). ``positive_share``: share
        of folds where CLPIPS agreed better.
        """
        from .stats import corrected_resampled_t
        f = self.folds
        ratio = float((f["n_test_targets"] / f["n_train_targets"]).mean())
        boot = self.target_bootstrap(ci=ci, n_boot=n_boot, seed=seed)
        rows = []
        for stat in STATISTICS:
            d = f[f"delta_{stat}"].to_numpy(float)
            nb = corrected_resampled_t(d, ratio, ci)
            row = {"statistic": stat, "lpips": float(f[f"lpips_{stat}"].mean()),
                   "clpips": float(f[f"clpips_{stat}"].mean()), "delta": nb["mean"], "sd": nb["sd"],
                   "nb_low": nb["low"], "nb_high": nb["high"], "nb_pval": nb["pval"],
                   "positive_share": float(np.mean(d > 0)), "n_folds": nb["n"],
                   "boot_delta": np.nan, "boot_low": np.nan, "boot_high": np.nan}
            if stat in boot:
                row.update(boot[stat])
            rows.append(row)
        return pd.DataFrame(rows).set_index("statistic")

    def _repeat_bootstraps(self, ci: float, n_boot: int, seed: Optional[int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Per repeat: the bootstrap distribution of (ΔICC(A,k), Δrho) over targets (n_boot x 2) and the
        observed pair. Computed once per (ci, n_boot, seed) and kept with the cached result, so the
        chapters that show the same run share it."""
        from .experiment import bootstrap_result
        seed = self.settings.get("seed", DEFAULTS.seed) if seed is None else seed
        key = (float(ci), int(n_boot), int(seed))
        if key in self._boot:
            return self._boot[key]
        stored = self.store / f"boot-{ci:g}-{int(n_boot)}-{int(seed)}.npz" if self.store is not None else None
        if stored is not None and stored.is_file():
            try:
                with np.load(stored, allow_pickle=False) as z:
                    self._boot[key] = {int(r): (z[f"dist{r}"], z[f"obs{r}"]) for r in z["repeats"]}
                return self._boot[key]
            except (OSError, ValueError, KeyError):
                pass  # a damaged file is recomputed and rewritten
        per_repeat = {r: part for r, part in self.oof.groupby("repeat", sort=True)}
        common = set.intersection(*(set(p["target"]) for p in per_repeat.values()))
        out = {}
        for r, part in per_repeat.items():
            res = bootstrap_result(part[part["target"].isin(common)], "lpips", "clpips", unit="target",
                                   n_boot=n_boot, seed=seed, ci=ci)
            out[int(r)] = (res.distribution[["delta_icc", "delta_rho"]].to_numpy(float),
                           res.observed["delta"].to_numpy(float)[:2])
        self._boot[key] = out
        if stored is not None:
            try:
                with atomic_path(stored) as tmp:
                    with open(tmp, "wb") as f:
                        np.savez(f, repeats=np.array(sorted(out)), **{f"dist{r}": d for r, (d, _) in out.items()},
                                 **{f"obs{r}": o for r, (_, o) in out.items()})
            except OSError:
                pass  # a read-only cache: the numbers are still returned
        return out

    def target_bootstrap(self, ci: float = DEFAULTS.ci, n_boot: int = DEFAULTS.n_boot,
                         seed: Optional[int] = None) -> dict[str, dict[str, float]]:
        """ΔICC(A,k) and Δrho (within-ranking ranks) of the out-of-fold rankings, bootstrapped over targets.

        Each repeat's out-of-fold rows form one held-out table (every target once,
        scored by the model that did not see it). :func:`clpips.experiment.bootstrap_result`
        with ``unit="target"`` resamples targets; with the same seed and the same
        targets its draws are the same for every repeat, so the repeats'
        distributions are averaged draw by draw.
        """
        from .stats import percentile_interval
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
        from .stats import percentile_interval
        dist, obs = self._repeat_bootstraps(ci, n_boot, seed)[int(repeat)]
        lo, hi = percentile_interval(dist[:, 0], ci)
        return {"delta": float(obs[0]), "low": float(lo), "high": float(hi)}

    def chosen(self) -> pd.DataFrame:
        """How often each setting was chosen over the outer folds."""
        return (self.folds.groupby(["margin", "lr", "epochs"]).size().rename("folds").reset_index()
                .sort_values("folds", ascending=False, kind="stable").reset_index(drop=True))

    def to_json(self, ci: float = DEFAULTS.ci, n_boot: int = DEFAULTS.n_boot) -> dict[str, Any]:
        """Settings, summary and per-fold rows as strict-JSON-ready values (what ``clpips crossval`` writes)."""
        summary = self.summary(ci=ci, n_boot=n_boot)
        return json_ready({"settings": self.settings, "summary": summary.reset_index().to_dict(orient="records"),
                           "chosen": self.chosen().to_dict(orient="records"),
                           "folds": self.folds.to_dict(orient="records")})


#: notebook parameters (clpips.defaults names) -> keyword of :func:`crossval`
PARAMETERS = {"protocol_folds": "folds", "protocol_repeats": "repeats", "protocol_inner_folds": "inner_folds",
              "protocol_select": "select", "seed": "seed", "net": "net", "init": "init", "loss": "loss",
              "batch_size": "batch_size", "layers": "layers", "project": "project", "workers": "workers"}


def options(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`crossval` keywords from a chapter's parameters (its ``globals()``): the names of
    :data:`PARAMETERS` present, and the :class:`Grid` from ``protocol_margins/lrs/epochs`` (defaults
    where absent), so every chapter runs, and shares the cache of, the same protocol."""
    out = {kw: parameters[name] for name, kw in PARAMETERS.items() if name in parameters}
    out["grid"] = Grid.parse(*(parameters.get(f"protocol_{n}", getattr(DEFAULTS, f"protocol_{n}"))
                               for n in ("margins", "lrs", "epochs")))
    return out


def _derived_seed(*parts: int) -> int:
    """A 32-bit seed from several integers (repeat r of seed s gets its own fold assignment)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


def _images(table: pd.DataFrame) -> set[str]:
    return set(table["target"]) | set(table["candidate"])


def _check_nested(mode: str, test: pd.DataFrame, tuning: Sequence[pd.DataFrame], where: str) -> None:
    """No held-out target (split by image: no held-out image) is in a table used for tuning or refitting."""
    held = set(test["target"]) if mode == "target" else _images(test)
    for table in tuning:
        seen = set(table["target"]) if mode == "target" else _images(table)
        if held & seen:
            raise AssertionError(f"{where}: held-out {'targets' if mode == 'target' else 'images'} "
                                 f"{sorted(held & seen)[:3]} reached the tuning data")


def crossval(dataset, *, mode: str = DEFAULTS.split_mode, folds: int = DEFAULTS.protocol_folds,
             repeats: int = DEFAULTS.protocol_repeats, inner_folds: int = DEFAULTS.protocol_inner_folds,
             grid: Optional[Grid] = None, select: str = DEFAULTS.protocol_select, seed: int = DEFAULTS.seed,
             net: str = DEFAULTS.net, init: str = DEFAULTS.init, loss: str = DEFAULTS.loss,
             batch_size: int = DEFAULTS.batch_size, layers: str = DEFAULTS.layers,
             project: bool = DEFAULTS.project, device: str = DEFAULTS.device, progress: bool = False,
             threads: Optional[int] = 1, workers: int = DEFAULTS.workers, cache: bool = True) -> CrossvalResult:
    """Run the nested protocol on a dataset (see the module docstring).

    Parameters
    ----------
    dataset
        A :mod:`clpips.datasets` dataset; its ``within`` hook, when present, builds
        the rankings of each side of a split by image.
    mode : {"target", "image"}
        :data:`clpips.datasets.SPLIT_MODES`.
    folds, repeats, inner_folds : int
        Outer folds, repeats of the outer split, inner folds (each >= 2, repeats >= 1).
    grid : Grid
        Settings the inner folds choose among (default: :class:`Grid` from the defaults).
    select : str
        Inner criterion, one of :data:`SELECT` (higher is better).
    seed : int
        Seeds the fold assignments (repeat ``r`` uses a seed derived from ``(seed, r)``),
        the initial weights and the training shuffles.
    net, init, loss, batch_size, layers, project, device, threads
        As :func:`clpips.train.fit_pairs`.
    workers : int
        Processes the fits are spread over (:func:`clpips.train.fit_many`); the results do not
        depend on it, so it is not part of the cache key.
    cache : bool
        Read and write the on-disk result cache (``<cache>/crossval/``).
    """
    from .datasets.splits import check_split_mode

    check_split_mode(mode)
    grid = grid or Grid()
    if select not in SELECT:
        raise ValueError(f"select must be one of {SELECT}, got {select!r}")
    if folds < 2 or inner_folds < 2 or repeats < 1:
        raise ValueError(f"need folds >= 2, inner_folds >= 2 and repeats >= 1, got {folds}, {inner_folds}, {repeats}")
    settings = {"dataset": getattr(dataset, "name", "custom"), "mode": mode, "folds": folds, "repeats": repeats,
                "inner_folds": inner_folds, "margins": list(grid.margins), "lrs": list(grid.lrs),
                "epochs": list(grid.epochs), "select": select, "seed": seed, "net": net, "init": init, "loss": loss,
                "batch_size": batch_size, "layers": layers, "project": project, "version": PROTOCOL_VERSION}
    key = _cache_key(dataset, settings)
    if not cache:
        return _crossval(dataset, settings, grid, device, progress, threads, workers)
    if (hit := _read_cache(key)) is not None:
        return hit
    folder = _cache_folder(key)
    # another process computing the same run (chapters side by side): wait for it, then read its result
    with atomic.exclusive(folder.parent / f".{folder.name}.lock"):
        if (hit := _read_cache(key)) is not None:
            return hit
        result = _crossval(dataset, settings, grid, device, progress, threads, workers)
        _write_cache(key, result)
    return result


def _crossval(dataset, settings: dict[str, Any], grid: Grid, device: str, progress: bool,
              threads: Optional[int], workers: int) -> CrossvalResult:
    """The run itself (no cache)."""
    from .datasets.splits import shared_pair_share, split_folds
    from .evaluate import heldout_scores
    from .model import initial_weight_vector
    from .pairs import ranking_pairs
    from .train import GridJob, fit_many, pair_features_for, pair_index

    mode, folds, repeats, inner_folds = settings["mode"], settings["folds"], settings["repeats"], \
        settings["inner_folds"]
    select, seed, net, init, loss = settings["select"], settings["seed"], settings["net"], settings["init"], \
        settings["loss"]
    batch_size, layers, project = settings["batch_size"], settings["layers"], settings["project"]

    # 1. every split first (tables only), so one feature pass covers them all
    within = getattr(dataset, "within", None)
    every_image = sorted(_images(dataset.table))
    outer, n_rows = [], {}
    for r in range(repeats):
        rseed = _derived_seed(seed, r)
        # a dataset that draws its candidates re-draws them for every repeat: which candidates a target
        # got is a random choice too, and no result should rest on one draw (a study CSV keeps its sets)
        table = within(every_image, rseed) if within is not None else dataset.table
        n_rows[r] = len(table)
        for f, (train, test) in enumerate(split_folds(table, mode, folds, rseed, within=within)):
            inner = list(split_folds(train, mode, inner_folds, _derived_seed(seed, r, f), within=within))
            _check_nested(mode, test, [train, *(t for pair in inner for t in pair)], f"repeat {r}, fold {f}")
            outer.append({"repeat": r, "fold": f, "train": train, "test": test, "inner": inner})
    tables = [o["train"] for o in outer] + [o["test"] for o in outer] + \
             [t for o in outer for pair in o["inner"] for t in pair]
    features = pair_features_for(dataset, pd.concat(tables, ignore_index=True), net=net, device=device,
                                 progress=progress)
    w0 = initial_weight_vector(net, init, seed)

    # 2. every fit of the run at once: each inner fold's grid, and each outer training side's grid
    cols = grid.columns()
    margins, lrs = tuple(m for m, _ in cols), tuple(lr for _, lr in cols)
    jobs, where = [], []
    for i, o in enumerate(outer):
        for j, (itrain, _) in enumerate(o["inner"]):
            jobs.append(GridJob(pair_index(features, ranking_pairs(itrain)), margins, lrs, grid.epochs, seed))
            where.append((i, j))
        jobs.append(GridJob(pair_index(features, ranking_pairs(o["train"])), margins, lrs, grid.epochs, seed))
        where.append((i, None))
    trained = fit_many(features.matrix, jobs, w0, net=net, loss=loss, batch_size=batch_size, layers=layers,
                       project=project, device=device, threads=threads, workers=workers)
    by_job = dict(zip(where, trained))

    # 3. choose on the inner folds, score the refit on the outer test side
    setting_rows = grid.settings()
    fold_rows, inner_rows, oof, refits = [], [], [], []
    for i, o in enumerate(outer):
        scores = []
        for j, (_, ival) in enumerate(o["inner"]):
            weights = by_job[(i, j)]      # epochs x columns x D
            named = {(c, e): weights[ei, c] for c in range(len(cols)) for ei, e in enumerate(grid.epochs)}
            s = heldout_scores(ival, features, {str(k): w for k, w in named.items()})
            scores.append(s[list(STATISTICS)].to_numpy(float))
        mean = np.nanmean(np.stack(scores), axis=0)   # settings (column-major: column, then epochs) x stats
        table = setting_rows.copy()
        for s_i, stat in enumerate(STATISTICS):
            table[f"inner_{stat}"] = mean[:, s_i]
        table.insert(0, "fold", o["fold"])
        table.insert(0, "repeat", o["repeat"])
        inner_rows.append(table)
        crit = table[f"inner_{select}"].to_numpy(float)
        best = int(np.nanargmax(crit)) if np.isfinite(crit).any() else 0
        choice = setting_rows.iloc[best]
        c = cols.index((choice["margin"], choice["lr"]))
        e = list(grid.epochs).index(int(choice["epochs"]))
        w = by_job[(i, None)][e, c]
        refits.append(w.numpy())
        test = o["test"]
        held = heldout_scores(test, features, {"lpips": w0, "clpips": w})
        row = {"repeat": o["repeat"], "fold": o["fold"], "margin": float(choice["margin"]), "lr": float(choice["lr"]),
               "epochs": int(choice["epochs"]), "inner_score": float(crit[best]),
               "n_train_targets": int(o["train"]["target"].nunique()), "n_test_targets": int(test["target"].nunique()),
               "n_train_rankings": _n_rankings(o["train"]),
               "n_test_rankings": _n_rankings(test), "n_train_rows": len(o["train"]), "n_test_rows": len(test),
               "rows_on_neither_side": int(n_rows[o["repeat"]] - len(o["train"]) - len(test)) if within is None else 0,
               "shared_pair_share": shared_pair_share(o["train"], test)}
        for stat in STATISTICS:
            row[f"lpips_{stat}"] = float(held.at["lpips", stat])
            row[f"clpips_{stat}"] = float(held.at["clpips", stat])
            row[f"delta_{stat}"] = row[f"clpips_{stat}"] - row[f"lpips_{stat}"]
        fold_rows.append(row)
        rows = features.rows(test["target"], test["candidate"])
        phi = features.matrix[rows]
        oof.append(test[["set_id", "target", "candidate", "rater", "rank"]].assign(
            repeat=o["repeat"], fold=o["fold"], lpips=(phi @ w0).numpy().astype(float),
            clpips=(phi @ w).numpy().astype(float)))
    from .evaluate import RANKING, ranking_ids
    oof_table = pd.concat(oof, ignore_index=True)
    oof_table[RANKING] = ranking_ids(oof_table)
    return CrossvalResult(folds=pd.DataFrame(fold_rows), inner=pd.concat(inner_rows, ignore_index=True),
                          oof=oof_table, weights=np.stack(refits), settings=settings)


def _n_rankings(table: pd.DataFrame) -> int:
    return int(table[["set_id", "rater"]].drop_duplicates().shape[0])


# --------------------------------------------------------------------------- the result cache
def _cache_key(dataset, settings: dict[str, Any]) -> str:
    """sha256 of the settings, the ranking table and the bytes of every image it names."""
    from .paths import sha256_file
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    table = dataset.table[["set_id", "target", "candidate", "rater", "rank"]]
    digest.update(table.to_csv(index=False, lineterminator="\n").encode())
    for ref in sorted(_images(dataset.table)):
        digest.update(f"{ref}={sha256_file(dataset.image_path(ref))}\n".encode())
    if getattr(dataset, "within", None) is not None:  # its draws depend on the dataset's own options
        digest.update(str(getattr(dataset, "description", "")).encode())
    return digest.hexdigest()[:32]


def _cache_folder(key: str) -> Path:
    from .paths import cache_dir
    return cache_dir() / "crossval" / f"v{PROTOCOL_VERSION}-{key}"


_FILES = ("folds.csv", "inner.csv", "oof.csv", "weights.npy", "settings.json")


def _read_cache(key: str) -> Optional[CrossvalResult]:
    folder = _cache_folder(key)
    if not all((folder / name).is_file() for name in _FILES):
        return None
    try:
        oof = pd.read_csv(folder / "oof.csv", dtype={"set_id": str, "target": str, "candidate": str, "rater": str,
                                                    "ranking": str})
        return CrossvalResult(folds=pd.read_csv(folder / "folds.csv"), inner=pd.read_csv(folder / "inner.csv"),
                              oof=oof, weights=np.load(folder / "weights.npy", allow_pickle=False),
                              settings=json.loads((folder / "settings.json").read_text()), store=folder)
    except (OSError, ValueError) as err:  # a damaged entry is rebuilt
        shutil.rmtree(folder, ignore_errors=True)
        import warnings
        warnings.warn(f"{folder}: unreadable cached cross-validation result ({err}); recomputing", stacklevel=3)
        return None


def _write_cache(key: str, result: CrossvalResult) -> None:
    folder = _cache_folder(key)
    if folder.is_dir():
        result.store = folder
        return
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    except OSError:
        return  # a read-only cache: the result is still returned
    try:
        write_result(result, tmp)
        np.save(tmp / "weights.npy", result.weights, allow_pickle=False)
        os.rename(tmp, folder)
        result.store = folder
    except OSError:
        pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_result(result: CrossvalResult, folder: str | os.PathLike) -> None:
    """The tables of a result as CSV (``folds.csv``, ``inner.csv``, ``oof.csv``) and ``settings.json``."""
    folder = Path(folder)
    for name, frame in (("folds.csv", result.folds), ("inner.csv", result.inner), ("oof.csv", result.oof)):
        frame.to_csv(folder / name, index=False, lineterminator="\n")
    (folder / "settings.json").write_text(json.dumps(result.settings, sort_keys=True, indent=1) + "\n")
