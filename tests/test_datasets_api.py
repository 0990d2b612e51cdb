"""The package entry points: available(), load() by name or CSV path."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from clpips import datasets

STUDY = Path(__file__).parent / "data" / "study"


def test_available_names():
    assert datasets.available() == ["alien_eggs", "mur92", "simulated", "zappos"]


def test_load_reads_a_csv_path_with_options():
    data = datasets.load(str(STUDY / "rankings.csv"), ties="average")
    assert data.name == "study" and data.root == STUDY and data.table["rank"].dtype == "float64"  # its folder
    assert datasets.from_csv(STUDY / "rankings.csv", ties="average", name="pilot").name == "pilot"


def test_every_dataset_refuses_a_study_named_as_a_built_in(tmp_path):
    from clpips.book.studies import load_every_dataset
    (tmp_path / "zappos").mkdir()
    (tmp_path / "zappos" / "rankings.csv").write_text((STUDY / "rankings.csv").read_text())
    with pytest.raises(ValueError, match=r"rankings.csv: the study is named 'zappos', as a built-in dataset"):
        load_every_dataset(str(tmp_path / "zappos" / "rankings.csv"), check_images=False)


def test_load_refuses_unknown_names():
    with pytest.raises(ValueError, match=r"unknown dataset 'bapps'.*\['alien_eggs', 'mur92', 'simulated', 'zappos'\]"):
        datasets.load("bapps")


def test_schema_columns_are_exported():
    assert datasets.REQUIRED == ("set_id", "target", "candidate", "rater", "rank")
    assert datasets.OPTIONAL == ("group", "iteration", "prompt")
    assert issubclass(datasets.RankingDataError, ValueError)


def test_load_every_dataset_gives_the_built_ins_in_order_and_the_study(mur92_mirror, monkeypatch):
    """What chapters 08 and 09 answer on: mur92, zappos, alien_eggs and the simulated study, each loaded as
    load_dataset loads it, then the study CSV when one is given."""
    from clpips.book.studies import EVERY_DATASET, load_every_dataset
    from clpips.experiment import load_dataset
    monkeypatch.setenv("CLPIPS_DATA_MIRROR", str(mur92_mirror))
    every = load_every_dataset(str(STUDY / "rankings.csv"), seed=3)
    assert EVERY_DATASET == ("mur92", "zappos", "alien_eggs", "simulated")
    assert list(every)[:4] == list(EVERY_DATASET) and len(every) == 5
    alone = load_dataset("mur92", seed=3)
    pd.testing.assert_frame_equal(every["mur92"].table, alone.table)
    assert list(load_every_dataset(seed=3)) == list(EVERY_DATASET) == list(load_every_dataset("mur92", seed=3))
