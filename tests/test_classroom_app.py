"""The class app over HTTP (no browser): join, rank, scores, class code, names, idempotence, studies.

The study is tiny and its pair features random (no backbone); the server binds 127.0.0.1 on a
free port, stops by itself after a minute at most, and is always shut down.
"""
from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from clpips.apps import classroom as cr
from clpips.evaluate import heldout_scores
from clpips.features import PairFeatures
from clpips.model import CHANNELS, initial_weight_vector

from test_classroom_save import make_study

DIM = sum(CHANNELS["alex"])


def random_features(data) -> PairFeatures:
    keys = list(dict.fromkeys(zip(data.table["target"], data.table["candidate"])))
    return PairFeatures(keys=keys, matrix=torch.rand(len(keys), DIM, generator=torch.Generator().manual_seed(0)),
                        net="alex", extracted=0)


@pytest.fixture()
def room(tmp_path: Path):
    data = make_study(tmp_path / "study", n_sets=6, k=4)
    sets = cr.class_sets(data, 4, seed=0)
    csv = tmp_path / "class" / "class.csv"
    cr.write_sidecar(csv, study=str(tmp_path / "study"), dataset=data, sets=sets, k=4, seed=0, candidates="random")
    classroom = cr.Classroom(data, csv, sets, "OWL42", features=random_features(data))
    with cr.ClassroomServer(classroom, "127.0.0.1", 0, stop_after=60) as server:
        yield classroom, server


def post(server, path: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(server.url.rstrip("/") + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


def test_page_and_images_are_served_locally(room):
    classroom, server = room
    page = urllib.request.urlopen(server.url, timeout=10).read().decode()
    assert "<script" in page and "src=" not in page.split("<script", 1)[1].split(">", 1)[0]
    assert "http://" not in page and "https://" not in page            # nothing from another host
    png = urllib.request.urlopen(server.url + "image/0.png", timeout=10).read()
    assert png.startswith(b"\x89PNG")
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(server.url + f"image/{len(classroom.refs)}.png", timeout=10)
    assert server.host == "127.0.0.1"


def test_code_and_names_are_checked(room):
    _, server = room
    status, body = post(server, "/api/join", {"name": "Ana", "code": "nope"})
    assert status == 403 and "class code" in body["error"]
    status, body = post(server, "/api/join", {"name": "   ", "code": "OWL42"})
    assert status == 400 and "name" in body["error"] and "\n" not in body["error"]
    status, body = post(server, "/api/join", {"name": " Ana\u0301  B ", "code": "owl42"})   # code: any case
    assert status == 200 and body["rater"] == "An\u00e1 B" and body["done"] == 0 and body["total"] == 4


def test_rank_submit_scores_and_idempotence(room):
    classroom, server = room
    _, state = post(server, "/api/join", {"name": "Ana", "code": "OWL42"})
    token = state["token"]
    for n in range(3):
        s = state["set"]
        order = [c["ref"] for c in reversed(s["candidates"])]
        status, state = post(server, "/api/submit", {"name": "Ana", "code": "OWL42", "set_id": s["set_id"],
                                                     "order": order, "token": token})
        assert status == 200 and state["saved"] is True and state["done"] == n + 1
    assert set(state["scores"]) == {"LPIPS", "personal CLPIPS"} and "<table" in state["scores_html"]
    # the LPIPS scores shown are those of the rows in the CSV
    table = pd.read_csv(classroom.csv_path, dtype={"set_id": str})
    assert len(table) == 3 * 4 and set(table["rater"]) == {"Ana"}
    expected = heldout_scores(table, classroom.features, {"LPIPS": initial_weight_vector("alex", "lpips")})
    assert state["scores"]["LPIPS"]["rho"] == pytest.approx(expected.at["LPIPS", "spearman"], abs=1e-4)
    assert state["scores"]["LPIPS"]["icc"] == pytest.approx(expected.at["LPIPS", "icc_A_k"], abs=1e-4)
    # a double submit of the last set writes nothing
    status, again = post(server, "/api/submit", {"name": "Ana", "code": "OWL42", "set_id": s["set_id"],
                                                 "order": order, "token": token})
    assert status == 200 and again["saved"] is False and again["done"] == 3
    assert len(pd.read_csv(classroom.csv_path)) == 3 * 4
    # an incomplete ranking is refused
    s = state["set"]
    status, body = post(server, "/api/submit", {"name": "Ana", "code": "OWL42", "set_id": s["set_id"],
                                                "order": [s["candidates"][0]["ref"]], "token": token})
    assert status == 400 and "exactly once" in body["error"]
    # a restarted server (a new Classroom) resumes Ana where she stopped, and still knows her token
    fresh = cr.Classroom(classroom.dataset, classroom.csv_path, classroom.sets, "OWL42", features=classroom.features)
    assert fresh.join("Ana", "OWL42", token=token)["done"] == 3
    with pytest.raises(cr.NameTakenError):
        fresh.join("ana", "OWL42")


def test_folder_study_and_sidecar(tmp_path: Path):
    folder = tmp_path / "pics"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.jpg", "sub/c.png", "sub/d.png", "e.bmp"):
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(folder / name)
    (folder / "notes.txt").write_text("not an image")
    data = cr.load_study(str(folder), k=3, seed=1)
    assert data.table["set_id"].nunique() == 5 and data.k == 3
    assert set(data.table["target"]) == {"a.png", "b.jpg", "sub/c.png", "sub/d.png", "e.bmp"}
    assert (data.table["target"] != data.table["candidate"]).all()
    sets = cr.class_sets(data, 3, seed=1)
    csv = tmp_path / "class.csv"
    cr.write_sidecar(csv, study=str(folder), dataset=data, sets=sets, k=3, seed=1, candidates="random")
    record = json.loads((tmp_path / "class.json").read_text())
    assert record["sets"] == sets and Path(record["root"]) == folder.resolve()
    csv.write_text("set_id,target,candidate,rater,rank\n")
    with pytest.raises(cr.ClassroomError, match="another study"):
        cr.write_sidecar(csv, study=str(folder), dataset=data, sets=sets[:2], k=3, seed=1, candidates="random")
    with pytest.raises(cr.ClassroomError, match="at least 3 images"):
        cr.folder_study(folder / "sub")


def test_cli_classroom_help_and_errors():
    from clpips.apps.cli import build_parser
    from clpips.defaults import DEFAULTS
    out = subprocess.run([sys.executable, "-m", "clpips", "classroom", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "examples:" in out.stdout and "clpips classroom --study mur92" in out.stdout
    top = subprocess.run([sys.executable, "-m", "clpips", "--help"], capture_output=True, text=True).stdout
    assert "clpips classroom" in top
    sub = build_parser()._subparsers._group_actions[0].choices["classroom"]
    values = {a.dest: a.default for a in sub._actions}
    assert values["host"] == DEFAULTS.classroom_host == "127.0.0.1"
    assert (values["port"], values["out"], values["sets"], values["k"]) == (
        DEFAULTS.classroom_port, DEFAULTS.classroom_out, DEFAULTS.classroom_sets, DEFAULTS.classroom_k)
    bad = subprocess.run([sys.executable, "-m", "clpips", "classroom", "--study", "no/such/thing.csv"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "no such CSV" in bad.stderr
