"""Small helpers several test modules share (fixtures shared the same way live in conftest.py)."""
from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd

from clpips.apps.cli import main


class Folder:
    """A dataset stand-in whose images lie under ``root`` (what feature extraction asks of a dataset)."""

    def __init__(self, root: Path):
        self.root = root

    def image_path(self, ref: str) -> Path:
        return self.root / ref


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    """``clpips ARGS`` in-process: exit status, stdout, stderr (argparse's errors included)."""
    try:
        code = main(args)
    except SystemExit as stop:
        code = stop.code
    out, err = capsys.readouterr()
    return code, out, err


def icc_ak(y) -> float:
    """ICC(A,k) of an n x k table from the two-way ANOVA mean squares (McGraw & Wong 1996, case A):
    (MSR - MSE) / (MSR + (MSC - MSE) / n). A reference written out for the tests (checked against
    pingouin in test_protocol_selection.py::test_icc_reference_is_pingouins)."""
    import numpy as np
    y = np.asarray(y, dtype=float)
    n, k = y.shape
    grand = y.mean()
    msr = k * ((y.mean(axis=1) - grand) ** 2).sum() / (n - 1)
    msc = n * ((y.mean(axis=0) - grand) ** 2).sum() / (k - 1)
    mse = (((y - grand) ** 2).sum() - (n - 1) * msr - (k - 1) * msc) / ((n - 1) * (k - 1))
    return float((msr - mse) / (msr + (msc - mse) / n))


def toy_table(n_images=12, k=5, raters=("a", "b"), seed=0) -> pd.DataFrame:
    """A ranking table: every image a target with k random candidates among the others; each rater a random
    order."""
    rng = np.random.default_rng(seed)
    rows = []
    for t in range(n_images):
        cands = rng.choice([i for i in range(n_images) if i != t], size=k, replace=False)
        for r in raters:
            for rank, c in enumerate(rng.permutation(cands), start=1):
                rows.append({"set_id": f"s{t}", "target": f"i{t}.png", "candidate": f"i{c}.png", "rater": r,
                             "rank": rank})
    return pd.DataFrame(rows)


def record_calls(monkeypatch, module, name):
    """Replace ``module.name`` by a wrapper that records each call as ``(*args, kwargs, result)``;
    returns the list of calls and the real function."""
    calls, real = [], getattr(module, name)

    def recording(*args, **kw):
        out = real(*args, **kw)
        calls.append((*args, kw, out))
        return out
    monkeypatch.setattr(module, name, recording)
    return calls, real


def interrupt(proc: subprocess.Popen, wait: float = 10.0) -> float:
    """Send ``proc`` a SIGINT (Ctrl-C) and wait for it to end (at most ``wait`` s): the seconds it took."""
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=wait)
    except subprocess.TimeoutExpired:
        pass
    return time.monotonic() - t0
