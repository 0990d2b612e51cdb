"""Benchmark: the nested protocol (:func:`clpips.protocol.crossval`) against a loop of ``fit_pairs`` calls.

Run from ``benchmarks/bench.py`` (``make bench``) or alone: ``python benchmarks/bench_protocol.py``.
Per split mode (``BENCH_PROTOCOL_MODES``, default ``target,image``) it prints ``name: value`` lines:

* ``protocol_seconds_<mode>``: wall time of ``protocol.crossval(load_dataset("mur92"),
  mode=<mode>, cache=False)`` with every other default (5 outer folds x 3 repeats, 3 inner
  folds, 6 (margin, lr) columns x epochs 5/10/20), pair features *warm* in the on-disk
  feature cache (a 1-setting, 1-epoch run of the same splits computes them first, untimed);
  ``protocol_cpu_seconds_<mode>`` is its process CPU time (less sensitive to other load).
* ``protocol_loop_seconds_<mode>``: the sequential way to do the same fits: for every outer fold,
  every inner fold and every (margin, lr, epochs) setting one
  ``train.fit_pairs(features, pairs, val_pairs=None, epochs=e, ...)``, then one refit per
  outer fold with its chosen setting. It would take many minutes, so it is **extrapolated**:
  all 18 settings of inner fold 0 of outer fold 0, and the refit of outer fold 0, are timed;
  their seconds per pair-epoch (pairs x epochs; a step's cost is per batch of pairs) times
  the exact pair-epochs of all inner fits and of all refits gives the loop's time.
  The loop is charged nothing for scoring, so the ratio is conservative.
  ``protocol_loop_cpu_seconds_<mode>``: the same from process CPU time.
* ``protocol_vs_loop`` (split by target; ``protocol_vs_loop_image`` by image): loop seconds
  over protocol seconds (goal: >= 10x); ``protocol_goal`` (``protocol_goal_image``): is the
  protocol within 120 s on 2 cores, and >= 10x faster than the loop. ``protocol_vs_loop_cpu``:
  the ratio of CPU times (the machine is shared: wall times swing with other load).

``BENCH_PROTOCOL_THREADS`` (default ``1``, comma-separated) runs the protocol once per
``threads=`` value (the extra ones print ``protocol_seconds_<mode>_threads<n>``).
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clpips import protocol, train  # noqa: E402
from clpips.datasets.splits import split_folds  # noqa: E402
from clpips.defaults import DEFAULTS  # noqa: E402
from clpips.experiment import load_dataset  # noqa: E402
from clpips.model import initial_weight_vector  # noqa: E402
from clpips.pairs import ranking_pairs  # noqa: E402

GOAL_SECONDS = 120.0
GOAL_RATIO = 10.0
MODES = tuple(m for m in os.environ.get("BENCH_PROTOCOL_MODES", "target,image").split(",") if m.strip())
THREADS = tuple(int(t) for t in os.environ.get("BENCH_PROTOCOL_THREADS", "1").split(",") if t.strip())


def outer_splits(data, mode: str, seed: int = DEFAULTS.seed):
    """The protocol's outer and inner splits, made as :func:`clpips.protocol.crossval` makes them."""
    within = getattr(data, "within", None)
    out = []
    for r in range(DEFAULTS.protocol_repeats):
        rseed = protocol.derived_seed(seed, r)
        for f, (tr, te) in enumerate(split_folds(data.table, mode, DEFAULTS.protocol_folds, rseed, within=within)):
            inner = list(split_folds(tr, mode, DEFAULTS.protocol_inner_folds, protocol.derived_seed(seed, r, f),
                                     within=within))
            out.append({"repeat": r, "fold": f, "train": tr, "test": te, "inner": inner})
    return out


def time_protocol(data, mode: str, threads: int) -> tuple[float, float, protocol.CrossvalResult]:
    c0, t0 = time.process_time(), time.perf_counter()
    result = protocol.crossval(data, protocol.Settings(mode=mode), compute=protocol.Compute(threads=threads),
                              cache=False)
    return time.perf_counter() - t0, time.process_time() - c0, result


def time_loop(data, mode: str, result: protocol.CrossvalResult, line: Callable) -> float:
    """Extrapolated seconds of the sequential loop of fit_pairs calls (see the module docstring)."""
    grid = protocol.Grid()
    outer = outer_splits(data, mode)
    tables = [o["train"] for o in outer] + [o["test"] for o in outer] + \
             [t for o in outer for pair in o["inner"] for t in pair]
    import pandas as pd
    features = train.pair_features_for(data, pd.concat(tables, ignore_index=True), progress=False)  # warm cache
    folds = result.folds
    for o, (_, row) in zip(outer, folds.iterrows()):  # the splits are the protocol's own
        assert (o["repeat"], o["fold"], len(o["train"])) == (row["repeat"], row["fold"], row["n_train_rows"])
    w0 = initial_weight_vector(DEFAULTS.net, DEFAULTS.init, DEFAULTS.seed)
    epochs_per_column = sum(grid.epochs)
    inner_pairs = [len(ranking_pairs(itrain)) for o in outer for itrain, _ in o["inner"]]
    outer_pairs = [len(ranking_pairs(o["train"])) for o in outer]
    inner_pair_epochs = sum(inner_pairs) * len(grid.columns()) * epochs_per_column
    refit_pair_epochs = sum(n * int(e) for n, e in zip(outer_pairs, folds["epochs"]))
    n_fits = len(inner_pairs) * len(grid.columns()) * len(grid.epochs) + len(outer_pairs)

    # timed: every setting of inner fold 0 of outer fold 0, one fit_pairs call each
    pairs = train.pair_index(features, ranking_pairs(outer[0]["inner"][0][0]))
    c0, t0 = time.process_time(), time.perf_counter()
    for margin, lr in grid.columns():
        for e in grid.epochs:
            train.fit_pairs(features.matrix, pairs, None, w0, margin=margin, lr=lr, epochs=e, seed=DEFAULTS.seed)
    inner_s, inner_cpu = time.perf_counter() - t0, time.process_time() - c0
    inner_timed = len(pairs) * len(grid.columns()) * epochs_per_column
    # timed: the refit of the first outer fold that trained, with its chosen setting (a fold whose inner
    # folds chose "do not train" has no margin or learning rate, and no refit: 0 refit pair-epochs)
    trained = np.flatnonzero(folds["epochs"].to_numpy(float) > 0)
    refit_s = refit_cpu = 0.0
    refit_timed = 1
    if len(trained):
        refit = folds.iloc[int(trained[0])]
        pairs = train.pair_index(features, ranking_pairs(outer[int(trained[0])]["train"]))
        c0, t0 = time.process_time(), time.perf_counter()
        train.fit_pairs(features.matrix, pairs, None, w0, margin=float(refit["margin"]), lr=float(refit["lr"]),
                        epochs=int(refit["epochs"]), seed=DEFAULTS.seed)
        refit_s, refit_cpu = time.perf_counter() - t0, time.process_time() - c0
        refit_timed = len(pairs) * int(refit["epochs"])

    loop = inner_s / inner_timed * inner_pair_epochs + refit_s / refit_timed * refit_pair_epochs
    loop_cpu = inner_cpu / inner_timed * inner_pair_epochs + refit_cpu / refit_timed * refit_pair_epochs
    line(f"protocol_loop_fits_{mode}", f"{n_fits} fit_pairs calls: {len(inner_pairs)} inner folds x "
                                       f"{len(grid.columns())} (margin, lr) x {len(grid.epochs)} epochs + "
                                       f"{len(outer_pairs)} refits")
    line(f"protocol_loop_pair_epochs_{mode}", f"{inner_pair_epochs} inner + {refit_pair_epochs} refit")
    line(f"protocol_loop_timed_{mode}", f"{inner_s:.3g} s for {inner_timed} inner pair-epochs "
                                        f"({len(grid.columns()) * len(grid.epochs)} fits of one inner fold), "
                                        f"{refit_s:.3g} s for {refit_timed} refit pair-epochs (one refit)")
    line(f"protocol_loop_seconds_{mode}", loop)
    line(f"protocol_loop_cpu_seconds_{mode}", loop_cpu)
    line(f"protocol_loop_extrapolated_{mode}", "true (seconds per pair-epoch of the timed fits x all "
                                               "pair-epochs, inner fits and refits separately)")
    return loop, loop_cpu


def run(line: Callable) -> None:
    data = load_dataset("mur92")
    for mode in MODES:
        # warm the on-disk feature cache with the same splits (and torch's code paths): untimed
        protocol.crossval(data, protocol.Settings(mode=mode, grid=protocol.Grid((0.05,), (0.01,), (1,))), cache=False)
        result = None
        for threads in THREADS:
            wall, cpu, res = time_protocol(data, mode, threads)
            suffix = "" if result is None else f"_threads{threads}"
            line(f"protocol_seconds_{mode}{suffix}", wall)
            line(f"protocol_cpu_seconds_{mode}{suffix}", cpu)
            if result is None:
                result, protocol_s, protocol_cpu = res, wall, cpu
                line(f"protocol_threads_{mode}", threads)
        line(f"protocol_features_{mode}", "warm (on-disk feature cache filled by an untimed run first)")
        loop, loop_cpu = time_loop(data, mode, result, line)
        tag = "" if mode == "target" else f"_{mode}"
        line(f"protocol_vs_loop{tag}", f"{loop / protocol_s:.3g}x")
        line(f"protocol_vs_loop_cpu{tag}", f"{loop_cpu / protocol_cpu:.3g}x (process CPU time, less sensitive "
                                           "to other load)")
        line(f"protocol_goal{tag}", f"<= {GOAL_SECONDS:.0f} s: {protocol_s <= GOAL_SECONDS}; "
                                    f">= {GOAL_RATIO:.0f}x the loop: {loop / protocol_s >= GOAL_RATIO}")


if __name__ == "__main__":
    def _line(name, value):
        print(f"{name}: {value:.4g}" if isinstance(value, float) else f"{name}: {value}", flush=True)
    run(_line)
