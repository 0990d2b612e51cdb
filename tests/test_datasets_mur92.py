"""mur92 from the shared mirror and from a loopback HTTP server.

The two .mat files are read where they lie: ``$CLPIPS_SHARED/datasets/mur92``
(default ``<repo>/../shared``); missing files skip these tests, or fail them
when ``CI=true``.
"""
from __future__ import annotations

import functools
import http.server
import os
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clpips import datasets
from clpips.datasets import mur92
from clpips.datasets import download
from clpips.datasets.download import DownloadError

SHARED = Path(os.environ.get("CLPIPS_SHARED") or Path(__file__).resolve().parents[1].parent / "shared")
MIRROR = SHARED / "datasets"


@pytest.fixture(scope="module")
def mirror() -> Path:
    missing = [name for name in mur92.SHA256 if not (MIRROR / "mur92" / name).is_file()]
    if missing:
        pytest.fail(f"mur92 files {missing} not found under {MIRROR / 'mur92'} (set CLPIPS_SHARED)")
    return MIRROR


@pytest.fixture(scope="module", autouse=True)
def module_cache(tmp_path_factory):
    """Every test of this module writes into a temporary cache, never the user's."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CLPIPS_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module")
def data(mirror) -> datasets.RankingDataset:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CLPIPS_DATA_MIRROR", str(mirror))
        return datasets.load("mur92")


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty cache, and no mirror, so mur92 is fetched over HTTP."""
    monkeypatch.setenv("CLPIPS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("CLPIPS_DATA_MIRROR", raising=False)
    monkeypatch.delenv("CLPIPS_MUR92_URL", raising=False)
    return tmp_path / "cache"


@pytest.fixture
def server(mirror, tmp_path):
    """http://127.0.0.1:<port>/ serving good/ (the files), bad/ (one corrupted) and empty/."""
    for folder in ("good", "bad", "empty"):
        (tmp_path / "www" / folder).mkdir(parents=True)
    for name in mur92.SHA256:
        (tmp_path / "www" / "good" / name).symlink_to(mirror / "mur92" / name)
        corrupt = bytearray((mirror / "mur92" / name).read_bytes())
        corrupt[1000] ^= 0xFF
        (tmp_path / "www" / "bad" / name).write_bytes(bytes(corrupt))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                            functools.partial(Quiet, directory=str(tmp_path / "www")))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    thread.join()


def files_in(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def test_92_targets_by_16_raters_with_shared_candidates(data):
    table = data.table
    assert data.name == "mur92" and data.k == 10
    assert len(table) == 92 * 16 * 10
    assert table["target"].nunique() == 92 and len(data.sets()) == 92
    assert data.raters() == [f"subject{n:02d}" for n in range(1, 17)]
    candidates = table.groupby(["set_id", "rater"])["candidate"].apply(frozenset)
    assert (candidates.groupby(level="set_id").nunique() == 1).all()  # same candidates for every rater
    assert (table.groupby(["set_id", "rater"])["rank"].apply(sorted).map(tuple) == tuple(range(1, 11))).all()


def test_ranks_follow_each_raters_own_dissimilarities(data, mirror):
    rdms, raters = mur92.read_rdms(mirror / "mur92" / mur92.RDM_FILE)
    ranking = data.table.query("set_id == 't005' and rater == 'subject03'").sort_values("rank")
    indices = [int(Path(ref).stem) for ref in ranking["candidate"]]
    assert np.all(np.diff(rdms[raters.index("subject03"), 5, indices]) > 0)


def test_no_ties_occur_in_the_judgements(mirror):
    rdms, _ = mur92.read_rdms(mirror / "mur92" / mur92.RDM_FILE)
    off_diagonal = rdms[:, ~np.eye(92, dtype=bool)].reshape(16, 92, 91)
    assert all(len(np.unique(row)) == 91 for rater in off_diagonal for row in rater)


def test_equal_dissimilarities_are_rejected_or_averaged():
    rdms = np.array([[[0, 1, 1, 2], [1, 0, 3, 4], [1, 3, 0, 5], [2, 4, 5, 0]]], dtype=float)
    candidates = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])
    with pytest.raises(datasets.RankingDataError, match="rater s1 judged two candidates of target 0 equally"):
        mur92.rank_table(rdms, ["s1"], candidates, ties="reject")
    table = mur92.rank_table(rdms, ["s1"], candidates, ties="average")
    assert table.query("set_id == 't000'")["rank"].tolist() == [1.5, 1.5, 3.0]
    assert table.query("set_id == 't003'")["rank"].tolist() == [1.0, 2.0, 3.0]


def test_images_are_the_stimuli_losslessly(data, mirror):
    pixels, info = mur92.read_stimuli(mirror / "mur92" / mur92.STIMULI_FILE)
    assert data.images() == [f"images/{i:03d}.png" for i in range(92)]
    for index in (0, 45, 91):
        image = data.open_image(f"images/{index:03d}.png")
        assert image.size == (175, 175) and np.array_equal(np.asarray(image), pixels[index])
    assert data.image_info["category"].value_counts().to_dict() == {
        "natural inanimate": 23, "artificial inanimate": 21, "human bodypart": 12, "human face": 12,
        "nonhuman bodypart": 12, "nonhuman face": 12}
    assert data.image_info[["human", "face", "animal", "natural"]].dtypes.eq(bool).all()
    assert "Neuron 60(6)" in data.citation and "4:128" in data.citation and "MIT" in data.licence


def test_options_are_deterministic_and_matter(data, mirror):
    again = mur92.load(mirror=mirror)
    assert again.table.equals(data.table)
    other_seed = mur92.load(mirror=mirror, seed=1)
    assert not other_seed.table["candidate"].equals(data.table["candidate"])
    five = mur92.load(mirror=mirror, k=5, ties="average")
    assert five.k == 5 and len(five.table) == 92 * 16 * 5 and five.table["rank"].dtype == "float64"
    assert (five.table["rank"] % 1 == 0).all()  # no ties, so average ranks are whole


def test_stratified_candidates_span_near_to_far(mirror):
    data = mur92.load(mirror=mirror, candidates="stratified")
    rdms, _ = mur92.read_rdms(mirror / "mur92" / mur92.RDM_FILE)
    mean = rdms.mean(axis=0)
    for target in (0, 50, 91):
        others = np.delete(np.arange(92), target)
        order = others[np.argsort(mean[target, others], kind="stable")]  # nearest first
        position = {int(image): p for p, image in enumerate(order)}
        chosen = data.table.query(f"set_id == 't{target:03d}' and rater == 'subject01'")["candidate"]
        places = sorted(position[int(Path(ref).stem)] for ref in chosen)
        strata = np.array_split(np.arange(91), 10)
        assert [p in stratum for p, stratum in zip(places, strata)] == [True] * 10
    with pytest.raises(ValueError, match="candidates must be one of"):
        mur92.load(mirror=mirror, candidates="nearest")


def test_download_over_http_verifies_and_caches(server, cache):
    data = mur92.load(base_url=f"{server}/good")
    assert len(data.table) == 92 * 16 * 10 and data.root == cache / "data" / "mur92"
    assert sorted(p.name for p in cache.joinpath("data", "mur92").glob("*.mat")) == sorted(mur92.SHA256)
    assert not [p for p in files_in(cache) if p.name.startswith(".")]  # no temporary files left


def test_download_url_from_environment(server, cache, monkeypatch):
    monkeypatch.setenv("CLPIPS_MUR92_URL", f"{server}/good/")
    paths = mur92.fetch_files()
    assert sorted(paths) == sorted(mur92.SHA256) and all(p.parent == cache / "data" / "mur92" for p in paths.values())


def test_corrupt_download_raises_and_leaves_nothing(server, cache):
    with pytest.raises(DownloadError) as info:
        mur92.load(base_url=f"{server}/bad")
    message = str(info.value)
    assert f"{server}/bad/{mur92.RDM_FILE}" in message
    assert f"expected sha256 {mur92.SHA256[mur92.RDM_FILE]}" in message and "got " in message
    assert "CLPIPS_DATA_MIRROR" in message
    assert files_in(cache) == []


def test_missing_file_raises_and_leaves_nothing(server, cache):
    with pytest.raises(DownloadError, match="404") as info:
        mur92.load(base_url=f"{server}/empty")
    assert f"{server}/empty/{mur92.RDM_FILE}" in str(info.value)
    assert files_in(cache) == []


def test_corrupt_cached_file_is_fetched_again(mirror, cache):
    mur92.fetch_files(mirror=mirror)
    cached = cache / "data" / "mur92" / mur92.RDM_FILE
    cached.write_bytes(b"damaged")
    mur92.fetch_files(mirror=mirror)
    assert cached.read_bytes() == (mirror / "mur92" / mur92.RDM_FILE).read_bytes()


def test_missing_mirror_names_the_path_it_tried(tmp_path, cache):
    with pytest.raises(DownloadError) as info:
        mur92.fetch_files(mirror=tmp_path / "nowhere")
    assert str(tmp_path / "nowhere" / "mur92" / mur92.RDM_FILE) in str(info.value)
    assert files_in(cache) == []


# --------------------------------------------------------------------------- bad options and references
@pytest.mark.parametrize("k", [1, 92])
def test_k_outside_two_to_91_is_named(mirror, k):
    with pytest.raises(ValueError, match=f"^k must lie between 2 and 91, got {k}$"):
        mur92.load(mirror=mirror, k=k)


def test_within_refuses_an_unknown_reference_and_too_few_images(data):
    with pytest.raises(ValueError, match=r"^mur92: 'images/092\.png' is not one of its image references "
                                         r"\(images/000\.png \.\.\. images/091\.png\)$"):
        data.within(["images/000.png", "images/001.png", "images/092.png"], 0)
    with pytest.raises(ValueError, match=r"^mur92: 'images/7\.png' is not one of its image references"):
        data.within(["images/000.png", "images/001.png", "images/7.png"], 0)
    with pytest.raises(ValueError, match=r"^mur92: a split side needs at least 3 images to rank, got 2$"):
        data.within(["images/000.png", "images/001.png"], 0)
    with pytest.raises(ValueError, match=r"^mur92: a split side needs at least 3 images to rank, got 2$"):
        data.within(["images/000.png", "images/001.png", "images/001.png"], 0)   # distinct images count


def test_within_counts_an_image_named_twice_once(data):
    """A pool naming an image twice gives the rankings of the pool of distinct images (it once gave two sets
    of one target, each with half the candidates)."""
    pool = ["images/003.png", "images/010.png", "images/020.png", "images/030.png", "images/041.png"]
    pd.testing.assert_frame_equal(data.within(pool + pool[1:3], 5), data.within(pool, 5))
    assert data.within(pool, 5)["set_id"].nunique() == data.within(pool, 5)["target"].nunique() == len(pool)


# --------------------------------------------------------------------------- a folder filled atomically
def test_fresh_dir_uses_a_folder_another_process_filled_first(tmp_path):
    """A lost race: while this process builds, another renames its own finished folder into place; the
    rename then fails and that folder is used as it is, this one's temporary folder removed."""
    dest = tmp_path / "images"

    def build(tmp: Path) -> None:
        (tmp / "mine.png").write_bytes(b"mine")
        dest.mkdir()
        (dest / "theirs.png").write_bytes(b"theirs")             # the other process finished first
    assert download.fresh_dir(dest, build) == dest
    assert sorted(p.name for p in dest.iterdir()) == ["theirs.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images"]  # no temporary folder left


def test_fresh_dir_raises_a_build_error_and_leaves_nothing(tmp_path):
    def build(tmp: Path) -> None:
        (tmp / "half.png").write_bytes(b"half")
        raise OSError(28, "No space left on device")
    with pytest.raises(OSError, match="No space left on device"):
        download.fresh_dir(tmp_path / "images", build)
    assert list(tmp_path.iterdir()) == []
