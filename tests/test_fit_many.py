"""The batched trainer (clpips.train.fit_many; fit_grid and early_stopped, clpips.book.batched_fits): every
column equals its own fit, on either path of a step, and the same weights come back wherever the groups run
(in this process, in local worker processes, on a given executor, on a Dask cluster)."""
from __future__ import annotations

import concurrent.futures
import dataclasses
import multiprocessing
import os
import time

import numpy as np
import pytest
import torch

from clpips import parallel, train
from clpips.model import CHANNELS, initial_weight_vector
from clpips.book.batched_fits import fit_grid
from clpips.train import GridJob, fit_many, fit_pairs
from helpers import toy_table
from tolerance import assert_same_fit

DIM = sum(CHANNELS["alex"])


@pytest.fixture(params=["rows", "pairs"])
def step_path(request, monkeypatch):
    """Each lockstep step taken both ways (train.steps_on_pairs): over all the group's rows, and on its
    batches' pair differences; both must equal fit_pairs."""
    monkeypatch.setattr(train, "steps_on_pairs", lambda *args: request.param == "pairs")
    return request.param


def _pairs_problem(n_rows=60, n_pairs=700, seed=0):
    gen = torch.Generator().manual_seed(seed)
    # float64 features make float64 fits: two summation orders then agree to ~1e-14 on any CPU (tolerance.py)
    features = (torch.rand(n_rows, DIM, generator=gen) * 0.02).double()
    pairs = torch.randint(0, n_rows, (n_pairs, 2), generator=gen)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    return features, pairs


@pytest.mark.parametrize("loss", ["logistic", "margin"])
@pytest.mark.float_sensitive
def test_fit_grid_equals_a_loop_of_fit_pairs(loss):
    features, pairs = _pairs_problem()
    w0 = initial_weight_vector("alex", "lpips")
    margins, lrs = (0.01, 0.05, 0.01), (1e-3, 1e-3, 1e-2)
    grid = fit_grid(features, pairs, w0, margins=margins, lrs=lrs, checkpoints=(1, 3), seed=4, loss=loss,
                    batch_size=64)
    assert grid.shape == (2, 3, DIM)
    for b in range(3):
        for e_i, epochs in enumerate((1, 3)):
            ref = fit_pairs(features, pairs, None, w0, margin=margins[b], lr=lrs[b], epochs=epochs, seed=4,
                            loss=loss, batch_size=64).weights
            assert_same_fit(grid[e_i, b], ref, f"setting {b}, {epochs} epochs")
    assert not torch.equal(grid[1, 0], grid[1, 1])  # the columns really differ


@pytest.mark.float_sensitive
def test_fit_many_equals_each_job_alone_and_respects_frozen_layers():
    features, pairs = _pairs_problem(seed=1)
    w0 = initial_weight_vector("alex", "lpips")
    jobs = [GridJob(pairs[:300], (0.05,), (1e-2,), (2,), seed=0),
            GridJob(pairs[200:], (0.02, 0.05), (1e-3, 3e-3), (1, 2), seed=7)]
    together = fit_many(features, jobs, w0, layers="0,1", loss="logistic")
    for job, got in zip(jobs, together):
        alone = fit_grid(features, job.pairs, w0, margins=job.margins, lrs=job.lrs, checkpoints=job.checkpoints,
                         seed=job.seed, layers="0,1", loss="logistic")
        assert_same_fit(got, alone, "a job in fit_many against fit_grid alone")
        frozen = slice(sum(CHANNELS["alex"][:2]), DIM)
        assert torch.equal(got[..., frozen], w0[frozen].expand_as(got[..., frozen]))


@pytest.mark.parametrize("loss", ["logistic", "margin"])
@pytest.mark.float_sensitive
def test_fit_many_mixing_layers_init_project_loss_equals_each_fit_pairs(loss, step_path):
    """Jobs of one call differing in starting weights, trained layers, projection and loss (some
    sharing pairs and seed, so they share shuffles) each equal their own fit_pairs."""
    features, pairs = _pairs_problem(seed=2)
    lpips, ones = initial_weight_vector("alex", "lpips"), initial_weight_vector("alex", "ones")
    rand = initial_weight_vector("alex", "random", seed=3) - 0.5  # some negative starting weights
    other = "margin" if loss == "logistic" else "logistic"
    jobs = [GridJob(pairs, (0.05, 0.02), (1e-2, 3e-3), (1, 3), seed=5),                     # the call's options
            GridJob(pairs, (0.05,), (1e-2,), (3,), seed=5, layers="0,4", initial_weights=ones),
            GridJob(pairs, (0.05,), (1e-2,), (2, 3), seed=5, project=False, initial_weights=rand),
            GridJob(pairs, (0.02,), (1e-2,), (3,), seed=5, loss=other),                     # mixed losses, one stream
            GridJob(pairs[100:], (0.05,), (3e-3,), (3,), seed=1, loss=other, layers=[2]),
            # a short job of many columns: when it ends, the finished columns leave the products
            GridJob(pairs[:200], (0.05, 0.02) * 4, (1e-3, 3e-3, 1e-2, 3e-2) * 2, (1, 2), seed=9)]
    together = fit_many(features, jobs, lpips, loss=loss, batch_size=64)
    for job, got in zip(jobs, together):
        assert got.shape == (len(job.checkpoints), len(job.margins), DIM)
        w0 = lpips if job.initial_weights is None else job.initial_weights
        job_loss = job.loss or loss
        for b in range(len(job.margins)):
            for e_i, epochs in enumerate(job.checkpoints):
                ref = fit_pairs(features, job.pairs, None, w0, margin=job.margins[b], lr=job.lrs[b], epochs=epochs,
                                seed=job.seed, loss=job_loss, batch_size=64,
                                layers="all" if job.layers is None else job.layers,
                                project=True if job.project is None else job.project).weights
                assert_same_fit(got[e_i, b], ref, f"column {b}, {epochs} epochs")
    frozen = torch.ones(DIM, dtype=torch.bool)
    frozen[:CHANNELS["alex"][0]] = False
    frozen[-CHANNELS["alex"][4]:] = False
    assert torch.equal(together[1][-1, 0, frozen], ones[frozen])
    assert (together[2][-1, 0] < 0).any() and (together[0] >= 0).all()  # unprojected vs projected


@pytest.mark.float_sensitive
def test_early_stopped_selection_equals_fit_on_a_small_problem():
    """train.fit (validation targets split off by split_by_target) and the batched path (every epoch
    recorded by fit_many, then early_stopped) keep the same weights, best epoch and epochs run."""
    from types import SimpleNamespace

    from clpips.datasets import split_by_target
    from clpips.features import PairFeatures
    from clpips.pairs import ranking_pairs
    from clpips.book.batched_fits import early_stopped
    from clpips.train import fit, pair_index
    table = toy_table(n_images=16, k=6, raters=("a", "b", "c"), seed=4)
    keys = list(dict.fromkeys(zip(table["target"], table["candidate"])))
    gen = torch.Generator().manual_seed(1)
    feats = PairFeatures(keys=keys, matrix=(torch.rand(len(keys), DIM, generator=gen) * 0.02).double(), net="alex",
                         extracted=0)                                # float64: see tolerance.py
    data = SimpleNamespace(table=table, name="toy")
    settings = [dict(loss="margin", margin=0.05, lr=1e-2, patience=2), dict(loss="logistic", margin=0.02, lr=3e-2,
                                                                            patience=3, init="ones", layers="1,2")]
    seen_early = False
    for seed in (0, 3):
        fit_rows, val_rows = split_by_target(table, test_size=0.2, seed=seed)
        train_pairs = pair_index(feats, ranking_pairs(fit_rows))
        val_pairs = pair_index(feats, ranking_pairs(val_rows))
        jobs = [GridJob(train_pairs, (s["margin"],), (s["lr"],), tuple(range(1, 13)), seed=seed, loss=s["loss"],
                        layers=s.get("layers"), initial_weights=initial_weight_vector("alex", s.get("init", "lpips"),
                                                                                      seed))
                for s in settings]
        batched = fit_many(feats.matrix, jobs, initial_weight_vector("alex", "lpips"), batch_size=32)
        for s, job, got in zip(settings, jobs, batched):
            ref = fit(data, table, features=feats, seed=seed, epochs=12, batch_size=32, progress=False, **s)
            w, best_epoch, epochs_run = early_stopped(got[:, 0], feats.matrix, val_pairs, loss=s["loss"],
                                                      margin=s["margin"], patience=s["patience"],
                                                      initial_weights=job.initial_weights)
            assert (best_epoch, epochs_run) == (ref.best_epoch, len(ref.history))
            assert_same_fit(w, ref.weights, f"{s['loss']} seed {seed}")
            seen_early |= epochs_run < 12
    assert seen_early  # the problem really stops early somewhere
    # no validation pairs: the last epoch, as fit_pairs without val_pairs
    w, best_epoch, epochs_run = early_stopped(batched[0][:, 0], feats.matrix, None)
    assert (best_epoch, epochs_run) == (12, 12) and torch.equal(w, batched[0][-1, 0])


@pytest.mark.float_sensitive
def test_early_stopped_with_l2_equals_fit_pairs_history():
    """With an L2 pull the selection adds the penalty to the validation loss, as fit_pairs does
    (checked on fit_pairs' own path: the batched path trains without a pull)."""
    from clpips.book.batched_fits import early_stopped
    features, pairs = _pairs_problem(seed=3)
    w0 = initial_weight_vector("alex", "lpips")
    val = pairs[:150]
    anchor = w0 * 1.1
    ref = fit_pairs(features, pairs[150:], val, w0, margin=0.05, lr=1e-2, epochs=10, patience=2, seed=2,
                    loss="logistic", l2=0.5, l2_to=anchor)
    path = torch.stack([fit_pairs(features, pairs[150:], None, w0, margin=0.05, lr=1e-2, epochs=e, seed=2,
                                  loss="logistic", l2=0.5, l2_to=anchor).weights for e in range(1, 11)])
    w, best_epoch, epochs_run = early_stopped(path, features, val, loss="logistic", margin=0.05, patience=2, l2=0.5,
                                              l2_to=anchor)
    assert (best_epoch, epochs_run) == (ref.best_epoch, len(ref.history))
    assert_same_fit(w, ref.weights, "early-stopped weights")


@pytest.mark.parametrize("loss", ["logistic", "margin"])
@pytest.mark.float_sensitive
def test_fit_many_with_an_l2_pull_equals_fit_pairs(loss, step_path):
    """Jobs pulled towards their own anchors (personal models: l2_to is the starting weights) beside
    jobs without a pull, in one call, each equal fit_pairs(l2=..., l2_to=...); l2 without l2_to, or
    l2=0, is no pull, as in fit_pairs. Over all rows, and on pair differences."""
    features, pairs = _pairs_problem(n_rows=400, n_pairs=900, seed=5)
    w0 = initial_weight_vector("alex", "lpips")
    start = w0 * 1.5
    jobs = [GridJob(pairs[:300], (0.05,), (1e-2,), (2, 4), seed=1, initial_weights=start, l2=0.5, l2_to=start),
            # (lr 3e-2 against this strong pull makes Adam oscillate chaotically about its balance: two
            # summation orders then part by 6e-8 even in float64 after 4 epochs, so no fit comparison holds)
            GridJob(pairs[300:], (0.05, 0.02), (1e-2, 1e-2), (4,), seed=2, l2=2.0, l2_to=w0 * 0.5),
            GridJob(pairs[300:], (0.05,), (1e-2,), (4,), seed=2, l2=2.0),             # no anchor: no pull
            GridJob(pairs[100:500], (0.02,), (3e-2,), (3,), seed=3)]
    for batch_size in (64, 8):
        together = fit_many(features, jobs, w0, loss=loss, batch_size=batch_size)
        for job, got in zip(jobs, together):
            w_start = w0 if job.initial_weights is None else job.initial_weights
            for b in range(len(job.margins)):
                for e_i, epochs in enumerate(job.checkpoints):
                    ref = fit_pairs(features, job.pairs, None, w_start, margin=job.margins[b], lr=job.lrs[b],
                                    epochs=epochs, seed=job.seed, loss=loss, batch_size=batch_size, l2=job.l2,
                                    l2_to=job.l2_to).weights
                    assert_same_fit(got[e_i, b], ref, f"column {b}, {epochs} epochs")
        # the pull matters: without it the first job ends elsewhere
        free = fit_many(features, [dataclasses.replace(jobs[0], l2=0.0)], w0, loss=loss, batch_size=batch_size)[0]
        assert float((free[-1, 0] - together[0][-1, 0]).abs().max()) > 1e-3


def test_fit_many_refuses_bad_grids():
    features, pairs = _pairs_problem()
    w0 = initial_weight_vector("alex", "lpips")
    for bad in (GridJob(pairs, (float("nan"),), (1e-3,), (1,)), GridJob(pairs, (0.05,), (0.0,), (1,)),
                GridJob(pairs, (0.05,), (1e-3,), (0,)), GridJob(pairs[:0], (0.05,), (1e-3,), (1,)),
                GridJob(pairs, (0.05,), (1e-3,), (1,), l2=-1.0, l2_to=w0),
                GridJob(pairs, (0.05,), (1e-3,), (1,), l2=0.1, l2_to=w0[:5])):
        with pytest.raises(ValueError):
            fit_many(features, [bad], w0)
    with pytest.raises(TypeError, match="unknown options"):
        fit_many(features, [GridJob(pairs, (0.05,), (1e-3,), (1,))], w0, margin=0.05)   # a job's own setting


# -- wherever the groups run, the same weights --------------------------------------------------------------

def test_fit_many_gives_the_same_weights_in_worker_processes():
    features, pairs = _pairs_problem(seed=2)
    w0 = initial_weight_vector("alex", "lpips")
    jobs = [GridJob(pairs[:250], (0.05, 0.02), (1e-2, 1e-3), (1, 2), seed=s) for s in range(3)]
    alone = fit_many(features, jobs, w0, max_columns=2)           # three groups, in this process
    spread = fit_many(features, jobs, w0, max_columns=2, workers=2)
    for a, b in zip(alone, spread):
        assert torch.equal(a, b)


@pytest.mark.parametrize("loss", ["logistic", "margin"])
@pytest.mark.float_sensitive
def test_fit_many_by_its_own_choice_of_step_equals_fit_pairs(loss, monkeypatch):
    """Many rows and small batches (fit_many steps on pair differences: train.steps_on_pairs), few rows
    and many streams (it steps over the rows): each column still equals its own fit_pairs; streams of
    equal widths (one batched product) and of unequal ones."""
    choose, chosen = train.steps_on_pairs, []
    monkeypatch.setattr(train, "steps_on_pairs", lambda *args: chosen.append(choose(*args)) or chosen[-1])
    for n_rows, jobs_of in ((1500, lambda p: [GridJob(p, (0.02, 0.05), (1e-2, 3e-3), (1, 2), seed=3),
                                              GridJob(p[300:], (0.05, 0.02), (1e-2, 1e-2), (2,), seed=8)]),
                            (1500, lambda p: [GridJob(p, (0.02, 0.05), (1e-2, 3e-3), (1, 2), seed=3),
                                              GridJob(p[300:], (0.05,), (1e-2,), (2,), seed=8)]),
                            (40, lambda p: [GridJob(p[:400 + 50 * i], (0.05,), (1e-2,), (2,), seed=i)
                                            for i in range(4)])):
        features, pairs = _pairs_problem(n_rows=n_rows, n_pairs=900, seed=6)
        w0 = initial_weight_vector("alex", "lpips")
        jobs = jobs_of(pairs)
        chosen.clear()
        together = fit_many(features, jobs, w0, loss=loss, batch_size=32)
        assert chosen == [n_rows > 100]          # (the fit_pairs references below choose for themselves)
        for job, got in zip(jobs, together):
            for b, (margin, lr) in enumerate(zip(job.margins, job.lrs)):
                for e_i, epochs in enumerate(job.checkpoints):
                    ref = fit_pairs(features, job.pairs, None, w0, margin=margin, lr=lr, epochs=epochs,
                                    seed=job.seed, loss=loss, batch_size=32).weights
                    assert_same_fit(got[e_i, b], ref, f"column {b}, {epochs} epochs")


def _three_groups():
    """A problem whose three jobs run as three groups (``max_columns=2``), and its weights in this process."""
    features, pairs = _pairs_problem(seed=2)
    w0 = initial_weight_vector("alex", "lpips")
    jobs = [GridJob(pairs[:250], (0.05, 0.02), (1e-2, 1e-3), (1, 2), seed=s) for s in range(3)]
    return features, jobs, w0, fit_many(features, jobs, w0, max_columns=2)


def test_fit_many_gives_the_same_weights_on_a_given_executor():
    """An Executor the caller made (here a ProcessPoolExecutor of spawned processes, whose workers keep torch's
    default threads) runs the groups, and leaves the caller's tensors alone; it stays the caller's: still open
    after the call. threads=None (the caller's torch threads) is the caller's number in every worker too:
    the products' summation order depends on it."""
    features, jobs, w0, alone = _three_groups()
    seen = np.asarray(w0)                   # a numpy view of the caller's tensor
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        spread = fit_many(features, jobs, w0, max_columns=2, executor=pool)
        # the caller's tensors stay where they were (a process pool's pickler would move them into shared
        # memory in place, leaving the view on freed memory)
        assert not (w0.is_shared() or features.is_shared() or jobs[0].pairs.is_shared())
        assert np.array_equal(seen, w0.numpy())
        with train.torch_threads(1):
            left_alone = fit_many(features, jobs, w0, max_columns=2, executor=pool, threads=None)
        assert pool.submit(int, "7").result() == 7
    for a, b, c in zip(alone, spread, left_alone):
        assert torch.equal(a, b) and torch.equal(a, c)


def test_fit_many_gives_the_same_weights_on_a_dask_cluster():
    """A Dask cluster's executor (two worker processes of one thread each) gives the weights of this process,
    bit for bit; the cluster is closed, and the call bounded (a hung cluster fails the test)."""
    distributed = pytest.importorskip("distributed")
    features, jobs, w0, alone = _three_groups()
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    with cluster, distributed.Client(cluster, timeout="60s") as client, \
            concurrent.futures.ThreadPoolExecutor(1) as waiting:
        call = waiting.submit(fit_many, features, jobs, w0, max_columns=2, executor=client.get_executor())
        spread = call.result(timeout=300)
        ran_on = client.run(lambda: 1)
    assert len(ran_on) == 2
    for a, b in zip(alone, spread):
        assert torch.equal(a, b)


def test_parallel_run_keeps_the_order_and_raises_a_task_error():
    """clpips.parallel.run: results in the tasks' order from local processes (not this one), each limited
    to the threads asked for; one task runs in this process; a task's error reaches the caller as itself,
    and the tasks not started are cancelled."""
    out = parallel.run(_where, [(i,) for i in range(3)], workers=2, threads=1)
    assert [i for i, _, _ in out] == [0, 1, 2]
    assert all(pid != os.getpid() and threads == 1 for _, pid, threads in out)
    assert parallel.run(_where, [(5,)], workers=2)[0][1] == os.getpid()
    started = []
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        with pytest.raises(ValueError, match="task 1 refuses"):
            parallel.run(lambda i: started.append(i) or _refuse(i), [(i,) for i in range(50)], executor=pool)
    assert started[:2] == [0, 1] and len(started) < 50


def test_local_pool_sends_copies_of_the_callers_tensors():
    """LocalPool.submit sends its arguments by value (a process pool's pickler would move a tensor's memory
    into shared memory in place): the caller's tensor, and a numpy view of it, stay as they were."""
    t = torch.arange(6.0)
    seen = t.numpy()
    with parallel.LocalPool(1, threads=1) as pool:
        assert pool.submit(_total, t, scale=2.0).result() == 30.0
    assert not t.is_shared() and np.array_equal(seen, np.arange(6.0))


def _total(t: torch.Tensor, scale: float) -> float:
    return float(t.sum()) * scale


def _where(i: int) -> tuple[int, int, int]:
    return i, os.getpid(), torch.get_num_threads()


def _refuse(i: int) -> int:
    """Task 1 fails; the others take a while (so that the caller cancels those not started)."""
    if i == 1:
        raise ValueError("task 1 refuses")
    time.sleep(0.1)
    return i



@pytest.mark.parametrize("job, said", [
    (lambda p, w0: GridJob(p, (), (), (1,)), r"^a job's margins and lrs must be equally long, non-empty sequences$"),
    (lambda p, w0: GridJob(p, (0.05, 0.02), (1e-3,), (1,)),
     r"^a job's margins and lrs must be equally long, non-empty sequences$"),
    (lambda p, w0: GridJob(p, (0.05,), (1e-3,), (1,), initial_weights=w0[:5]),
     r"^initial weights must be 1152 finite numbers for net='alex'$"),
    (lambda p, w0: GridJob(p, (0.05,), (1e-3,), (1,), initial_weights=torch.full_like(w0, float("nan"))),
     r"^initial weights must be 1152 finite numbers for net='alex'$"),
])
def test_fit_many_names_a_jobs_bad_grid_or_start(job, said):
    features, pairs = _pairs_problem()
    w0 = initial_weight_vector("alex", "lpips")
    with pytest.raises(ValueError, match=said):
        fit_many(features, [job(pairs, w0)], w0)


@pytest.mark.float_sensitive
def test_fit_many_without_room_for_the_pair_table_steps_over_the_rows(monkeypatch):
    """Stepping on pair differences wanted, but the table of distinct pairs' differences over its memory cap:
    the step goes over the rows instead, and each column still equals its own fit_pairs."""
    monkeypatch.setattr(train, "steps_on_pairs", lambda *args: True)
    monkeypatch.setattr(train, "_PAIR_TABLE_BYTES", 0)
    features, pairs = _pairs_problem(n_rows=80, n_pairs=300, seed=3)
    w0 = initial_weight_vector("alex", "lpips")
    job = GridJob(pairs, (0.02, 0.05), (1e-2, 3e-3), (1, 2), seed=1)
    got = fit_many(features, [job], w0, batch_size=32)[0]
    for b, (margin, lr) in enumerate(zip(job.margins, job.lrs)):
        for e_i, epochs in enumerate(job.checkpoints):
            ref = fit_pairs(features, pairs, None, w0, margin=margin, lr=lr, epochs=epochs, seed=1,
                            batch_size=32).weights
            assert_same_fit(got[e_i, b], ref, f"column {b}, {epochs} epochs")
