"""clpips.apps.notebook_runner and `clpips run`: parameter types, unknown names, failing cells.

The notebooks here are tiny jupytext percent files written into tmp_path; the
executing tests start a real ``python3`` kernel (a few seconds each).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from clpips.apps import cli
from clpips.apps import notebook_runner as nr

HEADER = '# %% tags=["parameters"]\n'

PARAMS_NB = HEADER + '''margin = 0.05
project = True
seed = 0
label = "x"
extra = None

# %%
import json, os
json.dump({"margin": margin, "project": project, "seed": seed, "label": label,
           "extra": extra, "cwd": os.getcwd(),
           "out": os.environ["CLPIPS_NOTEBOOK_OUT"]},
          open("seen.json", "w"))
'''

FAILING_NB = HEADER + '''x = 1

# %%
def explode(v):
    raise ValueError(f"bad value {v}")

explode(x)
'''


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / "notebooks" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# -- coercion (no kernel) ------------------------------------------------------

@pytest.mark.parametrize("name, value, expected", [
    ("margin", "0.1", 0.1),            # float default
    ("margin", "1", 1.0),
    ("margin", 2, 2.0),
    ("project", "false", False),       # bool default
    ("project", "True", True),
    ("project", "0", False),
    ("seed", "3", 3),                  # int default
    ("n_boot", "10_000", 10_000),
    ("dataset", "123", "123"),         # str default stays a string
    ("unlisted", "0.5", 0.5),          # not a default: YAML scalar
    ("unlisted", "false", False),
    ("unlisted", "abc", "abc"),
    ("unlisted", "null", None),
    ("unlisted", 7, 7),
])
def test_coerce_parameter(name, value, expected):
    got = nr.coerce_parameter(name, value)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize("name, value", [
    ("margin", "abc"), ("seed", "1.5"), ("seed", True), ("project", "maybe"), ("seed", 2.5)])
def test_coerce_parameter_rejects_a_bad_value(name, value):
    with pytest.raises(nr.NotebookError, match=f"parameter {name} expects"):
        nr.coerce_parameter(name, value)


def test_unknown_parameter_lists_the_valid_ones(tmp_path):
    source = write(tmp_path, "01_params.py", PARAMS_NB)
    with pytest.raises(nr.NotebookError) as err:
        nr.run_notebook(source, {"marginn": "0.1"}, tmp_path / "out")
    message = str(err.value)
    assert "unknown parameter marginn" in message
    assert "valid: extra, label, margin, project, seed" in message
    assert not (tmp_path / "out").exists()      # nothing ran


def test_notebook_without_parameters_cell_rejects_parameters(tmp_path):
    source = write(tmp_path, "01_plain.py", "# %%\nx = 1\n")
    with pytest.raises(nr.NotebookError, match="no cell tagged 'parameters'"):
        nr.check_parameters(source, {"x": 2})


def test_resolve_notebook_by_name_prefix_and_path(tmp_path):
    a = write(tmp_path, "01_first.py", "# %%\n")
    write(tmp_path, "02_second.py", "# %%\n")
    folder = a.parent
    assert nr.resolve_notebook("01_first", folder) == a
    assert nr.resolve_notebook("01_first.py", folder) == a
    assert nr.resolve_notebook("01", folder) == a
    assert nr.resolve_notebook(str(a)) == a.resolve()
    with pytest.raises(nr.NotebookError, match="ambiguous"):
        nr.resolve_notebook("0", folder)
    with pytest.raises(nr.NotebookError, match="available: 01_first, 02_second"):
        nr.resolve_notebook("03_missing", folder)


def test_shared_parameters_go_to_the_notebooks_that_declare_them(tmp_path):
    a = write(tmp_path, "01_a.py", HEADER + "seed = 0\n")
    b = write(tmp_path, "02_b.py", HEADER + "margin = 0.05\n")
    split = nr.split_parameters([a, b], {"*": {"seed": "1"}, "02_b": {"margin": "0.2"}})
    assert split == {"01_a": {"seed": "1"}, "02_b": {"margin": "0.2"}}
    with pytest.raises(nr.NotebookError, match="no notebook declares parameter"):
        nr.split_parameters([a, b], {"*": {"nope": 1}})
    with pytest.raises(nr.NotebookError, match="unknown notebook"):
        nr.split_parameters([a, b], {"09_c": {}})


def test_file_parameters_are_taken_from_the_callers_folder(tmp_path):
    (tmp_path / "class.csv").write_text("set_id\n")
    (tmp_path / "mine.csv").write_text("set_id\n")
    values = {"class_csv": "class.csv", "study_csv": "", "dataset": "mine.csv", "study": "mur92",
              "seed": 3, "label": "class.csv"}
    got = nr.resolve_file_parameters(values, tmp_path)
    assert got == {**values, "class_csv": str(tmp_path.resolve() / "class.csv"),
                   "dataset": str(tmp_path.resolve() / "mine.csv")}      # names, empties, others: as given
    absolute = str(tmp_path.resolve() / "class.csv")
    assert nr.resolve_file_parameters({"class_csv": absolute}, tmp_path / "elsewhere") == {"class_csv": absolute}
    for name, value, why in (("class_csv", "missing.csv", "no such file"), ("dataset", "gone.CSV", "no such file"),
                             ("study_csv", ".", "is a folder")):
        with pytest.raises(nr.NotebookError) as err:
            nr.resolve_file_parameters({name: value}, tmp_path)
        message = str(err.value)
        assert message.startswith(f"parameter {name} {value!r}: {why}") and "\n" not in message
        assert str((tmp_path / value).resolve()) in message


# -- execution (starts a kernel) -----------------------------------------------

def test_run_notebook_passes_typed_parameters_and_leaves_the_source_alone(tmp_path):
    source = write(tmp_path, "01_params.py", PARAMS_NB)
    before = source.read_bytes()
    out = tmp_path / "out"
    executed = nr.run_notebook(source, {"margin": "0.1", "project": "false",
                                        "seed": "7", "extra": "[1, 2]"}, out)
    assert executed == out.resolve() / "01_params.ipynb" and executed.exists()
    seen = json.loads((out / "seen.json").read_text())   # written in cwd = out_dir
    assert seen["margin"] == 0.1 and seen["project"] is False and seen["seed"] == 7
    assert seen["label"] == "x" and seen["extra"] == [1, 2]
    assert Path(seen["cwd"]) == out.resolve() == Path(seen["out"])
    assert source.read_bytes() == before                  # the source is untouched
    assert sorted(p.name for p in source.parent.iterdir()) == ["01_params.py"]
    record = nr.read_record(out)["notebooks"]["01_params"]
    assert record["status"] == "ok" and record["seconds"] > 0
    assert record["parameters"] == {"margin": 0.1, "project": False, "seed": 7, "extra": [1, 2]}


CSV_NB = HEADER + '''class_csv = ""

# %%
import json, os
json.dump({"class_csv": class_csv, "cwd": os.getcwd(), "head": open(class_csv).read()}, open("seen.json", "w"))
'''


def test_a_relative_csv_parameter_reaches_the_kernel_which_runs_in_out(tmp_path, monkeypatch, capsys):
    """`clpips run 10_your_class -p class_csv class.csv`: the kernel runs in --out, the file is in the
    caller's folder; the kernel gets its absolute path. A missing one is one line naming it, and nothing runs."""
    source = write(tmp_path, "01_class.py", CSV_NB)
    caller = tmp_path / "lesson"
    caller.mkdir()
    (caller / "class.csv").write_text("set_id,target\n", encoding="utf-8")
    monkeypatch.setenv("CLPIPS_REPO_ROOT", str(nr.repo_root()))     # found from the checkout, not the caller's folder
    monkeypatch.chdir(caller)
    assert cli.main(["run", str(source), "-p", "class_csv", "class.csv", "--out", str(tmp_path / "out")]) == 0
    seen = json.loads((tmp_path / "out" / "seen.json").read_text())
    assert seen["class_csv"] == str(caller.resolve() / "class.csv") and seen["head"] == "set_id,target\n"
    assert Path(seen["cwd"]) == (tmp_path / "out").resolve()
    capsys.readouterr()
    status = cli.main(["run", str(source), "-p", "class_csv", "klass.csv", "--out", str(tmp_path / "out2")])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "parameter class_csv 'klass.csv': no such file" in err and str(caller.resolve() / "klass.csv") in err
    assert not (tmp_path / "out2").exists()      # nothing ran


def test_failing_cell_surfaces_its_error_and_the_output_path(tmp_path):
    source = write(tmp_path, "01_fail.py", FAILING_NB)
    out = tmp_path / "out"
    with pytest.raises(nr.NotebookExecutionError) as err:
        nr.run_notebook(source, {"x": "5"}, out)
    message = str(err.value)
    assert err.value.ename == "ValueError" and err.value.evalue == "bad value 5"
    assert "notebook 01_fail failed" in message and "ValueError: bad value 5" in message
    assert "explode(x)" in message                       # the traceback, without ANSI codes
    assert "\x1b[" not in message
    assert str(out.resolve() / "01_fail.ipynb") in message
    assert nr.read_record(out)["notebooks"]["01_fail"]["status"] == "failed"


def test_cli_run_exits_non_zero_with_the_cells_error(tmp_path, capsys):
    source = write(tmp_path, "01_fail.py", FAILING_NB)
    status = cli.main(["run", str(source), "-p", "x", "5", "--out", str(tmp_path / "out")])
    assert status == 1
    assert "ValueError: bad value 5" in capsys.readouterr().err


def test_cli_run_unknown_parameter_is_a_one_line_error(tmp_path, capsys):
    source = write(tmp_path, "01_params.py", PARAMS_NB)
    status = cli.main(["run", str(source), "-p", "nope", "1", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert status == 2 and "unknown parameter nope; valid:" in err and "Traceback" not in err


def test_cli_run_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    assert "clpips run 03_training -p margin 0.1" in capsys.readouterr().out


def test_a_dying_kernel_is_an_execution_error_too(tmp_path):
    source = write(tmp_path, "01_die.py", "# %%\nimport os\nos._exit(3)\n")
    with pytest.raises(nr.NotebookExecutionError) as err:
        nr.run_notebook(source, {}, tmp_path / "out")
    assert "notebook 01_die failed" in str(err.value) and "DeadKernelError" in str(err.value)
    assert nr.read_record(tmp_path / "out")["notebooks"]["01_die"]["status"] == "failed"


def test_parameter_value_resolves_the_defaults_module():
    from clpips.book.defaults import DEFAULTS
    from clpips.apps.notebook_runner import Parameter

    assert Parameter("margin", "DEFAULTS.margin", "None").value == repr(DEFAULTS.margin)
    assert Parameter("label", "'smoke'", "str").value == "'smoke'"
    assert Parameter("x", "DEFAULTS.not_a_default", "None").value == "DEFAULTS.not_a_default"


def test_repo_root_from_the_variable_the_working_directory_or_a_clear_error(tmp_path, monkeypatch):
    # an installed package finds the book through CLPIPS_REPO_ROOT or the working directory
    book = tmp_path / "book"
    (book / "notebooks").mkdir(parents=True)
    (book / "notebooks" / "01_first.py").write_text("# %%\nx = 1\n")
    monkeypatch.setenv("CLPIPS_REPO_ROOT", str(book))
    assert nr.repo_root() == book.resolve()
    assert [p.name for p in nr.list_notebooks()] == ["01_first.py"]
    monkeypatch.setenv("CLPIPS_REPO_ROOT", str(tmp_path / "nowhere"))
    with pytest.raises(nr.NotebookError, match="CLPIPS_REPO_ROOT=.*no notebooks"):
        nr.repo_root()
    monkeypatch.delenv("CLPIPS_REPO_ROOT")
    monkeypatch.chdir(book)
    assert nr.repo_root() == book.resolve()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(nr, "__file__", str(tmp_path / "site-packages" / "clpips" / "notebook_runner.py"))
    with pytest.raises(nr.NotebookError, match="cannot find the book's notebooks.*CLPIPS_REPO_ROOT"):
        nr.repo_root()


# -- notebooks side by side (run_all jobs > 1) ----------------------------------

STAMP_NB = HEADER + '''label = "x"

# %%
import json, os, time
start = time.time()
time.sleep(1.5)
from clpips.defaults import DEFAULTS
with open(os.path.join(os.environ["CLPIPS_NOTEBOOK_OUT"], label + ".json"), "w") as f:
    json.dump({"start": start, "end": time.time(), "threads": os.environ.get("OMP_NUM_THREADS"),
               "workers": DEFAULTS.workers, "trim": os.environ.get("MALLOC_TRIM_THRESHOLD_"),
               "mmap": os.environ.get("MALLOC_MMAP_THRESHOLD_")}, f)
'''


def test_run_all_side_by_side_overlaps_respects_order_and_records_every_run(tmp_path, monkeypatch):
    """Two lanes: the two independent notebooks overlap in time, a notebook listed in AFTER starts
    only once its predecessor ended, the status-like LAST one runs after all, and every run is in
    the execution record (written under a lock by separate processes)."""
    for name in ("01_a.py", "02_b.py", "03_c.py", "99_last.py"):
        write(tmp_path, name, STAMP_NB)
    monkeypatch.setattr(nr, "AFTER", {"03_c": ("01_a",)})
    monkeypatch.setattr(nr, "LAST", ("99_last",))
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")          # a setting the user made is kept
    out = tmp_path / "out"
    params = {stem: {"label": stem} for stem in ("01_a", "02_b", "03_c", "99_last")}
    outputs = nr.run_all(out, params, notebooks_dir=tmp_path / "notebooks", jobs=2)
    assert [p.name for p in outputs] == ["01_a.ipynb", "02_b.ipynb", "03_c.ipynb", "99_last.ipynb"]
    seen = {stem: json.loads((out / f"{stem}.json").read_text()) for stem in params}
    assert seen["01_a"]["start"] < seen["02_b"]["end"] and seen["02_b"]["start"] < seen["01_a"]["end"]
    assert seen["03_c"]["start"] >= seen["01_a"]["end"]
    assert seen["99_last"]["start"] >= max(v["end"] for k, v in seen.items() if k != "99_last")
    record = nr.read_record(out)["notebooks"]
    assert sorted(record) == sorted(params) and all(e["status"] == "ok" for e in record.values())
    share = max(1, (os.cpu_count() or 1) // 2)   # each lane its share of the cores: torch threads and workers
    assert all(v["threads"] == str(share) and v["workers"] == share for v in seen.values())
    assert all(v["trim"] == nr.KEEP_FREED_MEMORY["MALLOC_TRIM_THRESHOLD_"] and v["mmap"] == "65536"
               for v in seen.values())


def test_start_order_puts_the_cold_longest_first_whatever_a_warm_run_recorded():
    """A warm run's record (chapter 09 read its runs back in 14 s, chapter 06 fitted for 52 s) must not
    delay the chapters that are long with cold caches; the others go longest recorded first."""
    stems = ["01_dataset_exploration", "02_worked_example", "04_evaluation", "06_ablations",
             "07_personal_metrics", "08_across_datasets", "09_beyond_linear", "10_your_class", "99_status"]
    warm = {"09_beyond_linear": {"seconds": 14.3}, "04_evaluation": {"seconds": 20.0},
            "06_ablations": {"seconds": 51.9}, "07_personal_metrics": {"seconds": 26.0},
            "08_across_datasets": {"seconds": 9.4}, "10_your_class": {"seconds": 11.0},
            "02_worked_example": {"seconds": 3.8}}
    order = nr.start_order(stems, warm)
    assert order[:len(nr.LONGEST)] == list(nr.LONGEST)
    # the rest: 10_your_class (11 s), then 01 and 99 (no record: 10 s, in the listed order), 08, 02
    assert order[len(nr.LONGEST):] == ["10_your_class", "01_dataset_exploration", "99_status",
                                       "08_across_datasets", "02_worked_example"]
    assert nr.start_order(stems, {}) == nr.start_order(stems, warm)[:4] + [
        "01_dataset_exploration", "02_worked_example", "08_across_datasets", "10_your_class", "99_status"]
    assert nr.start_order(["02_b", "01_a"], {}) == ["02_b", "01_a"]      # ties: the listed order


def test_run_all_side_by_side_stops_at_a_failure_and_names_it(tmp_path):
    write(tmp_path, "01_fail.py", FAILING_NB)
    write(tmp_path, "02_ok.py", HEADER + "x = 1\n")
    with pytest.raises(nr.NotebookError, match="01_fail failed: .*bad value"):
        nr.run_all(tmp_path / "out", {}, notebooks_dir=tmp_path / "notebooks", jobs=2)
