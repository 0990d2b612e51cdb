"""The CUDA path, checked against the CPU on the same machine: run on a machine with a GPU.

    CLPIPS_SHARED=../shared CLPIPS_DATA_MIRROR=../shared/datasets python scripts/gpu_check.py

The metric against official LPIPS on both devices, pair-feature extraction, fit_many and the nested
protocol (CLPIPS and global CLPIPS) with device="cuda" against the CPU. Writes $OUT/gpu_check.json
(or /tmp). Not a test: CI has no GPU.
"""
import csv
import json
import os
import sys
import time
from pathlib import Path

import torch

import clpips
from clpips import protocol
from clpips.book import families
import clpips.datasets
from clpips.images import load_image
from clpips.model import initial_weight_vector
from clpips.train import GridJob, fit_many, pair_features_for

out = Path(os.environ.get("OUT", "/tmp"))
report = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0), "python": sys.version.split()[0]}
fix = Path(os.environ.get("CLPIPS_SHARED", "../shared")) / "fixtures" / "lpips-reference"

# 1. the metric on the GPU reproduces official LPIPS as on the CPU
rows = list(csv.DictReader(open(fix / "expected.csv")))
cpu, gpu = clpips.CLPIPS(), clpips.CLPIPS().to("cuda")
diffs = []
for row in rows:
    a, b = load_image(fix / "dist_dir" / row["image"]), load_image(fix / "ref_dir" / row["image"])
    dc, dg = float(cpu(a, b)), float(gpu(a.cuda(), b.cuda()))
    diffs.append({"image": row["image"], "official": float(row["lpips_alex_v0.1"]), "cpu": dc, "cuda": dg})
report["metric"] = diffs
report["metric_max_abs_cuda_minus_official"] = max(abs(d["cuda"] - d["official"]) for d in diffs)
report["metric_max_abs_cuda_minus_cpu"] = max(abs(d["cuda"] - d["cpu"]) for d in diffs)

# 2. pair features: extraction on the GPU equals the CPU's
data = clpips.datasets.load("mur92")
table = data.table[data.table["target"].isin(sorted(set(data.table["target"]))[:12])]
t0 = time.perf_counter()
fc = pair_features_for(data, table, device="cpu", progress=False)
t_cpu = time.perf_counter() - t0
os.environ["CLPIPS_CACHE"] = "/tmp/clpips-gpu-cache"   # a second, empty cache: compute again on the GPU
t0 = time.perf_counter()
fg = pair_features_for(data, table, device="cuda", progress=False)
t_gpu = time.perf_counter() - t0
report["features_rel_diff"] = float(((fc.matrix - fg.matrix).abs().max() / fc.matrix.abs().max()))
report["features_seconds"] = {"cpu": t_cpu, "cuda": t_gpu, "pairs": len(fc.keys)}

# 3. fit_many on the GPU: the same weights as on the CPU (float32 sums in another order)
gen = torch.Generator().manual_seed(0)
F = torch.rand(900, 1152, generator=gen) * 0.02
pairs = torch.randint(0, 900, (20000, 2), generator=gen)
pairs = pairs[pairs[:, 0] != pairs[:, 1]]
w0 = initial_weight_vector("alex", "lpips")
jobs = [GridJob(pairs, (0.02, 0.05), (3e-3, 1e-2), (2, 5), seed=1), GridJob(pairs[5000:], (0.05,), (1e-2,), (5,), seed=2)]
out_w = {}
for dev in ("cpu", "cuda"):
    t0 = time.perf_counter()
    out_w[dev] = fit_many(F, jobs, w0, loss="logistic", device=dev, workers=1)
    report[f"fit_many_seconds_{dev}"] = time.perf_counter() - t0
report["fit_many_max_abs_diff"] = max(float((a - b.cpu()).abs().max()) for a, b in zip(out_w["cpu"], out_w["cuda"]))

# 4. the nested protocol with device="cuda" (CLPIPS and global CLPIPS) against the CPU
small = protocol.Settings(mode="target", folds=3, repeats=1, inner_folds=2,
                          grid=protocol.Grid.parse("0.02,0.05", "0.01", "2,4"), loss="logistic")
for metric in ("clpips", "global"):
    res = {}
    for dev in ("cpu", "cuda"):
        t0 = time.perf_counter()
        res[dev] = protocol.crossval(data, small, families.family(metric, {}),
                                     compute=protocol.Compute(device=dev, workers=1), cache=False)
        report[f"crossval_{metric}_seconds_{dev}"] = time.perf_counter() - t0
    a, b = res["cpu"].folds, res["cuda"].folds
    report[f"crossval_{metric}_same_choices"] = bool(a[["margin", "lr", "epochs"]].equals(b[["margin", "lr", "epochs"]]))
    report[f"crossval_{metric}_max_abs_delta_icc_diff"] = float((a["delta_icc_A_k"] - b["delta_icc_A_k"]).abs().max())
print(json.dumps(report, indent=1, default=str))
(out / "gpu_check.json").write_text(json.dumps(report, indent=1, default=str))
