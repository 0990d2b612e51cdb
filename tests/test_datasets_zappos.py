"""zappos: fetching (mirror and loopback HTTP), Bradley–Terry rankings, ``within``, split-half.

The files are read where they lie: ``$CLPIPS_SHARED/datasets/zappos`` (default
``<repo>/../shared``); missing files fail the tests that need them (they are
correctness anchors). The fitting and split-half tests run on triplets made here.
"""
from __future__ import annotations

import functools
import http.server
import itertools
import re
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from scipy import optimize, stats
from scipy.sparse.csgraph import connected_components

from clpips import datasets
from clpips.book.agreement import split_half, split_half_ranks
from clpips.datasets import zappos
from clpips.datasets.download import DownloadError

from conftest import shared_path
from helpers import record_calls
from tolerance import assert_same_fit, icc_bound, iterative_bound, spearman_bound


@pytest.fixture(scope="module")
def mirror() -> Path:
    """The folder to use as ``CLPIPS_DATA_MIRROR`` (it holds ``zappos/``)."""
    return shared_path("datasets", "zappos", zappos.TRIPLETS_FILE).parents[1]


@pytest.fixture(scope="module", autouse=True)
def module_cache(tmp_path_factory):
    """Every test of this module writes into a temporary cache, never the user's."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CLPIPS_CACHE", str(tmp_path_factory.mktemp("cache")))
        env.delenv("CLPIPS_DATA_MIRROR", raising=False)
        env.delenv("CLPIPS_ZAPPOS_URL", raising=False)
        yield


@pytest.fixture(scope="module")
def data(mirror) -> datasets.RankingDataset:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CLPIPS_DATA_MIRROR", str(mirror))
        return datasets.load("zappos")


@pytest.fixture(scope="module")
def triplets(mirror) -> np.ndarray:
    return zappos.read_triplets(mirror / "zappos" / zappos.TRIPLETS_FILE)


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty cache, and no mirror, so files are fetched over HTTP."""
    monkeypatch.setenv("CLPIPS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("CLPIPS_DATA_MIRROR", raising=False)
    monkeypatch.delenv("CLPIPS_ZAPPOS_URL", raising=False)
    return tmp_path / "cache"


@pytest.fixture
def server(mirror):
    """``http://127.0.0.1:<port>`` serving the mirror's zappos files read-only;
    ``overrides`` maps a file name to other bytes, or to None for a 404."""
    overrides: dict[str, bytes | None] = {}

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            name = self.path.lstrip("/")
            if name in overrides:
                body = overrides[name]
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                            functools.partial(Handler, directory=str(mirror / "zappos")))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", overrides
    httpd.shutdown()
    thread.join()
    httpd.server_close()


@pytest.fixture
def few_files(monkeypatch):
    """A three-file SHA table, so a download test fetches little."""
    subset = {name: zappos.SHA256[name] for name in ("images/0.jpg", "images/17.jpg", "images/3.jpg")}
    monkeypatch.setattr(zappos, "SHA256", subset)
    return subset


def files_in(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def win_share(triplets: np.ndarray, head: int) -> np.ndarray:
    """Share of its comparisons each image won for ``head`` (NaN where never compared)."""
    own = triplets[triplets[:, 0] == head]
    wins = np.bincount(own[:, 1], minlength=zappos.N_IMAGES).astype(float)
    losses = np.bincount(own[:, 2], minlength=zappos.N_IMAGES)
    with np.errstate(invalid="ignore"):
        return wins / (wins + losses)


# --------------------------------------------------------------------------- files
def test_packaged_sums_are_the_published_list(mirror):
    published = zappos.read_sha256_table((mirror / "zappos" / "SHA256SUMS").read_text())
    assert zappos.SHA256 == published and len(published) == 86
    assert published[zappos.TRIPLETS_FILE] == "c36e790fbea1f992e44237be15a90781ff7e1d7bb827170bcd7603eb9dcbd02f"
    assert sorted(n for n in published if n.startswith("images/")) == sorted(f"images/{i}.jpg" for i in range(85))


def test_mirror_from_the_environment(data, mirror):
    assert data.name == "zappos" and data.root.parent.name == "data" and data.root.name == "zappos"
    for name in ("images/0.jpg", "images/84.jpg", zappos.TRIPLETS_FILE):
        assert data.image_path(name).read_bytes() == (mirror / "zappos" / name).read_bytes()
    assert not [p for p in files_in(data.root) if p.name.startswith(".")]
    assert data.open_image("images/5.jpg").size == (136, 102)
    assert "arXiv:1511.02254" in data.citation and "CVPR" in data.citation
    assert "BSD 3-Clause" in data.licence and "non-commercial" in data.licence


def test_download_over_http_gives_the_mirror_table(server, cache, data):
    url, _ = server
    fetched = zappos.load(base_url=url)
    assert fetched.root == cache / "data" / "zappos"
    assert len(files_in(fetched.root)) == 86
    assert fetched.table.equals(data.table)


def test_download_url_from_environment(server, cache, monkeypatch, few_files):
    url, _ = server
    monkeypatch.setenv("CLPIPS_ZAPPOS_URL", url + "/")
    paths = zappos.fetch_files()
    assert sorted(paths) == sorted(few_files)
    assert all(p.is_file() and cache / "data" / "zappos" in p.parents for p in paths.values())


def test_corrupt_image_is_refused_by_name_and_leaves_nothing(server, cache, few_files, mirror):
    url, overrides = server
    corrupt = bytearray((mirror / "zappos" / "images" / "17.jpg").read_bytes())
    corrupt[200] ^= 0xFF
    overrides["images/17.jpg"] = bytes(corrupt)
    with pytest.raises(DownloadError) as info:
        zappos.fetch_files(base_url=url)
    message = str(info.value)
    assert "\n" not in message
    assert f"{url}/images/17.jpg" in message and f"expected sha256 {few_files['images/17.jpg']}" in message
    assert "CLPIPS_DATA_MIRROR" in message
    cached = {p.relative_to(cache / "data" / "zappos").as_posix() for p in files_in(cache)}
    assert cached == {"images/0.jpg"}  # the file before it is kept (verified); the corrupt one is not


def test_missing_file_is_named_and_leaves_nothing(server, cache, few_files):
    url, overrides = server
    overrides["images/0.jpg"] = None
    with pytest.raises(DownloadError, match="404") as info:
        zappos.fetch_files(base_url=url)
    assert f"{url}/images/0.jpg" in str(info.value) and "\n" not in str(info.value)
    assert files_in(cache) == []


def test_corrupt_cached_file_is_fetched_again(mirror, cache, few_files):
    zappos.fetch_files(mirror=mirror)
    cached = cache / "data" / "zappos" / "images" / "3.jpg"
    cached.write_bytes(b"damaged")
    zappos.fetch_files(mirror=mirror)
    assert cached.read_bytes() == (mirror / "zappos" / "images" / "3.jpg").read_bytes()


def test_triplets_file_is_read_and_checked(triplets, tmp_path):
    assert triplets.shape == (283_770, 3) and triplets.dtype == np.int64
    assert triplets.min() == 0 and triplets.max() == 84
    assert np.bincount(triplets[:, 0], minlength=85).min() >= 3161
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr("t.csv", "1,2,3\n4,4,5\n")
    with pytest.raises(datasets.RankingDataError, match=r"bad\.zip, line 2: \[4, 4, 5\]"):
        zappos.read_triplets(bad)
    (tmp_path / "not.zip").write_bytes(b"plain text")
    with pytest.raises(datasets.RankingDataError, match=r"not\.zip: not a zip file"):
        zappos.read_triplets(tmp_path / "not.zip")


# --------------------------------------------------------------------------- Bradley–Terry
def bt_gradient(wins: np.ndarray, s: np.ndarray) -> np.ndarray:
    """The gradient of the Bradley–Terry negative log-likelihood at strengths ``s``."""
    i, j = np.nonzero(wins)
    counts = wins[i, j]
    p = 1.0 / (1.0 + np.exp(s[i] - s[j]))  # P(j beats i)
    g = np.zeros_like(s)
    np.add.at(g, i, -counts * p)
    np.add.at(g, j, counts * p)
    return g


def bt_distance_to_optimum(wins: np.ndarray, s: np.ndarray) -> float:
    """A first-order a-posteriori bound on how far strengths ``s`` (mean 0) lie from the maximum-likelihood
    ones: ``||s - s*|| <= ||H^+|| ||grad(s)||``, with ``H`` the Hessian of the (strictly convex, on mean-0
    strengths) negative log-likelihood, ``sum n_ij p (1 - p) (e_i - e_j)(e_i - e_j)^T``, and ``H^+`` its
    pseudo-inverse (the all-ones direction is the free mean). A converged fit's distance is set by its
    stopping rule (a gradient or a step below a tolerance), not by float rounding."""
    i, j = np.nonzero(wins)
    p = 1.0 / (1.0 + np.exp(s[i] - s[j]))
    hessian = np.zeros((len(s), len(s)))
    for a, b, c, q in zip(i, j, wins[i, j], p):
        e = np.zeros(len(s))
        e[a], e[b] = 1.0, -1.0
        hessian += c * q * (1 - q) * np.outer(e, e)
    return float(np.linalg.norm(np.linalg.pinv(hessian), 2) * np.linalg.norm(bt_gradient(wins, s)))


def bt_reference(wins: np.ndarray) -> np.ndarray:
    """Maximum-likelihood Bradley–Terry strengths by scipy.optimize on the log-likelihood (mean 0)."""
    i, j = np.nonzero(wins)
    counts = wins[i, j]

    def nll(s):
        return float(np.sum(counts * np.logaddexp(0.0, -(s[i] - s[j]))))

    res = optimize.minimize(nll, np.zeros(len(wins)), jac=lambda s: bt_gradient(wins, s), method="BFGS",
                            options={"gtol": 1e-10})
    assert res.success
    return res.x - res.x.mean()


def test_bradley_terry_is_the_maximum_likelihood():
    rng = np.random.default_rng(3)
    truth = rng.normal(size=6)
    upper = np.triu_indices(6, 1)
    n = rng.integers(3, 9, size=len(upper[0]))
    won = rng.binomial(n, 1 / (1 + np.exp(truth[upper[1]] - truth[upper[0]])))  # i's wins over j > i
    wins = np.zeros((6, 6))
    wins[upper], wins[upper[::-1]] = won, n - won
    strong, _ = connected_components(wins, directed=True, connection="strong")
    assert strong == 1  # so the maximum-likelihood estimate exists
    fitted = zappos.bradley_terry(wins, alpha=0.0)
    ours, ref = fitted - fitted.mean(), bt_reference(wins.astype(float))
    # both within their stopping rules' distance of the optimum (bt_distance_to_optimum, doubled for the
    # first order's neglected curvature), plus float64's rounding of the strengths
    tol = 2 * (bt_distance_to_optimum(wins.astype(float), ours) + bt_distance_to_optimum(wins.astype(float), ref)) \
        + iterative_bound(max(1.0, float(np.abs(ref).max())), np.float64)
    assert np.max(np.abs(ours - ref)) <= tol
    # the regularised fit is pulled towards equal strengths, same order here
    shrunk = zappos.bradley_terry(wins, alpha=zappos.ALPHA)
    assert np.ptp(shrunk) < np.ptp(fitted) and stats.spearmanr(shrunk, fitted).statistic > 0.99


def test_strengths_follow_the_order_of_a_clear_case():
    order = np.array([3, 0, 4, 1, 2])  # item 3 strongest, 2 weakest
    wins = np.zeros((5, 5))
    for a, b in itertools.combinations(order, 2):  # every pair, the stronger always wins
        wins[a, b] = 4
    strengths = zappos.bradley_terry(wins)
    assert np.all(np.isfinite(strengths))
    assert list(np.argsort(-strengths)) == list(order)
    share = wins.sum(axis=1) / (wins.sum(axis=1) + wins.sum(axis=0))
    assert list(np.argsort(-share)) == list(order)


def test_ranks_are_strongest_first_and_average_ties():
    assert zappos.strength_ranks([0.5, 2.0, -1.0]).tolist() == [2.0, 1.0, 3.0]
    assert zappos.strength_ranks([1.0, 1.0 + 1e-9, 3.0, -2.0]).tolist() == [2.5, 2.5, 1.0, 4.0]


def test_bradley_terry_rejects_bad_input():
    with pytest.raises(ValueError, match="square matrix"):
        zappos.bradley_terry(np.ones((2, 3)))


def test_real_strengths_agree_with_win_shares(triplets):
    for head in (0, 42, 84):
        others = np.delete(np.arange(85), head)
        strengths = zappos.head_strengths(triplets, head, others)
        assert stats.spearmanr(strengths, win_share(triplets, head)[others]).statistic > 0.99



def test_head_triplets_fit_what_head_strengths_fits_and_remember_it(triplets):
    heads = zappos.HeadTriplets(triplets)
    rng = np.random.default_rng(0)
    for head in (0, 42, 84):
        own = heads.of(head)
        assert np.array_equal(own, triplets[triplets[:, 0] == head])  # same rows, same order
        items = np.sort(rng.choice(np.delete(np.arange(85), head), 40, replace=False))
        first = heads.strengths(head, items)
        assert np.array_equal(first, zappos.head_strengths(triplets, head, items))  # bit for bit
        assert heads.strengths(head, items) is first  # the second call is the remembered fit
        assert not np.array_equal(heads.strengths(head, items, alpha=0.1), first)  # alpha is part of the key


def test_rankings_from_head_triplets_equal_rankings_from_the_array(triplets):
    pool = np.arange(0, 85, 2)
    plain = zappos.rankings(triplets, pool, k=6, sets_per_target=2, seed=3)
    heads = zappos.HeadTriplets(triplets)
    assert zappos.rankings(heads, pool, k=6, sets_per_target=2, seed=3).equals(plain)
    assert zappos.rankings(heads, pool, k=6, sets_per_target=2, seed=3).equals(plain)  # from remembered fits
    # a direct loop: each set's ranks from its head's strengths over the pool
    for sid, part in plain.groupby("set_id"):
        head = zappos.image_index(part["target"].iloc[0])
        others = pool[pool != head]
        s = dict(zip(others, zappos.head_strengths(triplets, head, others)))
        values = np.array([s[zappos.image_index(c)] for c in part["candidate"]])
        tol = zappos.TIE_TOLERANCE  # average ranks: 1 + stronger + (tied - 1) / 2
        expected = [1 + np.sum(values > v + tol) + (np.sum(np.abs(values - v) <= tol) - 1) / 2 for v in values]
        assert np.array_equal(part["rank"].to_numpy(), expected)



def test_within_remembers_its_tables_and_hands_out_copies(data, triplets):
    images = data.images()[::2]
    first = data.within(images, 5)
    first.loc[0, "rank"] = 99.0                          # a caller's change stays with the caller
    again = data.within(images, 5)
    plain = zappos.within(images, 5, triplets=triplets, root=data.root)   # no memory: computed afresh
    assert again.equals(plain) and again.loc[0, "rank"] != 99.0
    assert not data.within(images, 6).equals(plain)      # the seed is part of the key


# --------------------------------------------------------------------------- rankings
def test_rankings_are_valid_sets_of_k(data):
    table = data.table
    assert list(table.columns) == list(datasets.REQUIRED)
    assert data.k == 10 and len(data.sets()) == 85 * 2 and len(table) == 85 * 2 * 10
    assert data.raters() == ["crowd"] and table["target"].nunique() == 85
    assert datasets.validate(table, data.root, k=10, ties="average").equals(table)
    assert (table.groupby("set_id")["rank"].sum() == 55).all()  # ranks (ties averaged) of 1..10: halves, exact
    per_target = table.groupby("target")["candidate"].agg(lambda c: (len(c), c.nunique()))
    assert all(n == unique == 20 for n, unique in per_target)  # two disjoint sets of 10


def test_rank_one_won_more_often_than_rank_k(data, triplets):
    for _, part in data.table.groupby("set_id"):
        share = win_share(triplets, zappos.image_index(part["target"].iloc[0]))
        ordered = part.sort_values("rank")["candidate"].map(zappos.image_index).to_numpy()
        assert share[ordered[0]] > share[ordered[-1]]
    pooled = [stats.spearmanr(part["rank"], -win_share(triplets, zappos.image_index(part["target"].iloc[0]))[
        part["candidate"].map(zappos.image_index)]).statistic for _, part in data.table.groupby("set_id")]
    assert np.mean(pooled) > 0.9


def test_same_seed_same_bytes_and_seed_matters(data, mirror, tmp_path):
    again = zappos.load(mirror=mirror)
    data.to_csv(tmp_path / "a.csv")
    again.to_csv(tmp_path / "b.csv")
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    other = zappos.load(mirror=mirror, seed=1, k=5, sets_per_target=3)
    assert other.k == 5 and len(other.sets()) == 85 * 3
    assert not set(other.table["candidate"] + other.table["set_id"]) <= set(data.table["candidate"] + data.table["set_id"])


def test_ties_are_averaged_or_rejected(data, mirror):
    tied = data.table.groupby("set_id")["rank"].apply(lambda r: (r % 1 != 0).any())
    assert tied.any()  # equal strengths do occur with the default options
    with pytest.raises(datasets.RankingDataError, match="equal Bradley-Terry strengths"):
        zappos.load(mirror=mirror, ties="reject")


def test_bad_options_are_named(mirror):
    with pytest.raises(ValueError, match="sets_per_target must lie between 1 and 8"):
        zappos.load(mirror=mirror, sets_per_target=9)
    with pytest.raises(ValueError, match="k must lie between 2 and 84"):
        zappos.load(mirror=mirror, k=85)


# --------------------------------------------------------------------------- within
def test_within_uses_only_the_given_images(data, triplets):
    images = [zappos.image_ref(i) for i in range(0, 85, 3)]  # 29 images
    table = data.within(images, 0)
    assert set(table["target"]) == set(images) and set(table["candidate"]) <= set(images)
    assert table.groupby("set_id")["candidate"].nunique().eq(10).all()
    assert table.groupby("target")["set_id"].nunique().eq(2).all()
    # triplets that touch any other image cannot change it: scramble all of them
    inside = np.isin(triplets, [zappos.image_index(r) for r in images]).all(axis=1)
    scrambled = triplets.copy()
    scrambled[~inside, 1:] = scrambled[~inside, 2:0:-1]
    again = zappos.within(images, 0, triplets=scrambled, root=data.root)
    assert again.equals(table)
    assert not zappos.within(data.images(), 0, triplets=scrambled, root=data.root).equals(data.table)


def test_within_all_images_is_the_loaded_table(data):
    assert data.within(data.images(), 0).equals(data.table)


def test_within_a_small_pool_and_bad_refs(data):
    table = data.within(["images/1.jpg", "images/2.jpg", "images/3.jpg"], 5)
    assert len(table) == 3 * 2 and table.groupby("set_id")["rank"].sum().eq(3).all()
    assert data.within(["images/3.jpg", "images/1.jpg", "images/2.jpg"], 5).equals(table)
    with pytest.raises(ValueError, match="'images/85.jpg' is not one of its images"):
        data.within(["images/1.jpg", "images/2.jpg", "images/85.jpg"], 0)
    with pytest.raises(ValueError, match="at least 3 images"):
        data.within(["images/1.jpg", "images/2.jpg"], 0)


# --------------------------------------------------------------------------- split-half
def synthetic(noise: bool, pool: np.ndarray, copies: int, seed: int = 0) -> np.ndarray:
    """Triplets for every head in ``pool`` over every pair of the others, ``copies`` each: the closer
    image is the one nearer the head in index order, or (``noise``) a coin flip."""
    rng = np.random.default_rng(seed)
    rows = []
    for head in pool:
        for a, b in itertools.combinations(pool[pool != head], 2):
            for _ in range(copies):
                near, far = (a, b) if abs(a - head) < abs(b - head) or (abs(a - head) == abs(b - head) and a < b) \
                    else (b, a)
                if noise and rng.random() < 0.5:
                    near, far = far, near
                rows.append((head, near, far))
    return np.array(rows, dtype=np.int64)


@pytest.mark.filterwarnings("ignore::clpips.stats.DegenerateDataWarning")  # halves agree exactly
def test_split_half_of_noiseless_triplets_is_perfect():
    pool = np.arange(0, 40, 3)  # 14 images
    clean = synthetic(False, pool, copies=6)
    table = zappos.rankings(clean, pool, k=6, sets_per_target=2, seed=0)
    ranks = split_half_ranks(table, clean, seed=0)
    assert np.array_equal(ranks["rank_a"], table["rank"]) and np.array_equal(ranks["rank_b"], table["rank"])
    result = split_half(table, clean, seed=0)
    # equal halves: rho = ICC = 1 up to their float64 rounding (tests/tolerance.py)
    rho_tol = spearman_bound(table["rank"], table["rank"])
    icc_tol = icc_bound(np.column_stack([table["rank"], table["rank"]]).astype(float))["ICC(A,k)"]["ICC"]
    assert result["rho_half"] == pytest.approx(1, abs=rho_tol) and result["icc_A_k"] == pytest.approx(1, abs=icc_tol)
    assert result["rho_spearman_brown"] == pytest.approx(1, abs=2 * rho_tol + 8 * 2.0 ** -53)
    assert result["n_sets"] == 28 and result["n_rows"] == 168


@pytest.mark.filterwarnings("ignore::clpips.stats.DegenerateDataWarning")  # halves agree exactly
def test_split_half_keeps_its_old_path_for_one_release():
    pool = np.arange(0, 40, 3)
    clean = synthetic(False, pool, copies=6)
    table = zappos.rankings(clean, pool, k=6, sets_per_target=2, seed=0)
    with pytest.warns(DeprecationWarning, match=r"zappos\.split_half moved to clpips\.book\.agreement\.split_half"):
        from clpips.datasets.zappos import split_half as old
    assert old is split_half and old(table, clean, seed=1) == split_half(table, clean, seed=1)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        zappos.nothing


def test_split_half_of_coin_flips_is_near_zero_and_stepped_up():
    pool = np.arange(20)
    noise = synthetic(True, pool, copies=4, seed=1)
    table = zappos.rankings(noise, pool, k=8, sets_per_target=2, seed=0)
    result = split_half(table, noise, seed=0)
    # coin flips: rho about N(0, 1 / (n - 1)) over n = 320 rows, SE 0.056; 0.15 is 2.7 SEs (a fixed seed)
    assert abs(result["rho_half"]) < 0.15
    r = result["rho_half"]
    # the same r through 2 r / (1 + r): 4 roundings, the derivative 2 / (1 + r)^2 < 3 here
    assert result["rho_spearman_brown"] == pytest.approx(2 * r / (1 + r), abs=12 * 2.0 ** -53)


def test_split_half_uses_disjoint_halves_and_is_seeded(data, triplets):
    ranks = split_half_ranks(data.table, triplets, seed=0)
    assert list(ranks[["set_id", "candidate"]].itertuples(index=False)) == \
        list(data.table[["set_id", "candidate"]].itertuples(index=False))
    again = split_half_ranks(data.table, triplets, seed=0)
    assert again.equals(ranks) and not split_half_ranks(data.table, triplets, seed=1).equals(ranks)
    result = split_half(data.table, triplets, seed=0)
    rho = stats.spearmanr(ranks["rank_a"], ranks["rank_b"]).statistic
    assert result["rho_half"] == pytest.approx(rho, abs=spearman_bound(ranks["rank_a"], ranks["rank_b"]))
    assert 0.5 < result["rho_half"] < result["rho_spearman_brown"] < 1
    # not a rounding tolerance: two statistics, ICC(A,k) = SB(rho) / (1 - 1 / (n F)) only for untied ranks of
    # equal variance, and the halves' ranks carry ties; 0.01 states how close the book says they are
    assert result["icc_A_k"] == pytest.approx(result["rho_spearman_brown"], abs=0.01)


def test_bradley_terry_many_is_choix_ilsr(triplets):
    """The stacked fitter gives what choix.ilsr_pairwise_dense gives for each matrix (the reference),
    whatever else is in the stack: real heads over pools of several sizes, and small random matrices."""
    import choix
    rng = np.random.default_rng(5)
    for size in (85, 40, 6):
        pool = np.sort(rng.choice(85, size, replace=False))
        wins = np.stack([zappos.head_wins(triplets, h, pool[pool != h]) for h in pool[:12]])
        stacked = zappos.bradley_terry_many(wins)
        for w, fitted in zip(wins, stacked):
            # the same I-LSR iterations and stopping rule in float64: iterative_bound (tests/tolerance.py)
            assert_same_fit(fitted, choix.ilsr_pairwise_dense(w, alpha=zappos.ALPHA), f"pool of {size}")
            assert np.array_equal(fitted, zappos.bradley_terry(w))          # alone: bit for bit the same
    small = rng.integers(0, 5, size=(7, 5, 5)).astype(float)
    for h in range(7):
        np.fill_diagonal(small[h], 0)
    for alpha in (0.01, 1.0):
        got = zappos.bradley_terry_many(small, alpha)
        for w, fitted in zip(small, got):
            assert_same_fit(fitted, choix.ilsr_pairwise_dense(w, alpha=alpha), f"alpha {alpha}")


def test_bradley_terry_many_refuses_what_it_cannot_fit():
    with pytest.raises(ValueError, match="stack of square"):
        zappos.bradley_terry_many(np.ones((3, 3)))
    with pytest.raises(ValueError, match="non-negative"):
        zappos.bradley_terry_many(-np.ones((1, 3, 3)))
    two_blocks = np.zeros((1, 4, 4))
    two_blocks[0, 0, 1] = two_blocks[0, 2, 3] = 3                      # two items never compared with the others
    with pytest.raises(ValueError, match="stationary"):
        zappos.bradley_terry_many(two_blocks, alpha=0.0)
    rng = np.random.default_rng(0)
    with pytest.raises(RuntimeError, match="did not converge"):
        zappos.bradley_terry_many(rng.integers(1, 9, size=(2, 6, 6)).astype(float), max_iter=1)


# --------------------------------------------------------------------------- bad files and references
@pytest.mark.parametrize("content, said", [
    ("1,2,3\n4,x,5\n", r"bad\.zip: lines must be three whole numbers head,closer,farther \("),
    ("1,2,3,4\n5,6,7,8\n", r"bad\.zip: lines must be three whole numbers head,closer,farther, found 4 columns$"),
    ("1,2\n", r"bad\.zip: lines must be three whole numbers head,closer,farther, found 2 columns$"),
])
def test_a_triplets_file_of_other_lines_is_named_in_one_line(tmp_path, content, said):
    with zipfile.ZipFile(tmp_path / "bad.zip", "w") as archive:
        archive.writestr("t.csv", content)
    with pytest.raises(datasets.RankingDataError, match=said) as info:
        zappos.read_triplets(tmp_path / "bad.zip")
    assert str(tmp_path / "bad.zip") in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("ref", ["images/85.jpg", "images/-1.jpg", "images/01.jpg", "0.jpg"])
def test_image_index_refuses_what_is_not_one_of_its_images(ref):
    with pytest.raises(ValueError, match=rf"^zappos: {re.escape(repr(ref))} is not one of its images "
                                         r"\(images/0\.jpg \.\.\. images/84\.jpg\)$"):
        zappos.image_index(ref)
    assert zappos.image_index("images/84.jpg") == 84


def _ordered_triplets(pool: np.ndarray, copies: int = 3) -> np.ndarray:
    """Every head prefers the lower-numbered of any two others: strengths strictly ordered, no ties."""
    rows = [(h, a, b) for h in pool for a, b in itertools.combinations(pool[pool != h], 2)]
    return np.array(rows * copies, dtype=np.int64)


def test_rankings_without_ties_can_be_rejected_and_are_whole_ranks():
    pool = np.arange(6)
    table = zappos.rankings(_ordered_triplets(pool), pool, k=3, sets_per_target=1, seed=0, ties="reject")
    assert table["rank"].dtype == np.int64
    for _, part in table.groupby("set_id"):           # rank 1: the lowest-numbered candidate, and so on
        by_index = part.sort_values("candidate", key=lambda c: c.map(zappos.image_index))
        assert by_index["rank"].to_list() == [1, 2, 3]
    averaged = zappos.rankings(_ordered_triplets(pool), pool, k=3, sets_per_target=1, seed=0)
    assert np.array_equal(averaged["rank"].to_numpy(), table["rank"].to_numpy(float))


def test_a_full_memory_is_emptied_and_gives_the_same_fits_and_tables(triplets, monkeypatch, tmp_path):
    """Past MAX_FITS fits (MAX_TABLES tables) the memory starts afresh: a forgotten fit is fitted again, and
    the answers are the same."""
    heads = zappos.HeadTriplets(triplets)
    monkeypatch.setattr(heads, "MAX_FITS", 2)
    monkeypatch.setattr(heads, "MAX_TABLES", 1)
    fits, _ = record_calls(monkeypatch, zappos, "bradley_terry_many")
    items = [np.array([1, 2, 3]), np.array([4, 5, 6, 7])]
    first = heads.strengths_of([0, 0], items)
    assert heads.strengths(0, items[0]) is first[0] and len(fits) == 2          # remembered
    third = heads.strengths(0, np.array([8, 9]))        # a third fit: the memory is emptied first
    again = heads.strengths(0, items[0])
    assert again is not first[0] and len(fits) == 4                             # forgotten: fitted again
    assert np.array_equal(third, zappos.head_strengths(triplets, 0, np.array([8, 9])))
    assert np.array_equal(again, zappos.head_strengths(triplets, 0, items[0]))
    images = [zappos.image_ref(i) for i in range(6)]
    a = zappos.within(images, 1, triplets=heads, root=tmp_path, k=3)
    b = zappos.within(images[1:], 1, triplets=heads, root=tmp_path, k=3)
    assert list(heads.tables.values())[0].equals(b) and len(heads.tables) == 1   # b replaced a
    assert zappos.within(images, 1, triplets=heads, root=tmp_path, k=3).equals(a)
    assert zappos.within(images[1:], 1, triplets=triplets, root=tmp_path, k=3).equals(b)
