"""How much a class agrees: the statistics of chapter 10 ("Your class").

A class CSV (``clpips classroom``) holds one ranking per (student, set); students
share sets. Three views of agreement *between students*, each on the sets both
(or all) of them ranked:

* :func:`pairwise_rho`: for each pair of students, Spearman's rho of their ranks,
  averaged over the sets both ranked (a students x students matrix);
* :func:`class_icc`: per shared set, the candidates x students table of ranks gives
  ICC(A,1) (how well one student agrees with another) and ICC(A,k) (how reliable
  the class's mean ranking is), averaged over sets;
* :func:`consensus_scores`: each student against the consensus of the *others*
  (their mean rank of each candidate), scored exactly as a metric is scored
  against a person (:func:`clpips.evaluate.alignment`: pooled Spearman's rho and
  ICC(A,k)), so the numbers sit beside those of LPIPS and CLPIPS.

:func:`simulate_class` makes a class when there is no class file: students who
rank the study's sets with LPIPS-like distances from their own layer weights
(a shared class taste times a personal one) plus judgement noise.
:func:`load_class` is the chapter's one entry: a class file, or that simulated class.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd
import torch

from clpips.apps import classroom
from clpips.datasets import RankingDataset
from clpips.defaults import DEFAULTS
from clpips.evaluate import RANKING, alignment, ranking_ids
from clpips.features import pair_features
from clpips.model import CHANNELS, initial_weight_vector
from clpips.stats import DegenerateDataWarning, icc_from_matrix


def _wide(table: pd.DataFrame, set_id: str) -> pd.DataFrame:
    part = table[table["set_id"].astype(str) == set_id]
    return part.pivot_table(index="candidate", columns="rater", values="rank", aggfunc="first")


def pairwise_rho(table: pd.DataFrame) -> pd.DataFrame:
    """Students x students: Spearman's rho of their ranks, averaged over the sets both ranked (NaN: none)."""
    raters = sorted(table["rater"].astype(str).unique())
    total = pd.DataFrame(0.0, index=raters, columns=raters)
    count = pd.DataFrame(0, index=raters, columns=raters)
    for set_id in sorted(table["set_id"].astype(str).unique()):
        wide = _wide(table, set_id).dropna(axis=1)
        if wide.shape[1] < 2 or wide.shape[0] < 2:
            continue
        ranks = wide.rank().to_numpy(float)          # ranks within the set (they are already, ties averaged)
        with np.errstate(invalid="ignore", divide="ignore"):
            rho = np.corrcoef(ranks, rowvar=False)
        cols = [str(c) for c in wide.columns]
        total.loc[cols, cols] += np.nan_to_num(rho)
        count.loc[cols, cols] += 1
    out = total / count.where(count > 0)
    out.index.name, out.columns.name = "student", "student"
    return out


def class_icc(table: pd.DataFrame, min_students: int = 2) -> pd.DataFrame:
    """Per set ranked by at least ``min_students``: ICC(A,1) and ICC(A,k) of the candidates x students ranks."""
    rows = []
    for set_id in sorted(table["set_id"].astype(str).unique()):
        wide = _wide(table, set_id).dropna(axis=1)
        if wide.shape[1] < max(2, min_students) or wide.shape[0] < 2:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DegenerateDataWarning)
            values = icc_from_matrix(wide.to_numpy(float))
        rows.append({"set_id": set_id, "n_students": int(wide.shape[1]), "k": int(wide.shape[0]),
                     "icc_A_1": float(values["ICC(A,1)"]), "icc_A_k": float(values["ICC(A,k)"])})
    return pd.DataFrame(rows, columns=["set_id", "n_students", "k", "icc_A_1", "icc_A_k"]).set_index("set_id")


def consensus_scores(table: pd.DataFrame) -> pd.DataFrame:
    """Each student against the others' mean rank (the consensus), scored as a metric is scored.

    One row per student: ``spearman`` (pooled over the student's rankings) and
    ``icc_A_k`` of :func:`clpips.evaluate.alignment`, ``n_rankings`` (sets with at
    least one other student).
    """
    t = table.copy()
    t["set_id"], t["rater"] = t["set_id"].astype(str), t["rater"].astype(str)
    t["rank"] = t["rank"].astype(float)
    key = t[["set_id", "candidate"]].apply(tuple, axis=1)
    sums = t.groupby(key)["rank"].transform("sum")
    counts = t.groupby(key)["rank"].transform("count")
    t["consensus"] = (sums - t["rank"]) / (counts - 1).where(counts > 1)
    rows = []
    for rater, part in t.groupby("rater", sort=True):
        part = part.dropna(subset=["consensus"])
        if part["set_id"].nunique() < 1 or len(part) < 3:
            continue
        scored = part.assign(**{RANKING: ranking_ids(part)})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = alignment(scored, "consensus")
        rows.append({"student": rater, "spearman": res["spearman"], "icc_A_k": res["icc_A_k"],
                     "n_rankings": res["n_rankings"]})
    return pd.DataFrame(rows).set_index("student")


def simulate_class(dataset, features, sets: Sequence[str], n_students: int = DEFAULTS.classroom_students,
                   seed: int = DEFAULTS.seed, net: str = DEFAULTS.net, class_taste: Optional[Sequence[float]] = None,
                   personal_sd: float = 0.6, noise: float = 1.0) -> tuple[pd.DataFrame, dict]:
    """A simulated class ranking ``sets`` of ``dataset``: each student ranks by an LPIPS-like distance.

    A student's weights are LPIPS's, each layer scaled by the class's taste
    (``class_taste``, default: the deeper, more semantic layers count more: 0.5,
    0.7, 1, 1.5, 2) and by a personal log-normal factor (``personal_sd``); they
    rank each set's candidates by distance plus Gaussian judgement noise of
    ``noise`` times the set's spread of distances.

    Returns ``(table, truth)``: the rankings in the schema (``rater`` =
    ``student 01``...) and ``{"class": class weights, student: weights}``.
    """
    rng = np.random.default_rng(seed)
    chns = CHANNELS[net]
    layer_of = np.repeat(np.arange(len(chns)), chns)
    taste = np.asarray(class_taste if class_taste is not None else (0.5, 0.7, 1.0, 1.5, 2.0), dtype=float)
    base = initial_weight_vector(net, "lpips").numpy().astype(float)
    truth = {"class": base * taste[layer_of]}
    first = dataset.table.drop_duplicates(["set_id", "candidate"])
    first = first[first["set_id"].astype(str).isin([str(s) for s in sets])]
    rows = features.rows(first["target"], first["candidate"])
    phi = features.matrix[rows].numpy().astype(float)
    rows_out = []
    for i in range(n_students):
        name = f"student {i + 1:02d}"
        w = truth["class"] * np.exp(rng.normal(0, personal_sd, len(chns)))[layer_of]
        truth[name] = w
        dist = phi @ w
        for set_id, idx in first.groupby("set_id", sort=False).indices.items():
            d = dist[idx]
            judged = d + rng.normal(0, noise * (d.std() or 1.0), len(d))
            ranks = judged.argsort().argsort() + 1
            part = first.iloc[idx]
            rows_out += [{"set_id": str(set_id), "target": t, "candidate": c, "rater": name, "rank": int(r)}
                         for t, c, r in zip(part["target"], part["candidate"], ranks)]
    return pd.DataFrame(rows_out), {k: torch.as_tensor(v, dtype=torch.float32) for k, v in truth.items()}


@dataclass(frozen=True)
class ClassData:
    """A class's rankings and what chapter 10 needs beside them.

    ``rankings``: the students' rankings (a :class:`~clpips.datasets.RankingDataset`, one rater per
    student); ``design``: the study the sets come from (the ranking widget shows its images);
    ``sets``: the sets every student ranked, in order; ``features``: the LPIPS features of their
    pairs; ``truth``: a simulated class's true weights (:func:`simulate_class`), None for a real
    class; ``source``: one line saying where the rankings come from.
    """

    rankings: RankingDataset
    design: RankingDataset
    sets: list[str]
    features: Any
    truth: Optional[dict]
    source: str


def _features(dataset, table: pd.DataFrame, net: str):
    pairs = table[["target", "candidate"]].astype(str).drop_duplicates()
    return pair_features(dataset, list(pairs.itertuples(index=False, name=None)), net=net, progress=False)


def load_class(class_csv: str = DEFAULTS.class_csv, study: str = DEFAULTS.dataset, *,
               k: int = DEFAULTS.classroom_k, n_sets: int = DEFAULTS.classroom_sets,
               n_students: int = DEFAULTS.classroom_students, seed: int = DEFAULTS.seed,
               net: str = DEFAULTS.net) -> ClassData:
    """The class file ``class_csv`` (``clpips classroom``'s CSV), or without one (``""``) a simulated
    class of ``n_students`` ranking the ``n_sets`` sets of ``study`` that ``clpips classroom --study``
    serves (``k`` candidates each, drawn with ``seed``)."""
    if class_csv:
        klass, record = classroom.read_class(class_csv)
        sets = record.get("sets") or sorted(klass.table["set_id"].astype(str).unique())
        source = (f"the class file {Path(class_csv).name} ({klass.table['rater'].nunique()} students, "
                  f"study {record.get('study', 'unknown')})")
        return ClassData(klass, klass, sets, _features(klass, klass.table, net), None, source)
    design = classroom.load_study(study, k=k, seed=seed)
    sets = classroom.class_sets(design, n_sets, seed)
    features = _features(design, design.table[design.table["set_id"].astype(str).isin(sets)], net)
    table, truth = simulate_class(design, features, sets, n_students, seed=seed, net=net)
    source = (f"a simulated class: {n_students} students ranking the {len(sets)} sets of {design.name} "
              f"that `clpips classroom --study {study}` serves (no class file was given)")
    return ClassData(RankingDataset(table=table, root=design.root, name="simulated class"), design, sets,
                     features, truth, source)
