"""clpips.choices: one home for the choice lists; the library and the CLI agree with it."""
from __future__ import annotations

import subprocess
import sys

from clpips import choices


def test_choices_imports_nothing_heavy():
    code = ("import sys, clpips.choices, clpips.apps.cli; "
            "heavy = [m for m in ('torch', 'pandas', 'numpy') if m in sys.modules]; "
            "print(','.join(heavy))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "torch" not in proc.stdout.split(","), "importing the CLI must not import torch"


def test_library_lists_agree_with_choices():
    """Each module that checks a value reads (or, until it is pointed here, equals) the list of clpips.choices."""
    from clpips import model, protocol, train, weights
    from clpips.book import baselines
    import importlib
    from clpips.datasets import mur92, splits
    validate = importlib.import_module("clpips.datasets.validate")  # the package's `validate` is a function
    assert tuple(model.CHANNELS) == choices.NETS == weights.NETS
    assert model.LINEAR_INITS is choices.LINEAR_INITS
    assert tuple(train.LOSSES) == choices.LOSSES
    assert tuple(mur92.CANDIDATES) == choices.CANDIDATE_RULES
    assert tuple(validate.TIES) == choices.TIES
    assert dict(splits.SPLIT_MODES) == choices.SPLIT_MODES
    assert tuple(protocol.SELECT) == choices.SELECT
    assert tuple(protocol.STATISTICS) == choices.PROTOCOL_STATISTICS
    assert tuple(protocol.METRICS) == choices.PROTOCOL_METRICS
    assert tuple(baselines.BASELINES) == choices.BASELINES


def _choices_of(command: str) -> dict[str, tuple]:
    from clpips.apps.cli import build_parser
    sub = build_parser()._subparsers._group_actions[0].choices[command]
    return {a.dest: tuple(a.choices) for a in sub._actions if a.choices is not None}


def test_cli_offers_the_library_choices():
    fit = _choices_of("fit")
    assert fit["net"] == choices.NETS and fit["loss"] == choices.LOSSES
    assert fit["init"] == choices.LINEAR_INITS and fit["candidates"] == choices.CANDIDATE_RULES
    assert fit["ties"] == choices.TIES
    for command in ("score", "evaluate", "classroom", "crossval"):
        assert _choices_of(command)["net"] == choices.NETS, command
    assert _choices_of("classroom")["candidates"] == choices.CANDIDATE_RULES
    crossval = _choices_of("crossval")
    assert set(crossval["select"]) == set(choices.SELECT)
    assert set(crossval["split_mode"]) == {*choices.SPLIT_MODES, "both"}
    assert set(crossval["metric"]) == set(choices.PROTOCOL_METRICS)
