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

A real lesson ends with some students done and others not: every ranking counts,
:func:`roster` lists how many sets each student gave (a student who joined and
ranked nothing included), and :func:`coverage_sentence`, :func:`agreement_note` and
:func:`fit_note` say in words what the class's data can and cannot give yet
(:func:`can_fit`: enough sets to fit the models and judge them on held-out sets).
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
from clpips.book.report import in_words
from clpips.datasets import RankingDataset, split_by_target
from clpips.book.defaults import DEFAULTS
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
    return pd.DataFrame(rows, columns=["student", "spearman", "icc_A_k", "n_rankings"]).set_index("student")


def agreement_note(rho: pd.DataFrame, iccs: pd.DataFrame, students: pd.DataFrame) -> str:
    """What limits the agreement between students, in plain words ("" for a class that ranked every set).

    ``rho``: :func:`pairwise_rho`; ``iccs``: :func:`class_icc`; ``students``: :func:`roster`. Says when
    no two students share a set (nothing can be computed), on how many shared sets the numbers rest
    otherwise, and what a negative ICC means (the students disagree more than they agree).
    """
    if students["complete"].all():
        return ""
    pairs = rho.where(~np.eye(len(rho), dtype=bool)).stack().dropna()
    if pairs.empty:
        return ("No two students have ranked the same set yet, so how much they agree cannot be computed: "
                "every number of this section needs two students who ranked a common set.")
    alone = [str(s) for s in rho.index if rho.loc[s].drop(s).isna().all() and s in students.index
             and students.at[s, "sets_ranked"] > 0]
    note = (f"These numbers rest on the {len(iccs)} set{'s' if len(iccs) != 1 else ''} that at least two "
            f"students ranked, each pair of students compared on the sets both ranked"
            + (f"; {in_words(alone)} shared no set with anyone and {'is' if len(alone) == 1 else 'are'} left out"
               if alone else "") + ".")
    if iccs[["icc_A_1", "icc_A_k"]].isna().all().all():
        note += (" ICC is undefined on every shared set (one of its variance estimates is not positive): it "
                 "needs more students or more sets.")
    elif (iccs[["icc_A_1", "icc_A_k"]].mean() < 0).any():
        note += (" An ICC below 0 means the students disagree more than they agree: their ranks of a candidate "
                 "differ more from student to student than the candidates differ from each other. On so few "
                 "shared sets that is largely chance.")
    return note


def can_fit(table: pd.DataFrame, test_size: float = DEFAULTS.test_size, seed: int = DEFAULTS.seed) -> bool:
    """Whether chapter 10's models can be fitted and judged on these rankings: the split by target
    (:func:`clpips.datasets.split_by_target`, as :func:`clpips.book.personal.personal_study` splits) leaves
    at least one held-out target and two to fit on (the pooled fit keeps one of them to stop early)."""
    if table["target"].nunique() < 2:
        return False
    train, _ = split_by_target(table, test_size=test_size, seed=seed)
    return train["target"].nunique() >= 2


def fit_note(table: pd.DataFrame, students: pd.DataFrame, test_size: float = DEFAULTS.test_size,
             seed: int = DEFAULTS.seed) -> str:
    """What limits the models' fits and scores on this class, in plain words ("" for a complete class).

    Too few sets to fit at all (:func:`can_fit`), or students whose sets all fell on one side of the
    split (no held-out score, or scored on the pooled model alone).
    """
    if students["complete"].all():
        return ""
    n_sets = table["target"].nunique()
    if not can_fit(table, test_size, seed):
        return (f"The class has ranked {n_sets} set{'s' if n_sets != 1 else ''} so far: too few to fit and judge "
                f"the models, which need sets held out to judge on and at least two others to fit on (the pooled "
                f"fit keeps one of them to decide when to stop). This section waits for more rankings.")
    train, test = split_by_target(table, test_size=test_size, seed=seed)
    held = test["set_id"].nunique()
    raters = set(table["rater"].astype(str))
    missing = sorted(raters - set(test["rater"].astype(str)))
    untrained = sorted(raters - set(train["rater"].astype(str)))
    note = (f"Each student is judged on the held-out sets they ranked ({held} of the {n_sets} sets ranked "
            f"{'is' if held == 1 else 'are'} held out): with a few rankings each, these scores are rough")
    if missing:
        note += (f"; {in_words(missing)} ranked none of the held-out sets and {'has' if len(missing) == 1 else 'have'}"
                 f" no held-out scores")
    if untrained:
        note += (f"; {in_words(untrained)} ranked only held-out sets and {'has' if len(untrained) == 1 else 'have'}"
                 f" no personal CLPIPS")
    return note + "."


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


def roster(table: pd.DataFrame, sets: Sequence[str], joined: Sequence[str] = ()) -> pd.DataFrame:
    """One row per student: how many of the class's ``sets`` they ranked, and whether that is all.

    ``joined``: every name that joined the class (a student who joined and ranked nothing has
    no row in the rankings, yet belongs in the class's list, with 0 sets). Names are matched as
    the classroom matches them (:func:`clpips.apps.classroom.rater_key`: "ana" is "Ana"), and
    shown as the rankings write them. Index ``student`` (sorted); columns ``sets_ranked``,
    ``of`` (the sets offered) and ``complete``.
    """
    ranked = table.groupby(table["rater"].astype(str))["set_id"].nunique()
    known = {classroom.rater_key(name) for name in ranked.index}
    absent = {classroom.rater_key(name): str(name) for name in joined if classroom.rater_key(name) not in known}
    counts = pd.concat([ranked, pd.Series(0, index=list(absent.values()), dtype=ranked.dtype)])
    counts = counts.sort_index(key=lambda names: names.str.casefold())     # "ben" between "Ana" and "Cleo"
    out = pd.DataFrame({"sets_ranked": counts.astype(int), "of": len(sets)})
    out["complete"] = out["sets_ranked"] >= len(sets)
    out.index.name = "student"
    return out


def coverage_sentence(students: pd.DataFrame) -> str:
    """One plain sentence on how much of the study a class ranked (from :func:`roster`)."""
    n, of = len(students), int(students["of"].iloc[0]) if len(students) else 0
    done, none = students["complete"], students["sets_ranked"] == 0
    if done.all():
        return f"Every one of the {n} students ranked all {of} sets."
    some = students.loc[~done & ~none, "sets_ranked"]
    parts = [f"{int(done.sum()) or 'None'} of the {n} students ranked all {of} sets"]
    if len(some):
        spread = f"{some.min()}" if some.min() == some.max() else f"{some.min()} to {some.max()}"
        parts.append(f"{len(some)} ranked some of them ({spread} set{'' if some.max() == 1 else 's'})")
    if none.any():
        parts.append(f"{int(none.sum())} joined but ranked none ({in_words(students.index[none])})")
    return (f"{', '.join(parts[:-1])} and {parts[-1]}" if len(parts) > 1 else parts[0]) + (
        ". Every ranking given counts: two students are compared on the sets both ranked.")


@dataclass(frozen=True)
class ClassData:
    """A class's rankings and what chapter 10 needs beside them.

    ``rankings``: the students' rankings (a :class:`~clpips.datasets.RankingDataset`, one rater per
    student); ``design``: the study the sets come from (the ranking widget shows its images);
    ``sets``: the class's sets that were ranked, in the order students see them; ``features``: the
    LPIPS features of their pairs; ``truth``: a simulated class's true weights (:func:`simulate_class`),
    None for a real class; ``source``: one line saying where the rankings come from; ``students``:
    every student, with the sets each ranked (:func:`roster`; a student who joined and ranked
    nothing included).
    """

    rankings: RankingDataset
    design: RankingDataset
    sets: list[str]
    features: Any
    truth: Optional[dict]
    source: str
    students: pd.DataFrame


def _features(dataset, table: pd.DataFrame, net: str):
    pairs = table[["target", "candidate"]].astype(str).drop_duplicates()
    return pair_features(dataset, list(pairs.itertuples(index=False, name=None)), net=net, progress=False)


def _has_rankings(path: Path) -> bool:
    """Whether the class file has a row below its header (the server writes it at the first save)."""
    try:
        return not pd.read_csv(path, dtype=str, nrows=1).empty
    except (FileNotFoundError, IsADirectoryError, pd.errors.EmptyDataError):
        return False


def joined_names(class_csv: str | Path) -> list[str]:
    """Every name that joined the class of ``class_csv`` (its ``<class>.names.json``, as first typed);
    none when the file is missing or unreadable (a warning says which: the rankings still count)."""
    try:
        names = classroom.NameRegister(class_csv).read()
    except classroom.ClassroomError as err:
        warnings.warn(f"{err}: students who joined and ranked nothing are not listed", stacklevel=2)
        return []
    return [str(held.get("name", key)) for key, held in names.items()]


def read_class_file(class_csv: str | Path, net: str = DEFAULTS.net) -> ClassData:
    """A class file (``clpips classroom``'s CSV, with its sidecar and list of names) as :class:`ClassData`.

    Every ranking in the file counts, however many sets each student gave; the sets are the recorded
    ones that someone ranked, in the recorded order (then any others in the file). A file with no
    ranking yet is a one-line ValueError: there is nothing to analyse.
    """
    joined = joined_names(class_csv)
    if not _has_rankings(Path(class_csv)) and (joined or Path(class_csv).is_file()):
        raise ValueError(f"{class_csv}: no rankings yet ({len(joined)} student{'' if len(joined) == 1 else 's'} joined"
                         f"{': ' + ', '.join(joined) if joined else ''}); run chapter 10 once a student "
                         f"has ranked a set")
    klass, record = classroom.read_class(class_csv)
    ranked = set(klass.table["set_id"].astype(str))
    recorded = [str(s) for s in record.get("sets") or []]
    sets = [s for s in recorded if s in ranked] + sorted(ranked - set(recorded))
    students = roster(klass.table, recorded or sets, joined)
    n_ranked = klass.table["rater"].nunique()
    more = f", {len(students)} joined" if len(students) > n_ranked else ""
    source = (f"the class file {Path(class_csv).name} ({n_ranked} students{' with rankings' if more else ''}"
              f"{more}, study {record.get('study', 'unknown')})")
    return ClassData(klass, klass, sets, _features(klass, klass.table, net), None, source, students)


def load_class(class_csv: str = DEFAULTS.class_csv, study: str = DEFAULTS.dataset, *,
               k: int = DEFAULTS.classroom_k, n_sets: int = DEFAULTS.classroom_sets,
               n_students: int = DEFAULTS.classroom_students, seed: int = DEFAULTS.seed,
               net: str = DEFAULTS.net) -> ClassData:
    """The class file ``class_csv`` (``clpips classroom``'s CSV, :func:`read_class_file`), or without one
    (``""``) a simulated class of ``n_students`` ranking the ``n_sets`` sets of ``study`` that
    ``clpips classroom --study`` serves (``k`` candidates each, drawn with ``seed``)."""
    if class_csv:
        return read_class_file(class_csv, net)
    design = classroom.load_study(study, k=k, seed=seed)
    sets = classroom.class_sets(design, n_sets, seed)
    features = _features(design, design.table[design.table["set_id"].astype(str).isin(sets)], net)
    table, truth = simulate_class(design, features, sets, n_students, seed=seed, net=net)
    source = (f"a simulated class: {n_students} students ranking the {len(sets)} sets of {design.name} "
              f"that the command clpips classroom --study {study} serves (no class file was given)")
    return ClassData(RankingDataset(table=table, root=design.root, name="simulated class"), design, sets,
                     features, truth, source, roster(table, sets))
