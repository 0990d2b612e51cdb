"""Training the linear weights: loss, projection, layer subsets, determinism, recovery of a known w; the
one trainer (a single fit is the batched trainer with one column) against autograd and torch.optim.Adam,
and a single fit's numbers against its steps written out (they must not change)."""
from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from clpips import train
from clpips.defaults import DEFAULTS
from clpips.model import CHANNELS, initial_weight_vector
from clpips.book.batched_fits import early_stopped
from clpips.datasets import from_csv
from clpips.train import Adam, FitSettings, GridJob, fit, fit_many, fit_pairs, pair_loss, parse_layers
from helpers import toy_table
from tolerance import assert_same_fit

DIM = sum(CHANNELS["alex"])


def _synthetic(n=4000, seed=0, noise=0.0):
    """Ranked pairs whose preferred order is given by a known non-negative weight vector.

    Returns (features, train_pairs, val_pairs, true_w): row 0 of ``features`` is a
    zero vector, so the pair (0, i) has gap ``features[i] @ w``.
    """
    gen = torch.Generator().manual_seed(seed)
    true_w = torch.rand(DIM, generator=gen) * (torch.rand(DIM, generator=gen) > 0.5)
    x = torch.randn(n, DIM, generator=gen) * 0.01
    s = x @ true_w + noise * torch.randn(n, generator=gen) * 0.01
    x = torch.where((s > 0)[:, None], x, -x)  # orient every pair so the true metric agrees
    features = torch.cat([torch.zeros(1, DIM), x])
    pairs = torch.stack([torch.zeros(n, dtype=torch.long), torch.arange(1, n + 1)], dim=1)
    return features, pairs[: n * 3 // 4], pairs[n * 3 // 4:], true_w


def _gaps(features, pairs, w):
    return features[pairs[:, 1]] @ w - features[pairs[:, 0]] @ w


def test_train_margin_loss_matches_torch():
    s = torch.tensor([-0.2, 0.0, 0.01, 0.3])
    expected = torch.nn.MarginRankingLoss(margin=0.05)(s, torch.zeros(4), torch.ones(4))
    assert float(pair_loss(s, "margin", 0.05)) == pytest.approx(float(expected))
    logistic = torch.nn.functional.softplus(-s / 0.05).mean()
    assert float(pair_loss(s, "logistic", 0.05)) == pytest.approx(float(logistic))


def test_train_improves_pair_accuracy_on_known_weights():
    F, tr, va, _ = _synthetic()
    w0 = initial_weight_vector("alex", "lpips")
    start_acc = float((_gaps(F, va, w0) > 0).float().mean())
    result = fit_pairs(F, tr, va, w0, margin=0.001, lr=1e-2, epochs=30, patience=30)
    assert result.history["val_accuracy"].max() > start_acc + 0.2
    assert float((_gaps(F, va, result.weights) > 0).float().mean()) > 0.85


@pytest.fixture(params=["rows", "pairs"])
def step_path(request, monkeypatch):
    """Each step of the trainer taken both ways (train.steps_on_pairs): over all the rows, and on the
    batches' pair differences."""
    monkeypatch.setattr(train, "steps_on_pairs", lambda *args: request.param == "pairs")
    return request.param


@pytest.mark.parametrize("loss", ["margin", "logistic"])
@pytest.mark.float_sensitive
def test_train_matches_autograd_reference(loss, step_path):
    """The hand-written gradient and Adam equal torch autograd + torch.optim.Adam on the same batches:
    a single fit (the trainer's one-vector arithmetic), and a one-column fit_many on either path of a step."""
    F, tr, va, _ = _synthetic(n=1200, seed=9)
    F, w0 = F.double(), initial_weight_vector("alex", "lpips").double()     # compared in float64 (tolerance.py)
    ours = fit_pairs(F, tr, None, w0, loss=loss, margin=0.01, lr=1e-3, batch_size=64, epochs=2, seed=5,
                     project=True, l2=0.3, l2_to=w0 * 0.5)
    (batched,) = fit_many(F, [GridJob(tr, (0.01,), (1e-3,), (2,), seed=5, l2=0.3, l2_to=w0 * 0.5)], w0, loss=loss,
                          batch_size=64, project=True)
    w = torch.nn.Parameter(w0.clone())
    opt = torch.optim.Adam([w], lr=1e-3)
    gen = torch.Generator().manual_seed(5)
    for _ in range(2):
        order = torch.randperm(len(tr), generator=gen)
        for i in range(0, len(tr), 64):
            batch = tr[order[i:i + 64]]
            objective = pair_loss(_gaps(F, batch, w), loss, 0.01) + 0.3 * torch.sum((w - w0 * 0.5) ** 2)
            opt.zero_grad()
            objective.backward()
            opt.step()
            with torch.no_grad():
                w.clamp_(min=0)
    assert_same_fit(ours.weights, w.detach(), "fit_pairs against autograd and torch.optim.Adam")
    assert_same_fit(batched[0, 0], w.detach(), f"fit_many ({step_path}) against autograd and torch.optim.Adam")


@pytest.mark.float_sensitive
def test_train_adam_matches_torch():
    """Each column of the trainer's Adam, with its own learning rate, is torch.optim.Adam on that column;
    so is a vector with one rate (a single fit's form)."""
    gen = torch.Generator().manual_seed(0)
    lrs = torch.tensor([0.01, 0.001, 0.03], dtype=torch.float64)
    mine = torch.zeros(50, 3, dtype=torch.float64)
    refs = [torch.nn.Parameter(torch.zeros(50, dtype=torch.float64)) for _ in lrs]
    adam, opts = Adam(mine, lrs), [torch.optim.Adam([ref], lr=float(lr)) for ref, lr in zip(refs, lrs)]
    one = Adam(torch.zeros(50, 1, dtype=torch.float64), 0.01)
    for _ in range(100):
        g = torch.randn(50, 3, generator=gen, dtype=torch.float64)
        adam.step(g)
        one.step(g[:, :1])
        for c, (ref, opt) in enumerate(zip(refs, opts)):
            ref.grad = g[:, c].clone()
            opt.step()
    for c, ref in enumerate(refs):
        assert_same_fit(adam.W[:, c], ref.detach(), f"Adam's column {c} against torch.optim.Adam")
    assert_same_fit(one.W[:, 0], refs[0].detach(), "Adam with one rate against torch.optim.Adam")


@pytest.mark.float_sensitive
def test_train_one_fit_is_the_batched_trainer_with_one_column(step_path):
    """fit_pairs and a one-column fit_many are the same trainer (same batches, same steps), the single fit
    with a vector's products and Adam's one-rate form: equal up to float rounding, on either path of a
    batched step. (Bit for bit they differ: each keeps the rounding it always had, so that neither the
    single fits' numbers nor the batched fits' change; test_train_single_fit_keeps_its_numbers.)"""
    F, tr, _, _ = _synthetic(n=900, seed=6)
    F, w0 = F.double(), initial_weight_vector("alex", "lpips").double()     # compared in float64 (tolerance.py)
    for options in (dict(), dict(loss="logistic", layers="0,3", project=False), dict(l2=0.4, l2_to=w0 * 0.8)):
        alone = fit_pairs(F, tr, None, w0, margin=0.02, lr=3e-3, batch_size=64, epochs=3, seed=2, **options).weights
        job = GridJob(tr, (0.02,), (3e-3,), (3,), seed=2, loss=options.get("loss"), layers=options.get("layers"),
                      project=options.get("project"), l2=options.get("l2", 0.0), l2_to=options.get("l2_to"))
        (batched,) = fit_many(F, [job], w0, batch_size=64)
        assert_same_fit(alone, batched[0, 0], f"{options}")


def _single_fit_steps(F, pairs, w0, *, loss, margin, lr, batch_size, epochs, seed, trained, project, l2=0.0,
                      l2_to=None):
    """A single fit's steps written out, in float32, as fit_pairs has computed them since its first version:
    one randperm per epoch, ``d = F w`` over the rows the pairs use, each pair's loss slope over the batch
    size, the slopes added at the rows by bincount, ``coef F``, the pull, Adam with one learning rate."""
    gen = torch.Generator().manual_seed(seed)
    used, inverse = torch.unique(pairs.flatten(), return_inverse=True)
    rows, better, worse = F[used].contiguous(), inverse.view(-1, 2)[:, 0], inverse.view(-1, 2)[:, 1]
    w, (b1, b2) = w0.clone(), (0.9, 0.999)
    m, v, t, mask = torch.zeros_like(w), torch.zeros_like(w), 0, trained.to(w.dtype)
    for _ in range(epochs):
        order = torch.randperm(len(pairs), generator=gen)
        for i in range(0, len(pairs), batch_size):
            idx = order[i:i + batch_size]
            b, c = better[idx], worse[idx]
            d = rows @ w
            s = d[c] - d[b]
            slope = (-(s <= margin).to(s.dtype) if loss == "margin" else -torch.sigmoid(-s / margin) / margin) / len(idx)
            g = (torch.bincount(c, slope, len(used)) - torch.bincount(b, slope, len(used))) @ rows
            if l2_to is not None:
                g += 2 * l2 * (w - l2_to)
            g = g * mask
            t += 1
            m.mul_(b1).add_(g, alpha=1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            w.addcdiv_(m, (v.sqrt() / (1 - b2 ** t) ** 0.5).add_(1e-8), value=-lr / (1 - b1 ** t))
            if project:
                w.clamp_(min=0)
    return w


def test_train_single_fit_keeps_its_numbers():
    """A single fit (float32, as the chapters fit) gives its steps written out bit for bit: the batched
    trainer it now runs on changed none of its numbers (chapter 03's fit among them)."""
    F, tr, _, _ = _synthetic(n=900, seed=6)
    F = torch.cat([F, torch.rand(50, DIM, generator=torch.Generator().manual_seed(1))])   # rows no pair uses
    w0 = initial_weight_vector("alex", "lpips")
    for options in (dict(loss="margin", layers="all", project=True), dict(loss="logistic", layers="0,3", project=False),
                    dict(loss="margin", layers="all", project=True, l2=0.4, l2_to=w0 * 0.8)):
        settings = dict(margin=0.02, lr=3e-3, batch_size=100, epochs=3, seed=2)
        ours = fit_pairs(F, tr, None, w0, **settings, **options).weights
        with train.torch_threads(1):                     # as fit_pairs (threads=1): the products' summation order
            written = _single_fit_steps(F, tr, w0, **settings, trained=train.trainable_mask(options.pop("layers")),
                                        **options)
        assert torch.equal(ours, written), options


def test_train_same_seed_same_weights():
    F, tr, va, _ = _synthetic(seed=1)
    w0 = initial_weight_vector("alex", "lpips")
    a = fit_pairs(F, tr, va, w0, epochs=3, seed=7)
    b = fit_pairs(F, tr, va, w0, epochs=3, seed=7)
    c = fit_pairs(F, tr, va, w0, epochs=3, seed=8)
    assert torch.equal(a.weights, b.weights)
    assert not torch.equal(a.weights, c.weights)


def test_train_projection_keeps_weights_nonnegative():
    F, tr, va, _ = _synthetic(seed=2)
    w0 = initial_weight_vector("alex", "lpips")
    on = fit_pairs(-F, tr, va, w0, lr=0.05, epochs=3, project=True)
    off = fit_pairs(-F, tr, va, w0, lr=0.05, epochs=3, project=False)
    assert float(on.weights.min()) >= 0.0
    assert float(off.weights.min()) < 0.0  # reversed preferences push weights negative


def test_train_only_chosen_layers_move():
    F, tr, va, _ = _synthetic(seed=3)
    w0 = initial_weight_vector("alex", "lpips")
    result = fit_pairs(F, tr, va, w0, lr=0.05, epochs=2, layers="1,3")
    start = 0
    for layer, c in enumerate(CHANNELS["alex"]):
        moved = not torch.equal(result.weights[start:start + c], w0[start:start + c])
        assert moved == (layer in (1, 3)), layer
        start += c


def test_train_early_stopping_keeps_best_epoch():
    F, tr, va, _ = _synthetic(seed=4)
    w0 = initial_weight_vector("alex", "lpips")
    result = fit_pairs(F, tr, va.flip(1), w0, lr=0.05, epochs=20, patience=2)  # validation disagrees
    hist = result.history
    assert len(hist) < 20
    assert result.best_epoch == int(hist.loc[hist["val_loss"].idxmin(), "epoch"])


def test_train_rejects_bad_options():
    F, tr, va, _ = _synthetic(n=40)
    w0 = initial_weight_vector("alex", "lpips")
    with pytest.raises(ValueError, match="loss must be one of"):
        fit_pairs(F, tr, va, w0, loss="hinge")
    with pytest.raises(ValueError, match="layers must be within"):
        parse_layers("0,7")
    with pytest.raises(ValueError, match="expected M x 1152"):
        fit_pairs(F[:, :10], tr, va, w0)
    with pytest.raises(ValueError, match="N x 2 tensor"):
        fit_pairs(F, tr[:, 0], va, w0)
    with pytest.raises(TypeError, match="unknown options \\['margins'\\]"):
        fit_pairs(F, tr, va, w0, margins=0.1)


def test_train_signatures_list_the_settings():
    """The trainers take their options as keywords and show them: help() and inspect list each setting."""
    assert set(inspect.signature(fit_pairs).parameters) >= set(FitSettings.__dataclass_fields__)
    assert inspect.signature(fit).parameters["init"].default == DEFAULTS.init
    assert set(inspect.signature(fit_many).parameters) >= set(train.CALL_OPTIONS) | {"workers", "executor"}
    assert inspect.signature(early_stopped).parameters["patience"].default == FitSettings().patience


def test_patience_is_the_rule_worked_by_hand():
    """Early stopping's one rule: better than the best by more than 1e-9 improves; ``patience`` epochs in a
    row without improvement stop; an infinite or NaN loss never improves (best epoch 0)."""
    from clpips.train import Patience
    rule = Patience(2)
    assert [rule.record(e, v) for e, v in [(1, 1.0), (2, 0.5), (3, 0.5 - 5e-10), (4, 0.7)]] == [True, True, True, False]
    assert (rule.best_epoch, rule.best) == (2, 0.5)
    again = Patience(3)
    assert [again.record(e, v) for e, v in [(1, 1.0), (2, 0.9), (3, 0.95), (4, 0.8)]] == [True] * 4
    assert again.best_epoch == 4 and again.stale == 0
    never = Patience(2)
    assert [never.record(e, v) for e, v in [(1, float("inf")), (2, float("nan"))]] == [True, False]
    assert never.best_epoch == 0


# -- error branches and fallbacks ---------------------------------------------------------------------------
def test_pair_loss_names_an_unknown_loss():
    with pytest.raises(ValueError, match=r"^loss must be one of \('margin', 'logistic'\), got 'hinge'$"):
        pair_loss(torch.zeros(3), "hinge", 0.1)


def test_torch_threads_none_leaves_the_thread_count_as_it_is():
    before = torch.get_num_threads()
    with train.torch_threads(None):
        assert torch.get_num_threads() == before
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("options, said", [
    ({"net": "squeeze"}, r"^net must be one of \['alex', 'vgg'\], got 'squeeze'$"),
    ({"batch_size": 0}, r"^batch_size and patience must be >= 1, got 0 and \d+$"),
    ({"patience": 0}, r"^batch_size and patience must be >= 1, got \d+ and 0$"),
])
def test_fit_pairs_names_a_bad_net_batch_size_or_patience(options, said):
    F, tr, va, _ = _synthetic(n=40)
    with pytest.raises(ValueError, match=said):
        fit_pairs(F, tr, va, initial_weight_vector("alex", "lpips"), **options)


@pytest.mark.parametrize("bad", [torch.zeros(5, dtype=torch.long), torch.zeros(5, 3, dtype=torch.long)])
def test_fit_pairs_names_validation_pairs_of_another_shape(bad):
    F, tr, _, _ = _synthetic(n=40)
    with pytest.raises(ValueError, match=r"^val_pairs must be an N x 2 tensor of \(better, worse\) rows$"):
        fit_pairs(F, tr, bad, initial_weight_vector("alex", "lpips"))


def test_fit_and_validation_rows_of_an_unknown_rater_or_without_validation():
    table = toy_table(raters=("a", "b"))
    with pytest.raises(ValueError, match=r"^rater 'c' has no rankings in this table$"):
        train.fit_and_validation_rows(table, "c")
    rows, val = train.fit_and_validation_rows(table, "a", val_size=0)
    assert rows.equals(table[table["rater"] == "a"])
    assert val.empty and list(val.columns) == list(table.columns)


def test_fit_without_features_computes_those_of_its_table(tmp_path):
    """fit() with no features extracts its table's pairs (pair_features_for) and trains on them: the weights
    a fit on those features passed in gives."""
    rng = np.random.default_rng(0)
    (tmp_path / "images").mkdir()
    names = [f"images/im{i}.png" for i in range(5)]
    for name in names:
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(tmp_path / name)
    rows = [dict(set_id=f"s{i}", target=names[i], candidate=names[(i + j) % 5], rater=r, rank=int(rank))
            for i in range(5) for r in ("r1", "r2") for j, rank in zip((1, 2, 3), rng.permutation(3) + 1)]
    pd.DataFrame(rows).to_csv(tmp_path / "rankings.csv", index=False)
    data = from_csv(tmp_path / "rankings.csv")
    alone = fit(data, val_size=0, epochs=2, progress=False)
    given = fit(data, val_size=0, epochs=2, progress=False,
                features=train.pair_features_for(data, data.table, progress=False))
    assert torch.equal(alone.weights, given.weights)
    assert alone.config["n_train_targets"] == 5 and alone.config["n_val_targets"] == 0
