"""The simulated study: paper-shaped, byte-for-byte reproducible, with known truth."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clpips import datasets
from clpips.book import simulated
from clpips.book.scenes import NAMES
from tolerance import dot_bound

SMALL = dict(n_groups=2, per_group=2, targets_per_group=2, iterations=4, image_size=32)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("CLPIPS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> datasets.RankingDataset:
    """The default design (4 groups x 5 participants x 10 targets x 10 iterations)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CLPIPS_CACHE", str(tmp_path_factory.mktemp("cache")))
        return datasets.load("simulated")


def digest(folder: Path) -> str:
    """sha256 over every file's relative path and bytes."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes(tmp_path, monkeypatch):
    roots = []
    for name in ("one", "two"):
        monkeypatch.setenv("CLPIPS_CACHE", str(tmp_path / name))
        roots.append(simulated.load(**SMALL, seed=7).root)
    assert roots[0] != roots[1] and roots[0].name == roots[1].name  # same design key, different caches
    assert digest(roots[0]) == digest(roots[1])
    assert len(list(roots[0].rglob("*.png"))) == 2 * 2 + 2 * 2 * 2 * 4  # targets + regenerations
    assert not [p for p in roots[0].parent.iterdir() if p.name.startswith(".")]  # no temporary folder left
    other = simulated.load(**SMALL, seed=8)
    assert other.root.name != roots[1].name and digest(other.root) != digest(roots[1])


def test_second_load_reads_the_cache(cache):
    first = simulated.load(**SMALL)
    stamp = (first.root / "rankings.csv").stat().st_mtime_ns
    again = simulated.load(**SMALL)
    assert again.table.equals(first.table) and (again.root / "rankings.csv").stat().st_mtime_ns == stamp


def test_paper_shaped_design(study):
    table = study.table
    assert study.name == "simulated" and study.k == 10
    assert len(study.raters()) == 20 and len(study.sets()) == 200 and len(table) == 2000
    assert table.groupby("group")["rater"].nunique().to_dict() == {f"g{g}": 5 for g in range(1, 5)}
    targets = table.groupby("group")["target"].unique().map(set)
    assert all(len(t) == 10 for t in targets) and len(set.union(*targets)) == 40  # each group its own targets
    assert (table.groupby("set_id")[["rater", "target"]].nunique() == 1).all().all()
    assert not table.duplicated(["rater", "target", "candidate"]).any()
    assert table.apply(lambda row: row.candidate.startswith(f"candidates/{row.rater}/"), axis=1).all()
    assert (table.groupby("set_id")["iteration"].apply(sorted).map(tuple) == tuple(range(1, 11))).all()
    assert table[["group", "iteration", "prompt"]].notna().all().all()
    image = study.open_image(table["candidate"].iloc[0])
    assert image.size == (128, 128) and image.mode == "RGB"


def test_prompts_describe_the_rendered_scenes(study):
    scenes = study.truth.scenes.set_index("image")
    assert study.table["prompt"].equals(study.table["candidate"].map(scenes["prompt"]))
    first = scenes.loc[study.table["candidate"].iloc[0]]
    where = {"left": "on the left", "centre": "in the centre", "right": "on the right", "top": "at the top",
             "bottom": "at the bottom"}[first["position"]]
    assert study.table["prompt"].iloc[0] == (f"a {first['size']} {first['colour']} {first['texture']} "
                                             f"{first['shape']} {where}, {first['background']} background")


def test_each_iteration_changes_some_attribute(study):
    scenes = study.truth.scenes.set_index("image")[list(NAMES)]
    ordered = study.table.sort_values(["set_id", "iteration"])
    for _, part in ordered.groupby("set_id"):
        attributes = scenes.loc[part["candidate"]].to_numpy()
        assert ((attributes[1:] != attributes[:-1]).any(axis=1)).all()


def test_truth_explains_the_ranks(study):
    truth = study.truth
    weights = truth.weights.set_index("rater")[list(NAMES)]
    # weights normalised to sum 1, re-added here: each sum within 2 gamma_m of 1 (m attributes, positive terms)
    assert np.allclose(weights.sum(axis=1), 1, rtol=0, atol=dot_bound(1.0, weights.shape[1] + 1, np.float64))
    assert (weights > 0).all().all()
    scenes = truth.scenes.set_index("image")[list(NAMES)]
    merged = study.table.merge(truth.utilities, on=["set_id", "rater", "candidate"], validate="one_to_one")
    match = scenes.loc[merged["candidate"]].to_numpy() == scenes.loc[merged["target"]].to_numpy()
    recomputed = (match * weights.loc[merged["rater"]].to_numpy()).sum(axis=1)
    # U = sum_a w_a [candidate_a == target_a]: sums of at most m positive weights (<= 1), two programs
    assert np.allclose(recomputed, merged["utility"], rtol=0, atol=dot_bound(1.0, weights.shape[1], np.float64))
    by_judged = merged.groupby("set_id")["judged"].rank(ascending=False).astype(int)
    assert (by_judged == merged["rank"]).all()  # rank 1 = highest judged utility
    assert np.corrcoef(merged["utility"], merged["judged"])[0, 1] > 0.8


def test_without_noise_ranks_follow_utility(cache):
    data = simulated.load(**SMALL, noise=0.0)
    merged = data.table.merge(data.truth.utilities, on=["set_id", "rater", "candidate"])
    assert np.array_equal(merged["utility"], merged["judged"])
    for _, part in merged.groupby("set_id"):
        order = part.sort_values(["utility", "iteration"], ascending=[False, True])
        assert order["rank"].tolist() == list(range(1, len(part) + 1))


def test_sizes_are_parameters(cache):
    data = simulated.load(n_groups=3, per_group=1, targets_per_group=2, iterations=5, image_size=48)
    assert len(data.raters()) == 3 and len(data.sets()) == 6 and data.k == 5
    assert data.open_image(data.images()[0]).size == (48, 48)
    assert data.truth.group_weights["group"].tolist() == ["g1", "g2", "g3"]
    with pytest.raises(TypeError):
        simulated.load(participants=3)
    assert isinstance(data.truth.utilities, pd.DataFrame)
