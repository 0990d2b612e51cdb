"""The command line for people: help with examples, `python -m clpips`."""
from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from clpips.apps.cli import build_parser


def _help(argv):
    proc = subprocess.run([sys.executable, "-m", "clpips", *argv, "--help"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_cli_help_top_level_has_examples():
    out = _help([])
    assert "examples:" in out
    for command in ("score", "fit", "evaluate", "run"):
        assert f"clpips {command}" in out


@pytest.mark.parametrize("command", ["score", "fit", "evaluate", "run"])
def test_cli_help_each_command_has_examples(command):
    out = _help([command])
    assert "examples:" in out and f"clpips {command}" in out


def test_cli_help_options_default_to_the_defaults_module():
    from clpips.book.defaults import DEFAULTS
    parser = build_parser()
    fit = parser._subparsers._group_actions[0].choices["fit"]
    values = {a.dest: a.default for a in fit._actions}
    for name in ("margin", "lr", "epochs", "patience", "seed", "batch_size", "net", "loss", "init", "layers"):
        assert values[name] == getattr(DEFAULTS, name), name


def test_cli_fit_options_are_the_trainers_options():
    """The fit options the CLI and notebooks pass on are exactly those the trainer accepts."""
    import inspect

    from clpips.experiment import FIT_OPTIONS, fit_options
    from clpips.train import fit_pairs

    accepted = set(inspect.signature(fit_pairs).parameters) | {"init"}
    assert set(FIT_OPTIONS) <= accepted
    args = build_parser().parse_args(["fit", "--out", "x", "--margin", "0.1", "--no-project"])
    chosen = fit_options(vars(args))
    assert set(chosen) == set(FIT_OPTIONS)
    assert chosen["margin"] == 0.1 and chosen["project"] is False


@pytest.mark.parametrize("command", [[sys.executable, "-m", "clpips"], "script"])
def test_a_bad_environment_setting_is_one_line_not_a_traceback(command, tmp_path):
    """CLPIPS_WORKERS is read as the package loads: the command refuses a bad value as it refuses a bad
    option, in one line with status 2, whether run as ``python -m clpips`` or as the installed ``clpips``."""
    if command == "script":   # the console script pyproject.toml declares, called as pip's wrapper calls it
        target = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())[
            "project"]["scripts"]["clpips"]
        module, function = target.split(":")
        command = [sys.executable, "-c", f"import sys; from {module} import {function}; sys.exit({function}())"]
    env = {**os.environ, "CLPIPS_WORKERS": "0"}
    proc = subprocess.run([*command, "fit", "--help"], capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == "clpips: error: CLPIPS_WORKERS must be a whole number >= 1, got '0'\n"
    env["CLPIPS_WORKERS"] = "1"
    assert subprocess.run([*command, "fit", "--help"], capture_output=True, text=True, env=env).returncode == 0
