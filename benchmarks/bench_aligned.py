"""Benchmark: one mur92-sized fit of the AligNet-style transform (:func:`clpips.book.aligned.fit_transform_many`).

Run alone: ``python benchmarks/bench_aligned.py``. The data are synthetic with mur92's
shape, so no dataset or backbone is needed: 92 images with D = 1,152 unit-length-per-layer
embeddings scaled by ``sqrt(w0)``-like weights, 92 targets x 10 candidates (920 distinct
(target, candidate) rows), 16 raters ranking every set by a noisy version of a hidden
distance (45 ordered pairs per ranking), and a training side of the first 50,000 pairs
(as an outer training fold of the protocol). One job trains 6 settings (3 lam x 2 lr),
rank 8, 200 full-batch steps, on 1 torch thread. Prints ``name: value`` lines:

* ``aligned_job_seconds_factors``: best of ``BENCH_ALIGNED_REPEATS`` (default 3) wall times
  with ``factors`` (products over the 92 images); ``..._cpu``: its process CPU time;
* ``aligned_job_seconds_rows``: the same from the delta rows alone (products over the rows);
* ``aligned_rows`` / ``aligned_unique_pairs``: the rows and distinct ordered pairs the job uses;
* ``aligned_rows_over_factors``: the rows' time over the images' (the image path's speed-up).
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from clpips.book import aligned# noqa: E402


def mur92_like(seed: int = 0, n_images: int = 92, k: int = 10, raters: int = 16, dim: int = 1152):
    """``(delta, factors, pairs)``: rows of every (target, candidate) and the ranked pairs of all raters."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.nn.functional.normalize(torch.randn(n_images, dim, generator=gen).abs(), dim=1) * 0.3
    ends, pairs = [], []
    for t in range(n_images):
        others = [i for i in range(n_images) if i != t]
        cands = [others[i] for i in torch.randperm(len(others), generator=gen)[:k].tolist()]
        base = len(ends)
        ends += [(t, c) for c in cands]
        truth = ((z[t] - z[cands]) ** 2).sum(1)
        for _ in range(raters):
            order = torch.argsort(truth + 0.02 * torch.randn(k, generator=gen)).tolist()
            pairs += [(base + order[i], base + order[j]) for i in range(k) for j in range(i + 1, k)]
    ends_t = torch.tensor(ends)
    delta = z[ends_t[:, 0]] - z[ends_t[:, 1]]
    pairs_t = torch.tensor(pairs)
    return delta, (z, ends_t), pairs_t[torch.randperm(len(pairs_t), generator=gen)[:50_000]]


def timed(fn, repeats: int) -> tuple[float, float]:
    best, best_cpu = float("inf"), float("inf")
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        best, best_cpu = min(best, time.perf_counter() - t0), min(best_cpu, time.process_time() - c0)
    return best, best_cpu


def run(line=lambda name, value: print(f"{name}: {value}")) -> None:
    """The measurements as ``line(name, value)`` calls (``make bench`` passes its own)."""
    repeats = int(os.environ.get("BENCH_ALIGNED_REPEATS", "3"))
    delta, factors, pairs = mur92_like()
    grid = aligned.TransformGrid(lambdas=(0.0, 1e-3, 1e-2), lrs=(1e-3, 1e-2), steps=(50, 100, 200), rank=8)
    job = [(pairs, 0)]
    line("aligned_rows", len(torch.unique(pairs.flatten())))
    line("aligned_unique_pairs", len(torch.unique(pairs, dim=0)))
    walls = {}
    for name, fac in (("factors", factors), ("rows", None)):
        wall, cpu = timed(lambda: aligned.fit_transform_many(delta, job, grid, margin=0.05, factors=fac, threads=1),
                          repeats)
        walls[name] = wall
        line(f"aligned_job_seconds_{name}", round(wall, 3))
        line(f"aligned_job_seconds_{name}_cpu", round(cpu, 3))
    # the image path's speed-up, measured side by side (goal: > 1 where images are few beside the rows)
    line("aligned_rows_over_factors", round(walls["rows"] / walls["factors"], 2))


def main() -> None:
    run()


if __name__ == "__main__":
    main()
