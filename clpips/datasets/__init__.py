"""Human similarity rankings of images: one schema, validated, with built-in datasets.

``datasets.load("mur92")`` (a built-in, :func:`available`) or ``datasets.from_csv("study/rankings.csv")``
(your own study; ``data/README.md`` gives the schema).
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

__all__ = ["COLUMNS", "OPTIONAL", "REQUIRED", "RankingDataError", "RankingDataset", "available", "SPLIT_MODES",
           "copy_images", "drop_shared_pairs", "from_csv", "kfold_by_target", "load", "restrict_to_images",
           "shared_pair_share", "shared_pairs", "split_by_target", "split_folds", "validate"]

_LOADERS: dict[str, Callable[..., RankingDataset]] = {"alien_eggs": alien_eggs.load, "mur92": mur92.load,
                                                       "simulated": simulated.load, "zappos": zappos.load}


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
    images beside it reads the same from anywhere: :func:`copy_images`). Paths not found as typed are
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


def copy_images(dataset: RankingDataset, folder: str | os.PathLike, refs: Iterable[str] | None = None) -> list[Path]:
    """Copy the dataset's images (or ``refs``) into ``folder`` at their references, so that a CSV of its
    rankings saved there stands alone; returns the files written.

    A file already there with the same bytes is kept; one with other bytes refuses the whole copy
    (no image of another study is overwritten). Each copy is atomic.
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
