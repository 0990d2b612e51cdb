"""Nothing lost when a class saves at once: many writers into one CSV, through RankingSession and
through the class server (its ledger's group commit).

* 16 processes x 20 rankings each into one file, with a "double click" (a second
  session saving the same ranking again) every fifth ranking: every ranking is in
  the file exactly once, in the order it was clicked;
* a writer killed (SIGKILL) in the middle of writing leaves the previous, readable
  file, does not block the next writer, and its temporary file is cleaned up;
* a session started after a restart resumes where the last one stopped;
* the class server answers a save before the student's personal refit ends (a held fake refit),
  30 students saving at once over HTTP all land, and a failed or killed write of its own leaves
  the previous file.

Pair features are never needed (saving does not score), so no backbone is built.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from clpips.datasets import RankingDataset, validate
from clpips.apps.widget import RankingSession

N_WRITERS, N_SETS, K = 16, 20, 3
REPO = Path(__file__).resolve().parents[1]


def make_study(root: Path, n_sets: int = N_SETS, k: int = K) -> RankingDataset:
    """``n_sets`` sets of one target and ``k`` candidates drawn from 10 small PNGs."""
    (root / "img").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    refs = [f"img/{i}.png" for i in range(10)]
    for ref in refs:
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(root / ref)
    rows = []
    for s in range(n_sets):
        target = refs[s % len(refs)]
        others = [r for r in refs if r != target]
        cands = [others[j] for j in rng.choice(len(others), size=k, replace=False)]
        rows += [{"set_id": f"set{s:02d}", "target": target, "candidate": c, "rater": "design", "rank": i + 1}
                 for i, c in enumerate(cands)]
    return RankingDataset(table=pd.DataFrame(rows), root=root, name="class-test")


def sets_of(data: RankingDataset) -> list[str]:
    return sorted(data.table["set_id"].unique())


def order_for(rater: str, candidates: list[str]) -> list[str]:
    """A rater's deterministic ranking of a set (what the test expects to find in the file)."""
    rng = np.random.default_rng(sum(map(ord, rater)))
    return [candidates[i] for i in rng.permutation(len(candidates))]


def _writer(data: RankingDataset, csv: Path, index: int, start, errors) -> None:
    try:
        rater = f"student {index:02d}"
        session = RankingSession(data, csv, rater=rater, sets=sets_of(data))
        start.wait()
        for n in range(N_SETS):
            order = order_for(rater + session.current, session.candidates())
            twin = None
            if n % 5 == 0:         # a second tab on the same set: saves the same ranking after this one
                twin = RankingSession(data, csv, rater=f"  student\t{index:02d} ", sets=[session.current])
                for c in order[:-1]:
                    twin.click(c)
            for c in order[:-1]:
                session.click(c)
            session.save()
            assert session.last_save_written
            if twin is not None:
                twin.save()
                assert not twin.last_save_written
    except BaseException as err:  # report to the parent, which fails the test with it
        errors.put(f"writer {index}: {type(err).__name__}: {err}")
        raise


def test_sixteen_writers_lose_nothing_and_duplicate_nothing(tmp_path: Path):
    data = make_study(tmp_path / "study")
    csv = tmp_path / "class" / "rankings.csv"
    ctx = multiprocessing.get_context("fork")   # the parent has imported everything: fast starts
    start, errors = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(data, csv, i, start, errors)) for i in range(N_WRITERS)]
    for p in procs:
        p.start()
    began = time.perf_counter()
    start.set()
    for p in procs:
        p.join(timeout=180)
    elapsed = time.perf_counter() - began
    problems = []
    while not errors.empty():
        problems.append(errors.get())
    for p in procs:
        if p.is_alive():
            p.kill()
            problems.append(f"writer pid {p.pid} did not finish")
        elif p.exitcode != 0:
            problems.append(f"writer pid {p.pid} exited with {p.exitcode}")
    assert not problems, "\n".join(problems)

    table = validate(pd.read_csv(csv, dtype=str, keep_default_na=False), data.root, check_images=False)
    sizes = table.groupby(["rater", "set_id"]).size()
    assert len(sizes) == N_WRITERS * N_SETS, f"{len(sizes)} of {N_WRITERS * N_SETS} rankings in the file"
    assert (sizes == K).all(), "a ranking is in the file more than once"
    assert len(table) == N_WRITERS * N_SETS * K
    cands = data.table.groupby("set_id")["candidate"].apply(list).to_dict()
    for (rater, set_id), part in table.groupby(["rater", "set_id"]):
        shown = RankingSession(data, tmp_path / "unused.csv", rater=rater, sets=[set_id]).candidates()
        assert list(part.sort_values("rank")["candidate"]) == order_for(rater + set_id, shown), (rater, set_id)
        assert sorted(part["candidate"]) == sorted(cands[set_id])
    assert not list(csv.parent.glob(".*.tmp"))
    print(f"\n{N_WRITERS} writers x {N_SETS} rankings: {elapsed:.1f} s")


# --------------------------------------------------------------------------- killed writers
KILLED_WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import pandas as pd
    sys.path.insert(0, {tests!r})
    from test_classroom_save import make_study, sets_of
    from clpips.apps.widget import RankingSession

    data = make_study(Path({root!r}))
    marker = Path({marker!r})
    session = RankingSession(data, {csv!r}, rater={rater!r}, sets=sets_of(data))
    original = pd.DataFrame.to_csv

    def slow(self, handle, *args, **kwargs):      # write half the table, then hang: the parent kills us here
        original(self.iloc[: len(self) // 2], handle, *args, **kwargs)
        handle.flush()
        marker.write_text("writing")
        time.sleep(60)

    for n in range({n_before}):                    # some rankings saved normally first
        for c in session.candidates()[:-1]:
            session.click(c)
        session.save()
    if {hang}:
        pd.DataFrame.to_csv = slow
    for c in session.candidates()[:-1]:
        session.click(c)
    session.save()
    marker.write_text("done")
""")


def run_writer(tmp_path: Path, rater: str, n_before: int, hang: bool) -> tuple[subprocess.Popen, Path]:
    marker = tmp_path / f"marker-{rater}"
    marker.unlink(missing_ok=True)
    code = KILLED_WRITER.format(tests=str(REPO / "tests"), root=str(tmp_path / "study"), marker=str(marker),
                                csv=str(tmp_path / "class" / "rankings.csv"), rater=rater,
                                n_before=n_before, hang=hang)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    return proc, marker


def wait_for(marker: Path, proc: subprocess.Popen, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if marker.exists() and marker.read_text() == text:
            return
        if proc.poll() is not None:
            raise AssertionError(f"writer exited early ({proc.returncode}): {proc.stdout.read()}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"writer did not reach {text!r} in {timeout} s")


def test_a_writer_killed_mid_save_leaves_a_readable_file_and_no_stuck_lock(tmp_path: Path):
    data = make_study(tmp_path / "study")
    csv = tmp_path / "class" / "rankings.csv"
    proc, marker = run_writer(tmp_path, "killed", n_before=3, hang=True)
    try:
        wait_for(marker, proc, "writing")          # in the middle of writing its 4th ranking, lock held
        before = csv.read_bytes()
        assert list(csv.parent.glob(f".{csv.name}.*.tmp")), "the half-written temporary file should exist"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
    assert csv.read_bytes() == before               # the CSV was never touched by the half-done save
    table = validate(pd.read_csv(csv, dtype=str, keep_default_na=False), data.root, check_images=False)
    assert table.groupby("set_id").size().tolist() == [K] * 3
    # the lock died with its holder: another writer saves at once, and cleans the dead temporary file
    other = RankingSession(data, csv, rater="next", sets=sets_of(data))
    for c in other.candidates()[:-1]:
        other.click(c)
    began = time.perf_counter()
    other.save()
    assert time.perf_counter() - began < 5
    assert not list(csv.parent.glob(f".{csv.name}.*.tmp"))
    # the killed rater resumes after the 3 rankings that were saved
    again = RankingSession(data, csv, rater="killed", sets=sets_of(data))
    assert again.n_done == 3 and again.current == sets_of(data)[3]


def test_resume_after_restart(tmp_path: Path):
    data = make_study(tmp_path / "study")
    csv = tmp_path / "class" / "rankings.csv"
    proc, marker = run_writer(tmp_path, "Ana", n_before=4, hang=False)
    try:
        assert proc.wait(timeout=120) == 0, proc.stdout.read()
    finally:
        proc.stdout.close()
    assert marker.read_text() == "done"
    resumed = RankingSession(data, csv, rater=" Ana ", sets=sets_of(data))   # a new process, the same person
    assert resumed.n_done == 5 and resumed.current == sets_of(data)[5]
    assert len(resumed.collected()) == 5 * K
    for c in resumed.candidates()[:-1]:
        resumed.click(c)
    resumed.save()
    assert RankingSession(data, csv, rater="Ana", sets=sets_of(data)).n_done == 6


# --------------------------------------------------------------------------- the class server's saves
def class_room(tmp_path: Path, n_sets: int = 4, **options):
    """A class of ``n_sets`` sets of 4 candidates, random pair features (no backbone)."""
    from clpips.apps import classroom as cr
    from test_classroom_app import random_features
    data = make_study(tmp_path / "study", n_sets=max(n_sets, 4), k=4)
    return cr.Classroom(data, tmp_path / "class" / "class.csv", sets_of(data)[:n_sets], "OWL42",
                        features=random_features(data), **options)


def shown_order(state: dict, reverse: bool = False) -> list[str]:
    shown = [c["ref"] for c in state["set"]["candidates"]]
    return shown[::-1] if reverse else shown


def test_a_save_answers_before_the_personal_refit_ends(tmp_path: Path):
    """The refit is injected (a fake that waits for the test's word, then fits for real): the answer to a
    save comes while the refit is still held, and the personal model is ready once it ends."""
    import threading
    from clpips.apps.classroom import personal_refit
    started, release, fitted = threading.Event(), threading.Event(), []

    def held_refit(session):
        fitted.append(len(session.collected()) // 4)     # the rankings saved when the refit starts
        started.set()
        assert release.wait(60), "the test never let the refit go on"
        return personal_refit(session)

    room = class_room(tmp_path, refit=held_refit)
    try:
        state = room.join("Ana", "OWL42")
        token = state["token"]
        first = room.submit("Ana", "OWL42", state["set"]["set_id"], shown_order(state), token=token)
        assert started.wait(30)                         # the refit runs, and is held...
        began = time.perf_counter()
        second = room.submit("Ana", "OWL42", first["set"]["set_id"], shown_order(first, True), token=token)
        answered = time.perf_counter() - began
        assert not release.is_set() and fitted == [1]   # ...while both saves were answered
        assert first["saved"] and second["saved"] and second["done"] == 2 and answered < 5.0
        assert second["personal"] == {"fitted_on": 0, "refitting": True}
        third = room.submit("Ana", "OWL42", second["set"]["set_id"], shown_order(second), token=token)
        assert third["saved"] and third["done"] == 3 and fitted == [1]
        assert len(pd.read_csv(room.csv_path)) == 3 * 4  # all on disk already
        release.set()
        room.background.settle()
        state = room.status("Ana", "OWL42", token=token)
        assert fitted == [1, 3]            # then one refit for the two saves made meanwhile: the latest wins
        assert state["personal"] == {"fitted_on": 3, "refitting": False} and state["feedback_ready"]
    finally:
        release.set()
        room.close()


def test_thirty_students_saving_at_once_all_land(tmp_path: Path):
    """30 students over HTTP, each saving 3 sets, all at once round by round: every ranking is in the file
    exactly once, in the order given, and the file is what a whole rewrite of it would be."""
    import json
    import threading
    import urllib.request
    from clpips.apps import classroom as cr
    from clpips.datasets.schema import spreadsheet_safe
    room = class_room(tmp_path, n_sets=3, limits=cr.Limits(max_clients=64, queue_wait=30, timeout=30))
    given: dict[tuple[str, str], list[str]] = {}
    errors: list[str] = []
    start = threading.Barrier(30)

    def post(server, path, body):
        request = urllib.request.Request(server.url.rstrip("/") + path, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.load(response)

    def student(server, i):
        name = f"student {i:02d}"
        try:
            state = post(server, "/api/join", {"name": name, "code": "OWL42"})
            token = state["token"]
            for _ in range(3):
                start.wait(60)
                order = order_for(name + state["set"]["set_id"], shown_order(state))
                given[(name, state["set"]["set_id"])] = order
                state = post(server, "/api/submit", {"name": name, "code": "OWL42", "token": token,
                                                     "set_id": state["set"]["set_id"], "order": order})
                assert state["saved"] is True
        except Exception as err:                        # noqa: BLE001 (reported below)
            errors.append(f"{name}: {type(err).__name__}: {err}")
            start.abort()

    with cr.ClassroomServer(room, "127.0.0.1", 0, stop_after=120) as server:
        threads = [threading.Thread(target=student, args=(server, i)) for i in range(30)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    assert not errors, "\n".join(errors[:5])
    table = validate(pd.read_csv(room.csv_path, dtype=str, keep_default_na=False), room.dataset.root,
                     check_images=False)
    assert table.groupby(["rater", "set_id"]).ngroups == 30 * 3 == len(given) and len(table) == 30 * 3 * 4
    for (rater, set_id), part in table.groupby(["rater", "set_id"]):
        assert list(part.sort_values("rank")["candidate"]) == given[(rater, set_id)]
    raw = pd.read_csv(room.csv_path, dtype=str, keep_default_na=False)
    assert room.csv_path.read_text() == spreadsheet_safe(raw).to_csv(index=False, lineterminator="\n")
    assert not list(room.csv_path.parent.glob(".*.tmp"))


def test_the_class_file_survives_a_failed_write_and_other_writers(tmp_path: Path, monkeypatch):
    """A write that fails midway (the disk, say) leaves the previous file and no temporary file, and the
    student may save again; rows another program wrote (with a formula in them) are kept, made safe."""
    from clpips.apps import classroom as cr
    room = class_room(tmp_path)
    state = room.join("Ana", "OWL42")
    token = state["token"]
    first = room.submit("Ana", "OWL42", state["set"]["set_id"], shown_order(state), token=token)
    before = room.csv_path.read_bytes()

    def full_disk(fd):
        raise OSError(28, "No space left on device")
    with monkeypatch.context() as patch:
        patch.setattr(cr.os, "fsync", full_disk)
        with pytest.raises(OSError, match="No space left"):
            room.submit("Ana", "OWL42", first["set"]["set_id"], shown_order(first), token=token)
    assert room.csv_path.read_bytes() == before and not list(room.csv_path.parent.glob(".*.tmp"))
    again = room.submit("Ana", "OWL42", first["set"]["set_id"], shown_order(first), token=token)
    assert again["saved"] and again["done"] == 2
    # another program appends a ranking by a rater whose name is a formula, without the server
    other = pd.read_csv(room.csv_path, dtype=str, keep_default_na=False)
    foreign = other[other["set_id"] == other["set_id"].iloc[0]].assign(rater='=HYPERLINK("x")')
    pd.concat([other, foreign]).to_csv(room.csv_path, index=False)
    third = room.submit("Ana", "OWL42", again["set"]["set_id"], shown_order(again), token=token)
    assert third["saved"] and third["done"] == 3
    table = pd.read_csv(room.csv_path, dtype=str, keep_default_na=False)
    assert set(table["rater"]) == {"Ana", "'=HYPERLINK(\"x\")"} and len(table) == 4 * 4
    room.close()


KILLED_SERVER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from test_classroom_save import make_study, sets_of
    from clpips.apps import classroom as cr

    data = make_study(Path({root!r}))
    marker = Path({marker!r})
    ledger = cr.ClassLedger({csv!r}, data.root)
    shape = data.table.groupby("set_id")

    def save(set_id):
        part = shape.get_group(set_id)
        return ledger.save("Ana", set_id, part["target"].iloc[0], list(part["candidate"]))

    for set_id in sets_of(data)[:2]:                   # two rankings saved normally first
        save(set_id)

    def hang(fd):                                      # the third is written, not yet renamed: killed here
        marker.write_text("writing")
        time.sleep(60)
    cr.os.fsync = hang
    save(sets_of(data)[2])
""")


def test_a_class_server_killed_mid_save_leaves_a_readable_file(tmp_path: Path):
    """The class server's own writer (ClassLedger), killed (SIGKILL) after writing a ranking to its temporary
    file and before the rename: the CSV is as it was, and the next server saves at once and cleans up."""
    from clpips.apps import classroom as cr
    data = make_study(tmp_path / "study")
    csv, marker = tmp_path / "class" / "rankings.csv", tmp_path / "marker"
    code = KILLED_SERVER.format(tests=str(REPO / "tests"), root=str(tmp_path / "study"), marker=str(marker),
                                csv=str(csv))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(marker, proc, "writing")
        before = csv.read_bytes()
        assert list(csv.parent.glob(f".{csv.name}.*.tmp")), "the temporary file being written should exist"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
    assert csv.read_bytes() == before
    table = validate(pd.read_csv(csv, dtype=str, keep_default_na=False), data.root, check_images=False)
    assert table.groupby("set_id").size().tolist() == [K] * 2
    ledger = cr.ClassLedger(csv, data.root)                    # the next server: the lock died with the writer
    part = data.table[data.table["set_id"] == sets_of(data)[2]]
    began = time.perf_counter()
    assert ledger.save("Ana", sets_of(data)[2], part["target"].iloc[0], list(part["candidate"])) is True
    assert time.perf_counter() - began < 5 and not list(csv.parent.glob(f".{csv.name}.*.tmp"))
    assert ledger.save("ana", sets_of(data)[2], part["target"].iloc[0], list(part["candidate"])) is False
    assert len(pd.read_csv(csv)) == 3 * K and set(pd.read_csv(csv)["rater"]) == {"Ana"}
