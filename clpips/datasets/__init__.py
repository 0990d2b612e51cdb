"""Human similarity rankings of images: one schema, validated, with built-in datasets.

``datasets.load("mur92")`` (a built-in, :func:`available`) or ``datasets.from_csv("study/rankings.csv")``
(your own study; ``data/README.md`` gives the schema).
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from clpips.paths import existing_path
from clpips.datasets import alien_eggs, mur92, simulated, zappos
from clpips.datasets.schema import COLUMNS, OPTIONAL, REQUIRED, RankingDataError, RankingDataset
from clpips.datasets.splits import (SPLIT_MODES, drop_shared_pairs, kfold_by_target, restrict_to_images,
                                    shared_pair_share, shared_pairs, split_by_target, split_folds)
from clpips.datasets.validate import validate
from clpips.moved import moved_name

__all__ = ["COLUMNS", "OPTIONAL", "REQUIRED", "RankingDataError", "RankingDataset", "available", "SPLIT_MODES",
           "drop_shared_pairs", "from_csv", "kfold_by_target", "load", "restrict_to_images",
           "shared_pair_share", "shared_pairs", "split_by_target", "split_folds", "validate"]

_LOADERS = {"alien_eggs": alien_eggs.load, "mur92": mur92.load, "simulated": simulated.load, "zappos": zappos.load}


def available() -> list[str]:
    """Names :func:`load` accepts (it also accepts a path to a CSV file)."""
    return sorted(_LOADERS)


def load(name: str, **options) -> RankingDataset:
    """A built-in dataset by name with its loader's options (``k``, ``seed``...), or a CSV path (:func:`from_csv`)."""
    if name in _LOADERS:
        return _LOADERS[name](**options)
    if str(name).lower().endswith(".csv"):
        return from_csv(name, **options)
    raise ValueError(f"unknown dataset {name!r}: choose one of {available()} or give a path to a .csv file")


def _read_csv(path: Path) -> pd.DataFrame:
    """The CSV as text cells; missing, a folder, empty, not UTF-8 or badly quoted: one-line RankingDataError."""
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
             k: int | None = None, check_images: bool = True, name: str | None = None) -> RankingDataset:
    """Read and validate a study's rankings from a CSV file (:func:`clpips.datasets.validate.validate`).

    ``root``: the folder image paths are relative to, default the CSV's own folder (so a CSV with its
    images beside it reads the same from anywhere). Paths not found as typed are
    looked up in their other Unicode forms (NFC, NFD). ``name``: what the book and the CLI call the
    study, default its folder's name (``my_study/rankings.csv`` is ``my_study``), the file's own name
    for a CSV at the top of the file system.
    """
    path = existing_path(path)
    table = _read_csv(path)
    root = Path(root) if root is not None else path.parent
    if check_images and not root.is_dir():
        raise RankingDataError(f"{path}: root {root}: {'not a folder' if root.exists() else 'no such folder'}; "
                               f"give the folder the CSV's image paths are relative to")
    table = validate(table, root, source=str(path), ties=ties, k=k, check_images=check_images)
    name = name or path.resolve().parent.name or path.stem
    return RankingDataset(table=table, root=root, name=name, description=f"rankings read from {path}")


def __getattr__(name: str):
    return moved_name(__name__, name)   # copy_images: now the classroom's (clpips.apps.classroom)
