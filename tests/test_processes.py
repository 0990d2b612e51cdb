"""fit_many's local worker processes (clpips.parallel.LocalPool) end with their parent: when it is killed, and
when it is interrupted."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import interrupt

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

#: a parent that spreads two endless fits over two worker processes, then writes its result atomically.
#: Interrupted, it says so and leaves without Python's second of tearing down torch's modules (os._exit)
PARENT = """
import os, sys
from pathlib import Path
import torch
from clpips import atomic
from clpips.train import GridJob, fit_many
gen = torch.Generator().manual_seed(0)
features = torch.rand(8, 1152, generator=gen)
pairs = torch.randint(0, 8, (200, 2), generator=gen)
jobs = [GridJob(pairs, (0.05,), (1e-3,), (100000,), seed=s) for s in range(2)]
try:
    out = fit_many(features, jobs, torch.full((1152,), 0.1), max_columns=1, workers=2, batch_size=2)
    atomic.write_bytes(Path(sys.argv[1]) / "weights.pt", atomic.torch_bytes(out))
except KeyboardInterrupt:
    os.write(2, b"interrupted\\n")
    os._exit(130)
"""


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return fields[0], int(fields[1])


def _alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")      # a zombie has ended


def _workers_of(parent: int) -> list[int]:
    """The fit_many workers the process ``parent`` started (spawned by multiprocessing: their command line runs
    ``spawn_main``; multiprocessing's resource tracker, also a child, does not)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (_stat(int(entry.name)) or ("", -1))[1] == parent:
            try:
                if b"spawn_main" in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def _running_workers(parent: subprocess.Popen) -> list[int]:
    """Wait (bounded) until ``parent`` has two workers past importing torch and into their fits."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert parent.poll() is None, parent.communicate()[1]
        workers = _workers_of(parent.pid)
        if len(workers) == 2 and all(b"libtorch" in Path(f"/proc/{w}/maps").read_bytes() for w in workers):
            time.sleep(2.0)          # the rest of the import; the tasks are already queued
            return workers
        time.sleep(0.1)
    pytest.fail("the parent did not start its two workers within 120 s")


def _gone_within(pids: list[int], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(_alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture()
def parent(tmp_path):
    """A parent running :data:`PARENT`, writing into ``tmp_path / "out"``; whatever is left is killed."""
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", PARENT, str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=Path(__file__).resolve().parents[1])
    started: list[int] = []
    yield proc, out, started
    for pid in [*started, proc.pid]:          # only the processes this test started, by their id
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    proc.communicate()


def test_workers_die_when_their_parent_is_killed(parent):
    proc, _, started = parent
    started += _running_workers(proc)
    assert all(_alive(w) for w in started)
    proc.kill()
    proc.wait()
    assert _gone_within(started, 5.0), f"workers {[w for w in started if _alive(w)]} run on after their parent died"


def test_an_interrupt_ends_parent_and_workers_within_a_second_and_writes_nothing(parent):
    proc, out, started = parent
    started += _running_workers(proc)
    took = interrupt(proc)
    assert proc.returncode == 130 and took < 2.0, f"the parent took {took:.1f} s to end after SIGINT"
    assert proc.communicate()[1].strip().endswith(b"interrupted")
    assert _gone_within(started, 1.0)
    assert list(out.iterdir()) == []          # no result, and no temporary file beside it
