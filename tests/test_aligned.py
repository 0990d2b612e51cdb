"""The AligNet-style transform of LPIPS's global representation (clpips.book.aligned)."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from clpips.book import aligned
from clpips.features import CacheWarning
from clpips.images import load_image
from clpips.model import initial_weight_vector
from tolerance import assert_same_fit, assert_within, dot_bound, typical_dot_bound


# --------------------------------------------------------------------------- data
@pytest.fixture(scope="module")
def mur92(mur92_mirror, tmp_path_factory):
    """mur92 from the shared mirror, its images and any embedding cache in a temporary folder."""
    from clpips import datasets
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CLPIPS_CACHE", str(tmp_path_factory.mktemp("cache")))
        env.setenv("CLPIPS_DATA_MIRROR", str(mur92_mirror))
        yield datasets.load("mur92")


@pytest.fixture(scope="module")
def small_table(mur92) -> pd.DataFrame:
    """Three targets' rankings by two raters: 30 distinct (target, candidate) pairs."""
    table = mur92.table
    targets = sorted(table["target"].unique())[:3]
    raters = sorted(table["rater"].unique())[:2]
    return table[table["target"].isin(targets) & table["rater"].isin(raters)].reset_index(drop=True)


@pytest.fixture(scope="module")
def small_embeddings(mur92, small_table, alex) -> aligned.Embeddings:
    refs = pd.unique(pd.concat([small_table["target"], small_table["candidate"]]))
    return aligned.image_embeddings(mur92, refs, metric=alex)


def direct_embedding(alex, path) -> torch.Tensor:
    """The definition, one image at a time: per layer the spatial mean of the normalised activations, unit length."""
    with torch.no_grad():
        layers = alex.layer_features(load_image(path))
    parts = []
    for f in layers:
        pooled = f[0].mean(dim=(1, 2)).double()
        parts.append(pooled / pooled.norm())
    return torch.cat(parts)


def problem(seed: int = 0, n_images: int = 16, dim: int = 48, k: int = 6, raters: int = 3):
    """A small ranking problem whose people follow a hidden low-rank transform: ``(delta, factors, pairs)``."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n_images, dim, generator=gen) * 0.2
    hidden = torch.eye(dim) + 0.5 * torch.randn(dim, 2, generator=gen) @ torch.randn(2, dim, generator=gen) / dim ** 0.5
    ends, pairs = [], []
    for t in range(n_images):
        cands = [c for c in torch.randperm(n_images, generator=gen).tolist() if c != t][:k]
        base = len(ends)
        ends += [(t, c) for c in cands]
        truth = (((z[t] - z[cands]) @ hidden.T) ** 2).sum(1)
        for _ in range(raters):
            order = torch.argsort(truth + 0.01 * torch.randn(k, generator=gen)).tolist()
            pairs += [(base + order[i], base + order[j]) for i in range(k) for j in range(i + 1, k)]
    ends_t = torch.tensor(ends)
    z = z.double()          # float64 inputs make float64 fits and distances: compared by bounds (tolerance.py)
    return z[ends_t[:, 0]] - z[ends_t[:, 1]], (z, ends_t), torch.tensor(pairs)


def start_params(dim: int, rank: int, seed: int) -> torch.Tensor:
    """The parameters a fit starts from: U = 0, V = initial_v."""
    return torch.cat([torch.zeros(dim * rank), aligned.initial_v(dim, rank, seed).flatten()]).double()


# --------------------------------------------------------------------------- embeddings and features
def test_embeddings_equal_the_definition(mur92, small_embeddings, alex):
    assert small_embeddings.matrix.shape == (len(small_embeddings.refs), 1152)
    for ref in small_embeddings.refs[:3]:
        direct = direct_embedding(alex, mur92.image_path(ref))
        assert torch.allclose(small_embeddings.of([ref])[0].double(), direct, atol=1e-6)
    # every layer's block has unit length
    blocks = torch.split(small_embeddings.matrix, [64, 192, 384, 256, 256], dim=1)
    for block in blocks:
        assert torch.allclose(block.norm(dim=1), torch.ones(len(small_embeddings.refs)), atol=1e-5)


def test_global_feature_rows_equal_direct_computation(mur92, small_table, small_embeddings, alex):
    feats = aligned.global_features(mur92, small_table, embeddings=small_embeddings)
    expected_keys = list(small_table[["target", "candidate"]].drop_duplicates().itertuples(index=False, name=None))
    assert feats.keys == expected_keys              # train.pair_features_for's order
    for t, c in expected_keys[:2]:
        row = (direct_embedding(alex, mur92.image_path(t)) - direct_embedding(alex, mur92.image_path(c))) ** 2
        assert torch.allclose(feats.matrix[feats.index[(t, c)]].double(), row, atol=1e-6)


def test_global_features_compute_their_embeddings(mur92, small_table, small_embeddings):
    """Without ``embeddings`` the images go through the backbone (or the cache): the same rows."""
    given = aligned.global_features(mur92, small_table, embeddings=small_embeddings)
    computed = aligned.global_features(mur92, small_table)
    assert computed.keys == given.keys
    assert torch.allclose(computed.matrix, given.matrix, atol=1e-7)


def test_delta_norm_is_global_lpips(mur92, small_table, small_embeddings):
    psi = aligned.global_features(mur92, small_table, embeddings=small_embeddings)
    delta = aligned.delta_features(mur92, small_table, embeddings=small_embeddings)
    assert delta.keys == psi.keys
    w0 = initial_weight_vector("alex", "lpips")
    assert torch.allclose((delta.matrix ** 2).sum(1), psi.matrix @ w0, rtol=1e-5, atol=1e-8)
    z, ends = delta.factors
    assert torch.equal(z[ends[:, 0]] - z[ends[:, 1]], delta.matrix)
    targets, candidates = zip(*delta.keys)
    assert torch.equal(small_embeddings.delta(targets, candidates), delta.matrix)
    # other weights: ||delta||^2 = psi @ w
    w = torch.rand(1152, generator=torch.Generator().manual_seed(1))
    other = aligned.delta_features(mur92, small_table, embeddings=small_embeddings, weights=w)
    assert torch.allclose((other.matrix ** 2).sum(1), psi.matrix @ w, rtol=1e-5)
    with pytest.raises(ValueError, match="weights"):
        aligned.delta_features(mur92, small_table, embeddings=small_embeddings, weights=-w)


def test_global_lpips_with_the_existing_trainer_and_scorer(mur92, small_table, small_embeddings):
    """psi works where pair features do: fit_many trains on it, heldout_scores scores it."""
    from clpips import train
    from clpips.evaluate import heldout_scores
    from clpips.pairs import ranking_pairs
    psi = aligned.global_features(mur92, small_table, embeddings=small_embeddings)
    w0 = initial_weight_vector("alex", "lpips")
    pairs = train.pair_index(psi, ranking_pairs(small_table))
    (weights,) = train.fit_many(psi.matrix, [train.GridJob(pairs, (0.05,), (1e-3,), (2,))], w0, batch_size=32)
    assert weights.shape == (1, 1, 1152) and torch.isfinite(weights).all()
    scores = heldout_scores(small_table, psi, {"global_lpips": w0, "global_clpips": weights[0, 0]})
    assert list(scores.index) == ["global_lpips", "global_clpips"]
    assert scores["pair_accuracy"].between(0, 1).all()


class Folder:
    def __init__(self, root):
        self.root = root

    def image_path(self, ref):
        return self.root / ref


@pytest.fixture()
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("CLPIPS_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    for i, shape in enumerate([(48, 48), (48, 48), (60, 40)]):
        Image.fromarray(rng.integers(0, 256, (*shape, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    return Folder(tmp_path)


def test_embedding_cache_reused_and_corrupt_entry_rebuilt(folder, alex):
    refs = ["0.png", "1.png", "2.png", "0.png"]
    first = aligned.image_embeddings(folder, refs, metric=alex)
    assert first.refs == ["0.png", "1.png", "2.png"] and first.extracted == 3
    for ref in first.refs:                           # images of two sizes, each at its own size
        assert torch.allclose(first.of([ref])[0].double(), direct_embedding(alex, folder.image_path(ref)), atol=1e-6)
    second = aligned.image_embeddings(folder, refs, metric=alex)
    assert second.extracted == 0 and torch.equal(first.matrix, second.matrix)
    entries = sorted(aligned.embedding_store("alex").glob("*.pt"))
    assert len(entries) == 3
    entries[0].write_bytes(entries[0].read_bytes()[:-7])       # truncated
    with pytest.warns(CacheWarning, match=entries[0].name):
        third = aligned.image_embeddings(folder, refs, metric=alex)
    assert third.extracted == 1 and torch.equal(first.matrix, third.matrix)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        fourth = aligned.image_embeddings(folder, refs, metric=alex)   # the rebuilt entry is good again
    assert fourth.extracted == 0


def test_embeddings_unknown_ref_is_named(folder, alex):
    emb = aligned.image_embeddings(folder, ["0.png"], metric=alex)
    with pytest.raises(KeyError, match="1.png"):
        emb.of(["1.png"])


# --------------------------------------------------------------------------- the transform
def test_transform_at_zero_is_the_delta_norm():
    delta, _, _ = problem()
    params = start_params(delta.shape[1], 4, seed=3)
    assert torch.equal(aligned.transform_distances(delta, params, 4), (delta * delta).sum(1))
    both = aligned.transform_distances(delta, torch.stack([params, params]), 4)
    assert both.shape == (delta.shape[0], 2) and torch.equal(both[:, 1], (delta * delta).sum(1))
    assert torch.equal(aligned.transform_embeddings(delta, params, 4), delta)


@pytest.mark.float_sensitive
def test_transform_distances_are_distances_of_transformed_embeddings():
    delta, (z, ends), _ = problem()
    gen = torch.Generator().manual_seed(0)
    params = (torch.randn(2, aligned.param_count(z.shape[1], 3), generator=gen) * 0.2).double()
    d = aligned.transform_distances(delta, params, 3)
    moved = aligned.transform_embeddings(z, params, 3)                 # 2 x n x D
    direct = ((moved[:, ends[:, 0]] - moved[:, ends[:, 1]]) ** 2).sum(-1).T
    U, V = aligned.split_params(params, 3)
    D = z.shape[1]
    # every term of either formula is at most (|delta| + |U||V||delta|)^2 in size (Cauchy-Schwarz), and a
    # term passes through at most D r + D products
    size = (delta.norm(dim=1)[:, None] * (1 + U.norm(dim=(1, 2)) * V.norm(dim=(1, 2)))[None, :]) ** 2
    n = D * 3 + D
    assert_within(d, direct, dot_bound(size, n, torch.float64), typical_dot_bound(size, n, torch.float64),
                  "transform distances against transformed embeddings")
    full = U @ V.transpose(1, 2)
    reg_size = (U.norm(dim=(1, 2)) * V.norm(dim=(1, 2))) ** 2
    assert_within(aligned.regulariser(params, 3), (full ** 2).sum(dim=(1, 2)), dot_bound(reg_size, D * D, torch.float64),
                  typical_dot_bound(reg_size, D * D, torch.float64), "trace formula against Frobenius norm")


@pytest.mark.parametrize("loss, margin", [("margin", 0.5), ("logistic", 0.7)])
@pytest.mark.parametrize("use_factors", [False, True])
@pytest.mark.float_sensitive
def test_gradient_matches_autograd(loss, margin, use_factors):
    delta, factors, pairs = problem(dim=40)
    pairs = torch.cat([pairs, pairs[:50]])           # repeated pairs count twice
    G, r = 4, 3
    lams = torch.tensor([0.0, 0.3, 1.0, 2.0])
    W = (torch.randn(delta.shape[1], 2, G, r, generator=torch.Generator().manual_seed(0)) * 0.3).double()
    prob = aligned._prepare(delta, factors if use_factors else None, [pairs], G)
    grad = aligned._gradient(prob, W, 2 * lams[:, None, None], margin, loss)
    params = W.permute(2, 1, 0, 3).reshape(G, -1).clone().requires_grad_(True)
    aligned.transform_loss(delta, pairs, params, r, margin=margin, loss=loss, lam=lams).sum().backward()
    expected = params.grad.view(G, 2, -1, r).permute(2, 1, 0, 3)
    # float64 both ways: each entry sums over the rows' terms, each at most |delta| (|delta| + |U||V||delta|)^2
    # (times the slope's weight <= 1/margin) in size; a term passes through at most D + r products
    D = delta.shape[1]
    U, V = W[:, 0], W[:, 1]
    size = (delta.norm(dim=1).max() * (1 + U.norm() * V.norm())) ** 3 * len(pairs) / margin
    size = float(size) * (1 + float(lams.max()))
    n = D + r + len(pairs)
    assert_within(grad, expected, dot_bound(size, n, torch.float64), typical_dot_bound(size, n, torch.float64),
                  "gradient")


def test_training_lowers_the_loss_and_is_reproducible():
    delta, factors, pairs = problem()
    grid = aligned.TransformGrid(lambdas=(0.0, 0.01), lrs=(1e-2,), steps=(20, 100), rank=4)
    out = aligned.fit_transform_many(delta, [(pairs, 0), (pairs, 0), (pairs, 1)], grid, margin=0.05,
                                     factors=factors)
    assert len(out) == 3 and out[0].shape == (2, 2, aligned.param_count(delta.shape[1], 4))
    start = aligned.transform_loss(delta, pairs, start_params(delta.shape[1], 4, 0), 4, margin=0.05)
    for step in range(2):
        after = aligned.transform_loss(delta, pairs, out[0][step], 4, margin=0.05, lam=grid.lambdas)
        assert (after < start).all()
    final = aligned.transform_loss(delta, pairs, out[0][1], 4, margin=0.05, lam=grid.lambdas)
    assert final[0] < 0.25 * start
    assert torch.equal(out[0], out[1])               # same pairs, same seed: bit for bit
    assert not torch.equal(out[0], out[2])           # another seed, another starting V
    again = aligned.fit_transform_many(delta, [(pairs, 0)], grid, margin=0.05, factors=factors)[0]
    assert torch.equal(out[0], again)


@pytest.mark.parametrize("loss", ["margin", "logistic"])
@pytest.mark.float_sensitive
def test_grid_columns_equal_settings_trained_alone(loss):
    delta, factors, pairs = problem()
    grid = aligned.TransformGrid(lambdas=(0.0, 0.1), lrs=(3e-3, 1e-2), steps=(5, 30), rank=4)
    together = aligned.fit_transform_many(delta, [(pairs, 2)], grid, margin=0.05, loss=loss, factors=factors)[0]
    assert grid.columns() == [(0.0, 3e-3), (0.0, 1e-2), (0.1, 3e-3), (0.1, 1e-2)]
    for g, (lam, lr) in enumerate(grid.columns()):
        alone = aligned.fit_transform_many(delta, [(pairs, 2)], aligned.TransformGrid((lam,), (lr,), (5, 30), 4),
                                           margin=0.05, loss=loss, factors=factors)[0]
        assert_same_fit(together[:, g], alone[:, 0], f"column {g} against its setting alone")
    rows_only = aligned.fit_transform_many(delta, [(pairs, 2)], grid, margin=0.05, loss=loss)[0]
    assert_same_fit(rows_only, together, "the rows path against the image path")
    settings = grid.settings()
    assert len(settings) == together.reshape(-1, together.shape[-1]).shape[0]
    assert settings.iloc[-1].tolist() == [0.1, 1e-2, 30]


@pytest.mark.parametrize("loss", ["margin", "logistic"])
@pytest.mark.float_sensitive
def test_jobs_stepped_together_equal_each_job_fitted_alone(loss):
    """The image path steps up to JOBS_TOGETHER consecutive jobs over the union of their pairs; each
    job's columns must be what that job alone gives (a pair of another job must weigh nothing)."""
    delta, factors, pairs = problem()
    targets = factors[1][pairs[:, 0], 0]
    jobs = [(pairs[targets % 3 != 0], 0), (pairs[targets % 3 != 1], 1), (pairs[targets < 10], 0),
            (pairs[targets >= 4], 2)]                                 # overlapping, unequal, two seeds
    grid = aligned.TransformGrid(lambdas=(0.0, 0.1), lrs=(1e-2,), steps=(4, 25), rank=3)
    chunks = aligned._lockstep_chunks(factors, jobs)
    assert [len(c) for c in chunks] == [aligned.JOBS_TOGETHER, len(jobs) - aligned.JOBS_TOGETHER]
    together = aligned.fit_transform_many(delta, jobs, grid, margin=0.05, loss=loss, factors=factors)
    for (job_pairs, seed), fitted in zip(jobs, together):
        alone = aligned.fit_transform_many(delta, [(job_pairs, seed)], grid, margin=0.05, loss=loss,
                                           factors=factors)[0]
        assert fitted.shape == alone.shape
        assert_same_fit(fitted, alone, "a job stepped with others against the job alone")
    assert not torch.allclose(together[0], together[2], rtol=1e-3)     # same seed, other pairs: other fits
    # rows-path jobs (no factors) step one at a time
    assert [len(c) for c in aligned._lockstep_chunks(None, jobs)] == [1] * len(jobs)


def test_huge_lambda_keeps_the_identity():
    delta, factors, pairs = problem()
    grid = aligned.TransformGrid(lambdas=(0.0, 1e4), lrs=(1e-2,), steps=(100,), rank=4)
    params = aligned.fit_transform_many(delta, [(pairs, 0)], grid, margin=0.05, factors=factors)[0][-1]
    U, V = aligned.split_params(params, 4)
    size = (U @ V.transpose(1, 2)).norm(dim=(1, 2))
    assert size[0] > 0.5
    assert size[1] < 1e-3 * size[0]


def test_fit_options_are_checked():
    delta, factors, pairs = problem()
    grid = aligned.TransformGrid((0.0,), (1e-2,), (2,), 2)
    with pytest.raises(ValueError, match="loss"):
        aligned.fit_transform_many(delta, [(pairs, 0)], grid, margin=0.05, loss="hinge")
    with pytest.raises(ValueError, match="margin"):
        aligned.fit_transform_many(delta, [(pairs, 0)], grid, margin=0.0)
    with pytest.raises(ValueError, match="pairs"):
        aligned.fit_transform_many(delta, [(pairs + delta.shape[0], 0)], grid, margin=0.05)
    z, ends = factors
    with pytest.raises(ValueError, match="factors"):
        aligned.fit_transform_many(delta, [(pairs, 0)], grid, margin=0.05, factors=(z * 2, ends))
    with pytest.raises(ValueError, match="lambdas"):
        aligned.TransformGrid((-1.0,), (1e-2,), (2,))
    with pytest.raises(ValueError, match="lrs"):
        aligned.TransformGrid((0.0,), (0.0,), (2,))
    with pytest.raises(ValueError, match="steps"):
        aligned.TransformGrid((0.0,), (1e-2,), (0,))
    with pytest.raises(ValueError, match="rank"):
        aligned.TransformGrid((0.0,), (1e-2,), (2,), rank=0)
    assert aligned.TransformGrid((0,), (1e-2,), (200, 50, 50)).steps == (50, 200)


@pytest.mark.float_sensitive
def test_fit_on_real_delta_features(mur92, small_table, small_embeddings):
    """The protocol's use: delta features of a table, pairs by train.pair_index, the fast path agrees."""
    from clpips import train
    from clpips.pairs import ranking_pairs
    delta = aligned.delta_features(mur92, small_table, embeddings=small_embeddings)
    pairs = train.pair_index(delta, ranking_pairs(small_table))
    grid = aligned.TransformGrid((0.0, 1e-3), (1e-3,), (3, 10), rank=2)
    fast = aligned.fit_transform_many(delta.matrix, [(pairs, 0)], grid, margin=0.05, factors=delta.factors)[0]
    # the two paths compared in float64 (tolerance.py): the same fit of the real features' float64 copies
    z, ends = delta.factors
    fast64 = aligned.fit_transform_many(delta.matrix.double(), [(pairs, 0)], grid, margin=0.05,
                                        factors=(z.double(), ends))[0]
    slow64 = aligned.fit_transform_many(delta.matrix.double(), [(pairs, 0)], grid, margin=0.05)[0]
    assert_same_fit(fast64, slow64, "the image path against the rows path")
    before = aligned.transform_loss(delta.matrix, pairs, start_params(1152, 2, 0), 2, margin=0.05)
    after = aligned.transform_loss(delta.matrix, pairs, fast[-1], 2, margin=0.05, lam=grid.lambdas)
    assert (after < before).all()


# --------------------------------------------------------------------------- the teacher
IMAGES = [f"img{i:02d}.png" for i in range(12)]


def fake_distance(calls: list):
    """A deterministic distance of two references (and a record of every call)."""
    def distance(targets, candidates):
        calls.append((list(targets), list(candidates)))
        return np.array([abs(int(t[3:5]) - int(c[3:5])) + 0.01 * int(c[3:5]) for t, c in zip(targets, candidates)])
    return distance


def test_teacher_rankings_stay_inside_their_images_and_rank_by_distance():
    calls: list = []
    targets, images = IMAGES[:4], IMAGES[:9]
    table = aligned.teacher_rankings(fake_distance(calls), targets, images, sets_per_target=3, k=5, seed=7)
    assert list(table.columns) == ["set_id", "target", "candidate", "rater", "rank"]
    assert len(table) == 4 * 3 * 5 and len(calls) == 1
    assert set(table["target"]) == set(targets)
    assert set(table["candidate"]) <= set(images)
    assert (table["target"] != table["candidate"]).all()
    assert (table["rater"] == aligned.TEACHER).all() and table["set_id"].str.startswith("teacher-").all()
    assert table.groupby("set_id").size().eq(5).all() and table["set_id"].nunique() == 12
    for _, ranking in table.groupby("set_id"):
        assert ranking["candidate"].is_unique and ranking["target"].nunique() == 1
        assert sorted(ranking["rank"]) == [1, 2, 3, 4, 5]
        dist = fake_distance([])(ranking["target"], ranking["candidate"])
        assert (np.argsort(dist, kind="stable") == np.argsort(ranking["rank"].to_numpy(), kind="stable")).all()
    again = aligned.teacher_rankings(fake_distance([]), targets, images, sets_per_target=3, k=5, seed=7)
    pd.testing.assert_frame_equal(table, again)
    other = aligned.teacher_rankings(fake_distance([]), targets, images, sets_per_target=3, k=5, seed=8)
    assert not table["candidate"].equals(other["candidate"])


def test_teacher_rankings_are_a_valid_ranking_table():
    from clpips.datasets import validate
    from clpips.pairs import ranking_pairs
    table = aligned.teacher_rankings(fake_distance([]), IMAGES[:3], IMAGES, sets_per_target=2, k=4, seed=0)
    validate(table, check_images=False, k=4)
    assert len(ranking_pairs(table)) == 3 * 2 * 6


def test_teacher_rankings_refuse_targets_outside_the_images():
    with pytest.raises(ValueError, match="img11.png"):
        aligned.teacher_rankings(fake_distance([]), ["img11.png"], IMAGES[:5], sets_per_target=1, k=3, seed=0)
    with pytest.raises(ValueError, match="k="):
        aligned.teacher_rankings(fake_distance([]), IMAGES[:1], IMAGES[:4], sets_per_target=1, k=4, seed=0)
    with pytest.raises(ValueError, match="sets_per_target"):
        aligned.teacher_rankings(fake_distance([]), IMAGES[:1], IMAGES, sets_per_target=-1, k=3, seed=0)
    with pytest.raises(ValueError, match="finite"):
        aligned.teacher_rankings(lambda t, c: np.full(len(t), np.nan), IMAGES[:1], IMAGES, sets_per_target=1, k=3,
                                 seed=0)
    empty = aligned.teacher_rankings(fake_distance([]), IMAGES[:2], IMAGES, sets_per_target=0, k=3, seed=0)
    assert empty.empty and list(empty.columns) == ["set_id", "target", "candidate", "rater", "rank"]


def test_teacher_distance_is_the_transform(mur92, small_embeddings):
    """The teacher's distances from the definition, in float64 here: d = ||(I + U V^T) sqrt(w) (e_t - e_c)||^2,
    U and V the first and second D x r blocks of the parameters (row-major), e an image's embedding, w
    LPIPS's weights by default (at U = 0, global LPIPS: sum_i w_i (e_t - e_c)_i^2) or the weights given;
    the teacher's rankings order each set by these distances."""
    dim, rank = 1152, 2
    params = torch.randn(aligned.param_count(dim, rank), generator=torch.Generator().manual_seed(0)) * 0.2
    refs = list(small_embeddings.refs)
    emb = {ref: small_embeddings.matrix[i].double().numpy() for i, ref in enumerate(refs)}
    targets, candidates = refs[:3] + refs[:2], refs[3:6] + refs[6:8]
    p = params.double().numpy()
    full = np.eye(dim) + p[:dim * rank].reshape(dim, rank) @ p[dim * rank:].reshape(dim, rank).T   # I + U V^T

    def reference(ts, cs, w):
        return np.array([float(((full @ (np.sqrt(w) * (emb[t] - emb[c]))) ** 2).sum()) for t, c in zip(ts, cs)])

    w0 = initial_weight_vector("alex", "lpips").double().numpy()
    expected = reference(targets, candidates, w0)
    got = aligned.teacher_distance(small_embeddings, params, rank)(targets, candidates)
    np.testing.assert_allclose(got, expected, rtol=1e-4)
    plain = np.array([float((w0 * (emb[t] - emb[c]) ** 2).sum()) for t, c in zip(targets, candidates)])
    assert np.abs(expected / plain - 1).max() > 0.1               # the transform really changes the distances
    at_zero = torch.cat([torch.zeros(dim * rank), params[dim * rank:]])
    np.testing.assert_allclose(aligned.teacher_distance(small_embeddings, at_zero, rank)(targets, candidates),
                               plain, rtol=1e-5)
    w = np.random.default_rng(1).uniform(0.0, 0.3, dim)
    np.testing.assert_allclose(aligned.teacher_distance(small_embeddings, params, rank, weights=torch.tensor(w))(
        targets, candidates), reference(targets, candidates, w), rtol=1e-4)
    table = aligned.teacher_rankings(aligned.teacher_distance(small_embeddings, params, rank), refs[:2], refs,
                                     sets_per_target=2, k=4, seed=0)
    assert set(table["candidate"]) <= set(refs) and table["set_id"].nunique() == 4
    for _, ranking in table.groupby("set_id"):
        d = reference(ranking["target"], ranking["candidate"], w0)
        assert ranking["rank"].tolist() == (d.argsort().argsort() + 1).tolist()


def test_teacher_sets():
    assert aligned.teacher_sets(0.0, 46080, 64, 10) == 0
    assert aligned.teacher_sets(1.0, 46080, 64, 10) == 16      # 46,080 / 45 pairs per set / 64 targets
    assert aligned.teacher_sets(0.5, 46080, 64, 10) == 8
    assert aligned.teacher_sets(1e-6, 46080, 64, 10) == 1      # a positive weight gives some sets
    with pytest.raises(ValueError, match="weight"):
        aligned.teacher_sets(-1.0, 100, 4, 5)


# --------------------------------------------------------------------------- neighbour overlap
def test_neighbour_overlap():
    x = torch.randn(40, 8, generator=torch.Generator().manual_seed(0))
    assert aligned.neighbour_overlap(x, x, k=5) == 1.0
    rotation, _ = torch.linalg.qr(torch.randn(8, 8, generator=torch.Generator().manual_seed(1)))
    assert aligned.neighbour_overlap(x, x @ rotation, k=5) == pytest.approx(1.0)
    scrambled = x[torch.randperm(40, generator=torch.Generator().manual_seed(2))]
    assert aligned.neighbour_overlap(x, scrambled, k=5) < 0.5
    with pytest.raises(ValueError, match="k must"):
        aligned.neighbour_overlap(x, x, k=40)


def test_neighbour_overlap_equals_a_stable_sort_with_ties():
    """The k nearest are those a stable sort of each row's distances puts first (ties: lower row
    first), checked by a direct loop on points of a grid, where distances tie often."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randint(0, 4, (30, 2), generator=gen).double()
    y = torch.randint(0, 4, (30, 2), generator=gen).double()

    def loop(points, k):
        out = []
        for i in range(len(points)):
            dist = [(float(torch.dist(points[i], points[j])), j) for j in range(len(points)) if j != i]
            out.append({j for _, j in sorted(dist)[:k]})       # sorted tuples: distance, then row
        return out

    for k in (1, 3, 7):
        a, b = loop(x, k), loop(y, k)
        expected = np.mean([len(p & q) / k for p, q in zip(a, b)])
        assert aligned.neighbour_overlap(x, y, k=k) == pytest.approx(expected, abs=1e-12)


def test_neighbour_overlaps_of_several_afters_match_one_at_a_time():
    """Finding ``before``'s neighbours once changes nothing: each entry equals its own call, in order."""
    gen = torch.Generator().manual_seed(4)
    x = torch.randint(0, 4, (30, 2), generator=gen).double()
    afters = [torch.randint(0, 4, (30, 2), generator=gen).double() for _ in range(3)] + [x]
    got = aligned.neighbour_overlaps(x, afters, k=3)
    assert got.tolist() == [aligned.neighbour_overlap(x, a, k=3) for a in afters]
    assert got[-1] == 1.0 and len(set(got.tolist())) > 1
    with pytest.raises(ValueError, match="same n"):
        aligned.neighbour_overlaps(x, [x, x[:-1]], k=3)
