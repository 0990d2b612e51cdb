"""The defaults in two homes (#22): the method's in clpips.defaults (core), the chapters' and the lesson's in
clpips.book.defaults, which adds them to the method's. Each default is written once; an old access through
clpips.defaults keeps working one release with a DeprecationWarning; `clpips run -p NAME` types a chapter's
parameter by its default as before."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import warnings

import pytest

import clpips.defaults as core
from clpips.apps import notebook_runner as nr
from clpips.book import defaults as book

#: the fields of clpips.defaults.Defaults before the split (main at 664d196) that serve one chapter or the lesson
MOVED = (
    "protocol_metric", "beyond_repeats", "transform_lambdas", "transform_lrs", "transform_steps", "transform_rank",
    "transform_margins", "teacher_sets", "teacher_weight", "baselines", "example_reference", "example_r1",
    "example_r2", "personal_l2", "personal_sizes", "personal_repeats", "ablation_margins", "ablation_lrs",
    "ablation_layers", "ablation_inits", "ablation_losses", "ablation_nets", "ablation_train_sizes",
    "ablation_folds", "ablation_seeds", "classroom_sets", "classroom_k", "classroom_host", "classroom_port",
    "classroom_out", "classroom_students", "class_csv")


def own_fields(cls) -> set[str]:
    """The fields a dataclass writes in its own body (not those it inherits)."""
    return set(cls.__dict__.get("__annotations__", {}))


@pytest.mark.parametrize("name", MOVED)
def test_an_old_field_is_read_through_the_core_with_a_warning_and_is_the_books(name):
    with pytest.warns(DeprecationWarning, match=rf"clpips\.book\.defaults\.DEFAULTS\.{name};"):
        old = getattr(core.DEFAULTS, name)
    assert old == getattr(book.DEFAULTS, name) and type(old) is type(getattr(book.DEFAULTS, name))


def test_each_field_is_written_in_one_of_the_two_classes():
    mine, theirs = own_fields(book.BookDefaults), own_fields(core.Defaults)
    assert not mine & theirs, sorted(mine & theirs)
    assert mine == set(MOVED) and not theirs & set(MOVED)
    assert [f.name for f in dataclasses.fields(book.BookDefaults)][:len(theirs)] == core.names()


def test_the_books_defaults_hold_the_methods_unchanged():
    assert isinstance(book.DEFAULTS, core.Defaults)
    assert {name: getattr(book.DEFAULTS, name) for name in core.names()} == core.as_dict()
    assert book.names() == list(dataclasses.asdict(book.DEFAULTS)) and set(book.names()) == set(core.names()) | set(MOVED)


def test_a_name_in_neither_is_an_attribute_error_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for defaults in (core.DEFAULTS, book.DEFAULTS):
            with pytest.raises(AttributeError, match="has no attribute 'ablation_fold'"):
                defaults.ablation_fold
            assert getattr(defaults, "n_rankings", None) is None   # the ablations' probe (clpips.book.ablations.grid)
        assert book.DEFAULTS.ablation_folds == 5                  # a field of the book's: no warning


def test_importing_the_core_defaults_imports_no_book_module():
    code = "import sys, clpips.defaults; print(sorted(m for m in sys.modules if m.startswith('clpips.book')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("name, value, expected", [
    ("ablation_folds", "3", 3),
    ("personal_l2", "1", 1.0),         # float by its default (YAML alone would read the int 1)
    ("example_r1", "1234", "1234"),    # str by its default (YAML alone would read the int 1234)
    ("classroom_port", "0", 0),
])
def test_the_runner_types_a_chapters_parameter_by_the_books_default(name, value, expected):
    got = nr.coerce_parameter(name, value)
    assert got == expected and type(got) is type(expected)


def test_the_runner_refuses_a_chapters_parameter_of_the_wrong_type():
    with pytest.raises(nr.NotebookError, match="parameter ablation_folds expects int"):
        nr.coerce_parameter("ablation_folds", "2.5")


@pytest.mark.parametrize("value, expected", [("3", "3"), (" 4 ", "4"), ("", "2"),
                                             ("0", "CLPIPS_WORKERS must be a whole number >= 1, got '0'"),
                                             ("two", "CLPIPS_WORKERS must be a whole number >= 1, got 'two'"),
                                             ("-1", "CLPIPS_WORKERS must be a whole number >= 1, got '-1'"),
                                             ("1.5", "CLPIPS_WORKERS must be a whole number >= 1, got '1.5'")])
def test_workers_from_the_environment_or_a_one_line_error_at_import(value, expected):
    """$CLPIPS_WORKERS is read when clpips.defaults is imported (a fresh interpreter): a whole number >= 1,
    blank meaning the default 2; anything else the one-line ValueError naming the variable and its value."""
    code = ("import clpips.defaults as d\n"
            "print(d.DEFAULTS.workers)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "CLPIPS_WORKERS": value})
    if expected.isdigit():
        assert done.returncode == 0 and done.stdout.strip() == expected, done.stderr
    else:
        assert done.returncode != 0
        assert done.stderr.strip().splitlines()[-1] == f"ValueError: {expected}"
