"""The class server against a hostile network, one ``--out`` per class, and its options checked at start;
the teacher's code (throttled as the class code is), and the LAN address with a QR code that reads back
(a QR reader written here from the standard).

Every bad input is built by hand: raw requests over sockets to 127.0.0.1 (a free port; every
socket has a timeout and every loop a bound, so no test can hang), names and studies a student
or a teacher could type. The study is tiny and its pair features random (no backbone).
"""
from __future__ import annotations

import http.client
import json
import os
import select
import socket
import struct
import subprocess
import sys
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import segno
import torch
from PIL import Image

from clpips.apps import classroom as cr
from clpips.apps.cli import main as cli_main
from clpips.datasets import RankingDataset
from clpips.datasets.schema import spreadsheet_safe
from clpips.apps.widget import RankingSession, RaterNameError, normalise_rater, scores_html

from test_classroom_app import random_features
from test_classroom_save import make_study

HYPERLINK = '=HYPERLINK("http://evil.example","click")'


def serve(tmp_path: Path, limits: cr.Limits = cr.Limits()) -> cr.ClassroomServer:
    data = make_study(tmp_path / "study", n_sets=6, k=4)
    sets = cr.class_sets(data, 4, seed=0)
    room = cr.Classroom(data, tmp_path / "class" / "class.csv", sets, "OWL42", features=random_features(data),
                        limits=limits)
    return cr.ClassroomServer(room, "127.0.0.1", 0, stop_after=60).start()


@pytest.fixture()
def server(tmp_path: Path):
    server = serve(tmp_path, cr.Limits(max_clients=2, queue_wait=0.3, timeout=1.0, code_tries=3, code_window=60))
    yield server
    server.shutdown()


def read_reply(sock: socket.socket, within: float = 5.0) -> tuple[int, dict, bytes]:
    """Status, headers and body of the answer on ``sock`` (the server closes after each request)."""
    sock.settimeout(within)
    data = b""
    for _ in range(1000):                     # bounded: each recv waits at most `within` seconds
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), headers, body


def raw(server, request: bytes, within: float = 5.0) -> tuple[int, dict, bytes]:
    with socket.create_connection(("127.0.0.1", server.port), timeout=within) as sock:
        sock.sendall(request)
        return read_reply(sock, within)


def post_head(length: str | None, path: str = "/api/join", extra: str = "") -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode()


def api(server, path: str, body: dict, source: str | None = None) -> tuple[int, dict, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10,
                                      source_address=(source, 0) if source else None)
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), json.loads(response.read() or b"{}")
    finally:
        conn.close()


# --------------------------------------------------------------------------- requests
@pytest.mark.parametrize("length, status", [("-1", 400), ("abc", 400), ("1e3", 400), ("+5", 400), (None, 411),
                                            (str(cr.MAX_BODY + 1), 413)])
def test_a_bad_content_length_is_refused_before_anything_is_read(server, length, status):
    got, _, body = raw(server, post_head(length))        # no body follows: reading one would end in a 408
    assert got == status and "\n" not in json.loads(body)["error"]


def test_two_lengths_or_a_chunked_body_are_refused(server):
    assert raw(server, post_head("5", extra="Content-Length: 7\r\n"))[0] == 400
    assert raw(server, post_head(None, extra="Transfer-Encoding: chunked\r\n") + b"2\r\n{}\r\n0\r\n\r\n")[0] == 411


def test_a_nested_or_broken_body_is_a_400_not_a_500(server):
    for body in (b"[" * 60000, b"\xff\xfe{", b'["a list"]'):
        assert raw(server, post_head(str(len(body))) + body)[0] == 400


def test_a_stalled_upload_frees_its_thread_and_the_threads_are_bounded(server):
    stalled = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(2)]
    try:
        for sock in stalled:                              # 10 of the 100 bytes promised, then nothing
            sock.sendall(post_head("100") + b'{"name": ')
        time.sleep(0.2)
        status, headers, _ = raw(server, b"GET / HTTP/1.0\r\n\r\n")   # both threads are taken
        assert status == 503 and headers.get("Retry-After") == "2"
        answers = [read_reply(sock)[0] for sock in stalled]
        assert answers == [408, 408]
    finally:
        for sock in stalled:
            sock.close()
    assert raw(server, b"GET / HTTP/1.0\r\n\r\n")[0] == 200      # the threads are free again
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"POST /api/join HTTP/1.1\r\nHost: 127.0.0.1\r\n")   # headers never finished
        assert sock.recv(100) == b""                      # closed after the read timeout, within 5 s


def test_a_trickled_upload_meets_one_deadline_for_the_whole_body(server):
    """A byte every 0.2 s: no single read waits long, but the 40 bytes would take 8 s (timeout: 1 s)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(post_head("40"))
        for sent in range(40):
            if select.select([sock], [], [], 0.2)[0]:     # the server answered: stop sending
                break
            sock.sendall(b" ")
        status = read_reply(sock)[0]
    assert status == 408 and sent < 39                    # refused mid-body, not answered after it


# --------------------------------------------------------------------------- the class code
def test_wrong_codes_are_limited_per_client_address(server):
    for _ in range(3):
        assert api(server, "/api/join", {"name": "Ana", "code": "WRONG"})[0] == 403
    status, headers, body = api(server, "/api/join", {"name": "Ana", "code": "OWL42"})   # even the right one
    assert status == 429 and 1 <= int(headers["Retry-After"]) <= 60 and "try again" in body["error"]
    try:
        other = api(server, "/api/join", {"name": "Ben", "code": "OWL42"}, source="127.0.0.2")
    except OSError:
        pytest.skip("this system cannot send from 127.0.0.2")
    assert other[0] == 200 and other[2]["rater"] == "Ben"


def test_the_throttle_forgets_tries_that_aged_out():
    now = [0.0]
    throttle = cr.Throttle(2, 10.0, clock=lambda: now[0])
    throttle.attempt("a", right=False)
    throttle.attempt("a", right=True)                     # a right code is not counted against anyone
    now[0] = 4.0
    throttle.attempt("a", right=False)
    with pytest.raises(cr.TooManyTries) as err:
        throttle.attempt("a", right=True)
    assert err.value.retry_after == 6                     # the first wrong try leaves the window at t = 10
    throttle.attempt("b", right=False)                    # another address has its own count
    now[0] = 10.5
    throttle.attempt("a", right=False)                    # one place free in the window: taken
    with pytest.raises(cr.TooManyTries):
        throttle.attempt("a", right=True)


def test_parallel_wrong_codes_are_counted_too(tmp_path: Path):
    """Guesses sent at once do not slip past the limit between its check and its count."""
    server = serve(tmp_path, cr.Limits(max_clients=16, code_tries=3))
    try:
        with ThreadPoolExecutor(12) as pool:
            statuses = list(pool.map(lambda i: api(server, "/api/join", {"name": "Ana", "code": f"NO{i}"})[0],
                                     range(12)))
    finally:
        server.shutdown()
    assert sorted(statuses) == [403] * 3 + [429] * 9


# --------------------------------------------------------------------------- names and tokens
def test_a_name_belongs_to_the_browser_that_took_it(server):
    status, _, ana = api(server, "/api/join", {"name": "Ana", "code": "OWL42"})
    assert status == 200 and len(ana["token"]) >= 20
    for intruder in ({"name": "Ana"}, {"name": " ANA ", "token": "guess"}, {"name": "ana", "token": None}):
        status, _, body = api(server, "/api/join", {**intruder, "code": "OWL42"})
        assert status == 409 and "taken" in body["error"] and "\n" not in body["error"] and "scores" not in body
    status, _, again = api(server, "/api/join", {"name": "ana", "code": "OWL42", "token": ana["token"]})
    assert status == 200 and again["rater"] == "Ana"
    _, _, ben = api(server, "/api/join", {"name": "Ben", "code": "OWL42"})
    first = ana["set"]
    order = [c["ref"] for c in first["candidates"]]
    for token in (None, ben["token"], "x" * 32):        # saving as Ana needs Ana's token
        status, _, body = api(server, "/api/submit", {"name": "Ana", "code": "OWL42", "token": token,
                                                      "set_id": first["set_id"], "order": order})
        assert status == 403
    assert not server.classroom.csv_path.exists()
    names = json.loads(cr.names_path(server.classroom.csv_path).read_text())
    assert set(names) == {"ana", "ben"} and ana["token"] not in json.dumps(names)   # only digests are kept


def test_the_teacher_frees_a_name_from_the_command_line(server, capsys):
    csv = server.classroom.csv_path
    _, _, old = api(server, "/api/join", {"name": "Ana", "code": "OWL42"})
    assert cli_main(["classroom", "--out", str(csv), "--free", " ana "]) == 0
    assert "freed the name 'Ana'" in capsys.readouterr().out
    status, _, new = api(server, "/api/join", {"name": "Ana", "code": "OWL42"})     # the server runs on
    assert status == 200 and new["token"] != old["token"]
    first = old["set"]
    status, _, _ = api(server, "/api/submit", {"name": "Ana", "code": "OWL42", "token": old["token"],
                                              "set_id": first["set_id"],
                                              "order": [c["ref"] for c in first["candidates"]]})
    assert status == 403                                  # the old browser no longer holds the name
    assert cli_main(["classroom", "--out", str(csv), "--free", "Zoe"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no student holds the name 'Zoe'" in err


@pytest.mark.parametrize("name", [None, 42, ["Ana"], {"first": "Ana"}, "", "   ", HYPERLINK, "+1 555", "@me", "-x"])
def test_a_name_must_be_text_that_is_no_formula(server, name):
    body = {"code": "OWL42"} if name is None else {"name": name, "code": "OWL42"}
    status, _, answer = api(server, "/api/join", body)
    assert status == 400 and "name" in answer["error"] and "\n" not in answer["error"]
    assert not cr.names_path(server.classroom.csv_path).exists()


def test_names_are_normalised():
    assert normalise_rater("  Ana \u00a0 Lima\t") == "Ana Lima"
    assert normalise_rater("Jose\u0301") == "Jos\u00e9"
    for bad in (None, 3, b"Ana", HYPERLINK):
        with pytest.raises(RaterNameError):
            normalise_rater(bad)


def test_a_set_saved_elsewhere_moves_the_student_on(server):
    """What another tab (or, before the lock, another server) saved is taken as saved: no 'call resume()'."""
    room = server.classroom
    _, _, ana = api(server, "/api/join", {"name": "Ana", "code": "OWL42"})
    first = ana["set"]
    elsewhere = RankingSession(room.dataset, room.csv_path, "Ana", sets=[first["set_id"]], features=room.features)
    for candidate in elsewhere.candidates()[:-1]:       # the last is ranked automatically
        elsewhere.click(candidate)
    elsewhere.save()
    mine = [c["ref"] for c in reversed(first["candidates"])]   # not the order saved elsewhere
    status, _, state = api(server, "/api/submit", {"name": "Ana", "code": "OWL42", "token": ana["token"],
                                                   "set_id": first["set_id"], "order": mine})
    assert status == 200 and state["saved"] is False and state["done"] == 1
    assert state["set"]["set_id"] != first["set_id"]
    assert len(pd.read_csv(room.csv_path)) == 4


# --------------------------------------------------------------------------- spreadsheets and HTML
def test_spreadsheet_safe_neutralises_formulas_only():
    frame = pd.DataFrame({"rater": [HYPERLINK, "+cmd|' /C calc'!A0", "@SUM(A1)", "-2+3", "\tx", "\rx", "Ana",
                                    "-1.5", "+7", "'=already"],
                          "rank": [1, -2, 3, 4, 5, 6, 7, 8, 9, 10]})
    safe = spreadsheet_safe(frame)
    assert list(safe["rater"]) == ["'" + HYPERLINK, "'+cmd|' /C calc'!A0", "'@SUM(A1)", "'-2+3", "'\tx", "'\rx",
                                   "Ana", "-1.5", "+7", "'=already"]
    assert list(safe["rank"]) == [1, -2, 3, 4, 5, 6, 7, 8, 9, 10]          # numbers stay numbers
    pd.testing.assert_frame_equal(spreadsheet_safe(safe), safe)            # idempotent
    assert list(frame["rater"])[0] == HYPERLINK                            # the input is not changed


def formula_cells(path: Path) -> list[str]:
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    return [v for v in table.to_numpy().ravel() if v[:1] in ("=", "+", "-", "@", "\t", "\r")]


def test_every_csv_written_is_safe_to_open_in_a_spreadsheet(tmp_path: Path):
    data = make_study(tmp_path / "study", n_sets=2, k=3)
    csv = tmp_path / "class.csv"
    earlier = data.table[data.table["set_id"] == "set00"].assign(rater=HYPERLINK, group="@evil")
    earlier.to_csv(csv, index=False)                     # rows another program wrote, formulas and all
    session = RankingSession(data, csv, "Ana", sets=["set01"], features=random_features(data))
    for candidate in session.candidates()[:-1]:         # the last is ranked automatically
        session.click(candidate)
    session.save()                                       # the class CSV is rewritten whole
    assert formula_cells(csv) == []
    assert set(pd.read_csv(csv, dtype=str)["rater"]) == {"'" + HYPERLINK, "Ana"}
    out = RankingDataset(table=earlier, root=data.root).to_csv(tmp_path / "dataset.csv")
    assert formula_cells(out) == [] and pd.read_csv(out)["rater"].iloc[0] == "'" + HYPERLINK


def test_a_session_refuses_a_study_it_could_not_save_as_is(tmp_path: Path):
    data = make_study(tmp_path / "study", n_sets=2, k=3)
    data.table["set_id"] = data.table["set_id"].replace({"set00": "=set00"})
    with pytest.raises(ValueError, match="formula"):
        RankingSession(data, tmp_path / "class.csv", "Ana", sets=["=set00"])
    with pytest.raises(ValueError, match="formula"):
        RankingSession(data, tmp_path / "class.csv", "Ana", sets=["set01"], group="-evil")


def test_everything_the_widget_shows_is_escaped(tmp_path: Path):
    pytest.importorskip("ipywidgets")
    from clpips.apps.widget import RankingWidget
    data = make_study(tmp_path / "study", n_sets=2, k=3)
    data.table["set_id"] = data.table["set_id"].replace({"set00": "<i>s</i>"})
    rater, csv = "<img src=x onerror=alert(1)>", tmp_path / "class.csv"
    session = RankingSession(data, csv, rater, sets=["<i>s</i>"], features=random_features(data))
    widget = RankingWidget(session, thumb=16)
    assert "<img src=x" not in widget.title.value and "&lt;img src=x onerror=alert(1)&gt;" in widget.title.value
    assert "<i>s</i>" not in widget.title.value and "&lt;i&gt;s&lt;/i&gt;" in widget.title.value
    other = RankingSession(data, csv, rater, sets=["<i>s</i>"])      # another tab saves the set first
    shown = other.candidates()
    for candidate in shown[:-1]:
        other.click(candidate)
    other.save()
    widget.play({c: i for i, c in enumerate(reversed(shown))})
    widget.save()                                        # refused: the error names the set and rater, escaped
    assert "different ranking" in widget.status.value
    assert "<img" not in widget.status.value and "<i>" not in widget.status.value
    assert "&lt;i&gt;s&lt;/i&gt;" in widget.status.value
    table = pd.DataFrame({"icc_A_k": [0.5], "spearman": [0.3], "n_rankings": [2], "spearman_new": [np.nan],
                          "icc_new": [np.nan], "n_new": [0]}, index=["CLPIPS (<script>x</script>.pth)"])
    assert "<script>" not in scores_html(table) and "&lt;script&gt;x&lt;/script&gt;.pth" in scores_html(table)


# --------------------------------------------------------------------------- one --out, one class
def test_a_second_server_on_the_same_out_is_refused(tmp_path: Path, capsys):
    folder = picture_folder(tmp_path / "pics", 4)
    out = tmp_path / "class.csv"
    lock = cr.claim_out(out)                             # the first server's lock
    try:
        code = subprocess.run([sys.executable, "-m", "clpips", "classroom", "--study", str(folder), "--out",
                               str(out), "--port", "0"], capture_output=True, text=True, timeout=120)
        assert code.returncode == 2 and code.stderr.count("\n") == 1
        assert "another classroom server" in code.stderr and str(out) in code.stderr
        assert not cr.sidecar_path(out).exists()         # nothing of the second server's was written
    finally:
        lock.release()
    cr.claim_out(out).release()                          # free again once the first one stops


def test_a_sidecar_of_another_study_is_refused_by_name(tmp_path: Path):
    one, two = picture_folder(tmp_path / "one", 4), picture_folder(tmp_path / "two", 4)
    csv = tmp_path / "class.csv"
    data = cr.load_study(str(one), k=3)
    cr.write_sidecar(csv, study=str(one), dataset=data, sets=cr.class_sets(data, 4), k=3, seed=0,
                     candidates="random")                # no rankings yet: the CSV does not exist
    other = cr.load_study(str(two), k=3)
    with pytest.raises(cr.ClassroomError, match="class.json records another study") as err:
        cr.write_sidecar(csv, study=str(two), dataset=other, sets=cr.class_sets(other, 4), k=3, seed=0,
                         candidates="random")
    assert "\n" not in str(err.value)
    cr.sidecar_path(csv).write_text("{not json")
    with pytest.raises(cr.ClassroomError, match="class.json: not a class record"):
        cr.write_sidecar(csv, study=str(one), dataset=data, sets=cr.class_sets(data, 4), k=3, seed=0,
                         candidates="random")


# --------------------------------------------------------------------------- options at start
def picture_folder(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(str(folder)))
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def one_error(argv: list[str], capsys) -> str:
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("clpips classroom: error: "), err
    return err


@pytest.mark.parametrize("option, value, says", [
    ("--port", "99999", "--port 99999: must be a whole number in 0..65535 (0: any free port)"),
    ("--port", "-1", "--port -1: must be a whole number in 0..65535"),
    ("--seed", "-1", "--seed -1: must be a whole number >= 0"),
    ("--stop-after", "nan", "--stop-after nan: must be a finite number of seconds > 0"),
    ("--stop-after", "-1", "--stop-after -1.0: must be a finite number of seconds > 0"),
    ("--stop-after", "inf", "--stop-after inf: must be a finite"),
    ("--k", "0", f"--k 0: candidates per set must be a whole number in {cr.MIN_K}..{cr.MAX_K}"),
    ("--k", "1", "--k 1: candidates per set"),
    ("--k", "1000", "--k 1000: candidates per set"),
    ("--sets", "0", "--sets 0: must be a whole number >= 1"),
    ("--code", " ", "--code ' ': must be 1 to 32 characters"),
])
def test_an_option_out_of_range_is_one_line_at_start(tmp_path: Path, capsys, option, value, says):
    folder = picture_folder(tmp_path / "pics", 4)
    out = tmp_path / "class.csv"
    err = one_error(["classroom", "--study", str(folder), "--out", str(out), option, value], capsys)
    assert says in err
    assert not out.exists() and not cr.sidecar_path(out).exists()


def test_an_out_that_cannot_be_the_class_csv_is_named(tmp_path: Path, capsys):
    folder = picture_folder(tmp_path / "pics", 4)
    (tmp_path / "a folder").mkdir()
    (tmp_path / "a file").write_text("x")
    for out, says in ((tmp_path / "a folder", "is a folder"), (tmp_path / "a file" / "class.csv", "cannot write in"),
                      (tmp_path / "class.json", "must name a .csv file")):
        err = one_error(["classroom", "--study", str(folder), "--out", str(out), "--port", "0"], capsys)
        assert f"--out {out}: {says}" in err and "serve on" not in err and "port" not in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in a read-only folder")
def test_a_read_only_out_folder_is_named_not_the_port(tmp_path: Path, capsys):
    folder = picture_folder(tmp_path / "pics", 4)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        err = one_error(["classroom", "--study", str(folder), "--out", str(locked / "class.csv")], capsys)
        assert f"cannot write in {locked}" in err and "port" not in err
    finally:
        locked.chmod(0o700)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_a_device_without_hardware_is_refused_at_start(tmp_path: Path, capsys):
    folder = picture_folder(tmp_path / "pics", 4)
    err = one_error(["classroom", "--study", str(folder), "--out", str(tmp_path / "class.csv"), "--device", "cuda"],
                    capsys)
    assert "--device cuda: " in err and "use --device cpu" in err


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` pixels (a decompression bomb: tiny file, huge image)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = chunk(b"IDAT", zlib.compress(b"\0" * 64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + pixels + chunk(b"IEND", b"")


@pytest.mark.parametrize("side, says", [(5_000, "more than the limit"),          # Pillow warns: the package's limit
                                        (100_000, "refused as a decompression bomb")])  # Pillow's error
def test_a_decompression_bomb_in_a_folder_study_is_one_line(tmp_path: Path, capsys, monkeypatch, side, says):
    monkeypatch.delenv("CLPIPS_MAX_PIXELS", raising=False)
    folder = picture_folder(tmp_path / "pics", 3)
    (folder / "bomb.png").write_bytes(png_claiming(side, side))
    out = tmp_path / "class.csv"
    err = one_error(["classroom", "--study", str(folder), "--out", str(out), "--sets", "4", "--k", "3",
                     "--port", "0"], capsys)
    assert f"{folder / 'bomb.png'}: " in err and says in err
    assert not cr.sidecar_path(out).exists()            # nothing recorded: fix the folder and start again
    cr.claim_out(out).release()                          # and --out is not left locked


# --------------------------------------------------------------------------- the teacher's code
def teacher_get(server, code: str | None, source: str | None = None) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10,
                                      source_address=(source, 0) if source else None)
    try:
        conn.request("GET", "/api/teacher", headers={"X-Teacher-Code": code} if code is not None else {})
        return conn.getresponse().status
    finally:
        conn.close()


def test_wrong_teacher_codes_are_limited_like_class_codes(server):
    room = server.classroom
    assert [teacher_get(server, code) for code in ("WRONG", "OWL42", None)] == [403, 403, 403]
    assert teacher_get(server, room.teacher_code) == 429             # even the right one, for a while
    assert api(server, "/api/join", {"name": "Ana", "code": "OWL42"})[0] == 429     # one count per address


def test_the_teacher_code_must_differ_from_the_class_code(tmp_path: Path):
    with pytest.raises(cr.ClassroomError, match="--teacher-code 'owl42': must differ from the class code"):
        cr.check_options(code="OWL42", teacher_code="owl42")
    with pytest.raises(cr.ClassroomError, match="--teacher-code 'a b': must be 1 to 32 characters"):
        cr.check_options(teacher_code="a b")
    data = make_study(tmp_path / "study", n_sets=2, k=3)
    with pytest.raises(cr.ClassroomError, match="must differ"):
        cr.Classroom(data, tmp_path / "class.csv", ["set00"], "OWL42", teacher_code="OWL42")
    codes = {cr.Classroom(data, tmp_path / "class.csv", ["set00"], "OWL42").teacher_code for _ in range(5)}
    assert len(codes) == 5 and all(len(c) == 8 and c.isalnum() for c in codes)      # random, 8 characters


# --------------------------------------------------------------------------- joining from the room's network
#: data codewords of QR versions 1-3 at error correction M (one block each: ISO/IEC 18004, table 9)
DATA_CODEWORDS_M = {1: 16, 2: 28, 3: 44}
MASKS = [lambda i, j: (i + j) % 2 == 0, lambda i, j: i % 2 == 0, lambda i, j: j % 3 == 0,
         lambda i, j: (i + j) % 3 == 0, lambda i, j: (i // 2 + j // 3) % 2 == 0,
         lambda i, j: (i * j) % 2 + (i * j) % 3 == 0, lambda i, j: ((i * j) % 2 + (i * j) % 3) % 2 == 0,
         lambda i, j: ((i + j) % 2 + (i * j) % 3) % 2 == 0]


def format_code(data: int) -> int:
    """The 15-bit format word of 5 data bits: BCH(15,5) with generator 0x537, masked with 0x5412."""
    rem = data << 10
    for bit in range(14, 9, -1):
        if rem >> bit & 1:
            rem ^= 0x537 << (bit - 10)
    return ((data << 10) | rem) ^ 0x5412


def decode_qr(m: list[list[bool]]) -> str:
    """Read the text of a QR code of version 1-3, level M, byte mode, from its modules (True: dark).

    Written from the standard for this test, independent of the encoder: the format word beside the
    top-left finder, the modules outside the function patterns read in the zigzag order, unmasked, and
    the data codewords parsed (mode, count, bytes).
    """
    n = len(m)
    version = (n - 17) // 4
    bits = [m[8][c] for c in range(6)] + [m[8][7], m[8][8], m[7][8]] + [m[r][8] for r in range(5, -1, -1)]
    word = int("".join("1" if b else "0" for b in bits), 2)
    data = next(d for d in range(32) if format_code(d) == word)
    level, mask = data >> 3, data & 7
    assert level == 0b00 and version in DATA_CODEWORDS_M, "this reader knows level M, versions 1-3"

    def function(r: int, c: int) -> bool:
        a = n - 7
        return ((r <= 8 and (c <= 8 or c >= n - 8)) or (r >= n - 8 and c <= 8) or r == 6 or c == 6
                or (version >= 2 and abs(r - a) <= 2 and abs(c - a) <= 2))

    stream, col, upward = [], n - 1, True
    while col > 0:
        if col == 6:
            col -= 1
        for i in range(n):
            r = n - 1 - i if upward else i
            for c in (col, col - 1):
                if not function(r, c):
                    stream.append(m[r][c] ^ MASKS[mask](r, c))
        upward, col = not upward, col - 2
    text = "".join("1" if b else "0" for b in stream[:8 * DATA_CODEWORDS_M[version]])
    assert text[:4] == "0100", "byte mode"
    count = int(text[4:12], 2)
    return bytes(int(text[12 + 8 * i:20 + 8 * i], 2) for i in range(count)).decode("utf-8")


def modules_of_terminal(text: str) -> list[list[bool]]:
    """The modules a terminal QR code shows (segno's compact form: a block is light, two rows a line),
    its quiet zone cut off."""
    upper = {" ": (False, False), "\u2588": (True, True), "\u2580": (True, False), "\u2584": (False, True)}
    rows = []
    for line in text.splitlines():
        halves = [upper[ch] for ch in line]
        rows += [[not top for top, _ in halves], [not bottom for _, bottom in halves]]
    top = next(r for r, row in enumerate(rows) if any(row))    # the finders' top edge spans the whole code
    left = rows[top].index(True)
    size = len(rows[top]) - rows[top][::-1].index(True) - left
    return [row[left:left + size] for row in rows[top:top + size]]


def test_the_decoder_reads_a_known_code():
    """The reader above, on segno's matrices of several texts (the reader is what checks the server's)."""
    for text in ("http://10.0.0.7:8866/", "http://192.168.100.200:8866/", "HELLO"):
        qr = segno.make_qr(text, error="m", boost_error=False, mode="byte")
        assert decode_qr([[bool(v) for v in row] for row in qr.matrix]) == text


def test_the_lan_address_is_printed_with_a_qr_code_that_reads_back():
    url = "http://192.168.1.23:8866/"
    lines = cr.announce(url, encoding="utf-8")
    assert lines[0] == f"Students type {url} or scan:" and lines[2] == cr.PLAIN_HTTP
    assert lines[2].startswith("Warning: the class page is plain HTTP on the local network")
    printed = modules_of_terminal(lines[1])
    assert decode_qr(printed) == url                                    # what a phone reads is the address
    reference = segno.make_qr(url, error="m", boost_error=False)        # and segno's own encoding of it
    assert printed == [[bool(v) for v in row] for row in reference.matrix]
    assert "cannot show the QR code" in cr.announce(url, encoding="ascii")[1]


def test_a_lan_server_announces_itself_and_serves_its_qr_code(tmp_path: Path):
    """lan=True (bound to 127.0.0.1 here: tests never listen on the network) announces the address with its
    QR code and warning, in the terminal and on the teacher's page; loopback announces neither."""
    data = make_study(tmp_path / "study", n_sets=2, k=3)
    room = cr.Classroom(data, tmp_path / "class.csv", ["set00"], "OWL42", features=random_features(data))
    with cr.ClassroomServer(room, "127.0.0.1", 0, stop_after=60, lan=True) as lan:
        said = cr.describe(lan, encoding="utf-8")
        assert said.count(cr.PLAIN_HTTP) == 1 and f"Students type {lan.url} or scan:" in said
        assert "class code: OWL42" in said and f"teacher code: {room.teacher_code}" in said
        assert decode_qr(modules_of_terminal(said.split("or scan:\n", 1)[1].split("\n" + cr.PLAIN_HTTP)[0])) == lan.url
        conn = http.client.HTTPConnection("127.0.0.1", lan.port, timeout=10)
        conn.request("GET", "/qr.svg")
        response = conn.getresponse()
        svg = response.read().decode()
        conn.close()
        assert response.status == 200 and response.getheader("Content-Type") == "image/svg+xml"
        assert svg == cr.qr_svg(lan.url) and f"<title>{lan.url}</title>" in svg
        conn = http.client.HTTPConnection("127.0.0.1", lan.port, timeout=10)
        conn.request("GET", "/api/teacher", headers={"X-Teacher-Code": room.teacher_code})
        state = json.loads(conn.getresponse().read())
        conn.close()
        assert state["lan"] is True and state["url"] == lan.url and state["warning"] == cr.PLAIN_HTTP
    room = cr.Classroom(data, tmp_path / "class.csv", ["set00"], "OWL42", features=random_features(data))
    with cr.ClassroomServer(room, "127.0.0.1", 0, stop_after=60) as local:
        said = cr.describe(local, encoding="utf-8")
        assert local.lan is False and cr.PLAIN_HTTP not in said and "--lan" in said
        assert raw(local, b"GET /qr.svg HTTP/1.0\r\n\r\n")[0] == 404


def test_the_address_of_a_wildcard_bind_is_this_computers():
    shown = cr.display_host("0.0.0.0")
    assert shown not in ("0.0.0.0", "", "::") and cr.display_host("127.0.0.1") == "127.0.0.1"
