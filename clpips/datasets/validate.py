"""The rules a ranking table must follow, each checked with a message naming what is wrong, on
which lines (1-based CSV lines: the header is line 1) and what to do. In the order checked:

1. the required columns are present, with at least one row; 2. no required cell is empty;
3. ``rank`` is a number (whole unless ``ties="average"``), ``iteration`` a whole number;
4. image references are relative POSIX paths inside the root, normalised (:func:`normalize_ref`);
5. no (set, rater, candidate) twice; 6. a target is never its own candidate; 7. one target per set;
8. every rater of a set ranks the same candidates, at least two (exactly ``k`` when given);
9. the ranks of each (set, rater) are a permutation of ``1..k`` (ties rejected, or averaged);
10. every image exists under the root, resolves inside it (symlinks included) and decodes; a
    reference not found as typed is looked up in its other Unicode forms (NFC, NFD).

Values are reported as the file writes them (``99999999999999999999``, not its overflow).
"""
from __future__ import annotations

import posixpath
import re
import warnings
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from clpips.choices import TIES  # what to do with tied ranks: the one list (the CLI offers it too)
from clpips.paths import existing_path
from clpips.datasets.schema import COLUMNS, REQUIRED, RankingDataError

_BAD_REF = re.compile(r"^/|^[A-Za-z]:|\\|(?:^|/)\.\.(?:/|$)")
#: the largest whole number float64 holds exactly: ranks beyond it are outside any set's range, iterations refused
_LARGEST = 2 ** 53


def check_ties(ties: str) -> str:
    """``ties`` if it is one of :data:`TIES`, else a one-line ValueError naming the choices."""
    if ties not in TIES:
        raise ValueError(f"ties must be one of {TIES}, got {ties!r}")
    return ties


def normalize_ref(ref: str) -> str:
    """The one form of an image reference (``images/./a.png`` -> ``images/a.png``); ValueError for an
    absolute path, a drive, a backslash or ``..``.
    """
    text = str(ref).strip()
    if not text or _BAD_REF.search(text):
        raise ValueError(f"{ref!r} is not a relative path inside the root")
    return posixpath.normpath(text)


def resolve_ref(root: str | Path, ref: str) -> Path:
    """The file a reference names under ``root``; ValueError if it resolves outside ``root`` (symlinks followed)."""
    path = Path(root, *PurePosixPath(normalize_ref(ref)).parts)
    real_root = Path(root).resolve()
    if not path.resolve().is_relative_to(real_root):
        raise ValueError(f"{ref!r} resolves to {path.resolve()}, outside the study root {real_root}")
    return path


def _reject(source: str, lines: Iterable[int], problem: str, fix: str) -> None:
    """Raise the one error type of this module, naming file, lines, problem and fix."""
    lines = sorted({int(n) for n in lines})
    shown = ", ".join(map(str, lines[:5])) + (f" (and {len(lines) - 5} more)" if len(lines) > 5 else "")
    raise RankingDataError(f"{source}, line{'s' if len(lines) > 1 else ''} {shown}: {problem}. {fix}")


def _lines(mask: pd.Series | np.ndarray) -> np.ndarray:
    """CSV line numbers of the rows where ``mask`` holds."""
    return np.flatnonzero(np.asarray(mask)) + 2


def validate(table: pd.DataFrame, root: str | Path | None = None, *, source: str = "table",
             ties: str = "reject", k: int | None = None, check_images: bool = True) -> pd.DataFrame:
    """Check ``table`` against every rule; return it typed (``rank`` int64, float64 with ``ties="average"``)
    with the required columns first. ``source`` names the data in messages; ``k``: every set has exactly
    ``k`` candidates. Raises :class:`RankingDataError` at the first rule broken.
    """
    check_ties(ties)
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        _reject(source, [1], f"missing required column(s) {missing}; the header has {list(table.columns)}",
                f"Name the columns {list(REQUIRED)} (optional: group, iteration, prompt)")
    if len(table) == 0:
        _reject(source, [1], "the header is followed by no rankings",
                "Add one row per (set, rater, candidate) below the header")
    extra = [c for c in table.columns if c not in COLUMNS]
    if extra:
        warnings.warn(f"{source}: ignoring columns not in the schema: {extra}", stacklevel=3)
    out = table[[c for c in COLUMNS if c in table.columns]].reset_index(drop=True)

    _check_blanks(out, source)
    for col in ("set_id", "target", "candidate", "rater"):
        out[col] = out[col].astype(str).str.strip()
    for col in ("group", "prompt"):
        if col in out:
            out[col] = out[col].where(out[col].notna() & (out[col].astype(str) != ""), None)

    written = _check_numbers(out, source, ties)
    _check_refs(out, source)
    _check_sets(out, source, k)
    out["rank"] = _check_ranks(out, source, ties, written)
    if check_images and _check_images(out, root, source):
        _check_sets(out, source, k)  # two spellings of one image's name became one reference
    return out


def _check_blanks(out: pd.DataFrame, source: str) -> None:
    """Rule 2."""
    blank = out[list(REQUIRED)].isna() | out[list(REQUIRED)].astype(str).apply(lambda s: s.str.strip() == "")
    if blank.to_numpy().any():
        cols = [c for c in REQUIRED if blank[c].any()]
        _reject(source, _lines(blank.any(axis=1)), f"missing value in column(s) {cols}",
                "Fill every required cell, or delete the incomplete rows")


def _check_numbers(out: pd.DataFrame, source: str, ties: str) -> pd.Series:
    """Rule 3; converts ``rank`` and ``iteration`` of ``out`` in place and returns the ranks as the file
    writes them (for messages)."""
    written = out["rank"].astype(str).str.strip()
    rank = pd.to_numeric(out["rank"], errors="coerce")
    bad = rank.isna()
    if bad.any():
        _reject(source, _lines(bad), f"rank is not a number: {out['rank'][bad].iloc[0]!r}",
                "Write ranks as whole numbers 1..k (1 = most similar)")
    frac = rank % 1 != 0
    if ties == "reject" and frac.any():
        _reject(source, _lines(frac), f"rank {written[frac].iloc[0]} is not a whole number",
                "Write whole ranks, or pass ties='average' if these are average ranks of tied candidates")
    rank = rank.clip(-_LARGEST, _LARGEST)  # beyond any set's size either way (rule 9 names them as written)
    out["rank"] = rank.astype("int64") if ties == "reject" else rank.astype("float64")
    if "iteration" in out:
        raw = out["iteration"].where(out["iteration"].astype(str).str.strip() != "")
        iteration = pd.to_numeric(raw, errors="coerce")
        bad = (iteration.isna() & raw.notna()) | (iteration % 1 > 0)
        if bad.any():
            _reject(source, _lines(bad), f"iteration is not a whole number: {raw[bad].iloc[0]!r}",
                    "Write iterations as whole numbers (1, 2, ...) or leave the cell empty")
        huge = iteration.abs() > _LARGEST
        if huge.any():
            _reject(source, _lines(huge), f"iteration {str(raw[huge].iloc[0]).strip()} is out of range",
                    f"Write iterations as whole numbers of at most {_LARGEST:,} (generation rounds: 1, 2, ...)")
        out["iteration"] = iteration.astype("Int64" if iteration.isna().any() else "int64")
    return written


def _check_refs(out: pd.DataFrame, source: str) -> None:
    """Rule 4."""
    for col in ("target", "candidate"):
        bad = out[col].str.contains(_BAD_REF)
        if bad.any():
            _reject(source, _lines(bad), f"{col} {out[col][bad].iloc[0]!r} is not a relative path inside the root",
                    "Write image paths relative to the dataset root with forward slashes, e.g. images/cat.png")
        out[col] = out[col].map(normalize_ref)  # one form per image before duplicates are looked for


def _check_sets(out: pd.DataFrame, source: str, k: int | None) -> None:
    """Rules 5 to 8."""
    dup = out.duplicated(["set_id", "rater", "candidate"], keep=False)
    if dup.any():
        row = out[dup].iloc[0]
        _reject(source, _lines(dup), f"duplicate rows: set {row.set_id!r}, rater {row.rater!r} and candidate "
                f"{row.candidate!r} appear more than once", "Keep one row per (set, rater, candidate)")
    own = out["target"] == out["candidate"]
    if own.any():
        _reject(source, _lines(own), f"the target {out['target'][own].iloc[0]!r} is its own candidate",
                "Remove the target from its candidates")
    first_target = out.groupby("set_id")["target"].transform("first")
    other = out["target"] != first_target
    if other.any():
        s = out["set_id"][other].iloc[0]
        targets = sorted(out.loc[out["set_id"] == s, "target"].unique())
        _reject(source, _lines(other), f"set {s!r} has more than one target {targets}",
                "Give each set exactly one target; use a new set_id for another target")
    raters_per_set = out.groupby("set_id")["rater"].transform("nunique")
    raters_per_candidate = out.groupby(["set_id", "candidate"])["rater"].transform("nunique")
    partial = raters_per_candidate < raters_per_set
    if partial.any():
        row = out[partial].iloc[0]
        absent = sorted(set(out.loc[out["set_id"] == row.set_id, "rater"])
                        - set(out.loc[(out["set_id"] == row.set_id) & (out["candidate"] == row.candidate), "rater"]))
        _reject(source, _lines(partial), f"set {row.set_id!r}: candidate {row.candidate!r} is not ranked by "
                f"rater(s) {absent}", "Every rater of a set must rank the same candidates: add the missing rows "
                "or give those raters' rankings their own set_id")
    size = out.groupby("set_id")["candidate"].transform("nunique")
    small = size < 2
    if small.any():
        _reject(source, _lines(small), f"set {out['set_id'][small].iloc[0]!r} has only one candidate",
                "A ranking needs at least two candidates")
    if k is not None and (size != k).any():
        bad = size != k
        _reject(source, _lines(bad), f"set {out['set_id'][bad].iloc[0]!r} has {size[bad].iloc[0]} candidates, "
                f"not k={k}", "Give every set k candidates, or leave k unset to allow sets of different sizes")


def _check_ranks(out: pd.DataFrame, source: str, ties: str, written: pd.Series) -> pd.Series:
    """Rule 9; returns the ranks to keep (average ranks with ``ties="average"``); ``written``: each rank
    as the file writes it."""
    keys = ["set_id", "rater"]
    size = out.groupby(keys)["candidate"].transform("size")
    outside = (out["rank"] < 1) | (out["rank"] > size)
    if outside.any():
        row = out[outside].iloc[0]
        _reject(source, _lines(outside), f"set {row.set_id!r}, rater {row.rater!r}: rank {written[outside].iloc[0]} "
                f"is outside 1..{size[outside].iloc[0]}", "Rank each set's k candidates 1..k (1 = most similar)")
    if ties == "average":
        return out.groupby(keys)["rank"].rank(method="average")
    tied = out.duplicated(keys + ["rank"], keep=False)
    if tied.any():
        row = out[tied].iloc[0]
        _reject(source, _lines(tied), f"set {row.set_id!r}, rater {row.rater!r}: tied ranks (rank {row['rank']} "
                "is given more than once)", "Give each candidate its own rank, or read ties as average ranks: "
                "`clpips fit --ties average` (ties='average' in Python)")
    return out["rank"]


def _check_images(out: pd.DataFrame, root: str | Path | None, source: str) -> bool:
    """Rule 10; a reference found in another Unicode form is renamed in ``out`` to the name on disk
    (returns True when one was)."""
    if root is None:
        raise ValueError("root is needed to check images; pass check_images=False to skip")
    from clpips.images import ImageReadError, open_rgb  # imports torch: loaded late, clpips.datasets stays torch-free
    on_disk = {}
    for ref in sorted(set(out["target"]) | set(out["candidate"])):
        found = "/".join(existing_path(ref, root).parts[len(Path(root).parts):])
        if found != ref:
            on_disk[ref] = ref = found
        path = Path(root, *PurePosixPath(ref).parts)
        problem, fix = None, ""
        try:
            resolve_ref(root, ref)
        except ValueError as err:
            problem, fix = f"image {err}", "Keep the images (and what symlinks point at) inside the study's folder"
        if problem is None and not path.exists():
            problem = f"image {ref!r} not found (looked for {path})"
            fix = ("Put the image there, or name the folder the image paths are relative to (root= in Python, "
                   "--root on the command line)")
        elif problem is None:
            try:
                open_rgb(path)
            except ImageReadError as err:
                problem = f"image {ref!r} cannot be decoded ({str(err).removeprefix(f'{path}: ')})"
                fix = "Replace the file with a readable image (PNG, JPEG, ...)"
        if problem:
            named = out["target"].replace(on_disk).eq(ref) | out["candidate"].replace(on_disk).eq(ref)
            _reject(source, _lines(named), problem, fix)
    for col in ("target", "candidate"):
        out[col] = out[col].replace(on_disk)
    return bool(on_disk)
