"""Ctrl-C ends a ``clpips`` command within a second: it says so, exits with status 130 and writes nothing
(Python's own shutdown after torch would take about a second more: ``cli.main`` leaves with ``os._exit``)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from helpers import interrupt, run_cli

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def _study(root: Path) -> Path:
    """Eight 32 x 32 images, each a target ranked with three others by two raters, as a study CSV."""
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / f"i{i}.png")
    rows = [{"set_id": f"s{t}", "target": f"i{t}.png", "candidate": f"i{(t + d) % 8}.png", "rater": r,
             "rank": rank} for t in range(8) for r in ("a", "b")
            for rank, d in enumerate(rng.permutation([1, 2, 3]), start=1)]
    pd.DataFrame(rows).to_csv(root / "study.csv", index=False)
    return root / "study.csv"


def _torch_loaded(pid: int) -> bool:
    try:
        return b"libtorch" in Path(f"/proc/{pid}/maps").read_bytes()
    except OSError:
        return False


def test_ctrl_c_ends_a_command_within_a_second(tmp_path, alex):
    """A cross-validation whose fits would run for minutes (``alex``: the session's backbone is in its cache)."""
    study, out = _study(tmp_path), tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "clpips", "crossval", "--dataset", str(study), "--out", str(out),
                             "--folds", "2", "--inner-folds", "2", "--repeats", "1", "--epochs-grid", "20000",
                             "--workers", "1", "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=Path(__file__).resolve().parents[1])
    try:
        deadline = time.monotonic() + 120
        while not _torch_loaded(proc.pid):
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the command did not load torch within 120 s"
            time.sleep(0.1)
        time.sleep(3.0)                        # into the run: the features, then the fits
        assert proc.poll() is None, proc.communicate()[1]
        took = interrupt(proc)
        assert proc.returncode == 130 and took < 1.0, f"ended {took:.2f} s after SIGINT, status {proc.returncode}"
        assert proc.communicate()[1].strip().endswith(b"interrupted")
        assert not (out / "crossval.json").exists()
    finally:
        if proc.poll() is None:               # only the process this test started, by its id
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def test_an_interrupt_in_process_returns_130(monkeypatch, capsys):
    """Called from Python (a test, a notebook), ``main`` returns the status instead of ending the process."""
    import clpips.apps.cli as cli

    def interrupted(args):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "_cmd_fit", interrupted)          # bound when main builds its parser
    code, _, err = run_cli(["fit", "--out", "x"], capsys)
    assert code == 130 and err.strip() == "interrupted"
