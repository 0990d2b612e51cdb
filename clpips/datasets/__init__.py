"""Human similarity rankings of images: one schema, validated, with built-in datasets.

>>> from clpips import datasets
>>> data = datasets.load("mur92")            # 92 targets x 16 raters
>>> mine = datasets.from_csv("study/rankings.csv")  # your own study

See ``data/README.md`` for the schema and how to bring your own study.
"""
from __future__ import annotations

import filecmp
import os
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath

import pandas as pd

from clpips import atomic
from clpips.paths import existing_path
from clpips.datasets import alien_eggs, mur92, simulated, zappos
from clpips.datasets.schema import COLUMNS, OPTIONAL, REQUIRED, RankingDataError, RankingDataset
from clpips.datasets.splits import (SPLIT_MODES, drop_shared_pairs, kfold_by_target, restrict_to_images, shared_pair_share,
                     shared_pairs, split_by_target, split_folds)
from clpips.datasets.validate import normalize_ref, validate

__all__ = ["COLUMNS", "OPTIONAL", "REQUIRED", "RankingDataError", "RankingDataset", "available",
           "SPLIT_MODES", "copy_images", "drop_shared_pairs",
           "from_csv", "kfold_by_target", "load", "restrict_to_images", "shared_pair_share", "shared_pairs",
           "split_by_target", "split_folds", "validate"]

_LOADERS: dict[str, Callable[..., RankingDataset]] = {"alien_eggs": alien_eggs.load, "mur92": mur92.load,
                                                       "simulated": simulated.load, "zappos": zappos.load}


def available() -> list[str]:
    """Names :func:`load` accepts (it also accepts a path to a CSV file)."""
    return sorted(_LOADERS)


def load(name: str, **options) -> RankingDataset:
    """A built-in dataset by name, with its options (see each module), or a CSV file.

    Parameters
    ----------
    name : str
        One of :func:`available`, or a path ending in ``.csv`` (read by :func:`from_csv`).
    **options
        Passed to the dataset's loader (e.g. ``k``, ``candidates``, ``seed`` for mur92).
    """
    if name in _LOADERS:
        return _LOADERS[name](**options)
    if str(name).lower().endswith(".csv"):
        return from_csv(name, **options)
    raise ValueError(f"unknown dataset {name!r}: choose one of {available()} or give a path to a .csv file")


def _read_csv(path: Path) -> pd.DataFrame:
    """The CSV as text cells; a file that is missing, a folder, empty, not UTF-8 or badly quoted is a
    one-line :class:`RankingDataError` naming it."""
    if path.is_dir():
        raise RankingDataError(f"{path}: is a folder, not a CSV file")
    if not path.is_file():
        raise RankingDataError(f"{path}: no such CSV file")
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=False, encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise RankingDataError(f"{path}: the file is empty; it needs a header naming {list(REQUIRED)} "
                               "and one row per (set, rater, candidate)") from None
    except UnicodeDecodeError as err:
        raise RankingDataError(f"{path}: not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset "
                               f"{err.start}); save the file as UTF-8") from None
    except pd.errors.ParserError as err:
        reason = " ".join(str(err).split())
        raise RankingDataError(f"{path}: not a well-formed CSV file ({reason}); check the quotes and "
                               "the number of commas on that line") from None


def from_csv(path: str | os.PathLike, root: str | os.PathLike | None = None, ties: str = "reject",
             k: int | None = None, check_images: bool = True) -> RankingDataset:
    """Read and validate a study's rankings from a CSV file.

    Parameters
    ----------
    path : str or Path
        CSV with a header naming at least ``set_id, target, candidate, rater, rank``.
    root : str or Path, optional
        Folder the image paths are relative to (a relative ``root`` is taken from the current
        folder); default: the CSV's own folder, so a CSV with its images beside it reads the same
        from any folder (:func:`copy_images` makes one).
    ties : {"reject", "average"}
        Reject tied ranks (default) or convert each ranking to average ranks.
    k : int, optional
        If given, every set must have exactly ``k`` candidates.
    check_images : bool
        Check that every image exists and decodes (default True).

    Raises
    ------
    RankingDataError
        Naming the file, the lines, the problem and the fix.

    A path (of the CSV or of an image in it) not found as typed is looked up in its other Unicode
    forms (NFC, NFD: :func:`clpips.paths.existing_path`).
    """
    path = existing_path(path)
    table = _read_csv(path)
    root = Path(root) if root is not None else path.parent
    if check_images and not root.is_dir():
        raise RankingDataError(f"{path}: root {root}: {'not a folder' if root.exists() else 'no such folder'}; "
                               f"give the folder the CSV's image paths are relative to")
    table = validate(table, root, source=str(path), ties=ties, k=k, check_images=check_images)
    return RankingDataset(table=table, root=root, name=path.stem, description=f"rankings read from {path}")


def copy_images(dataset: RankingDataset, folder: str | os.PathLike, refs: Iterable[str] | None = None) -> list[Path]:
    """Copy the images of ``dataset`` (every one, or only ``refs``) into ``folder``, each at its own
    reference (``images/001.png`` -> ``folder/images/001.png``), so that a CSV of its rankings saved in
    ``folder`` stands alone: :func:`from_csv` finds the images beside it, from any working folder and on
    another computer.

    A file already there with the same bytes is kept (copying twice, or into the study's own folder,
    writes nothing); one with other bytes is a one-line :class:`RankingDataError` naming it, so no
    image of another study is overwritten. Each copy is atomic (:func:`clpips.atomic.write_bytes`).
    Returns the files written.
    """
    folder = Path(folder)
    wanted = sorted(set(dataset.images() if refs is None else refs))
    clashes, todo = [], []
    for ref in wanted:
        source, dest = dataset.image_path(ref), Path(folder, *PurePosixPath(normalize_ref(ref)).parts)
        if not source.is_file():
            raise RankingDataError(f"{dataset.name}: image {ref!r} not found (looked for {source})")
        if dest.exists() and not filecmp.cmp(source, dest, shallow=False):
            clashes.append(dest)
        elif not dest.exists():
            todo.append((source, dest))
    if clashes:   # checked before anything is written: a refused copy leaves the folder as it was
        raise RankingDataError(f"{clashes[0]}: already exists with other content ({len(clashes)} such file"
                               f"{'s' if len(clashes) > 1 else ''}); copy {dataset.name}'s images into an "
                               f"empty folder")
    for source, dest in todo:
        dest.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_bytes(dest, source.read_bytes())
    return [dest for _, dest in todo]
