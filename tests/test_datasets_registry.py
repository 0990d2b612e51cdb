"""The registry of dataset names (clpips.datasets): built-ins, datasets that installed packages declare as
entry points (group ``clpips.datasets``, found through their ``*.dist-info`` metadata, imported on first use),
and loaders registered at run time; the core finds the book's simulated study only through its entry point."""
from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from clpips import datasets
from clpips.experiment import DATASET_OPTIONS

REPO = Path(__file__).resolve().parents[1]
STUDY = Path(__file__).parent / "data" / "study"


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch):
    """Each test starts from the built-ins alone (no entry point imported yet) and leaves no name behind."""
    monkeypatch.setattr(datasets, "_LOADERS", dict(datasets._BUILT_IN))


def install_fake_package(folder: Path, module: str, entry_points: str) -> None:
    """A package as pip leaves it: the module, and a dist-info folder whose entry_points.txt declares datasets."""
    (folder / f"{module}.py").write_text(
        "from clpips import datasets\n\n"
        "def load(seed: int = 0, ties: str = 'average'):\n"
        f"    return datasets.from_csv({str(STUDY / 'rankings.csv')!r}, ties=ties, name=f'toy{{seed}}')\n")
    info = folder / f"{module}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[clpips.datasets]\n{entry_points}\n")


def test_a_dataset_declared_by_an_installed_package_loads_by_name(tmp_path, monkeypatch):
    install_fake_package(tmp_path, "toy_study_pkg", "toy = toy_study_pkg:load")
    monkeypatch.syspath_prepend(str(tmp_path))              # where importlib.metadata looks for dist-info folders
    assert "toy" in datasets.available() and datasets.available() == sorted(datasets.available())
    assert "toy_study_pkg" not in sys.modules              # listed from metadata, not imported
    data = datasets.load("toy", seed=3)
    assert data.name == "toy3" and len(data.table) == len(datasets.from_csv(STUDY / "rankings.csv",
                                                                             ties="average").table)
    assert DATASET_OPTIONS["toy"] == ("seed",) and "toy" in DATASET_OPTIONS     # read from its signature
    with pytest.raises(ValueError, match=r"unknown dataset 'bapps': choose one of \[.*'toy'.*\]"):
        datasets.load("bapps")


def test_an_entry_point_that_does_not_import_is_a_one_line_error(tmp_path, monkeypatch):
    install_fake_package(tmp_path, "broken_study_pkg", "broken = broken_study_pkg:no_such_loader")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match=r"^dataset 'broken': its entry point 'broken_study_pkg:no_such_loader' "
                                         r"\(group 'clpips.datasets'\) does not load: [^\n]*$"):
        datasets.load("broken")


def test_without_the_entry_point_simulated_is_an_unknown_name(monkeypatch):
    """clpips on PYTHONPATH but not installed: no metadata declares the book's study."""
    monkeypatch.setattr(datasets, "entry_points", lambda group: [])
    assert datasets.available() == ["alien_eggs", "mur92", "zappos"] and "simulated" not in DATASET_OPTIONS
    with pytest.raises(ValueError, match=r"^unknown dataset 'simulated': choose one of "
                                         r"\['alien_eggs', 'mur92', 'zappos'\][^\n]*$"):
        datasets.load("simulated")


def test_a_loader_registered_at_run_time_loads_by_name():
    datasets.register("pilot", lambda ties="reject": datasets.from_csv(STUDY / "rankings.csv", ties=ties))
    assert "pilot" in datasets.available() and DATASET_OPTIONS["pilot"] == ()
    assert datasets.load("pilot", ties="average").table["rank"].dtype == "float64"
    with pytest.raises(ValueError, match="dataset 'mur92' is built in"):
        datasets.register("mur92", lambda: None)


def test_this_project_declares_the_simulated_study_as_an_entry_point():
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]["clpips.datasets"]
    from clpips.book import simulated
    assert EntryPoint("simulated", declared["simulated"], datasets.ENTRY_POINT_GROUP).load() is simulated.load


def test_the_options_a_named_dataset_takes_are_read_from_its_loaders_signature(monkeypatch):
    """What the CLI passes each dataset from --k, --candidates, --seed: as the table of names it replaced."""
    monkeypatch.setattr(datasets, "entry_points", lambda group: [
        EntryPoint("simulated", "clpips.book.simulated:load", group)])     # as if installed (make setup)
    assert dict(DATASET_OPTIONS) == {"mur92": ("k", "candidates", "seed"), "simulated": ("seed",),
                                     "zappos": ("k", "seed"), "alien_eggs": ("k", "seed")}
    assert "mur92" in DATASET_OPTIONS and "study/rankings.csv" not in DATASET_OPTIONS
    with pytest.raises(KeyError):
        DATASET_OPTIONS["bapps"]


def test_importing_the_core_and_listing_names_imports_no_book_module():
    code = ("import sys; from clpips import datasets, experiment; datasets.available(); "
            "print(sorted(m for m in sys.modules if m.startswith(('clpips.book', 'clpips.apps'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
