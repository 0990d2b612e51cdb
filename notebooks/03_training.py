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
# (sec-03-training)=
# # Training: what fine-tuning changes in LPIPS
#
# LPIPS {cite:p}`zhang2018lpips` compares two images through a frozen network: at each of five
# layers it takes the squared difference of the normalised activations, weights every channel
# by a non-negative number and averages over space. The distance is therefore *linear* in those
# per-channel weights, $d(x, y) = \phi(x, y) \cdot w$, and CLPIPS {cite:p}`trinh2026clpips`
# fine-tunes $w$ and nothing else: for every pair of candidates that a person ranked, the
# candidate ranked more similar should come out closer to the target by at least a margin.
#
# This chapter runs that training exactly as `clpips fit` does, with the parameters below, and
# looks at what it changed: how the loss and the share of correctly ordered pairs moved epoch by
# epoch, the weights channel by channel, how much of the total weight each layer carries, and
# how many weights the $w \ge 0$ projection holds at zero. Whether the change helps on targets
# the training never saw is the subject of {doc}`/out/notebooks/04_evaluation`.

# %% tags=["parameters"]
from clpips.defaults import DEFAULTS

dataset = DEFAULTS.dataset
k = DEFAULTS.k
candidates = DEFAULTS.candidates
test_size = DEFAULTS.test_size
seed = DEFAULTS.seed
net = DEFAULTS.net
loss = DEFAULTS.loss
margin = DEFAULTS.margin
lr = DEFAULTS.lr
batch_size = DEFAULTS.batch_size
epochs = DEFAULTS.epochs
patience = DEFAULTS.patience
init = DEFAULTS.init
layers = DEFAULTS.layers
project = DEFAULTS.project

# %% tags=["hide-input"]
import time

import pandas as pd
from IPython.display import display
import matplotlib.pyplot as plt
from matplotlib_inline.backend_inline import set_matplotlib_formats
from myst_nb import glue

from clpips import experiment
from clpips.experiment import load_dataset, run
from clpips.book.history import history_with_start
from clpips.book.layer_weights import channel_weights, layer_summary
from clpips.book.plots import training as plots
from clpips.book.report import glue_all

set_matplotlib_formats("png")  # glued figures carry a PNG even under MPLBACKEND=Agg
plt.ioff()  # every figure here is glued where the text shows it: none also under its cell
started = time.perf_counter()

options = {"k": k, "candidates": candidates, "seed": seed}
data = load_dataset(dataset, **options)  # a CSV study ignores the built-in sampling options
fit_options = experiment.fit_options(globals())  # this notebook's loss, margin, lr, ...
# the protocol of `clpips fit`: split by target, fit on the training side (clpips.experiment.run)
exp = run(data, seed=seed, test_size=test_size, net=net, progress=False, **fit_options)
result, cfg = exp.result, exp.result.config

used = pd.DataFrame([{"dataset": data.name, "seed": seed, "test_size": test_size, "net": net, **fit_options}])
display(used.set_index("dataset"))

glue_all({"dataset": data.name, "margin": float(margin), "lr": float(lr), "loss": loss,
          "batch_size": int(batch_size), "patience": int(patience), "max_epochs": int(epochs),
          "n_weights": int(result.weights.numel()), "n_train_targets": int(cfg["n_train_targets"]),
          "n_val_targets": int(cfg["n_val_targets"]), "n_test_targets": int(exp.test_table["target"].nunique()),
          "val_pairs": int(cfg["n_val_pairs"]), "fit_seconds": float(result.seconds)}, prefix="nb03_")
glue_all({"train_pairs": int(cfg["n_train_pairs"])})          # pasted by book/reproduction.md

# %% [markdown]
# The run above used the {glue:text}`nb03_dataset` rankings. Targets, not rankings, are split:
# {glue:text}`nb03_n_test_targets:d` target images are held out for the evaluation chapters and
# never touched here; of the remaining targets, {glue:text}`nb03_n_train_targets:d` give the
# training pairs and {glue:text}`nb03_n_val_targets:d` the *validation* pairs that decide when
# to stop. Every ranking of $k$ candidates gives $k(k-1)/2$ ordered pairs:
# {glue:text}`train_pairs:,d` for training and {glue:text}`nb03_val_pairs:,d` for validation.
# The loss is the {glue:text}`nb03_loss` ranking loss with margin
# {glue:text}`nb03_margin:.3g` (in LPIPS distance units), minimised with Adam at learning rate
# {glue:text}`nb03_lr:.3g` over batches of {glue:text}`nb03_batch_size:d` pairs for the
# {glue:text}`nb03_n_weights:,d` weights; the fit took {glue:text}`nb03_fit_seconds:.1f` seconds
# once the pair features were cached.
#
# ## Learning curves

# %% tags=["hide-input"]
history = history_with_start(exp)
start, best = history.iloc[0], history.set_index("epoch").loc[result.best_epoch]
shown = sorted({0, int(result.best_epoch), int(history["epoch"].max())})   # start, kept, last
display(history.set_index("epoch").loc[shown].round(4))

glue_all({"val_pair_accuracy_lpips": float(start["val_accuracy"]),   # pasted by book/reproduction.md
          "val_pair_accuracy_clpips": float(best["val_accuracy"])})
glue_all({"epochs_run": int(result.history["epoch"].max()), "best_epoch": int(result.best_epoch),
          "train_acc_start": float(start["train_accuracy"]), "train_acc_best": float(best["train_accuracy"]),
          "val_loss_start": float(start["val_loss"]), "val_loss_best": float(best["val_loss"]),
          "val_acc_gain_pp": float(100 * (best["val_accuracy"] - start["val_accuracy"])),
          "stop_reason": ("early stopping ended it" if result.history["epoch"].max() < epochs
                          else "it ran the full budget")}, prefix="nb03_")

fig = plots.plot_learning_curves(history, result.best_epoch,
                                 title=f"{data.name}: margin {margin:g}, lr {lr:g}, {loss} loss")
glue("nb03_fig_curves", fig, display=False)

# %% [markdown]
# ```{glue:figure} nb03_fig_curves
# :name: fig-03-learning-curves
#
# Ranking loss (left) and pair accuracy, the share of ordered pairs the metric puts in the
# person's order (right), on training and validation pairs after each epoch. Epoch 0 (open
# markers) is LPIPS itself, before any training; the dotted line marks the epoch whose weights
# are kept (lowest validation loss).
# ```
#
# Training ran {glue:text}`nb03_epochs_run:d` of at most {glue:text}`nb03_max_epochs:d` epochs
# ({glue:text}`nb03_stop_reason`, patience {glue:text}`nb03_patience:d`), and the weights of epoch
# {glue:text}`nb03_best_epoch:d` are kept. On the training pairs the share of correctly ordered
# pairs went from {glue:text}`nb03_train_acc_start:.1%` (LPIPS) to
# {glue:text}`nb03_train_acc_best:.1%`; on the validation pairs, from targets the fit did not
# see, from {glue:text}`val_pair_accuracy_lpips:.1%` to {glue:text}`val_pair_accuracy_clpips:.1%`
# ({glue:text}`nb03_val_acc_gain_pp:+.1f` percentage points), and the validation loss from
# {glue:text}`nb03_val_loss_start:.4f` to {glue:text}`nb03_val_loss_best:.4f`.
# A pair accuracy of 50% is chance. How far above chance LPIPS already starts, and how little
# room the linear weights have to move it, says much about what the fine-tuning can achieve
# on this data: the backbone's features are fixed, and the fit can only re-weigh them.
#
# ## The learned weights against LPIPS v0.1

# %% tags=["hide-input"]
channels = channel_weights(result.initial_weights, result.weights, net)
summary = layer_summary(channels)
total = summary.iloc[-1]
n_weights = int(total["channels"])

n_negative = int((channels["after"] < 0).sum())
glue_all({"zero_before": int(total["zero_before"]), "zero_after": int(total["zero_after"]),
          "pinned": int(total["pinned"]), "pinned_share": float(total["pinned"] / n_weights),
          "released": int(total["released"]), "zero_after_share": float(total["zero_after"] / n_weights),
          "negative_note": ("No weight can be negative with the projection on." if project else
                            f"Without the projection, {n_negative} weights went negative."),
          "projection": "on" if project else "off",
          "scale": float(total["sum_after"] / total["sum_before"])}, prefix="nb03_")

fig = plots.plot_channel_weights(channels, title=f"{data.name}: learned against LPIPS v0.1 weights")
glue("nb03_fig_channels", fig, display=False)

# %% [markdown]
# ```{glue:figure} nb03_fig_channels
# :name: fig-03-channel-weights
#
# Every channel's weight after fine-tuning (y) against its LPIPS v0.1 weight (x), one panel per
# layer, shallow to deep. On the grey diagonal a weight is unchanged; red crosses are weights
# that were positive in LPIPS and are now held at zero by the $w \ge 0$ projection; green
# circles were zero in LPIPS already.
# ```
#
# Of the {glue:text}`nb03_n_weights:,d` weights, {glue:text}`nb03_zero_before:d` are zero in LPIPS
# v0.1 itself (its own training projected them too). With the projection
# {glue:text}`nb03_projection`, fine-tuning left {glue:text}`nb03_zero_after:d` at zero
# ({glue:text}`nb03_zero_after_share:.0%`): {glue:text}`nb03_pinned:d`
# ({glue:text}`nb03_pinned_share:.0%` of all weights) were positive before and are pinned at
# zero now, and {glue:text}`nb03_released:d` left zero. {glue:text}`nb03_negative_note` A pinned
# channel has stopped counting: its
# features no longer contribute to the distance at all, so the projection does more than keep
# $d \ge 0$, it prunes. The total weight changed by a factor of {glue:text}`nb03_scale:.2f`;
# the overall scale of $w$ does not change any ranking, which is why the next section looks at
# each layer's *share*.
#
# ## Which layers gained and which lost

# %% tags=["hide-input"]
per_layer = summary[summary["layer"] != "all"].set_index("layer")
gain, loss_layer = per_layer["share_change"].idxmax(), per_layer["share_change"].idxmin()
deep = per_layer.loc[per_layer.index[-2:]]
shallow = per_layer.loc[per_layer.index[:2]]
for name, layer in (("gain", gain), ("loss", loss_layer)):   # nb03_gain_layer, nb03_gain_pp, ..., nb03_loss_after
    glue_all({"layer": int(layer), "pp": float(100 * per_layer.at[layer, "share_change"]),
              "before": float(per_layer.at[layer, "share_before"]),
              "after": float(per_layer.at[layer, "share_after"])}, prefix=f"nb03_{name}_")
glue_all({"deep_before": float(deep["share_before"].sum()), "deep_after": float(deep["share_after"].sum()),
          "shallow_before": float(shallow["share_before"].sum()),
          "shallow_after": float(shallow["share_after"].sum()),
          "deep_direction": "towards" if deep["share_change"].sum() > 0 else "away from"}, prefix="nb03_")

display(summary.set_index("layer").style.format(
    {"sum_before": "{:.2f}", "sum_after": "{:.2f}", "share_before": "{:.1%}", "share_after": "{:.1%}",
     "share_change": lambda v: f"{100 * v:+.1f} pp"}))
fig = plots.plot_layer_shares(summary)
glue("nb03_fig_shares", fig, display=False)

# %% [markdown]
# ```{glue:figure} nb03_fig_shares
# :name: fig-03-layer-shares
#
# Each layer's share of the total linear weight in LPIPS v0.1 (grey) and after fine-tuning
# (blue); the labels give the change in percentage points.
# ```
#
# Layer {glue:text}`nb03_gain_layer:d` gained most: its share of the weight went from
# {glue:text}`nb03_gain_before:.1%` to {glue:text}`nb03_gain_after:.1%`
# ({glue:text}`nb03_gain_pp:+.1f` points). Layer {glue:text}`nb03_loss_layer:d` lost most, from
# {glue:text}`nb03_loss_before:.1%` to {glue:text}`nb03_loss_after:.1%`
# ({glue:text}`nb03_loss_pp:+.1f` points). Together the two deepest layers went from
# {glue:text}`nb03_deep_before:.1%` to {glue:text}`nb03_deep_after:.1%` of the weight and the two
# shallowest from {glue:text}`nb03_shallow_before:.1%` to {glue:text}`nb03_shallow_after:.1%`:
# the fit moved weight {glue:text}`nb03_deep_direction` the deep layers.
#
# The shallow layers of AlexNet respond to edges, colours and fine texture; the deep ones to
# larger, more object-like patterns. `mur92`'s people judge photographs of objects mostly by
# what the object *is* ({doc}`/out/notebooks/01_dataset_exploration` shows how strongly their
# judgements follow category), which leaves the low-level channels little to explain, so a fit
# to their rankings has a reason to move weight towards the deeper channels. In the
# `simulated` study people weigh the size, colour, texture, shape, position and background of
# a scene, a mix of low- and mid-level properties. Either way the fit can only re-weigh
# features the frozen network already computes: it cannot, for instance, make AlexNet's
# features categorical. {doc}`/out/notebooks/04_evaluation` measures what the re-weighing buys
# on held-out targets, and {doc}`/out/notebooks/06_ablations` varies the choices made here
# (margin, learning rate, trained layers, starting weights, the projection).

# %% tags=["hide-input"]
glue("nb03_seconds", time.perf_counter() - started, display=False)

# %% [markdown]
# This chapter ran in {glue:text}`nb03_seconds:.0f` seconds. Pair features come from the on-disk
# cache once extracted, and so does the fit once it has run with these data and settings (here,
# in `clpips fit` or in chapters 04 and 05, which make the same fit): the fit's own time is the
# {glue:text}`nb03_fit_seconds:.1f` seconds it took when it ran.
