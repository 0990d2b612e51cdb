"""The package entry points: available(), load() by name or CSV path."""
from __future__ import annotations

from pathlib import Path

import pytest

from clpips import datasets

STUDY = Path(__file__).parent / "data" / "study"


def test_available_names():
    assert datasets.available() == ["mur92", "simulated", "zappos"]


def test_load_reads_a_csv_path_with_options():
    data = datasets.load(str(STUDY / "rankings.csv"), ties="average")
    assert data.name == "rankings" and data.root == STUDY and data.table["rank"].dtype == "float64"


def test_load_refuses_unknown_names():
    with pytest.raises(ValueError, match=r"unknown dataset 'bapps'.*\['mur92', 'simulated', 'zappos'\]"):
        datasets.load("bapps")


def test_schema_columns_are_exported():
    assert datasets.REQUIRED == ("set_id", "target", "candidate", "rater", "rank")
    assert datasets.OPTIONAL == ("group", "iteration", "prompt")
    assert issubclass(datasets.RankingDataError, ValueError)
