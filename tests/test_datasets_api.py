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


def test_load_names_a_folder_given_as_the_csv(tmp_path):
    (tmp_path / "rankings.csv").mkdir()
    with pytest.raises(datasets.RankingDataError, match=r"rankings\.csv: is a folder, not a CSV file$") as err:
        datasets.load(str(tmp_path / "rankings.csv"))
    assert str(tmp_path / "rankings.csv") in str(err.value) and "\n" not in str(err.value)


def test_a_dataset_says_its_sets_raters_k_and_root(tmp_path):
    """The study: sets s1 (3 candidates) and s2 (2), raters alice and bob (counted from rankings.csv)."""
    data = datasets.load(str(STUDY / "rankings.csv"))
    assert repr(data) == f"RankingDataset('study': 2 sets, 2 raters, k=varies, root={str(STUDY)!r})"
    lines = (STUDY / "rankings.csv").read_text().splitlines()
    (tmp_path / "rankings.csv").write_text("\n".join(lines[:7]) + "\n")          # s1 only: k = 3
    even = datasets.from_csv(tmp_path / "rankings.csv", root=STUDY, name="s1")
    assert repr(even) == f"RankingDataset('s1': 1 sets, 2 raters, k=3, root={str(STUDY)!r})"


def test_the_dataset_options_mapping_lists_every_available_dataset():
    from clpips.experiment import DATASET_OPTIONS
    assert len(DATASET_OPTIONS) == len(datasets.available()) == len(list(DATASET_OPTIONS))
    assert list(DATASET_OPTIONS) == datasets.available()
