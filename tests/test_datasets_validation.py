"""One test per validation rule: each invalid study is rejected with a message
naming the file, the CSV line(s) and the problem. The valid study lives in
tests/data/study/ (8 rows: lines 2-9 of rankings.csv)."""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from clpips.datasets import RankingDataError, from_csv

STUDY = Path(__file__).parent / "data" / "study"
VALID = (STUDY / "rankings.csv").read_text().splitlines()


def write_study(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "rankings.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def edit(line: int, old: str, new: str) -> list[str]:
    """The valid study with ``old`` replaced by ``new`` on CSV line ``line`` (1-based)."""
    lines = list(VALID)
    assert old in lines[line - 1]
    lines[line - 1] = lines[line - 1].replace(old, new, 1)
    return lines


def rejected(tmp_path: Path, lines: list[str], *, root: Path = STUDY, **options) -> str:
    path = write_study(tmp_path, lines)
    with pytest.raises(RankingDataError) as info:
        from_csv(path, root=root, **options)
    message = str(info.value)
    assert str(path) in message
    return message


def test_valid_study_is_accepted_as_is():
    data = from_csv(STUDY / "rankings.csv")
    assert list(data.table.columns) == ["set_id", "target", "candidate", "rater", "rank", "group", "iteration",
                                        "prompt"]
    assert len(data.table) == 8 and data.table["rank"].dtype == "int64"
    assert data.sets() == ["s1", "s2"] and data.raters() == ["alice", "bob"]
    assert data.k_per_set().to_dict() == {"s1": 3, "s2": 2} and data.k is None
    assert data.images() == ["images/blue.jpg", "images/green.png", "images/grey.png", "images/red.png"]
    assert data.root == STUDY and data.image_path("images/red.png") == STUDY / "images" / "red.png"


def test_rule_required_columns(tmp_path):
    lines = [VALID[0].replace("rater,", "person,")] + VALID[1:]
    message = rejected(tmp_path, lines)
    assert "line 1:" in message and "missing required column" in message and "'rater'" in message


def test_rule_missing_values(tmp_path):
    message = rejected(tmp_path, edit(4, ",alice,", ",,"))
    assert "line 4:" in message and "missing value" in message and "'rater'" in message


def test_rule_blank_line_keeps_line_numbers(tmp_path):
    message = rejected(tmp_path, VALID[:3] + [""] + VALID[3:])
    assert "line 4:" in message and "missing value" in message


def test_rule_rank_is_a_number(tmp_path):
    message = rejected(tmp_path, edit(3, ",3,g1", ",three,g1"))
    assert "line 3:" in message and "not a number" in message and "'three'" in message


def test_rule_rank_is_whole(tmp_path):
    message = rejected(tmp_path, edit(3, ",3,g1", ",2.5,g1"))
    assert "line 3:" in message and "not a whole number" in message and "ties='average'" in message


def test_rule_iteration_is_whole(tmp_path):
    message = rejected(tmp_path, edit(5, ",g2,1,", ",g2,first,"))
    assert "line 5:" in message and "iteration" in message and "'first'" in message


@pytest.mark.parametrize("bad", ["/abs/green.png", "../green.png", "images\\green.png", "C:/green.png"])
def test_rule_relative_image_paths(tmp_path, bad):
    message = rejected(tmp_path, edit(2, "images/green.png", bad))
    assert "line 2:" in message and "not a relative path" in message


def test_rule_no_duplicate_rows(tmp_path):
    message = rejected(tmp_path, VALID + [VALID[3]])
    assert "lines 4, 10:" in message and "duplicate" in message


def test_rule_target_is_not_its_own_candidate(tmp_path):
    message = rejected(tmp_path, edit(9, "images/green.png", "images/blue.jpg"))
    assert "line 9:" in message and "its own candidate" in message


def test_rule_one_target_per_set(tmp_path):
    lines = edit(7, "images/red.png,images/blue.jpg", "images/grey.png,images/blue.jpg")
    message = rejected(tmp_path, lines)
    assert "line 7:" in message and "more than one target" in message and "'s1'" in message


def test_rule_same_candidates_for_every_rater_of_a_set(tmp_path):
    message = rejected(tmp_path, VALID[:5] + VALID[6:])  # bob does not rank grey.png (line 6 dropped)
    assert "line 3:" in message and "not ranked by" in message and "['bob']" in message


def test_rule_at_least_two_candidates(tmp_path):
    lines = VALID + ["s3,images/red.png,images/grey.png,alice,1,g1,1,a grey square"]
    message = rejected(tmp_path, lines)
    assert "line 10:" in message and "only one candidate" in message


def test_rule_declared_k(tmp_path):
    message = rejected(tmp_path, VALID, k=3)
    assert "lines 8, 9:" in message and "'s2' has 2 candidates, not k=3" in message


def test_rule_ranks_within_one_to_k(tmp_path):
    message = rejected(tmp_path, edit(3, ",3,g1", ",4,g1"))
    assert "line 3:" in message and "outside 1..3" in message


def test_rule_tied_ranks_rejected_by_default(tmp_path):
    message = rejected(tmp_path, edit(3, ",3,g1", ",2,g1"))
    assert "lines 3, 4:" in message and "tied ranks" in message and "ties='average'" in message


def test_tied_ranks_become_average_ranks_on_request(tmp_path):
    path = write_study(tmp_path, edit(3, ",3,g1", ",2,g1"))  # alice: green 1, grey 2, blue 2
    table = from_csv(path, root=STUDY, ties="average").table
    assert table["rank"].tolist()[:3] == [1.0, 2.5, 2.5]
    assert table["rank"].tolist()[3:] == [2.0, 1.0, 3.0, 2.0, 1.0]


def test_rule_images_exist(tmp_path):
    message = rejected(tmp_path, edit(9, "images/green.png", "images/missing.png"))
    assert "line 9:" in message and "'images/missing.png' not found" in message
    message = rejected(tmp_path, VALID, root=tmp_path)  # wrong root: nothing is found
    assert "not found" in message and "root=" in message


def test_rule_images_decode(tmp_path):
    for image in (STUDY / "images").iterdir():
        (tmp_path / "images").mkdir(exist_ok=True)
        (tmp_path / "images" / image.name).write_bytes(image.read_bytes())
    (tmp_path / "images" / "grey.png").write_bytes(b"not a png")
    message = rejected(tmp_path, VALID, root=tmp_path)
    assert "lines 3, 6:" in message and "'images/grey.png' cannot be decoded" in message


def test_unknown_ties_option_is_refused():
    with pytest.raises(ValueError, match="ties must be one of"):
        from_csv(STUDY / "rankings.csv", ties="first")


def test_to_csv_round_trips(tmp_path):
    data = from_csv(STUDY / "rankings.csv")
    written = data.to_csv(tmp_path / "copy" / "rankings.csv")
    assert [p.name for p in written.parent.iterdir()] == ["rankings.csv"]  # no temporary file left
    again = from_csv(written, root=STUDY)
    assert again.table.equals(data.table)


def test_open_image_gives_upright_rgb():
    data = from_csv(STUDY / "rankings.csv")
    grey, green, blue = (data.open_image(f"images/{n}") for n in ("grey.png", "green.png", "blue.jpg"))
    assert isinstance(grey, Image.Image) and {grey.mode, green.mode, blue.mode} == {"RGB"}
    assert grey.getpixel((0, 0)) == (90, 90, 90)
    assert green.getpixel((0, 0)) == (255, 255, 255)  # transparent pixel composited on white
    assert blue.size == (12, 16)  # EXIF orientation 6 applied: the stored 16 x 12 image turns upright


def test_columns_outside_the_schema_are_dropped_with_a_warning(tmp_path):
    lines = [VALID[0] + ",seconds"] + [line + ",12" for line in VALID[1:]]
    with pytest.warns(UserWarning, match=r"ignoring columns not in the schema: \['seconds'\]"):
        table = from_csv(write_study(tmp_path, lines), root=STUDY).table
    assert "seconds" not in table.columns


@pytest.mark.parametrize("ref", ["../secret.png", "/etc/passwd", "C:/x.png", "images\\a.png", "images/../../a.png",
                                 "  "])
def test_a_reference_outside_the_root_is_named(ref):
    """What the table's check refuses per row (test_rule_relative_image_paths), refused for one reference too."""
    from clpips.datasets.validate import normalize_ref, resolve_ref
    for check in (normalize_ref, lambda r: resolve_ref(STUDY, r)):
        with pytest.raises(ValueError, match=f"^{re.escape(repr(ref))} is not a relative path inside the root$"):
            check(ref)
    assert normalize_ref("images/./red.png") == "images/red.png"


def test_checking_images_without_a_root_says_how_to_skip():
    from clpips.datasets import validate
    table = pd.read_csv(STUDY / "rankings.csv")
    with pytest.raises(ValueError, match=r"^root is needed to check images; pass check_images=False to skip$"):
        validate(table)
    assert len(validate(table, check_images=False)) == len(table)
