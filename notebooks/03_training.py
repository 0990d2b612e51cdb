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
from clpips.book.defaults import DEFAULTS

dataset = DEFAULTS.dataset
k = DEFAULTS.k
candidates = DEFAULTS.candidates
seed = DEFAULTS.seed
test_size = DEFAULTS.test_size
net = DEFAULTS.net
loss = DEFAULTS.loss
margin = DEFAULTS.margin
lr = DEFAULTS.lr
epochs = DEFAULTS.epochs
layers = DEFAULTS.layers
project = DEFAULTS.project

# %%
import time

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib_inline.backend_inline import set_matplotlib_formats
from myst_nb import glue

from clpips.book.history import history_with_start
from clpips.book.layer_weights import channel_weights, layer_summary
from clpips.book.plots import training as plots
from clpips.book.report import glue_all, view
from clpips.experiment import load_dataset, run

set_matplotlib_formats("png")  # glued figures carry a PNG even under MPLBACKEND=Agg
started = time.perf_counter()

# %% [markdown]
# ## The split and the fit
#
# `clpips.experiment.run` is `clpips fit`: it splits the rankings by target, holds out a share
# `test_size` of the targets for the evaluation chapters, and fits the linear weights on the
# rest. The batch size and the early-stopping patience are the package's defaults
# (`clpips.defaults`).

# %%
data = load_dataset(dataset, k=k, candidates=candidates, seed=seed)  # a CSV study ignores the built-in datasets' sampling options
settings = {"loss": loss, "margin": margin, "lr": lr, "batch_size": DEFAULTS.batch_size, "epochs": epochs,
            "patience": DEFAULTS.patience, "init": DEFAULTS.init, "layers": layers, "project": project}
exp = run(data, seed=seed, test_size=test_size, net=net, progress=False, **settings)
result, cfg = exp.result, exp.result.config

# %%
split = pd.Series({"training targets": cfg["n_train_targets"], "validation targets": cfg["n_val_targets"],
                   "held-out targets": exp.test_table["target"].nunique(), "training pairs": cfg["n_train_pairs"],
                   "validation pairs": cfg["n_val_pairs"], "weights": result.weights.numel()}, name=data.name)
glue_all({"train_pairs": int(split["training pairs"])})          # pasted by book/reproduction.md
glue_all({"dataset": data.name, "n_train_targets": int(split["training targets"]),
          "n_val_targets": int(split["validation targets"]), "n_test_targets": int(split["held-out targets"]),
          "val_pairs": int(split["validation pairs"]), "n_weights": int(split["weights"]), "loss": loss,
          "margin": float(margin), "lr": float(lr), "batch_size": DEFAULTS.batch_size,
          "patience": DEFAULTS.patience, "max_epochs": int(epochs), "fit_seconds": float(result.seconds)},
         prefix="nb03_")
split

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
#
# The fit records the loss and the *pair accuracy*, the share of ordered pairs the metric puts
# in the person's order, on both sides after every epoch. `history_with_start` adds epoch 0:
# the starting weights (LPIPS v0.1 itself, unless `DEFAULTS.init` says otherwise) scored
# the same way.

# %%
history = history_with_start(exp).set_index("epoch")
start, best = history.loc[0], history.loc[result.best_epoch]
glue_all({"val_pair_accuracy_lpips": float(start["val_accuracy"]),   # pasted by book/reproduction.md
          "val_pair_accuracy_clpips": float(best["val_accuracy"]),
          "nb03_epochs_run": int(history.index.max()), "nb03_best_epoch": int(result.best_epoch),
          "nb03_train_acc_start": float(start["train_accuracy"]), "nb03_train_acc_best": float(best["train_accuracy"]),
          "nb03_val_loss_start": float(start["val_loss"]), "nb03_val_loss_best": float(best["val_loss"]),
          "nb03_val_acc_gain_pp": float(100 * (best["val_accuracy"] - start["val_accuracy"]))})
history.loc[sorted({0, result.best_epoch, history.index.max()})].round(4)      # start, kept, last

# %% tags=["remove-output"]
fig = plots.plot_learning_curves(history.reset_index(), result.best_epoch,
                                 title=f"{data.name}: margin {margin:g}, lr {lr:g}, {loss} loss")
glue("nb03_fig_curves", fig, display=False)
plt.close(fig)  # shown once: below in JupyterLab, where the text pastes it in the book
fig

# %% [markdown]
# ```{glue:figure} nb03_fig_curves
# :name: fig-03-learning-curves
#
# Ranking loss (left) and pair accuracy, the share of ordered pairs the metric puts in the
# person's order (right), on training and validation pairs after each epoch. Epoch 0 (open
# markers) is the starting weights, before any training; the dotted line marks the epoch whose weights
# are kept (lowest validation loss).
# ```
#
# Training ran {glue:text}`nb03_epochs_run:d` of at most {glue:text}`nb03_max_epochs:d` epochs
# (early stopping ends it sooner once the validation loss has not improved for
# {glue:text}`nb03_patience:d` epochs), and the weights of epoch
# {glue:text}`nb03_best_epoch:d` are kept. On the training pairs the share of correctly ordered
# pairs went from {glue:text}`nb03_train_acc_start:.1%` (epoch 0) to
# {glue:text}`nb03_train_acc_best:.1%`; on the validation pairs, from targets the fit did not
# see, from {glue:text}`val_pair_accuracy_lpips:.1%` to {glue:text}`val_pair_accuracy_clpips:.1%`
# ({glue:text}`nb03_val_acc_gain_pp:+.1f` percentage points), and the validation loss from
# {glue:text}`nb03_val_loss_start:.4f` to {glue:text}`nb03_val_loss_best:.4f`.
# A pair accuracy of 50% is chance. How far above chance LPIPS already starts, and how little
# room the linear weights have to move it, says much about what the fine-tuning can achieve
# on this data: the backbone's features are fixed, and the fit can only re-weigh them.
#
# ## The learned weights against LPIPS v0.1
#
# `channel_weights` sets every weight after the fit beside its starting value, one row per
# (layer, channel); `layer_summary` counts them per layer, and over all in its last row.

# %%
channels = channel_weights(result.initial_weights, result.weights, net)
summary = layer_summary(channels)
total = summary.set_index("layer").loc["all"]
zeros = pd.Series({"weights": total["channels"], "zero before": total["zero_before"],
                   "zero after": total["zero_after"], "pinned at zero": total["pinned"],
                   "released from zero": total["released"], "negative after": (channels["after"] < 0).sum()}).astype(int)
glue_all({"zero_before": int(zeros["zero before"]), "zero_after": int(zeros["zero after"]),
          "zero_after_share": float(total["zero_after"] / zeros["weights"]), "pinned": int(zeros["pinned at zero"]),
          "pinned_share": float(total["pinned"] / zeros["weights"]), "released": int(zeros["released from zero"]),
          "negative": int(zeros["negative after"]), "scale": float(total["sum_after"] / total["sum_before"])},
         prefix="nb03_")
zeros

# %% tags=["remove-output"]
fig = plots.plot_channel_weights(channels, title=f"{data.name}: learned against LPIPS v0.1 weights")
glue("nb03_fig_channels", fig, display=False)
plt.close(fig)  # shown once: below in JupyterLab, where the text pastes it in the book
fig

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
# Of the {glue:text}`nb03_n_weights:,d` weights, {glue:text}`nb03_zero_before:d` are zero before
# fine-tuning (LPIPS v0.1, the default start, has zeros of its own: its training projected them
# too). After fine-tuning
# {glue:text}`nb03_zero_after:d` are zero ({glue:text}`nb03_zero_after_share:.0%`):
# {glue:text}`nb03_pinned:d` ({glue:text}`nb03_pinned_share:.0%` of all weights) were positive
# before and are held at zero now, and {glue:text}`nb03_released:d` left zero.
# {glue:text}`nb03_negative:d` are negative, which the $w \ge 0$ projection rules out while it is
# on (the parameter `project`). A pinned channel has stopped counting: its
# features no longer contribute to the distance at all, so the projection does more than keep
# $d \ge 0$, it prunes. The total weight changed by a factor of {glue:text}`nb03_scale:.2f`;
# the overall scale of $w$ does not change any ranking, which is why the next section looks at
# each layer's *share*.
#
# ## Which layers gained and which lost

# %%
per_layer = summary[summary["layer"] != "all"].set_index("layer")
summary.set_index("layer").rename(columns=lambda c: c.replace("_", " ")).style.format(   # headers in words wrap
    {"sum before": "{:.2f}", "sum after": "{:.2f}", "share before": "{:.1%}", "share after": "{:.1%}",
     "share change": lambda v: f"{100 * v:+.1f} pp"})

# %% tags=["remove-output"]
fig = plots.plot_layer_shares(summary)
glue("nb03_fig_shares", fig, display=False)
plt.close(fig)  # shown once: below in JupyterLab, where the text pastes it in the book
fig

# %% [markdown]
# The layer that gained the largest share of the weight, and the one that lost the most:

# %%
gained, lost = per_layer["share_change"].idxmax(), per_layer["share_change"].idxmin()
for name, layer in (("gain", gained), ("loss", lost)):   # nb03_gain_layer, nb03_gain_pp, ..., nb03_loss_after
    glue_all({"layer": int(layer), "pp": float(100 * per_layer.at[layer, "share_change"]),
              "before": float(per_layer.at[layer, "share_before"]),
              "after": float(per_layer.at[layer, "share_after"])}, prefix=f"nb03_{name}_")
view(per_layer.loc[[gained, lost], ["share_before", "share_after", "share_change"]],
     names={"share_before": "share before", "share_after": "share after", "share_change": "change"})

# %% [markdown]
# And the two deepest and the two shallowest layers together. One word of the text below
# depends on the run, the direction in which the weight moved; `direction` gives it.

# %%
def direction(change):
    """Where a positive (or negative) change of the deep layers' share moved the weight."""
    return "towards" if change > 0 else "away from"


deep, shallow = per_layer.iloc[-2:], per_layer.iloc[:2]
together = pd.DataFrame({"before": [deep["share_before"].sum(), shallow["share_before"].sum()],
                         "after": [deep["share_after"].sum(), shallow["share_after"].sum()]},
                        index=["two deepest layers", "two shallowest layers"])
glue_all({"deep_before": together.iat[0, 0], "deep_after": together.iat[0, 1], "shallow_before": together.iat[1, 0],
          "shallow_after": together.iat[1, 1], "deep_direction": direction(deep["share_change"].sum())}, prefix="nb03_")
view(together.rename_axis("share of the weight"))

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

# %%
glue("nb03_seconds", time.perf_counter() - started, display=False)

# %% [markdown]
# This chapter ran in {glue:text}`nb03_seconds:.0f` seconds. Pair features come from the on-disk
# cache once extracted, and so does the fit once it has run with these data and settings (here,
# in `clpips fit` or in chapters 04 and 05, which make the same fit): the fit's own time is the
# {glue:text}`nb03_fit_seconds:.1f` seconds it took when it ran.
