"""Old import paths of the modules that moved into the app and book layers (kept for one release).

``import clpips.protocol`` is the core; the command line, the classroom, the widget and the book
runner moved to :mod:`clpips.apps`, and code that serves one chapter to :mod:`clpips.book`.
``import clpips.aligned`` (say) still works until 0.3, with a :class:`DeprecationWarning` naming the
new path: this finder, last on :data:`sys.meta_path`, answers only for the names in :data:`MOVED`.
A single function that left a module that stays (``clpips.stats.verdict``) is answered by that
module's ``__getattr__`` through :func:`moved_name` (:data:`MOVED_NAMES`); a method that became a function
(``CrossvalResult.kept``), by its class's ``__getattr__``, bound to the object.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

#: old module path -> new module path (submodules of a moved package follow their package)
MOVED = {
    "clpips.cli": "clpips.apps.cli", "clpips.classroom": "clpips.apps.classroom",
    "clpips.widget": "clpips.apps.widget", "clpips.notebook_runner": "clpips.apps.notebook_runner",
    "clpips.plots": "clpips.book.plots", "clpips.report": "clpips.book.report",
    "clpips.worked_example": "clpips.book.worked_example", "clpips.aligned": "clpips.book.aligned",
    "clpips.baselines": "clpips.book.baselines", "clpips.personal": "clpips.book.personal",
    "clpips.ablations": "clpips.book.ablations", "clpips.class_analysis": "clpips.book.class_analysis",
    "clpips.layer_weights": "clpips.book.layer_weights", "clpips.citation": "clpips.book.citation",
    "clpips.paper": "clpips.book.paper", "clpips.set_scores": "clpips.book.set_scores",
    "clpips.history": "clpips.book.history", "clpips.datasets.summaries": "clpips.book.summaries",
    "clpips.datasets.labels": "clpips.book.labels", "clpips.datasets.truth": "clpips.book.truth",
    "clpips.stats.power": "clpips.book.power", "clpips.datasets.simulated": "clpips.book.simulated",
    "clpips.datasets.scenes": "clpips.book.scenes",
}

#: old path -> new path of single names that left a module that stays; the module's
#: ``__getattr__`` answers them through :func:`moved_name`
MOVED_NAMES = {
    "clpips.datasets.zappos.split_half": "clpips.book.agreement.split_half",
    "clpips.datasets.alien_eggs.split_half": "clpips.book.agreement.split_half",
    "clpips.datasets.zappos.split_half_ranks": "clpips.book.agreement.split_half_ranks",
    "clpips.datasets.alien_eggs.split_half_ranks": "clpips.book.agreement.split_half_ranks",
    **{f"clpips.datasets.alien_eggs.{name}": f"clpips.book.egg_truth.{name}" for name in (
        "queries", "smoothness", "sampler_counts", "truth_agreement", "smoothness_gap", "truth_ranks", "truth_table",
        "against_truth")},
    **{f"clpips.stats.{name}": f"clpips.book.power.{name}" for name in (
        "VERDICTS", "detection_power", "equivalence", "verdict", "fold_ratio", "minimal_detectable_effect",
        "mode_difference", "power_table")},
    # (clpips.stats.rank_correlation itself is the submodule's name now: the function of that name is only
    # at clpips.stats.rank_correlation.rank_correlation's old path and clpips.book.rank_correlation)
    **{f"clpips.stats{module}.{name}": f"clpips.book.rank_correlation.{name}" for module in ("", ".rank_correlation")
       for name in ("rank_correlation", "spearman", "kendall", "per_set_correlation", "pooled_spearman")
       if f"{module}.{name}" != ".rank_correlation"},
    **{f"clpips.stats{module}.{name}": f"clpips.book.worked_example.{name}" for module in ("", ".interpret")
       for name in ("interpret_icc", "cicchetti_label", "interpretation_scale", "SCALES")},
    **{f"clpips.stats{module}.{name}": f"clpips.book.worked_example.{name}" for module in ("", ".spearman_brown")
       for name in ("icc_ck_from_rho", "icc_ak_pole")},
    **{f"clpips.experiment.{name}": f"clpips.book.batched_fits.{name}" for name in (
        "fit_together", "Fitted", "BATCHED_FIT_OPTIONS")},
    **{f"clpips.train.{name}": f"clpips.book.batched_fits.{name}" for name in ("early_stopped", "fit_grid")},
    "clpips.experiment.spearman_brown_check": "clpips.book.bootstrap_check.spearman_brown_check",
    "clpips.experiment.spearman_brown_icc": "clpips.stats.spearman_brown.icc_ak_from_rho",
    "clpips.datasets.copy_images": "clpips.apps.classroom.copy_images",
    # a moved submodule read as its package's attribute (``datasets.simulated`` without importing it)
    **{f"clpips.datasets.{name}": f"clpips.book.{name}" for name in ("simulated", "scenes")},
    **{f"clpips.experiment.{name}": f"clpips.book.studies.{name}" for name in ("EVERY_DATASET", "load_every_dataset")},
    "clpips.evaluate.row_spearman": "clpips.book.truth.row_spearman",
    "clpips.protocol.fold_choices": "clpips.book.families.fold_choices",
    "clpips.features.finite_vector": "clpips.book.aligned.finite_vector",
    "clpips.protocol.CrossvalResult.kept": "clpips.apps.outputs.kept",   # a method now a function (its __getattr__)
    "clpips.experiment.metrics_json": "clpips.apps.outputs.metrics_json",
    "clpips.experiment.bootstrap_summary": "clpips.apps.outputs.bootstrap_summary",
}


def new_name(old: str) -> str | None:
    """Where module ``old`` lives now, or None if it did not move."""
    for before, after in MOVED.items():
        if old == before or old.startswith(before + "."):
            return after + old[len(before):]
    return None


class MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports a moved module under its old name, warning once per import."""

    def find_spec(self, fullname, path=None, target=None):
        new = new_name(fullname)
        return None if new is None else importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        new = new_name(spec.name)
        warnings.warn(f"{spec.name} moved to {new}; the old path works until clpips 0.3", DeprecationWarning,
                      stacklevel=2)
        return importlib.import_module(new)

    def exec_module(self, module):
        """The module is the new one, already executed."""


def moved_name(module: str, name: str):
    """``module.name`` from where it lives now, with a DeprecationWarning; AttributeError if it never moved."""
    new = MOVED_NAMES.get(f"{module}.{name}")
    if new is None:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    warnings.warn(f"{module}.{name} moved to {new}; the old path works until clpips 0.3", DeprecationWarning,
                  stacklevel=3)
    where, _, attribute = new.rpartition(".")
    module = importlib.import_module(where)
    return getattr(module, attribute) if hasattr(module, attribute) else importlib.import_module(new)  # a submodule


def install() -> None:
    """Put the finder last on :data:`sys.meta_path` (once)."""
    if not any(isinstance(f, MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(MovedFinder())
