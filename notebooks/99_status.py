# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # How this build was made
#
# This notebook runs last (`make book` runs the chapters in order) and records what produced
# the book you are reading: the code's commit, the package versions, the seeds, how long each
# chapter took, and the checksums of the data and weights it read or wrote. The
# {doc}`/book/status` page pastes these tables.

# %%
import hashlib
import importlib.util
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pandas as pd
from myst_nb import glue

from clpips.apps import notebook_runner
from clpips.book.defaults import DEFAULTS
from clpips.paths import cache_dir

out_dir = Path(os.environ.get("CLPIPS_NOTEBOOK_OUT", ".")).resolve()
repo = Path(os.environ.get("CLPIPS_REPO_ROOT", notebook_runner.REPO)).resolve()

# %% [markdown]
# ## Code and packages

# %%
def git(*args: str) -> str:
    try:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


commit = git("rev-parse", "HEAD") or "unknown (not a git checkout)"
if git("status", "--porcelain", "--untracked-files=no"):
    commit += " (with uncommitted changes)"
glue("status_commit", commit, display=False)
glue("status_python", platform.python_version(), display=False)
glue("status_platform", platform.platform(), display=False)

PACKAGES = ["clpips", "torch", "torchvision", "lpips", "numpy", "scipy", "pandas", "pingouin",
            "matplotlib", "pillow", "scikit-image", "ipywidgets", "papermill", "jupytext",
            "jupyter-book", "myst-nb", "sphinx"]


def version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        if name == "clpips":      # run from a checkout that is not pip-installed
            import clpips
            return f"{clpips.__version__} (not installed)"
        return "not installed"


versions = pd.DataFrame({"package": ["python"] + PACKAGES,
                         "version": [platform.python_version()] + [version(p) for p in PACKAGES]})
glue("status_versions", versions.style.hide(axis="index"), display=False)
print(f"commit {commit}")
versions.style.hide(axis="index")

# %% [markdown]
# ## Seeds and run times
#
# Each chapter's seed is its `seed` parameter: the value given to `clpips run` when there was
# one, else the default in its parameters cell. Run times are wall-clock seconds of the whole
# notebook, from `execution.json` in the output folder.

# %%
def default_value(text: str) -> object:
    """A parameters cell's default as its value: `DEFAULTS.seed` is read from the defaults."""
    return getattr(DEFAULTS, text.removeprefix("DEFAULTS.")) if text.startswith("DEFAULTS.") else text


record = notebook_runner.read_record(out_dir)["notebooks"]
rows = []
for source in notebook_runner.list_notebooks():
    entry = record.get(source.stem)
    declared = notebook_runner.notebook_parameters(source)
    given = (entry or {}).get("parameters") or {}
    seed = "—"
    if "seed" in declared:
        seed = given.get("seed", default_value(declared["seed"].default))
    rows.append({
        "notebook": source.stem,
        "status": entry["status"] if entry else "not run",
        "seconds": entry["seconds"] if entry else float("nan"),
        "seed": str(seed),
        "parameters given": ", ".join(f"{name}={value}" for name, value in given.items()),
        "started (UTC)": entry["started"][:16].replace("T", " ") if entry else "",
    })
runs = pd.DataFrame(rows)
total = float(runs.loc[runs["notebook"] != "99_status", "seconds"].sum())
glue("status_default_seed", int(DEFAULTS.seed), display=False)
glue("status_total_seconds", total, display=False)
runs_styled = runs.style.hide(axis="index").format({"seconds": "{:.1f}"}, na_rep="—")
glue("status_runs", runs_styled, display=False)
runs_styled

# %% [markdown]
# ## Checksums of data and weights
#
# SHA-256 of the files the chapters read from the data mirror and the `clpips` cache, of the
# LPIPS linear weights shipped by the `lpips` package, and of every weights file the chapters
# wrote into the output folder. A folder of many files (extracted images) is summarised by one
# digest: the SHA-256 of its sorted `relative path  sha256` lines, as `sha256sum` prints them.

# %%
def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def files_under(root: Path, pattern: str = "*") -> list[Path]:
    return sorted(p for p in root.rglob(pattern) if p.is_file()) if root.is_dir() else []


def label(path: Path) -> str:
    for base, name in ((out_dir, "OUT"), (cache_dir(), "CACHE"),
                       (Path(mirror) if mirror else None, "MIRROR")):
        if base is not None and path.resolve().is_relative_to(base.resolve()):
            return f"{name}/{path.resolve().relative_to(base.resolve()).as_posix()}"
    return path.name


def rows_for(what: str, root: Path, pattern: str = "*", max_files: int = 12) -> list[dict]:
    """One row per file, or one per sub-folder of ``root`` holding more than ``max_files``."""
    files = files_under(root, pattern)
    rows, folders = [], {}
    for path in files:
        parts = path.relative_to(root).parts
        if len(parts) > 1:
            folders.setdefault(root / parts[0], []).append(path)
        else:
            rows.append({"what": what, "file": label(path), "files": 1,
                         "bytes": path.stat().st_size, "sha256": sha256(path)})
    for folder, members in sorted(folders.items()):
        if len(members) <= max_files:
            rows += [{"what": what, "file": label(p), "files": 1, "bytes": p.stat().st_size,
                      "sha256": sha256(p)} for p in members]
            continue
        listing = "".join(f"{sha256(p)}  {p.relative_to(folder).as_posix()}\n" for p in members)
        rows.append({"what": what, "file": label(folder) + "/", "files": len(members),
                     "bytes": sum(p.stat().st_size for p in members),
                     "sha256": hashlib.sha256(listing.encode()).hexdigest()})
    return rows


mirror = os.environ.get("CLPIPS_DATA_MIRROR")
rows = []
if mirror:
    rows += rows_for("data mirror", Path(mirror))
rows += rows_for("cached data", cache_dir() / "data")
rows += rows_for("backbone weights", cache_dir() / "weights", "*.pth")
lpips_spec = importlib.util.find_spec("lpips")   # where it is installed, without importing torch (2.5 s)
if lpips_spec is not None and lpips_spec.origin:
    rows += rows_for("LPIPS linear weights", Path(lpips_spec.origin).parent / "weights" / "v0.1", "alex.pth")
rows += rows_for("weights written by the chapters", out_dir, "*.pth")

checksums = pd.DataFrame(rows, columns=["what", "file", "files", "bytes", "sha256"])
glue("status_n_files", int(checksums["files"].sum()), display=False)
checks_styled = (checksums.style.hide(axis="index").format({"bytes": "{:,}"})
                 .set_properties(subset=["sha256", "file"],
                                 **{"font-family": "monospace", "word-break": "break-all"}))
glue("status_checksums", checks_styled, display=False)
checks_styled
