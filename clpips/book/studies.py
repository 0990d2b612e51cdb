"""The studies chapters 08 and 09 answer on: every built-in dataset, and the reader's own.

:func:`load_every_dataset` loads each by name with :func:`clpips.experiment.load_dataset`, in the
order the chapters show them (:data:`EVERY_DATASET`).
"""
from __future__ import annotations

from clpips.experiment import DATASET_OPTIONS, load_dataset

__all__ = ["EVERY_DATASET", "load_every_dataset"]

#: the built-in datasets of real and simulated judgements, in the order the chapters show them
EVERY_DATASET = ("mur92", "zappos", "alien_eggs", "simulated")


def load_every_dataset(study: str = "", **options) -> dict:
    """Every built-in dataset (:data:`EVERY_DATASET`), plus ``study`` when it is a CSV path (a built-in
    name, as a chapter's ``dataset`` parameter may be, adds nothing), by name (:func:`load_dataset` each,
    with ``options``): what chapters 08 and 09 answer on."""
    extra = [study] if study and study not in DATASET_OPTIONS else []
    loaded = [load_dataset(name, **options) for name in [*EVERY_DATASET, *extra]]
    if extra and loaded[-1].name in EVERY_DATASET:
        raise ValueError(f"{study}: the study is named {loaded[-1].name!r}, as a built-in dataset; give it "
                         "another name (name= in from_csv, or rename its folder)")
    return {data.name: data for data in loaded}
