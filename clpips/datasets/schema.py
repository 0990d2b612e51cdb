"""The one table format of ranking data, and the dataset object that carries it.

Long format, one row per (set, rater, candidate). Required: ``set_id`` (one target and its
candidates), ``target``, ``candidate`` (image paths), ``rater``, ``rank`` (1 = most similar to the
target, ``k`` = least). Optional: ``group`` (the rater's), ``iteration`` (the candidate's generation
round), ``prompt``. Image references are POSIX paths relative to the dataset root
(``images/000.png``), so a study folder can be moved as a whole.
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd
from PIL import Image

from clpips.atomic import atomic_path

REQUIRED = ("set_id", "target", "candidate", "rater", "rank")
OPTIONAL = ("group", "iteration", "prompt")
COLUMNS = REQUIRED + OPTIONAL


class RankingDataError(ValueError):
    """Ranking data break a rule of the schema; the message names file, line and fix."""


#: what a spreadsheet runs as a formula when a cell begins with it (OWASP's "CSV injection" list)
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def formula_like(value: object) -> bool:
    """Whether a spreadsheet would run text ``value`` as a formula (a :data:`FORMULA_START`, not a plain number)."""
    return (isinstance(value, str) and value.startswith(FORMULA_START)
            and _PLAIN_NUMBER.fullmatch(value) is None)


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every cell a spreadsheet would run as a formula prefixed with ``'``: the project's
    one neutraliser, used for every CSV it writes; idempotent, returns ``frame`` itself when nothing changes.
    """
    hits = {c: frame[c].map(formula_like) for c in frame.columns if pd.api.types.is_object_dtype(frame[c])
            or pd.api.types.is_string_dtype(frame[c])}
    hits = {c: hit for c, hit in hits.items() if hit.any()}
    if not hits:
        return frame
    out = frame.copy()
    for column, hit in hits.items():
        out[column] = frame[column].where(~hit, "'" + frame[column].astype(str))
    return out


@dataclass
class RankingDataset:
    """Human (or simulated) rankings of candidate images by similarity to a target.

    ``table``: the validated rankings; ``root``: the folder image references are relative to;
    ``truth``: known ground truth (simulated data); ``within(images, seed)``: rankings built *only* from
    the given images, for the split by image (a dataset that can draw new candidates provides it;
    without it the split drops rows outside the images and re-ranks, :func:`.splits.restrict_to_images`).
    """

    table: pd.DataFrame
    root: Path
    name: str = "custom"
    citation: str = ""
    licence: str = ""
    description: str = ""
    image_info: pd.DataFrame | None = None
    truth: Any = field(default=None, repr=False)
    within: Callable[[Collection[str], int], pd.DataFrame] | None = field(default=None, repr=False, compare=False)

    def image_path(self, ref: str) -> Path:
        """The file of image reference ``ref``."""
        return Path(self.root, *PurePosixPath(ref).parts)

    def open_image(self, ref: str) -> Image.Image:
        """Image ``ref`` as RGB, EXIF orientation applied, alpha composited on white."""
        from clpips.images import open_rgb  # imports torch: loaded late, clpips.datasets stays torch-free
        return open_rgb(self.image_path(ref))

    def images(self) -> list[str]:
        return sorted(set(self.table["target"]) | set(self.table["candidate"]))

    def sets(self) -> list[str]:
        return sorted(self.table["set_id"].unique())

    def raters(self) -> list[str]:
        return sorted(self.table["rater"].unique())

    def k_per_set(self) -> pd.Series:
        """Number of candidates of each set, indexed by ``set_id``."""
        return self.table.groupby("set_id")["candidate"].nunique().rename("k")

    @property
    def k(self) -> int | None:
        """Candidates per set when all sets have the same number, else None."""
        sizes = self.k_per_set().unique()
        return int(sizes[0]) if len(sizes) == 1 else None

    def to_csv(self, path: str | os.PathLike) -> Path:
        """Write the table as CSV atomically, formula-like text neutralised (:func:`spreadsheet_safe`)."""
        with atomic_path(path) as tmp:
            spreadsheet_safe(self.table).to_csv(tmp, index=False, lineterminator="\n")
        return Path(path)

    def __repr__(self) -> str:
        k = self.k
        return (f"RankingDataset({self.name!r}: {self.table['set_id'].nunique()} sets, "
                f"{self.table['rater'].nunique()} raters, k={'varies' if k is None else k}, root={str(self.root)!r})")
