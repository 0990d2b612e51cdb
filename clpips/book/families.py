"""Chapter 09's metrics as families of the nested protocol (:class:`clpips.protocol.Family`).

Each is fitted and scored beside LPIPS on the same folds as CLPIPS (:data:`clpips.protocol.LINEAR`),
through the protocol's one interface: a ``name``, its own ``options()`` (recorded in the run's
settings, so they key its cache: a family configured otherwise never reads another's cached run) and
``prepare(inputs)``, which gives the protocol the :class:`clpips.protocol.Fits` it calls (fit a
fold's jobs, the distances of held-out rows, the settings its inner folds choose among):

* :class:`GlobalCLPIPS` (``"global"``), *pooled channel re-weighting*: CLPIPS's per-channel weights on
  features pooled over space (:func:`clpips.book.aligned.global_features`), fitted as CLPIPS is
  (:func:`clpips.protocol.linear_fits`) and tuned as CLPIPS is, by its own inner folds over the run's
  :class:`clpips.protocol.Grid` (the same settings CLPIPS chooses among).
* :class:`Transform` (``"transform"``), *a low-rank transform of the pooled representation*
  (:mod:`clpips.book.aligned`, AligNet's first move): its margin x lam x lr x steps chosen by its own
  inner folds from a grid about the size of CLPIPS's.
* :class:`Taught` (``"teacher"``), *CLPIPS taught by the transform*: a student CLPIPS trained on the
  human pairs plus the rankings of the transform's refit of the same fold, on the same training images
  with the same backbone (self-distillation, not AligNet's separate large teacher data). It takes the
  setting CLPIPS's inner folds chose in each fold (a tuned student would need a teacher per inner fold).

:func:`budget` states each family's tuning budget; :func:`first_repeats` cuts CLPIPS's run (chapters 04
and 08 share it) to the repeats the other families ran, so every metric is compared on the same folds.
Global distances are put in LPIPS's units by one number per run (:func:`lpips_scale`), so that the
margin grid means the same for every metric. :func:`family` makes one by name from a chapter's
parameters or the CLI's options (``transform_*``, ``teacher_*``).
"""
from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Optional, Sequence

import numpy as np
import pandas as pd
import torch

from clpips import protocol, train
from clpips.book import aligned
from clpips.book.defaults import DEFAULTS
from clpips.protocol import FitJob, Fits, RunInputs


def lpips_scale(features, w0: torch.Tensor, global_distances: torch.Tensor) -> float:
    """The one number that puts global distances in LPIPS's units: mean LPIPS distance over mean global
    LPIPS distance of the run's (target, candidate) rows (no judgement used), so that the margin grid
    means the same for both. Rankings, and so every statistic, do not depend on it."""
    return float((features.matrix @ w0).mean() / global_distances.mean())


@dataclass(frozen=True)
class GlobalCLPIPS:
    """Pooled channel re-weighting ("global CLPIPS"): CLPIPS's per-channel weights on spatially pooled
    features, tuned by its own inner folds over the run's :class:`clpips.protocol.Grid`, as CLPIPS is
    ("do not train" is then global LPIPS: LPIPS's weights on the pooled features)."""

    name: ClassVar[str] = "global"

    def options(self) -> dict[str, Any]:
        # tuned by its own inner folds: recorded, so that a run cached when it followed CLPIPS's choice
        # (options {}) is never read back as this one
        return {"tuned_by": "own inner folds"}

    def prepare(self, inputs: RunInputs) -> Fits:
        s, c = inputs.settings, inputs.compute
        store = aligned.global_features(inputs.dataset, inputs.every, net=s.net, device=c.device, progress=c.progress)
        store.matrix = store.matrix * lpips_scale(inputs.features, inputs.w0, store.matrix @ inputs.w0)
        return protocol.linear_fits(inputs, store)


def _positive(name: str, given: str | Sequence[float]) -> tuple[float, ...]:
    """:func:`clpips.protocol.positive_numbers`, its one-line error naming the option."""
    try:
        return protocol.positive_numbers((given,) if isinstance(given, (int, float)) else given)
    except ValueError as err:
        raise ValueError(f"{name}: {err}") from None


def _lambdas(given: str | Sequence[float]) -> tuple[float, ...]:
    """The transform's pulls towards the identity: finite numbers >= 0, comma-separated or a sequence."""
    given_list = (given,) if isinstance(given, (int, float)) else given   # one number (papermill's -p 0.1)
    values = tuple(float(x) for x in (given_list.split(",") if isinstance(given_list, str) else given_list))
    if not values or not all(np.isfinite(values)) or min(values) < 0:
        raise ValueError(f"transform_lambdas must be finite numbers >= 0, got {given!r}")
    return values


@dataclass(frozen=True)
class Transform:
    """A low-rank transform of the pooled representation, AligNet's first move (:mod:`clpips.book.aligned`): every
    ``margins x lambdas x lrs x steps`` setting trained full-batch (:func:`clpips.book.aligned.fit_transform_many`),
    chosen by its own inner folds; ``rank``: the rank of its departure from the identity. Each option is a
    comma-separated string (the defaults' and the CLI's form), a sequence or one number, checked in one line.
    The default grid (:data:`clpips.book.defaults.DEFAULTS`' ``transform_*``) offers about as many settings as
    CLPIPS's :class:`clpips.protocol.Grid` (:func:`budget`)."""

    lambdas: str | Sequence[float] = DEFAULTS.transform_lambdas
    lrs: str | Sequence[float] = DEFAULTS.transform_lrs
    steps: str | Sequence[int] = DEFAULTS.transform_steps
    rank: int = DEFAULTS.transform_rank
    margins: str | Sequence[float] = DEFAULTS.transform_margins

    name: ClassVar[str] = "transform"

    def __post_init__(self) -> None:
        steps = _positive("transform_steps", self.steps)
        if any(x != int(x) for x in steps):
            raise ValueError(f"transform_steps must be whole numbers, got {self.steps!r}")
        if int(self.rank) != self.rank or self.rank < 1:
            raise ValueError(f"transform_rank must be a whole number >= 1, got {self.rank!r}")
        for name, value in (("lambdas", _lambdas(self.lambdas)), ("lrs", _positive("transform_lrs", self.lrs)),
                            ("steps", tuple(sorted({int(x) for x in steps}))), ("rank", int(self.rank)),
                            ("margins", _positive("transform_margins", self.margins))):
            object.__setattr__(self, name, value)

    def options(self) -> dict[str, Any]:
        return {"lambdas": list(self.lambdas), "transform_lrs": list(self.lrs), "steps": list(self.steps),
                "rank": self.rank, "transform_margins": list(self.margins)}

    def grid(self) -> aligned.TransformGrid:
        return aligned.TransformGrid(self.lambdas, self.lrs, self.steps, self.rank)

    def prepare(self, inputs: RunInputs) -> Fits:
        fitter = _TransformFitter(self, inputs)
        return Fits(fitter.table, fitter.fit, fitter.distances)


class _TransformFitter:
    """:class:`Transform`'s callables for one run: its inputs in LPIPS's units (:func:`transform_inputs`),
    its settings table (margin, lam, lr, steps: each margin's block of the transform grid's settings)."""

    def __init__(self, transform: Transform, inputs: RunInputs):
        self.grid, self.settings, self.threads = transform.grid(), inputs.settings, inputs.compute.threads
        self.margins = transform.margins
        self.delta = transform_inputs(inputs)
        per = self.grid.settings()
        table = pd.concat([per.assign(margin=m) for m in self.margins], ignore_index=True)
        self.table = table[["margin", "lam", "lr", "steps"]]

    def _fitted(self, pairs: list, grid: aligned.TransformGrid, margin: float) -> list[torch.Tensor]:
        return aligned.fit_transform_many(self.delta.matrix, pairs, grid, margin=margin, loss=self.settings.loss,
                                          threads=self.threads, factors=self.delta.factors)

    def fit(self, jobs: Sequence[FitJob], chosen: Sequence[int] | None = None) -> list[np.ndarray]:
        pairs = [(train.ranking_pair_index(self.delta, job.train), self.settings.seed) for job in jobs]
        if chosen is None:
            by_margin = [self._fitted(pairs, self.grid, m) for m in self.margins]
            return [np.concatenate([res[j].reshape(-1, res[j].shape[-1]).numpy() for res in by_margin])
                    for j in range(len(jobs))]
        # each job's chosen setting only: one call per (margin, lam, lr) chosen, to the most steps chosen with it
        out: list = [None] * len(jobs)
        picks = self.table.iloc[list(chosen)].reset_index(drop=True)
        for (m, lam, lr), members in picks.groupby(["margin", "lam", "lr"]).groups.items():
            steps = tuple(sorted({int(picks.at[n, "steps"]) for n in members}))
            one = aligned.TransformGrid((float(lam),), (float(lr),), steps, self.grid.rank)
            for n, r in zip(members, self._fitted([pairs[n] for n in members], one, float(m))):   # r: steps x 1 x P
                out[n] = r[steps.index(int(picks.at[n, "steps"])), :1].numpy()
        return out

    def distances(self, table: pd.DataFrame, params) -> np.ndarray:
        rows = self.delta.rows(table["target"], table["candidate"])
        p = torch.as_tensor(np.asarray(params), dtype=torch.float32)
        with train.torch_threads(1):   # on one thread, as clpips.evaluate.pair_distances (why: there)
            d = aligned.transform_distances(self.delta.matrix[rows], p, self.grid.rank)
        return d.numpy().astype(float).reshape(len(rows), -1)


def transform_inputs(inputs: RunInputs) -> aligned.DeltaFeatures:
    """The transform's inputs for a run's rows (:func:`clpips.book.aligned.delta_features`) in LPIPS's units
    (:func:`lpips_scale`, one number: the teacher's rankings, from its refits, do not depend on it)."""
    s, c = inputs.settings, inputs.compute
    delta = aligned.delta_features(inputs.dataset, inputs.every, net=s.net, device=c.device, progress=c.progress)
    root = float(np.sqrt(lpips_scale(inputs.features, inputs.w0, (delta.matrix ** 2).sum(1))))
    return dataclasses.replace(delta, matrix=delta.matrix * root, images=delta.images * root)


def fold_choices(dataset, settings: protocol.Settings, family: protocol.Family,
                 compute: Optional[protocol.Compute] = None) -> dict[tuple[int, int], dict[str, Any]]:
    """``family``'s run's fold rows by (repeat, fold): the setting chosen there and the refitted ``"weights"``
    (what a family that follows another's choices takes: the teacher's student)."""
    with warnings.catch_warnings():   # that run's grid edges are named where it is run for its own sake
        warnings.simplefilter("ignore", protocol.GridEdgeWarning)
        run = protocol.crossval(dataset, settings, family, compute=compute)
    return {(int(r["repeat"]), int(r["fold"])): {**r, "weights": w}
            for r, w in zip(run.folds.to_dict(orient="records"), run.weights)}


@dataclass(frozen=True)
class Taught:
    """CLPIPS taught by the transform: a student CLPIPS trained on human pairs plus a teacher's.

    In each outer fold the teacher is the ``transform`` run's refit of that fold: fitted on that
    fold's training rankings only, with the setting its inner folds chose. It ranks ``sets`` new
    candidate sets of ``k`` per training target, drawn among the training side's images only
    (:func:`clpips.book.aligned.teacher_rankings`): comparisons no person made, but of the same training
    images, by a teacher on the same backbone and judgements. So this is self-distillation, not AligNet's
    recipe, whose teacher labels a separate, much larger image set. The student is CLPIPS's recipe with
    the setting CLPIPS's own inner folds chose in that fold (read from CLPIPS's run of ``clpips_repeats``
    repeats, None: this run's; its first repeats' folds are this run's, whatever follows them: chapter 09
    races one repeat and follows chapters 04 and 08's run of three), trained on the human pairs
    plus the teacher's, repeated so that they weigh ``weight`` x the human pairs. The student is not
    tuned again (no inner fits; its ``inner_score`` is empty): a tuned student would need a teacher
    refitted in every inner fold, a second nesting that would multiply the run's cost."""

    transform: Transform = Transform()
    weight: float = DEFAULTS.teacher_weight
    sets: int = DEFAULTS.teacher_sets
    clpips_repeats: Optional[int] = None

    name: ClassVar[str] = "teacher"

    def __post_init__(self) -> None:
        if not (np.isfinite(self.weight) and self.weight > 0):
            raise ValueError(f"teacher_weight must be a finite number > 0, got {self.weight!r}")
        if int(self.sets) != self.sets or self.sets < 1:
            raise ValueError(f"teacher_sets must be a whole number >= 1, got {self.sets!r}")
        if self.clpips_repeats is not None and (int(self.clpips_repeats) != self.clpips_repeats
                                                or self.clpips_repeats < 1):
            raise ValueError(f"protocol_repeats must be a whole number >= 1, got {self.clpips_repeats!r}")

    def options(self) -> dict[str, Any]:
        followed = {} if self.clpips_repeats is None else {"follows_clpips_repeats": int(self.clpips_repeats)}
        return {**self.transform.options(), "teacher_weight": float(self.weight), "teacher_sets": int(self.sets),
                **followed}

    def prepare(self, inputs: RunInputs) -> Fits:
        s = inputs.settings
        followed = s.repeats if self.clpips_repeats is None else int(self.clpips_repeats)
        if s.repeats > followed:
            raise ValueError(f"the student follows CLPIPS's run of {followed} repeats: it cannot run {s.repeats} "
                             f"(protocol_repeats must be at least beyond_repeats)")
        follow = fold_choices(inputs.dataset, s.replace(repeats=followed), protocol.LINEAR, inputs.compute)
        teach = fold_choices(inputs.dataset, s, self.transform, inputs.compute)
        fits = protocol.linear_fits(inputs, _Student(self, inputs, teach).pairs, follow)
        return dataclasses.replace(fits, settings=pd.DataFrame([{"teacher_weight": float(self.weight),
                                                                 "teacher_sets": int(self.sets)}]))


class _Student:
    """The taught student's training pairs for a run's jobs: per job, its teacher's rankings
    (:func:`taught`), then LPIPS's pair features of every row a student sees or is scored on, and each
    job's human pairs plus its teacher's, repeated to weigh ``weight`` x the human pairs."""

    def __init__(self, taught_by: Taught, inputs: RunInputs, teach: Mapping[tuple[int, int], Mapping[str, Any]]):
        self.taught_by, self.inputs, self.teach = taught_by, inputs, teach
        s, c = inputs.settings, inputs.compute
        self.emb = aligned.image_embeddings(inputs.dataset, sorted(protocol.table_images(inputs.dataset.table)),
                                            net=s.net, device=c.device, progress=c.progress)
        self.k = int(inputs.dataset.table.groupby(["set_id", "rater"]).size().median())

    def rankings(self, job: FitJob) -> pd.DataFrame:
        o = self.inputs.outer[job.outer]
        # the teacher: the transform run's refit of this outer fold, on the same training rankings with the
        # setting its inner folds chose (fitting it again gave the same parameters)
        params = torch.as_tensor(np.asarray(self.teach[(o["repeat"], o["fold"])]["weights"]), dtype=torch.float32)
        made = aligned.teacher_rankings(
            aligned.teacher_distance(self.emb, params, self.taught_by.transform.rank), sorted(set(job.train["target"])),
            sorted(protocol.table_images(job.train)), sets_per_target=int(self.taught_by.sets), k=self.k,
            seed=protocol.derived_seed(self.inputs.settings.seed, o["repeat"], o["fold"]))
        return taught(job, made)

    def pairs(self, jobs: Sequence[FitJob]) -> tuple[Any, list[torch.Tensor]]:
        made = [self.rankings(job) for job in jobs]
        s, c = self.inputs.settings, self.inputs.compute
        store = train.pair_features_for(self.inputs.dataset, pd.concat([self.inputs.every, *made], ignore_index=True),
                                        net=s.net, device=c.device, progress=c.progress)
        pairs = []
        for job, teacher in zip(jobs, made):
            human, taught_pairs = train.ranking_pair_index(store, job.train), train.ranking_pair_index(store, teacher)
            copies = max(1, round(float(self.taught_by.weight) * len(human) / max(len(taught_pairs), 1)))
            pairs.append(torch.cat([human, taught_pairs.repeat(copies, 1)]))
        return store, pairs


def taught(job: FitJob, made: pd.DataFrame) -> pd.DataFrame:
    """A teacher's rankings, checked: its targets are the job's training targets and every image it
    ranked is one of the job's training side (so, outer test targets, and in a split by image outer
    test images, never reach a student: :func:`clpips.protocol.check_nested` keeps them off the job's side)."""
    if not set(made["target"]) <= set(job.train["target"]) or not protocol.table_images(made) <= \
            protocol.table_images(job.train):
        raise AssertionError(f"outer fold {job.outer}: the teacher ranked images outside its training side")
    return made


#: chapter 09's metrics by name (``clpips crossval --metric``, :data:`clpips.protocol.METRICS`)
FAMILIES = {"clpips": protocol.LinearFamily, "global": GlobalCLPIPS, "transform": Transform, "teacher": Taught}


def family(name: str, parameters: Mapping[str, Any] | None = None) -> protocol.Family:
    """The family called ``name`` (:data:`FAMILIES`), its options from ``parameters`` (a chapter's
    ``globals()``, the CLI's options): ``transform_lambdas``, ``transform_lrs``, ``transform_steps``,
    ``transform_rank``, ``transform_margins``, ``teacher_weight``, ``teacher_sets``, and
    ``protocol_repeats`` (the CLPIPS run the student follows; absent: the run's own repeats), defaults where
    absent."""
    if name not in FAMILIES:
        raise ValueError(f"metric must be one of {tuple(FAMILIES)}, got {name!r}")
    given = {key: value for key, value in (parameters or {}).items() if value is not None}
    if name == "clpips":
        return protocol.LINEAR
    if name == "global":
        return GlobalCLPIPS()
    transform = Transform(**{field: given.get(f"transform_{field}", getattr(DEFAULTS, f"transform_{field}"))
                             for field in ("lambdas", "lrs", "steps", "rank", "margins")})
    if name == "transform":
        return transform
    return Taught(transform, weight=given.get("teacher_weight", DEFAULTS.teacher_weight),
                  sets=given.get("teacher_sets", DEFAULTS.teacher_sets),
                  clpips_repeats=given.get("protocol_repeats"))


def first_repeats(run: protocol.CrossvalResult, repeats: int) -> protocol.CrossvalResult:
    """``run`` cut to its first ``repeats`` repeats: the folds a run of that many repeats makes (repeat ``r``'s
    split and inner folds come from ``(seed, r)`` alone), so it compares fold by fold with one
    (:meth:`clpips.protocol.CrossvalResult.versus`). Not cached (its target bootstrap is its own)."""
    if int(repeats) != repeats or not 1 <= repeats <= int(run.folds["repeat"].max()) + 1:
        raise ValueError(f"repeats must be a whole number from 1 to the run's {int(run.folds['repeat'].max()) + 1}, "
                         f"got {repeats!r}")
    kept = (run.folds["repeat"] < repeats).to_numpy()
    return protocol.CrossvalResult(folds=run.folds[kept].reset_index(drop=True),
                                   inner=run.inner[run.inner["repeat"] < repeats].reset_index(drop=True),
                                   oof=run.oof[run.oof["repeat"] < repeats].reset_index(drop=True),
                                   weights=run.weights[kept], settings={**run.settings, "repeats": int(repeats)})


def settings_offered(metric: protocol.Family, settings: protocol.Settings) -> int:
    """How many settings ``metric``'s own inner folds choose among (0: it follows another's choice)."""
    if isinstance(metric, Taught):
        return 0
    if isinstance(metric, Transform):
        return len(metric.margins) * len(metric.grid().settings())
    return len(settings.grid.settings())


def budget(metrics: Mapping[str, protocol.Family], settings: protocol.Settings, repeats: Mapping[str, int]
           ) -> pd.DataFrame:
    """Each metric's tuning budget, one row per metric: what its inner folds tune, how many settings they
    choose among (:func:`settings_offered`; "do not train" counted, where offered) and the repeats of
    the outer split it ran (``repeats``, by name)."""
    grid = settings.grid
    tuned = {"clpips": f"margin ({len(grid.margins)}) × lr ({len(grid.lrs)}) × epochs ({len(grid.epochs)}), "
                       "+ untrained",
             "global": "CLPIPS's grid, its own inner folds",
             "teacher": "none: CLPIPS's choice in each fold"}
    rows = []
    for name, metric in metrics.items():
        if isinstance(metric, Transform):
            tuned[name] = (f"margin ({len(metric.margins)}) × λ ({len(metric.lambdas)}) × lr "
                           f"({len(metric.lrs)}) × steps ({len(metric.steps)})")
        rows.append({"metric": name, "tuned by its inner folds": tuned.get(name, ""),
                     "settings": settings_offered(metric, settings), "repeats": int(repeats[name])})
    return pd.DataFrame(rows).set_index("metric")


def neighbours_kept(dataset, run: protocol.CrossvalResult, k: int = 10) -> float:
    """How much a pooled metric's refits keep the representation's local structure (AligNet's check): the
    share of each image's ``k`` nearest neighbours (Euclidean, pooled features weighted by LPIPS's
    ``sqrt(w0)``) still among its ``k`` nearest after each outer fold's refit of ``run`` (a ``"transform"``
    or ``"global"`` run), averaged over images and folds (:func:`clpips.book.aligned.neighbour_overlaps`)."""
    metric, images = run.settings.get("metric"), sorted(protocol.table_images(dataset.table))
    emb = aligned.image_embeddings(dataset, images, net=run.settings.get("net", DEFAULTS.net))
    before = emb.scaled()
    if metric == "transform":
        afters = [aligned.transform_embeddings(before, torch.as_tensor(p), int(run.settings["rank"])) for p in run.weights]
    elif metric == "global":
        afters = [emb.scaled(torch.as_tensor(w, dtype=torch.float32)) for w in run.weights]
    else:
        raise ValueError(f"neighbours_kept needs a transform or global run, got metric {metric!r}")
    return float(np.mean(aligned.neighbour_overlaps(before, afters, min(k, len(images) - 1))))
