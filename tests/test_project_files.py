"""The files a reader of a compendium expects agree with pyproject.toml: LICENSE, CITATION.cff, buttons."""
from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def test_license_file_matches_pyproject():
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert meta["license"] == "BSD-3-Clause"            # an SPDX expression (PEP 639), not a table
    assert "LICENSE" in meta.get("license-files", [])
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License") and "Neither the name of the copyright holder" in text


def test_citation_cff_names_the_paper_and_the_datasets():
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert cff["cff-version"] == "1.2.0" and cff["license"] == meta["license"] and cff["version"] == meta["version"]
    assert "2604.01234" in cff["preferred-citation"]["url"]
    refs = {r.get("doi") or r.get("url") or r["title"] for r in cff["references"]}
    assert {"10.1016/j.neuron.2008.10.043", "10.3389/fpsyg.2013.00128",
            "https://arxiv.org/abs/1511.02254"} <= refs
    assert any(r["title"].startswith("Fine-Grained Visual Comparisons") for r in cff["references"])


def test_book_buttons_work_offline():
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    assert config["html"]["use_download_button"] is True
    launch = config.get("launch_buttons", {})
    assert not launch.get("thebe") and not any(launch.get(k) for k in ("binderhub_url", "jupyterhub_url", "colab_url"))


def test_make_lab_shows_every_output_of_every_chapter_cell():
    """Each value a cell glues is one (hidden) output of that cell. Past JupyterLab's limit of outputs (its
    default 50) a cell shows only "Show more outputs", its visible numbers, table or figure included; and at
    0, which its settings call "no limit", JupyterLab 4.6 hides every output (both seen live, chapters 04-08).
    So make lab's limit must be positive and above the most outputs any executed chapter cell has."""
    settings = json.loads((REPO / "lab" / "overrides.json").read_text())
    limit = settings["@jupyterlab/notebook-extension:tracker"]["maxNumberOutputs"]
    executed = sorted((REPO / "out" / "notebooks").glob("[0-9]*.ipynb"))
    if not executed:
        pytest.skip("no executed chapters in out/notebooks (make book writes them)")
    most = max(len(cell.get("outputs", [])) for path in executed for cell in json.loads(path.read_text())["cells"])
    assert isinstance(limit, int) and 0 < limit and most < limit, (limit, most)


def test_make_lab_shows_every_figure_and_table_the_book_pastes():
    """Live, a chapter shows each figure and table under the cell that makes it; in the book it stands where the
    text pastes it (``{glue:figure}``), with its caption and number, and only there. A value glued with
    ``display=False`` is invisible in JupyterLab (its output's type is ``application/papermill.record/...``,
    for which JupyterLab has no renderer), so the cell that glues a pasted figure or table also shows it as a
    plain output, and is tagged ``remove-output`` so that the book does not show it twice."""
    executed = sorted((REPO / "out" / "notebooks").glob("[0-9]*.ipynb"))
    if not executed:
        pytest.skip("no executed chapters in out/notebooks (make book writes them)")
    problems, pasted = [], 0
    for path in executed:
        placed = set(re.findall(r"\{glue:figure\}\s+(\S+)", (REPO / "notebooks" / f"{path.stem}.py").read_text()))
        for number, cell in enumerate(json.loads(path.read_text())["cells"]):
            glued, shown = [], []
            for output in cell.get("outputs", []):
                name = output.get("metadata", {}).get("scrapbook", {}).get("name")
                data = output.get("data", {})
                if name in placed:
                    glued.append((name, "image/png" if "application/papermill.record/image/png" in data
                                  else "text/html"))
                else:
                    shown += [kind for kind in data if kind in ("image/png", "text/html")]
            for name, kind in glued:
                where = f"{path.stem} cell {number} ({name})"
                if shown.count(kind) < sum(k == kind for _, k in glued):
                    problems.append(f"{where}: not shown live (no plain {kind} output)")
                if "remove-output" not in cell["metadata"].get("tags", []):
                    problems.append(f"{where}: shown twice in the book (the cell is not tagged remove-output)")
            pasted += len(glued)
    assert pasted >= 40 and not problems, (pasted, problems)
