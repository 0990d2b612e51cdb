"""Training the linear weights: loss, projection, layer subsets, determinism, recovery of a known w."""
from __future__ import annotations

import pytest
import torch

from clpips.model import CHANNELS, initial_weight_vector
from clpips.train import _Adam, fit_pairs, pair_loss, parse_layers
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


@pytest.mark.parametrize("loss", ["margin", "logistic"])
@pytest.mark.float_sensitive
def test_train_matches_autograd_reference(loss):
    """The hand-written gradient and Adam equal torch autograd + torch.optim.Adam on the same batches."""
    F, tr, va, _ = _synthetic(n=1200, seed=9)
    F, w0 = F.double(), initial_weight_vector("alex", "lpips").double()     # compared in float64 (tolerance.py)
    ours = fit_pairs(F, tr, None, w0, loss=loss, margin=0.01, lr=1e-3, batch_size=64, epochs=2, seed=5,
                     project=True, l2=0.3, l2_to=w0 * 0.5)
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


@pytest.mark.float_sensitive
def test_train_adam_matches_torch():
    gen = torch.Generator().manual_seed(0)
    mine, ref = torch.zeros(50, dtype=torch.float64), torch.nn.Parameter(torch.zeros(50, dtype=torch.float64))
    adam, opt = _Adam(mine, lr=0.01), torch.optim.Adam([ref], lr=0.01)
    for _ in range(100):
        g = torch.randn(50, generator=gen, dtype=torch.float64)
        adam.step(g)
        ref.grad = g.clone()
        opt.step()
    assert_same_fit(mine, ref.detach(), "_Adam against torch.optim.Adam")


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
