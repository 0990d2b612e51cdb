"""A fit's training history from epoch 0: the starting weights scored as the epochs are."""
from __future__ import annotations

import pandas as pd

__all__ = ["history_with_start"]


def history_with_start(exp) -> pd.DataFrame:
    """``FitResult.history`` of an experiment with an epoch-0 row: the starting weights.

    The starting weights (LPIPS v0.1 by default) are scored with the fit's own
    loss and margin on the fit's own training and validation pairs: the
    validation targets are drawn from the training table exactly as
    :func:`clpips.train.fit` draws them (``split_by_target`` with the fit's
    ``val_size`` and ``seed``).

    Parameters
    ----------
    exp : clpips.experiment.Experiment

    Returns
    -------
    pandas.DataFrame
        The history's columns, first row ``epoch = 0``.
    """
    from clpips.datasets import split_by_target
    from clpips.train import pair_loss, ranking_pair_index

    cfg = exp.result.config
    w0 = exp.result.initial_weights.float()
    d = exp.features.matrix.float() @ w0
    row = {"epoch": 0}
    if cfg.get("val_size", 0) > 0:
        fit_rows, val_rows = split_by_target(exp.train_table, test_size=cfg["val_size"], seed=cfg["seed"])
        sides = (("train", fit_rows), ("val", val_rows))
    else:
        sides = (("train", exp.train_table),)
    for side, rows in sides:
        idx = ranking_pair_index(exp.features, rows)
        s = d[idx[:, 1]] - d[idx[:, 0]]
        row[f"{side}_loss"] = float(pair_loss(s, cfg["loss"], cfg["margin"]))
        row[f"{side}_accuracy"] = float((s > 0).float().mean())
    return pd.concat([pd.DataFrame([row]), exp.result.history], ignore_index=True)
