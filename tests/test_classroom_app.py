"""The class app over HTTP (no browser): join, rank, scores, class code, names, idempotence, studies;
the teacher's page (its code, the roster, the class's agreement against references computed here), names
in any case, and the feedback in plain words.

The study is tiny and its pair features random (no backbone); the server binds 127.0.0.1 on a
free port, stops by itself after a minute at most, and is always shut down.
"""
from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
import warnings
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

from clpips.evaluate import ranking_ids
from test_classroom_save import make_study
from tolerance import assert_order_kept, dot_bound, icc_ak_bound, icc_bound, mean_bound, spearman_bound

DIM = sum(CHANNELS["alex"])

#: the page shows every number rounded to 4 decimals (classroom._number): within half a unit of the 4th
SHOWN = 0.5e-4


def lpips_bounds(features: PairFeatures, rows: pd.DataFrame) -> tuple[float, float, np.ndarray]:
    """LPIPS's distances of ``rows`` in float64 (exact to float64's rounding), checked to lie further apart
    within each ranking than two float32 evaluations' rounding (dot_bound: the server's product and any
    other order rank them alike), and how far two programs' ICC(A,k) and rho of those ranks may then lie
    apart (float64 bounds, tests/tolerance.py)."""
    phi = features.matrix[features.rows(rows["target"], rows["candidate"])].double()
    w = initial_weight_vector("alex", "lpips").double()
    exact = (phi @ w).numpy()
    slack = dot_bound((phi.abs() @ w.abs()).numpy(), DIM, torch.float32, computations=1) \
        + dot_bound((phi.abs() @ w.abs()).numpy(), DIM, torch.float64, computations=1)
    ids = ranking_ids(rows).to_numpy()
    assert_order_kept(exact, slack, ids, "LPIPS on the class's rows")
    metric = pd.Series(exact).groupby(ids).rank(method="average").to_numpy()
    return icc_ak_bound(rows["rank"], metric), spearman_bound(rows["rank"], metric), exact


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


@pytest.mark.float_sensitive
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
        classroom.background.settle()       # the scores and the refit follow the answer, on the background thread
    status, state = post(server, "/api/state", {"name": "Ana", "code": "OWL42", "token": token})
    assert status == 200 and state["feedback_ready"] and state["personal"] == {"fitted_on": 3, "refitting": False}
    assert set(state["scores"]) == {"LPIPS", "personal CLPIPS"} and "<table" in state["scores_html"]
    # the LPIPS scores shown are those of the rows in the CSV
    table = pd.read_csv(classroom.csv_path, dtype={"set_id": str})
    assert len(table) == 3 * 4 and set(table["rater"]) == {"Ana"}
    expected = heldout_scores(table, classroom.features, {"LPIPS": initial_weight_vector("alex", "lpips")})
    icc_tol, rho_tol, _ = lpips_bounds(classroom.features, table)     # the server scored its own copy of the rows
    assert state["scores"]["LPIPS"]["rho"] == pytest.approx(expected.at["LPIPS", "spearman"], abs=SHOWN + rho_tol)
    assert state["scores"]["LPIPS"]["icc"] == pytest.approx(expected.at["LPIPS", "icc_A_k"], abs=SHOWN + icc_tol)
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
    from clpips.book.defaults import DEFAULTS
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


# --------------------------------------------------------------------------- the teacher's page
def teacher(server, path: str = "/api/teacher", code: str | None = None) -> tuple[int, bytes, dict]:
    request = urllib.request.Request(server.url.rstrip("/") + path,
                                     headers={"X-Teacher-Code": code} if code is not None else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read(), dict(err.headers)


def rank_sets(server, name: str, n: int, reverse: bool = False, shift: int = 0) -> dict:
    """``name`` joins and saves ``n`` sets (candidates in shown order, or reversed, the first ``shift``
    moved to the end); the last state."""
    _, state = post(server, "/api/join", {"name": name, "code": "OWL42"})
    token = state["token"]
    for _ in range(n):
        shown = [c["ref"] for c in state["set"]["candidates"]]
        shown = shown[shift:] + shown[:shift]
        status, state = post(server, "/api/submit", {"name": name, "code": "OWL42", "token": token,
                                                     "set_id": state["set"]["set_id"],
                                                     "order": shown[::-1] if reverse else shown})
        assert status == 200 and state["saved"] is True
    return {**state, "token": token}


def test_the_teachers_page_needs_the_teacher_code(room):
    classroom, server = room
    classroom.throttle = cr.Throttle(tries=100, window=60)   # ten wrong codes below: none refused for their number
    assert classroom.teacher_code != classroom.code and len(classroom.teacher_code) >= 8
    status, page, _ = teacher(server, "/teacher")          # the page itself holds no data: it asks with the code
    assert status == 200 and b"teacher-code" in page and b"http://" not in page and b"OWL42" not in page
    rank_sets(server, "Ana", 1)
    for code in (None, "", "OWL42", "owl42", classroom.teacher_code[:-1]):     # the class code is not enough
        for path in ("/api/teacher", "/api/teacher/class.csv"):
            status, body, _ = teacher(server, path, code)
            assert status == 403 and "teacher code" in json.loads(body)["error"], (path, code)
    status, body, _ = teacher(server, code=classroom.teacher_code.lower())
    assert status == 200 and [s["name"] for s in json.loads(body)["students"]] == ["Ana"]
    status, body, headers = teacher(server, "/api/teacher/class.csv", classroom.teacher_code)
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    assert 'filename="class.csv"' in headers["Content-Disposition"]
    assert body == classroom.csv_path.read_bytes()          # the class CSV as saved


@pytest.mark.float_sensitive
def test_the_teacher_sees_who_joined_and_the_class_agreeing(room):
    """Ana ranks 3 sets, Ben 2 (in another order), Cleo joins and ranks none: the roster, and the agreement
    against references computed here (scipy, pingouin, and LPIPS's distances ranked by hand)."""
    import pingouin
    from scipy import stats
    classroom, server = room
    rank_sets(server, "Ana", 3)
    rank_sets(server, "Ben", 2, shift=1)
    post(server, "/api/join", {"name": "Cleo", "code": "OWL42"})
    classroom.background.settle()
    status, body, _ = teacher(server, code=classroom.teacher_code)
    state = json.loads(body)
    assert [(s["name"], s["done"]) for s in state["students"]] == [("Ana", 3), ("Ben", 2), ("Cleo", 0)]
    assert state["total"] == 4 and state["rankings"] == 5 and state["up_to_date"] and state["lan"] is False
    table = pd.read_csv(classroom.csv_path, dtype={"set_id": str})
    shared = sorted(set(table[table.rater == "Ana"].set_id) & set(table[table.rater == "Ben"].set_id))
    rhos, a1, ak, bounds = [], [], [], []
    for set_id in shared:
        wide = table[table.set_id == set_id].pivot(index="candidate", columns="rater", values="rank")
        rhos.append(stats.spearmanr(wide["Ana"], wide["Ben"]).statistic)
        icc_tol = icc_bound(wide[["Ana", "Ben"]].to_numpy(float))
        bounds.append((spearman_bound(wide["Ana"], wide["Ben"]), icc_tol["ICC(A,1)"]["ICC"],
                       icc_tol["ICC(A,k)"]["ICC"]))
        long = wide.reset_index().melt(id_vars="candidate", var_name="rater", value_name="rank")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")          # pingouin's own (a pandas deprecation)
            icc = pingouin.intraclass_corr(long, targets="candidate", raters="rater", ratings="rank")
        a1.append(icc.set_index("Type").at["ICC(A,1)", "ICC"])
        ak.append(icc.set_index("Type").at["ICC(A,k)", "ICC"])
    agreement = state["agreement"]
    assert agreement["n_sets"] == len(shared) == 2 and agreement["n_pairs"] == 1
    # shown to 4 decimals; each set's statistic within its float64 bound, then a mean over the sets
    rho_tol, a1_tol, ak_tol = np.mean(bounds, axis=0)
    assert agreement["pair_rho"] == pytest.approx(np.mean(rhos), abs=SHOWN + rho_tol + mean_bound(rhos))
    assert agreement["icc_a1"] == pytest.approx(np.mean(a1), abs=SHOWN + a1_tol + mean_bound(a1))
    assert agreement["icc_ak"] == pytest.approx(np.mean(ak), abs=SHOWN + ak_tol + mean_bound(ak))
    lpips = initial_weight_vector("alex", "lpips").numpy().astype(float)
    mine, tols = {}, {}
    for rater, part in table.groupby("rater"):
        rows = classroom.features.rows(part["target"], part["candidate"]).numpy()
        dist = classroom.features.matrix.numpy().astype(float)[rows] @ lpips
        ranked = part.assign(d=dist).groupby("set_id")["d"].rank()          # LPIPS's order within each ranking
        mine[rater] = stats.spearmanr(part["rank"], ranked).statistic
        tols[rater] = lpips_bounds(classroom.features, part)[1]           # the server's float32 order: same ranks
    # shown to 4 decimals; each student's rho within its float64 bound, then a mean over the students
    assert state["lpips"]["n"] == 2 and state["lpips"]["rho"] == pytest.approx(
        np.mean(list(mine.values())), abs=SHOWN + np.mean(list(tols.values())) + mean_bound(list(mine.values())))
    assert [s["lpips_rho"] for s in state["students"][:2]] == pytest.approx(
        [mine["Ana"], mine["Ben"]], abs=SHOWN + max(tols.values()))
    words = " ".join(line["text"] for line in state["lines"])
    assert "ICC(A,1) = " in words and "Koo & Li" in words and state["meaning"] == [cr.RHO_MEANING, cr.ICC_MEANING]


def test_names_are_one_student_in_any_case(room):
    """"ana" is the "Ana" who came first: the same student, shown as first typed, also after her name was
    freed and taken again from another browser in another case."""
    classroom, server = room
    ana = rank_sets(server, "Ana", 1)
    status, body = post(server, "/api/join", {"name": " ANA ", "code": "OWL42", "token": ana["token"]})
    assert status == 200 and body["rater"] == "Ana" and body["done"] == 1
    cr.free_name(classroom.csv_path, "ana")
    again = rank_sets(server, "aNa", 1)                      # a new browser: a new token, the same student
    assert again["rater"] == "Ana" and again["done"] == 2
    assert set(pd.read_csv(classroom.csv_path)["rater"]) == {"Ana"}
    status, body, _ = teacher(server, code=classroom.teacher_code)
    assert [(s["name"], s["done"]) for s in json.loads(body)["students"]] == [("Ana", 2)]


def test_the_feedback_is_in_plain_words(room):
    classroom, server = room
    rank_sets(server, "Ben", 1, reverse=True)
    ana = rank_sets(server, "Ana", 1)
    classroom.background.settle()
    status, state = post(server, "/api/state", {"name": "Ana", "code": "OWL42", "token": ana["token"]})
    assert status == 200 and state["feedback_ready"]
    lines = {line["label"]: line for line in state["feedback"]}
    assert set(lines) == {"This set and LPIPS", "This set and the class", "All your 1 ranking and LPIPS"}
    # Ben ranked the same set in the opposite order: against the class, Ana's order is reversed
    # integer ranks: every sum exact, -S_xx / sqrt(S_xx^2) = -1 exactly, and -1.0 rounds to itself
    assert lines["This set and the class"]["rho"] == -1.0
    assert "the other student's order: nearly opposite orders (rho = -1.00)" in lines["This set and the class"]["text"]
    assert state["meaning"] == [cr.RHO_MEANING, cr.ICC_MEANING]
    assert "-1 (opposite orders)" in cr.RHO_MEANING and "+1 (the same order)" in cr.RHO_MEANING
    assert "below 0" in cr.ICC_MEANING and "excellent" in cr.ICC_MEANING
    for line in state["feedback"]:                          # no ICC without its label on Koo & Li's scale
        assert "ICC" not in line["text"] or "Koo & Li" in line["text"] or "not defined" in line["text"]


def test_words_for_the_values_a_student_sees():
    assert [cr.rho_words(v) for v in (1.0, 0.8, 0.6, 0.2, 0.0, -0.3, -1.0)] == [
        "almost the same order", "almost the same order", "a similar order", "a somewhat similar order",
        "no clear relation", "somewhat opposite orders", "nearly opposite orders"]
    assert cr.icc_words(-1.35) == "-1.35, poor on Koo & Li's scale"       # the example, with its meaning
    assert cr.icc_words(0.9) == "0.90, good on Koo & Li's scale"
    assert cr.icc_words(0.91) == "0.91, excellent on Koo & Li's scale"
    assert cr.icc_words(float("nan")).startswith("not defined") and cr.rho_words(float("nan")).startswith("not defined")


def test_the_target_stays_in_view_on_a_phone():
    """The page's own rules: the target is sticky at the top, and under 600 px the candidates wrap in two
    columns beneath it (the browser test shows it in a phone-sized window)."""
    page = cr.PAGE
    target = page.split("#target {", 1)[1].split("}", 1)[0]
    assert "position: sticky" in target and "top: 0" in target
    phone = page.split("@media (max-width: 600px)", 1)[1]
    assert "flex-direction: column" in phone.split("#stage {", 1)[1].split("}", 1)[0]
    assert "repeat(2," in phone.split("#grid {", 1)[1].split("}", 1)[0]
    assert 'name="viewport" content="width=device-width' in page


# --------------------------------------------------------------------------- a class folder that stands alone
def photo_study(folder: Path, n: int = 8) -> Path:
    """A folder study of ``n`` random 64x64 PNGs (large enough for AlexNet's features)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(folder / f"p{i}.png")
    return folder


def test_the_class_folder_stands_alone(tmp_path: Path):
    """open_classroom copies the images of the class's sets beside the CSV; the folder, moved to another place
    with the study gone (another computer), still reads back with every image, and `clpips fit` fits on it
    from a third folder. A folder without the images falls back to the study's recorded root; an image of
    another study in the way is refused by name."""
    import shutil
    from clpips import datasets
    pics = photo_study(tmp_path / "pics")
    room = cr.open_classroom(str(pics), tmp_path / "lesson" / "class.csv", code="OWL42", n_sets=6, k=3,
                             device="cpu")
    try:
        beside = sorted(p.name for p in (tmp_path / "lesson").glob("*.png"))
        assert beside == room.refs and len(beside) > room.dataset.k
        for ref in room.refs:                                    # byte for byte the study's
            assert (tmp_path / "lesson" / ref).read_bytes() == (pics / ref).read_bytes()
        for name, shift in (("Ana", 0), ("Ben", 1)):
            state = room.join(name, "OWL42", client="127.0.0.1")
            token = state["token"]
            while state["set"]:
                shown = [c["ref"] for c in state["set"]["candidates"]]
                state = room.submit(name, "OWL42", state["set"]["set_id"], shown[shift:] + shown[:shift],
                                    token=token, client="127.0.0.1")
            assert state["done"] == 6
    finally:
        room.close()
    # a copy of the CSV and its sidecar without the images: the study's recorded root
    (tmp_path / "bare").mkdir()
    for name in ("class.csv", "class.json"):
        shutil.copy(tmp_path / "lesson" / name, tmp_path / "bare" / name)
    bare, _ = cr.read_class(tmp_path / "bare" / "class.csv")
    assert Path(bare.root) == pics.resolve() and all(bare.image_path(r).is_file() for r in bare.images())
    # the class folder on another computer: the study gone, the images beside the CSV found
    moved = tmp_path / "elsewhere" / "moved"
    moved.parent.mkdir()
    shutil.move(tmp_path / "lesson", moved)
    shutil.rmtree(pics)
    klass, record = cr.read_class(moved / "class.csv")
    assert Path(klass.root) == moved and record["sets"] == room.sets and len(klass.table) == 2 * 6 * 3
    loaded = datasets.from_csv(moved / "class.csv")             # every image checked: it exists and decodes
    assert set(loaded.images()) == set(room.refs) and loaded.open_image(room.refs[0]).size == (64, 64)
    work = tmp_path / "another"
    work.mkdir()
    fit = subprocess.run([sys.executable, "-m", "clpips", "fit", "--dataset", str(moved / "class.csv"),
                          "--out", "run", "--quiet", "--epochs", "3", "--n-boot", "20", "--device", "cpu"],
                         cwd=work, capture_output=True, text=True, timeout=300)
    assert fit.returncode == 0, fit.stderr
    assert json.loads((work / "run" / "weights.json").read_text()) and (work / "run" / "metrics.json").is_file()
    # an image of another study where the class's would go: refused by name, nothing overwritten
    clash = tmp_path / "clash"
    clash.mkdir()
    other = photo_study(tmp_path / "pics2")
    for ref in ("p0.png", "p1.png", "p2.png", "p3.png"):
        (clash / ref).write_bytes(b"another study's image")
    with pytest.raises(cr.ClassroomError, match=r"--out .*class\.csv: cannot copy the class's images beside it: "
                                                r".*already exists with other content"):
        cr.open_classroom(str(other), clash / "class.csv", code="OWL42", n_sets=6, k=3, device="cpu")
    assert (clash / "p0.png").read_bytes() == b"another study's image"
    assert sorted(p.name for p in clash.glob("*.png")) == ["p0.png", "p1.png", "p2.png", "p3.png"]
