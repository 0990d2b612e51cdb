"""Human similarity rankings of images: one schema, validated, with built-in datasets.

``datasets.load("mur92")`` (a named dataset, :func:`available`) or ``datasets.from_csv("study/rankings.csv")``
(your own study; ``data/README.md`` gives the schema).

The names :func:`load` knows form a small registry, the one place names map to loaders: the core's
built-ins (mur92, zappos, alien_eggs); those that installed packages declare as entry points in the
group ``clpips.datasets`` (this project's ``pyproject.toml`` declares the book's ``simulated`` study
that way), each imported on first use of its name; and those :func:`register` adds at run time.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

import pandas as pd

from clpips.paths import existing_path
from clpips.datasets import alien_eggs, mur92, zappos
from clpips.datasets.schema import COLUMNS, OPTIONAL, REQUIRED, RankingDataError, RankingDataset
from clpips.datasets.splits import (SPLIT_MODES, drop_shared_pairs, kfold_by_target, restrict_to_images,
                                    shared_pair_share, shared_pairs, split_by_target, split_folds)
from clpips.datasets.validate import validate
from clpips.moved import moved_name

__all__ = ["COLUMNS", "OPTIONAL", "REQUIRED", "RankingDataError", "RankingDataset", "available", "SPLIT_MODES",
           "drop_shared_pairs", "from_csv", "kfold_by_target", "load", "loader", "register", "restrict_to_images",
           "shared_pair_share", "shared_pairs", "split_by_target", "split_folds", "validate"]

#: the entry-point group where installed packages declare datasets: ``name = "module:loader"``
ENTRY_POINT_GROUP = "clpips.datasets"

#: the core's own datasets: their names cannot be registered again
_BUILT_IN = {"alien_eggs": alien_eggs.load, "mur92": mur92.load, "zappos": zappos.load}
#: loaders added by :func:`register`, and those of entry points once imported
_LOADERS: dict[str, Callable[..., RankingDataset]] = dict(_BUILT_IN)


def register(name: str, loader: Callable[..., RankingDataset]) -> None:
    """Make ``load(name, **options)`` call ``loader(**options)`` (a :class:`RankingDataset`), for this run.

    The standard plugin pattern: a package of your own declares its datasets once, in its
    ``pyproject.toml`` (``[project.entry-points."clpips.datasets"]``, ``my_study = "my_pkg.data:load"``),
    and every program finds them when it is installed; ``register`` is for a loader defined while
    running (a notebook cell). It takes precedence over an entry point of the same name.
    """
    if name in _BUILT_IN:
        raise ValueError(f"dataset {name!r} is built in; register your loader under another name")
    _LOADERS[name] = loader


def _declared() -> dict[str, EntryPoint]:
    """The datasets installed packages declare (read from their metadata each call: a few ms)."""
    return {point.name: point for point in entry_points(group=ENTRY_POINT_GROUP)}


def available() -> list[str]:
    """Names :func:`load` accepts (it also accepts a path to a CSV file)."""
    return sorted({*_LOADERS, *_declared()})


def loader(name: str) -> Callable[..., RankingDataset]:
    """The function that loads dataset ``name`` (its keywords are the dataset's options); an entry
    point's is imported on first use."""
    if name not in _LOADERS:
        point = _declared().get(name)
        if point is None:
            raise ValueError(f"unknown dataset {name!r}: choose one of {available()} or give a path to a .csv "
                             f"file (installed packages add theirs under entry points {ENTRY_POINT_GROUP!r})")
        try:
            _LOADERS[name] = point.load()
        except (ImportError, AttributeError) as err:
            raise ValueError(f"dataset {name!r}: its entry point {point.value!r} (group {ENTRY_POINT_GROUP!r}) "
                             f"does not load: {err}") from err
    return _LOADERS[name]


def load(name: str, **options) -> RankingDataset:
    """A dataset by name (:func:`available`) with its loader's options (``k``, ``seed``...), or a CSV path
    (:func:`from_csv`)."""
    if name not in _LOADERS and str(name).lower().endswith(".csv"):
        return from_csv(name, **options)
    return loader(name)(**options)


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
