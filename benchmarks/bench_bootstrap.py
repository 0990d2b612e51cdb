"""Benchmark: vectorized paired bootstrap vs a loop over pingouin.intraclass_corr.

Run ``python benchmarks/bench_bootstrap.py`` (from the repository root, with
the package importable). It prints ``name: value`` lines:

* ``vectorized_seconds``: :func:`clpips.stats.paired_bootstrap` with
  ``n_boot`` resamples of a synthetic ``n_sets x candidates`` evaluation (both
  metrics, ICC(A,k) and pooled rho, percentile intervals); best of ``repeat``
  (wall clock; ``vectorized_cpu_seconds`` is the CPU time of that run, less
  sensitive to other load on the machine). ``vectorized_bca_seconds``: the
  same with BCa intervals; ``vectorized_metrics_as_ranks_seconds``: metrics
  given as within-set ranks (few distinct values), as ``clpips.experiment`` does.
* ``loop_*``: the naive way, on ``loop_resamples`` of the *same* resamples:
  build each resampled table, then per metric ``metric_human_table`` +
  ``pingouin.intraclass_corr`` + ``scipy.stats.spearmanr``. Timed on a few
  hundred resamples and **extrapolated** linearly to ``n_boot``;
  ``loop_pingouin_only_*`` counts only the time inside ``intraclass_corr``.
* ``speedup`` and ``speedup_vs_pingouin_only``: extrapolated loop time over
  vectorized time (goal: at least 100).
"""
from __future__ import annotations

import os
import platform
import time
import warnings

import numpy as np
import pandas as pd
from scipy import stats

from clpips.stats import bootstrap_counts, metric_human_table, paired_bootstrap


def synthetic_evaluation(n_sets: int = 300, candidates: int = 10, seed: int = 0) -> pd.DataFrame:
    """Human ranks 1..candidates per set; two metrics with different noise."""
    rng = np.random.default_rng(seed)
    rank = np.concatenate([rng.permutation(candidates) + 1 for _ in range(n_sets)])
    return pd.DataFrame({"set": np.repeat(np.arange(n_sets), candidates), "rank": rank,
                         "lpips": rank + rng.normal(0, 4, rank.size),
                         "clpips": rank + rng.normal(0, 3, rank.size)})


def _time_vectorized(df: pd.DataFrame, n_boot: int, seed: int, repeat: int, method: str = "percentile",
                     columns: tuple[str, str] = ("lpips", "clpips")) -> tuple[float, float]:
    """(best wall seconds, CPU seconds of that run) of paired_bootstrap."""
    paired_bootstrap(df, "set", "rank", *columns, n_boot=50, seed=seed, method=method)  # warm-up
    best = (np.inf, np.inf)
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        paired_bootstrap(df, "set", "rank", *columns, n_boot=n_boot, seed=seed, method=method)
        best = min(best, (time.perf_counter() - wall, time.process_time() - cpu))
    return best


def _time_pingouin_loop(df: pd.DataFrame, counts: np.ndarray) -> tuple[float, float]:
    """(total seconds, seconds inside pingouin.intraclass_corr) for a naive per-resample loop."""
    import pingouin

    groups = [g for _, g in df.groupby("set", sort=True)]
    inside = 0.0
    start = time.perf_counter()
    for row in counts:
        parts = [groups[s].assign(set=f"{s}-{c}") for s in np.flatnonzero(row) for c in range(row[s])]
        table = pd.concat(parts, ignore_index=True)
        for metric in ("lpips", "clpips"):
            long = metric_human_table(table, "set", "rank", metric)
            t0 = time.perf_counter()
            res = pingouin.intraclass_corr(long, "target", "rater", "rating")
            inside += time.perf_counter() - t0
            float(res.set_index("Type").at["ICC(A,k)" if "ICC(A,k)" in set(res["Type"]) else "ICC2k", "ICC"])
            stats.spearmanr(table["rank"], table[metric])
    return time.perf_counter() - start, inside


def run(n_boot: int = 10_000, n_sets: int = 300, candidates: int = 10, loop_resamples: int = 200,
        seed: int = 0, repeat: int = 3) -> dict:
    """Time both approaches; return the numbers as a dict (see the module docstring)."""
    df = synthetic_evaluation(n_sets, candidates, seed)
    vectorized, vectorized_cpu = _time_vectorized(df, n_boot, seed, repeat)
    vectorized_bca, _ = _time_vectorized(df, n_boot, seed, 1, "bca")
    # metrics passed as ranks within each set, as clpips.apps.outputs.bootstrap_summary does
    ranked = df.assign(lpips=df.groupby("set")["lpips"].rank(), clpips=df.groupby("set")["clpips"].rank())
    vectorized_ranks, _ = _time_vectorized(ranked, n_boot, seed, repeat)
    counts = bootstrap_counts(n_sets, loop_resamples, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pingouin's pandas deprecation warnings
        loop_total, loop_pingouin = _time_pingouin_loop(df, counts)
    scale = n_boot / loop_resamples
    return {
        "n_sets": n_sets,
        "candidates_per_set": candidates,
        "n_boot": n_boot,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "vectorized_seconds": round(vectorized, 4),
        "vectorized_cpu_seconds": round(vectorized_cpu, 4),
        "vectorized_bca_seconds": round(vectorized_bca, 4),
        "vectorized_metrics_as_ranks_seconds": round(vectorized_ranks, 4),
        "loop_resamples_timed": loop_resamples,
        "loop_seconds_timed": round(loop_total, 3),
        "loop_seconds_per_resample": round(loop_total / loop_resamples, 5),
        f"loop_seconds_{n_boot}_extrapolated": round(loop_total * scale, 1),
        f"loop_pingouin_only_seconds_{n_boot}_extrapolated": round(loop_pingouin * scale, 1),
        "speedup": round(loop_total * scale / vectorized, 1),
        "speedup_vs_pingouin_only": round(loop_pingouin * scale / vectorized, 1),
        "note": f"loop times measured on {loop_resamples} resamples and extrapolated linearly to {n_boot}",
    }


if __name__ == "__main__":
    for name, value in run().items():
        print(f"{name}: {value}")
