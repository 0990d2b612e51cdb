"""Training the linear weights: loss, projection, layer subsets, determinism, recovery of a known w."""
from __future__ import annotations

import pytest
import torch

from clpips.model import CHANNELS, initial_weight_vector
from clpips.train import fit_pairs, pair_loss, parse_layers

DIM = sum(CHANNELS["alex"])


def _synthetic(n=4000, seed=0, noise=0.0):
    """Pair differences whose preferred order is given by a known non-negative weight vector."""
    gen = torch.Generator().manual_seed(seed)
    true_w = torch.rand(DIM, generator=gen) * (torch.rand(DIM, generator=gen) > 0.5)
    x = torch.randn(n, DIM, generator=gen) * 0.01
    s = x @ true_w + noise * torch.randn(n, generator=gen) * 0.01
    x = torch.where((s > 0)[:, None], x, -x)  # orient every pair so the true metric agrees
    return x[: n * 3 // 4], x[n * 3 // 4:], true_w


def test_train_margin_loss_matches_torch():
    s = torch.tensor([-0.2, 0.0, 0.01, 0.3])
    expected = torch.nn.MarginRankingLoss(margin=0.05)(s, torch.zeros(4), torch.ones(4))
    assert float(pair_loss(s, "margin", 0.05)) == pytest.approx(float(expected))
    logistic = torch.nn.functional.softplus(-s / 0.05).mean()
    assert float(pair_loss(s, "logistic", 0.05)) == pytest.approx(float(logistic))


def test_train_improves_pair_accuracy_on_known_weights():
    train_x, val_x, _ = _synthetic()
    w0 = initial_weight_vector("alex", "lpips")
    start_acc = float(((val_x @ w0) > 0).float().mean())
    result = fit_pairs(train_x, val_x, w0, margin=0.001, lr=1e-2, epochs=30, patience=30)
    assert result.history["val_accuracy"].max() > start_acc + 0.2
    assert float(((val_x @ result.weights) > 0).float().mean()) > 0.85


def test_train_same_seed_same_weights():
    train_x, val_x, _ = _synthetic(seed=1)
    w0 = initial_weight_vector("alex", "lpips")
    a = fit_pairs(train_x, val_x, w0, epochs=3, seed=7)
    b = fit_pairs(train_x, val_x, w0, epochs=3, seed=7)
    c = fit_pairs(train_x, val_x, w0, epochs=3, seed=8)
    assert torch.equal(a.weights, b.weights)
    assert not torch.equal(a.weights, c.weights)


def test_train_projection_keeps_weights_nonnegative():
    train_x, val_x, _ = _synthetic(seed=2)
    w0 = initial_weight_vector("alex", "lpips")
    on = fit_pairs(-train_x, -val_x, w0, lr=0.05, epochs=3, project=True)
    off = fit_pairs(-train_x, -val_x, w0, lr=0.05, epochs=3, project=False)
    assert float(on.weights.min()) >= 0.0
    assert float(off.weights.min()) < 0.0  # reversed preferences push weights negative


def test_train_only_chosen_layers_move():
    train_x, val_x, _ = _synthetic(seed=3)
    w0 = initial_weight_vector("alex", "lpips")
    result = fit_pairs(train_x, val_x, w0, lr=0.05, epochs=2, layers="1,3")
    start = 0
    for layer, c in enumerate(CHANNELS["alex"]):
        moved = not torch.equal(result.weights[start:start + c], w0[start:start + c])
        assert moved == (layer in (1, 3)), layer
        start += c


def test_train_early_stopping_keeps_best_epoch():
    train_x, val_x, _ = _synthetic(seed=4)
    w0 = initial_weight_vector("alex", "lpips")
    result = fit_pairs(train_x, -val_x, w0, lr=0.05, epochs=20, patience=2)  # validation disagrees
    hist = result.history
    assert len(hist) < 20
    assert result.best_epoch == int(hist.loc[hist["val_loss"].idxmin(), "epoch"])


def test_train_rejects_bad_options():
    train_x, val_x, _ = _synthetic(n=40)
    w0 = initial_weight_vector("alex", "lpips")
    with pytest.raises(ValueError, match="loss must be one of"):
        fit_pairs(train_x, val_x, w0, loss="hinge")
    with pytest.raises(ValueError, match="layers must be within"):
        parse_layers("0,7")
    with pytest.raises(ValueError, match="expected N x 1152"):
        fit_pairs(train_x[:, :10], val_x, w0)
