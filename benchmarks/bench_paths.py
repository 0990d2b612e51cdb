"""The trainer's two ways of a step, timed side by side on the book's lockstep groups (``make bench``).

A lockstep group (``clpips.train._Lockstep``) steps either over all its rows (``d = F W``) or on its
batches' pair differences; ``train.steps_on_pairs`` chooses by one rule, ``2 * streams * batch_size <= rows``.
This times both ways on the shapes of the groups a full book run makes (rows, and each stream's steps and
columns, logged from ``clpips run --all`` at 3b398f8: the protocol's fold groups, the ablations', the
personal fits'), on random features of the same size, one thread, best of 2. The step counts are scaled
by ``BENCH_PATHS_SCALE`` (default 0.1): the time per step is what is compared.

Prints one line per shape and ``paths_rule_over_best``: the rule's total time over the total time of the
faster way of each shape (1.0: the rule always picks the faster way), and the same for each way alone.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clpips import train  # noqa: E402
from clpips.model import initial_weight_vector  # noqa: E402
from clpips.train import GridJob, fit_many  # noqa: E402

BATCH = 256
#: name: (rows, [(steps, columns)] per stream)
SHAPES = {
    "a protocol fold, 2 settings x 12 (mur92)": (870, [(2760, 12)] * 2),
    "a protocol fold, 2 x 12 (zappos)": (1700, [(330, 12)] * 2),
    "8 folds x 12 (mur92)": (920, [(2760, 12)] * 8),
    "7 folds x 12 (mur92)": (920, [(2800, 12)] * 7),
    "8 folds x 12 (zappos)": (2000, [(380, 12)] * 8),
    "one setting, 1 x 12": (920, [(340, 12)]),
    "ablations, 5 x 1": (1700, [(480, 1)] * 5),
    "ablations, 6 x 1": (2712, [(480, 1)] * 6),
    "long fits, 5 x 1": (920, [(2060, 1), (4120, 1), (2090, 1), (4180, 1), (2090, 1)]),
    "personal fits, 5 x 1": (600, [(18, 1), (45, 1), (18, 1), (180, 1), (18, 1)]),
    "personal fits, 15 x 1": (2000, [(145, 1), (290, 1), (580, 1), (290, 1), (290, 1)] * 3),
    "learning curve, 1 x 18 and 6 x 1": (740, [(4980, 18), (120, 1), (240, 1), (450, 1), (900, 1), (1740, 1),
                                                (3360, 1)]),
    "17 x 1, one long": (510, [(4320, 1)] + [(270, 1)] * 16),
    "few rows, 2 x 12": (296, [(60, 12)] * 2),
    "many rows, 2 x 1": (2400, [(240, 1), (120, 1)]),
}


def jobs_for(rows: int, streams, scale: float, g: torch.Generator) -> list[GridJob]:
    """One job per stream: 4 batches of random pairs of ``rows`` rows, as many epochs as its scaled steps."""
    jobs = []
    for seed, (steps, columns) in enumerate(streams):
        n = 4 * BATCH - 50
        better = torch.randint(0, rows, (n,), generator=g)
        worse = (better + 1 + torch.randint(0, rows - 1, (n,), generator=g)) % rows
        epochs = max(1, int(steps * scale) // 4)
        jobs.append(GridJob(torch.stack([better, worse], 1), (0.05,) * columns, (1e-3,) * columns, (epochs,),
                            seed=seed))
    return jobs


def timed(features, jobs, on_pairs: bool) -> float:
    """Best of 2 of a fit_many of ``jobs`` with its step forced one way."""
    rule, best = train.steps_on_pairs, float("inf")
    train.steps_on_pairs = lambda *args: on_pairs
    try:
        for _ in range(2):
            t0 = time.perf_counter()
            fit_many(features, jobs, initial_weight_vector("alex", "lpips"), batch_size=BATCH, threads=1,
                     max_columns=10_000)
            best = min(best, time.perf_counter() - t0)
    finally:
        train.steps_on_pairs = rule
    return best


def main() -> None:
    scale = float(os.environ.get("BENCH_PATHS_SCALE", "0.1"))
    total = {"rule": 0.0, "best": 0.0, "rows": 0.0, "pairs": 0.0}
    for name, (rows, streams) in SHAPES.items():
        g = torch.Generator().manual_seed(1)
        features = torch.randn(rows, 1152, generator=g).abs() * 0.01
        jobs = jobs_for(rows, streams, scale, g)
        over_rows, on_pairs = timed(features, jobs, False), timed(features, jobs, True)
        picks = train.steps_on_pairs(BATCH, len(streams), sum(c for _, c in streams), rows)
        total["rule"] += on_pairs if picks else over_rows
        total["best"] += min(over_rows, on_pairs)
        total["rows"] += over_rows
        total["pairs"] += on_pairs
        print(f"paths {name}: rows {rows}, streams {len(streams)}: over rows {over_rows:.3f} s, on pairs "
              f"{on_pairs:.3f} s (ratio {on_pairs / over_rows:.2f}); the rule steps "
              f"{'on pairs' if picks else 'over rows'}", flush=True)
    for way in ("rule", "rows", "pairs"):
        print(f"paths_{way}_over_best: {total[way] / total['best']:.3f}", flush=True)


if __name__ == "__main__":
    main()
