"""Benchmark: peak memory and time of pair features against a study's size (issue 25, item 8).

Run from ``benchmarks/bench.py`` (``make bench``) or alone: ``python benchmarks/bench_memory.py``.
For each size in ``BENCH_MEMORY_TARGETS`` (targets, comma-separated; default ``1000,3000,10000``, the issue's curve; empty:
skip; ``1000,2000`` for a quick look: 10,000 took 5 minutes of computing on 2 cores, plus
writing its 110,000 images, and any size takes several times longer while other work shares them) it writes a
synthetic study into a temporary folder: per target one 64 x 64 PNG target and 10 PNG candidates
of its own (smooth random colour fields), 3 raters ranking each set in random orders, read with
:func:`clpips.datasets.from_csv` (``check_images=False``). A fresh Python process then computes the
pair features of every (target, candidate) into an empty feature cache
(:func:`clpips.train.pair_features_for`) and the ranked pairs' rows a fit trains on
(:func:`clpips.train.ranking_pair_index`). No fit is timed: a step of ``fit_pairs`` multiplies every
feature row, so a fit's time grows with the square of the study's size. Prints ``name: value``
lines per size ``n``:

* ``memory_peak_gb_<n>_targets``: the child process's peak resident memory (``VmHWM``), GB (10^9
  bytes), Python, torch and the backbone included (1.3 GB before any feature);
* ``seconds_<n>_targets``: its wall time for the features and pair rows (not the study's writing or
  Python's start); ``cpu_seconds_<n>_targets``: the same in process CPU time (less sensitive to
  other load); ``seconds_per_1000_targets_<n>``: wall time per 1,000 targets (flat when linear);
* ``pairs_<n>_targets``: the pair features and ranked pairs computed (10 and 135 per target).
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIZE = 64           #: image side, pixels
CANDIDATES = 10     #: candidates per target (each its own image)
RATERS = 3


def make_study(folder: Path, n_targets: int, seed: int = 0) -> Path:
    """Write a synthetic study of ``n_targets`` sets into ``folder``; return its ``rankings.csv``."""
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    lines = ["set_id,target,candidate,rater,rank"]
    for t in range(n_targets):
        names = [f"images/t{t:05d}.png"] + [f"images/t{t:05d}_c{j}.png" for j in range(CANDIDATES)]
        base = rng.integers(0, 256, (4, 4, 3))
        for j, name in enumerate(names):
            coarse = np.clip(base + (rng.normal(0, 12 * j, (4, 4, 3)) if j else 0), 0, 255).astype(np.uint8)
            image = Image.fromarray(coarse).resize((SIZE, SIZE), Image.BILINEAR)
            image.save(folder / name, compress_level=1)
        for r in range(RATERS):
            for rank, j in enumerate(rng.permutation(CANDIDATES), start=1):
                lines.append(f"s{t},{names[0]},{names[1 + j]},r{r},{rank}")
    csv = folder / "rankings.csv"
    csv.write_text("\n".join(lines) + "\n")
    return csv


def peak_rss_gb() -> float:
    """This process's peak resident memory (``VmHWM`` in ``/proc/self/status``), in GB."""
    for row in Path("/proc/self/status").read_text().splitlines():
        if row.startswith("VmHWM:"):
            return int(row.split()[1]) * 1024 / 1e9
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def child(csv: str) -> None:
    """Pair features and pair rows of the study at ``csv``; prints one JSON line (seconds, peak GB)."""
    from clpips import datasets, train  # here: torch loads in the measured process, not in the one that writes
    data = datasets.from_csv(csv, check_images=False)
    t0, cpu0 = time.perf_counter(), time.process_time()
    features = train.pair_features_for(data, data.table, progress=False)
    pairs = train.ranking_pair_index(features, data.table)
    print(json.dumps({"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - cpu0,
                      "peak_gb": peak_rss_gb(), "pairs": len(features.keys), "ranked_pairs": len(pairs)}),
          flush=True)


def measure(n_targets: int) -> dict:
    """Write a study of ``n_targets`` and run :func:`child` on it in a fresh process (empty feature cache)."""
    with tempfile.TemporaryDirectory(prefix="clpips-bench-memory-") as tmp:
        csv = make_study(Path(tmp) / "study", n_targets)
        from clpips.weights import backbone_file  # late, as clpips above; from the usual cache, as the study's is empty
        env = dict(os.environ, CLPIPS_CACHE=str(Path(tmp) / "cache"),
                   CLPIPS_BACKBONE_WEIGHTS=str(backbone_file("alex")))
        done = subprocess.run([sys.executable, __file__, "--child", str(csv)], env=env, capture_output=True,
                              text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"bench_memory child failed at {n_targets} targets: {done.stderr.strip()[-2000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])


def sizes() -> list[int]:
    """The study sizes of ``BENCH_MEMORY_TARGETS`` (a one-line error when it is not whole numbers >= 2)."""
    raw = os.environ.get("BENCH_MEMORY_TARGETS", "1000,3000,10000")
    values = [v.strip() for v in raw.split(",") if v.strip()]
    if not all(v.isdigit() and int(v) >= 2 for v in values):
        raise SystemExit(f"BENCH_MEMORY_TARGETS must be whole numbers >= 2 separated by commas, got {raw!r}")
    return [int(v) for v in values]


def run(line) -> None:
    if not sizes():
        return
    line("memory_study", f"synthetic: per target 1 + {CANDIDATES} PNG images of {SIZE}x{SIZE} px, {RATERS} raters; "
         "pair features and pair rows in a fresh process, empty cache")
    for n in sizes():
        got = measure(n)
        line(f"memory_peak_gb_{n}_targets", got["peak_gb"])
        line(f"seconds_{n}_targets", got["seconds"])
        line(f"cpu_seconds_{n}_targets", got["cpu_seconds"])
        line(f"seconds_per_1000_targets_{n}", got["seconds"] * 1000 / n)
        line(f"pairs_{n}_targets", f"{got['pairs']} pair features, {got['ranked_pairs']} ranked pairs")


def _line(name: str, value) -> None:
    print(f"{name}: {value:.4g}" if isinstance(value, float) else f"{name}: {value}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(sys.argv[2])
    else:
        run(_line)
