"""Nothing lost when a class saves at once: many writers into one CSV through RankingSession.

* 16 processes x 20 rankings each into one file, with a "double click" (a second
  session saving the same ranking again) every fifth ranking: every ranking is in
  the file exactly once, in the order it was clicked;
* a writer killed (SIGKILL) in the middle of writing leaves the previous, readable
  file, does not block the next writer, and its temporary file is cleaned up;
* a session started after a restart resumes where the last one stopped.

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
