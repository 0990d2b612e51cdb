"""Where a CSV study's images are found: beside the CSV by default, under ``root=`` otherwise; and
:func:`clpips.apps.classroom.copy_images`, which makes a CSV stand alone (its images beside it).

The study is tests/data/study/ (rankings.csv and images/); each test copies the CSV elsewhere, so that
its image paths no longer resolve beside it, and reads it from another working folder.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from clpips.apps.classroom import copy_images
from clpips.datasets import RankingDataError, from_csv

STUDY = Path(__file__).parent / "data" / "study"


@pytest.fixture
def lone_csv(tmp_path) -> Path:
    """The study's CSV alone in a folder of its own (no images beside it)."""
    folder = tmp_path / "class"
    folder.mkdir()
    return Path(shutil.copy(STUDY / "rankings.csv", folder / "rankings.csv"))


def test_images_resolve_beside_the_csv_from_any_working_folder(tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    data = from_csv(STUDY / "rankings.csv")
    assert data.root == STUDY
    assert all(data.image_path(ref).is_file() for ref in data.images())


def test_a_missing_image_is_one_line_naming_the_csv_the_rows_and_the_path_tried(lone_csv):
    with pytest.raises(RankingDataError) as info:
        from_csv(lone_csv)
    message = str(info.value)
    first = sorted(from_csv(STUDY / "rankings.csv").images())[0]
    tried = lone_csv.parent / Path(first)
    assert "\n" not in message
    assert message.startswith(f"{lone_csv}, line")                   # the CSV and its rows
    assert f"image {first!r} not found (looked for {tried})" in message   # the path tried
    assert "root=" in message and "--root" in message                      # and how to say where they are


def test_root_names_the_image_folder_absolute_or_relative_to_the_working_folder(lone_csv, tmp_path, monkeypatch):
    reference = from_csv(STUDY / "rankings.csv").table
    absolute = from_csv(lone_csv, root=STUDY)
    assert absolute.root == STUDY and absolute.table.equals(reference)
    monkeypatch.chdir(STUDY.parent)
    relative = from_csv(lone_csv, root="study")
    assert relative.image_path(reference["target"].iloc[0]).resolve() == \
        (STUDY / reference["target"].iloc[0]).resolve()
    assert relative.table.equals(reference)


def test_a_root_that_is_not_a_folder_is_one_line(lone_csv, tmp_path):
    for root, problem in ((tmp_path / "nowhere", "no such folder"), (lone_csv, "not a folder")):
        with pytest.raises(RankingDataError) as info:
            from_csv(lone_csv, root=root)
        assert str(info.value).startswith(f"{lone_csv}: root {root}: {problem}") and "\n" not in str(info.value)
    # without checking images (reading rankings only) the root is not looked at
    assert len(from_csv(lone_csv, root=tmp_path / "nowhere", check_images=False).table) == 8


def test_copy_images_makes_the_csv_stand_alone(lone_csv, tmp_path, monkeypatch):
    study = from_csv(STUDY / "rankings.csv")
    written = copy_images(study, lone_csv.parent)
    assert sorted(written) == sorted(lone_csv.parent / ref for ref in study.images())
    for ref in study.images():
        assert (lone_csv.parent / ref).read_bytes() == (STUDY / ref).read_bytes()
    monkeypatch.chdir(tmp_path)
    alone = from_csv(Path(lone_csv.parent.name) / lone_csv.name)       # a relative path, another folder
    assert alone.table.equals(study.table)
    assert copy_images(study, lone_csv.parent) == []                     # the same bytes are kept, not rewritten
    assert copy_images(study, STUDY) == []                               # into the study's own folder: nothing


def test_copy_images_copies_only_the_refs_asked_for(tmp_path):
    study = from_csv(STUDY / "rankings.csv")
    one = study.images()[0]
    assert copy_images(study, tmp_path, [one]) == [tmp_path / one]
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()) == [one]


def test_copy_images_refuses_to_overwrite_another_image_and_writes_nothing(tmp_path):
    study = from_csv(STUDY / "rankings.csv")
    first, second = study.images()[:2]
    clash = tmp_path / second
    clash.parent.mkdir(parents=True, exist_ok=True)
    clash.write_bytes(b"another study's image")
    with pytest.raises(RankingDataError) as info:
        copy_images(study, tmp_path)
    assert str(info.value).startswith(f"{clash}: already exists with other content") and "\n" not in str(info.value)
    assert clash.read_bytes() == b"another study's image" and not (tmp_path / first).exists()
