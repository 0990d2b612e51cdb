"""Speed of CLPIPS training and of the bootstrap, measured side by side (``make bench``).

Prints ``name: value`` lines. On the mur92 defaults (46,080 training pairs, 10 epochs):

* ``fit_s``: our fit from scratch: feature extraction (each unique image through
  the backbone once, empty cache) + linear training;
* ``floor_s``: one backbone pass over the unique images (read + forward): no fit
  can extract features faster;
* ``naive_s``: the lpips-trainer way, forward and backward through LPIPS for
  every pair every epoch; a full epoch takes about half an hour on 2 cores, so a
  few batches are timed and extrapolated (``naive_extrapolated: true``);
* ``bootstrap_s`` vs ``pingouin_loop_s``: 10,000 paired resamples of a 300-set
  evaluation vs a loop calling ``pingouin.intraclass_corr`` (also extrapolated);
* ``fit_train_s``, ``fit_features_s``: ``fit_s`` split into the linear training
  (``train.fit_pairs``) and the rest (feature extraction and cache writes);
* ``protocol_seconds_target``, ``protocol_vs_loop``, ``protocol_goal`` (and ``_image``):
  the default nested protocol on mur92 (features warm) against an extrapolated loop of
  ``fit_pairs`` calls doing the same fits (``benchmarks/bench_protocol.py``);
* ``memory_peak_gb_<n>_targets``, ``seconds_<n>_targets``: peak memory and time of a fresh process computing
  the pair features of a synthetic study of ``n`` targets (11 images of 64 px each), for the sizes in
  ``BENCH_MEMORY_TARGETS`` (default ``1000,3000,10000``, the issue's curve; ``1000,2000`` for a quick look; empty to
  skip) (``benchmarks/bench_memory.py``);
* ``peak_rss_mb``: the process's peak resident memory.

Goals (issue 4): fit >= 1000x faster than naive, <= 1.3x the floor; bootstrap >= 100x
faster than the pingouin loop. Issue 9: the protocol <= 120 s on 2 cores and >= 10x faster
than the loop. The naive loop on a GPU was measured at about 35 s
(H100) in the prototype; ``fit_s`` below that means 2 CPU cores beat it.
"""
from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clpips import datasets  # noqa: E402
from clpips.defaults import DEFAULTS  # noqa: E402
from clpips.images import load_image  # noqa: E402
from clpips.model import CLPIPS  # noqa: E402
from clpips.pairs import ranking_pairs  # noqa: E402
from clpips.features import pair_features  # noqa: E402
from clpips.train import fit  # noqa: E402
from clpips.weights import backbone_file  # noqa: E402

EPOCHS = 10
NAIVE_BATCHES = int(os.environ.get("BENCH_NAIVE_BATCHES", "3"))
GPU_NAIVE_REFERENCE_S = 35.0  # naive lpips loop, mur92-shaped, 10 epochs, one H100 (issue 4's prototype)


def line(name: str, value) -> None:
    if isinstance(value, float):
        value = f"{value:.4g}"
    print(f"{name}: {value}", flush=True)


def time_floor(data, metric: CLPIPS) -> float:
    t0 = time.perf_counter()
    with torch.no_grad():
        images = [load_image(data.image_path(ref)) for ref in data.images()]
        for i in range(0, len(images), 32):
            metric.layer_features(torch.cat(images[i:i + 32]))
    return time.perf_counter() - t0


def time_fit(data, train_rows, metric: CLPIPS) -> tuple[float, int, float]:
    """Feature extraction into an empty cache, then linear training (the backbone is already loaded)."""
    with tempfile.TemporaryDirectory() as cache:
        old = os.environ.get("CLPIPS_CACHE")
        os.environ.setdefault("CLPIPS_BACKBONE_WEIGHTS", str(backbone_file("alex")))
        os.environ["CLPIPS_CACHE"] = cache  # empty feature cache: extraction is part of the fit
        try:
            t0 = time.perf_counter()
            keys = train_rows[["target", "candidate"]].drop_duplicates().itertuples(index=False, name=None)
            features = pair_features(data, list(keys), metric=metric, progress=False)
            result = fit(data, train_rows, val_size=0.0, epochs=EPOCHS, patience=EPOCHS, features=features,
                         progress=False)
            return time.perf_counter() - t0, result.config["n_train_pairs"], result.seconds
        finally:
            if old is None:
                os.environ.pop("CLPIPS_CACHE")
            else:
                os.environ["CLPIPS_CACHE"] = old


def time_naive(data, pairs, metric: CLPIPS) -> tuple[float, int]:
    """Seconds per batch of the lpips-trainer loop: LPIPS forward on (ref, p0) and (ref, p1), backward, step."""
    import lpips

    net = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)
    net.net.load_state_dict(metric.net.state_dict(), strict=True)
    for i, lin in enumerate(net.lins):
        lin.model[1].weight.data.copy_(metric.lins[i].model[1].weight.data)
    params = [p for lin in net.lins for p in lin.parameters()]
    opt = torch.optim.Adam(params, lr=DEFAULTS.lr)
    images = {ref: load_image(data.image_path(ref)) for ref in data.images()}
    batch = DEFAULTS.batch_size
    times = []
    for b in range(NAIVE_BATCHES + 1):  # the first batch warms up and is not counted
        rows = pairs.iloc[b * batch:(b + 1) * batch]
        ref = torch.cat([images[r] for r in rows["target"]])
        p0 = torch.cat([images[r] for r in rows["better"]])
        p1 = torch.cat([images[r] for r in rows["worse"]])
        t0 = time.perf_counter()
        d0, d1 = net(ref, p0), net(ref, p1)
        loss = torch.clamp(DEFAULTS.margin - (d1 - d0), min=0).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            for p in params:
                p.clamp_(min=0)
        if b:
            times.append(time.perf_counter() - t0)
    return sum(times) / len(times), batch


def main() -> None:
    torch.manual_seed(0)
    data = datasets.load("mur92", k=DEFAULTS.k, candidates=DEFAULTS.candidates, seed=DEFAULTS.seed)
    train_rows, _ = datasets.split_by_target(data.table, test_size=DEFAULTS.test_size, seed=DEFAULTS.seed)
    pairs = ranking_pairs(train_rows)
    line("dataset", f"mur92 ({len(data.images())} unique images, {len(pairs)} training pairs, {EPOCHS} epochs)")
    line("threads", torch.get_num_threads())

    metric = CLPIPS()
    floor = min(time_floor(data, metric) for _ in range(2))
    fit_s, n_pairs, train_s = time_fit(data, train_rows, metric)
    line("floor_s", floor)
    line("fit_s", fit_s)
    line("fit_train_s", train_s)
    line("fit_features_s", fit_s - train_s)
    line("fit_over_floor", fit_s / floor)

    per_batch, batch = time_naive(data, pairs, metric)
    naive = per_batch * (n_pairs / batch) * EPOCHS
    line("naive_s_per_batch", per_batch)
    line("naive_batches_timed", NAIVE_BATCHES)
    line("naive_s", naive)
    line("naive_extrapolated", "true (from the timed batches to all batches of all epochs)")
    line("naive_over_fit", naive / fit_s)
    line("gpu_naive_reference_s", GPU_NAIVE_REFERENCE_S)
    line("fit_faster_than_gpu_naive", fit_s < GPU_NAIVE_REFERENCE_S)

    from bench_bootstrap import run as run_bootstrap  # noqa: E402  (same folder)
    for name, value in run_bootstrap().items():
        line(name, value)

    from bench_protocol import run as run_protocol  # noqa: E402  (same folder)
    run_protocol(line)

    from bench_aligned import run as run_aligned  # noqa: E402  (same folder)
    run_aligned(line)

    from bench_memory import run as run_memory  # noqa: E402  (same folder)
    run_memory(line)
    line("peak_rss_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
