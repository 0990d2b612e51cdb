"""The classroom: students rank a teacher's study in their browsers, into one class CSV.

``clpips classroom --study mur92`` serves one page. A student types a name and
the class code, is shown the study's sets one at a time (a target and its
candidates), clicks the candidates from most to least similar and submits; a
moment later the page says, in plain words, how well LPIPS and the class so far
agree with the student's order, and how the student's own personal CLPIPS does
(Spearman's rho and ICC(A,k), as in the paper, each with a line on what its
values mean). Every ranking is appended to the class CSV (``--out``, the
project's schema, ``data/README.md``), which chapter 10 ("Your class") reads.

The teacher watches ``/teacher`` (behind a *teacher code*, printed at start beside
the class code and never the same): who has joined, how many sets each has
ranked, and the class's agreement so far (students with each other, LPIPS with
the students), in type large enough to project, refreshed every two seconds;
it also exports the class CSV. With ``lan=True`` (``clpips classroom --lan``, or
any ``--host`` that is not this computer alone) the address students type is
printed with a QR code, in the terminal and on the teacher's page, and one line
says that the page is plain HTTP on the local network. Loopback is the default.

Why a small app on Python's standard library rather than Voila: one process
serves the whole class with *one* copy of the study's pair features and no
kernel per student (a Voila kernel imports torch and holds its own features:
about 0.3 GB and seconds of start-up per student), it needs no package beyond
the project's (and ``segno``, a pure-Python QR encoder), and the page loads
nothing from another host (no widget JavaScript at all). The pages are plain
files in ``classroom_static/``.

How a save stays fast with a whole class saving at once: the answer to a save
waits only for the ranking to be on disk. The class CSV is held in memory by a
:class:`ClassLedger` (read and validated once, again only if another program
changes the file), each save validates its own rows, and every ranking that
arrives while a write is under way joins the next one (*group commit*: one
atomic rewrite for many rankings). Everything else runs on one background
thread (:class:`Background`): each student's scores first, then the class's
agreement, then the personal refits, one pending task per student and kind, so
the latest save wins. The page asks for what is ready (``/api/state``). Each
student is still a :class:`clpips.apps.widget.RankingSession` (the sets, their
order, the personal fit and its scores) whose saved rankings are the ledger's;
the score table is :func:`clpips.apps.widget.scores_html`, the widget's.

The study (``--study``) is a built-in dataset (``mur92``, ``simulated``), a study
CSV (its sets: targets and candidates; rankings in it are not shown), or a
folder of images (each image a target, ``k`` candidates drawn from the others).
Every student ranks the same ``n_sets`` sets in the same order, so the class has
shared sets to compare on. A sidecar ``<out>.json`` (e.g. ``class.json``) records
the study, its image root and the sets, and the images of those sets are copied
beside the CSV at their own paths (:func:`copy_class_images`), so the class folder
stands alone: ``clpips fit --dataset class.csv`` works from any folder, also on
another computer, and :func:`read_class` reads it back (the images beside it, or
else the recorded root).

Security (the class network is not trusted): the server binds to 127.0.0.1 unless
told otherwise; a write needs the class code (printed at start, random unless
``--code`` is given), the teacher's page its own code, and a client address that
gets either wrong :attr:`Limits.code_tries` times in :attr:`Limits.code_window`
seconds is answered 429 (with ``Retry-After``) until the oldest try ages out. A name
is bound at its first join to a token the student's browser keeps
(``<out>.names.json`` holds its sha256); names are compared case-insensitively and
shown as first typed ("ana" joins as the "Ana" who came first, and needs her
token): joining or saving under a name taken by another browser is refused, and
the teacher frees a name with ``clpips classroom --out class.csv --free NAME``
(:func:`free_name`), also while the server runs. Request bodies need a valid
``Content-Length`` (400/411 before anything is read) of at most :data:`MAX_BODY`
bytes; every read has a deadline (:attr:`Limits.timeout`: a stalled upload frees its
thread, 408), and at most :attr:`Limits.max_clients` requests are served at once (the
next waits :attr:`Limits.queue_wait` seconds for a free thread, then gets 503).
Images are served only from the study's list. A server locks its ``--out``
(``<out>.server.lock``, :func:`claim_out`) while it runs: one ``--out``, one class.
Every option is checked at start with one line naming it (:func:`check_options`,
:func:`claim_out`), and every image of the class's sets is read before anything is
recorded (:meth:`Classroom.load_images`: a decompression bomb is named, not served).

Why Python's standard library and not starlette + uvicorn: each of these limits is a
few lines on :class:`http.server.ThreadingHTTPServer` (a socket timeout, a semaphore
around the handler threads, a strict ``Content-Length``), while an ASGI server would
add two dependencies and an event loop to hand every request back to the blocking,
lock-holding session code (saving, fitting) in worker threads anyway.
"""
from __future__ import annotations

import base64
import filecmp
import hashlib
import io
import json
import math
import numbers
import os
import re
import secrets
import socket
import sys
import tempfile
import threading
import time
import unicodedata
import urllib.request
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from glob import escape as glob_escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np
import pandas as pd
import segno
import torch
from filelock import FileLock, Timeout

from clpips import atomic
from clpips.datasets import RankingDataError, RankingDataset, from_csv, validate
from clpips.datasets.schema import spreadsheet_safe
from clpips.datasets.validate import normalize_ref
from clpips.book.defaults import DEFAULTS
from clpips.evaluate import heldout_scores
from clpips.experiment import DATASET_OPTIONS, load_dataset
from clpips.features import pair_features
from clpips.images import ImageReadError
from clpips.model import initial_weight_vector
from clpips.stats import DegenerateDataWarning, icc_from_matrix, koo_li_label, set_correlations
from clpips.apps.widget import (WRITTEN_COLUMNS, RankingSession, RaterNameError, SessionError, normalise_rater,
                                png_bytes, read_weight_vector, save_lock, scores_html)

#: image files a folder study takes
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
#: the largest request body accepted (bytes)
MAX_BODY = 64 * 1024
#: candidates per set a class page can show (``--k``)
MIN_K, MAX_K = 2, 16
#: the longest class code (the page's code field takes this many characters)
MAX_CODE = 32
#: the pages and what they load, beside this module
STATIC = Path(__file__).with_name("classroom_static")
#: the addresses that only this computer can reach
LOOPBACK = ("127.0.0.1", "localhost", "::1")
#: the longest the background thread waits for saves being answered before it starts a task (seconds)
GIVE_WAY = 1.0


class ClassroomError(ValueError):
    """A study, class file or option that cannot be used (one line, for the command line)."""


class NameTakenError(ClassroomError):
    """A name another student's browser holds (HTTP 409)."""


class TooManyTries(PermissionError):
    """Too many wrong class or teacher codes from one client address (HTTP 429); ``retry_after`` in seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many wrong codes from your computer: try again in {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class Limits:
    """What the server grants any client (the defaults suit a class; tests shrink them)."""

    max_clients: int = 64        #: requests served at once (one thread each)
    queue_wait: float = 2.0      #: seconds a connection waits for a free thread before a 503
    timeout: float = 10.0        #: seconds for each read of a request, and for its whole body
    code_tries: int = 5          #: wrong class (or teacher) codes per client address...
    code_window: float = 60.0    #: ...within this many seconds, then 429 until the oldest ages out


# --------------------------------------------------------------------------- options
def _whole(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_options(*, port: Any = None, stop_after: Any = None, k: Any = None, n_sets: Any = None,
                  seed: Any = None, device: Optional[str] = None, code: Optional[str] = None,
                  teacher_code: Optional[str] = None) -> None:
    """Refuse, with one line naming the option and its allowed range, a classroom option out of range
    (``None``: not checked). Called at start, before the study is loaded."""
    if port is not None and not (_whole(port) and 0 <= port <= 65535):
        raise ClassroomError(f"--port {port}: must be a whole number in 0..65535 (0: any free port)")
    if stop_after is not None and not (isinstance(stop_after, numbers.Real) and math.isfinite(stop_after)
                                       and stop_after > 0):
        raise ClassroomError(f"--stop-after {stop_after}: must be a finite number of seconds > 0")
    if k is not None and not (_whole(k) and MIN_K <= k <= MAX_K):
        raise ClassroomError(f"--k {k}: candidates per set must be a whole number in {MIN_K}..{MAX_K}")
    if n_sets is not None and not (_whole(n_sets) and n_sets >= 1):
        raise ClassroomError(f"--sets {n_sets}: must be a whole number >= 1")
    if seed is not None and not (_whole(seed) and seed >= 0):
        raise ClassroomError(f"--seed {seed}: must be a whole number >= 0")
    for option, value in (("--code", code), ("--teacher-code", teacher_code)):
        if value is not None and not (0 < len(value.strip()) <= MAX_CODE and value.strip().isprintable()
                                      and not re.search(r"\s", value.strip())):
            raise ClassroomError(f"{option} {value!r}: must be 1 to {MAX_CODE} characters, no spaces")
    if code is not None and teacher_code is not None and code.strip().upper() == teacher_code.strip().upper():
        raise ClassroomError(f"--teacher-code {teacher_code!r}: must differ from the class code "
                             f"(every student knows that one)")
    if device is not None and (problem := _device_problem(device)):
        raise ClassroomError(f"--device {device}: {problem}; use --device cpu")


def _device_problem(device: str) -> Optional[str]:
    """Why ``device`` cannot hold a tensor here (None when it can)."""
    try:
        torch.empty(0, device=device)
    except (RuntimeError, ValueError, AssertionError, TypeError) as err:
        return (str(err).strip().splitlines() or [type(err).__name__])[0]
    return None


def check_out(out: str | os.PathLike) -> Path:
    """``--out`` as a path, checked: a CSV file (not a folder) in a folder this process can write
    (tried with a temporary file, which leaves nothing behind)."""
    out = Path(out)
    if out.is_dir():
        raise ClassroomError(f"--out {out}: is a folder; give the class's CSV file, e.g. {out / 'class.csv'}")
    if out.suffix.lower() != ".csv":
        raise ClassroomError(f"--out {out}: must name a .csv file (the study is recorded in the .json beside it)")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out.parent):
            pass
    except OSError as err:
        raise ClassroomError(f"--out {out}: cannot write in {out.parent} ({err.strerror or err})") from None
    return out


def claim_out(out: str | os.PathLike) -> FileLock:
    """:func:`check_out`, then lock ``out`` for this server (``<out>.server.lock``, released by the kernel
    if the server dies): one ``--out``, one class."""
    out = check_out(out)
    lock = FileLock(str(out) + ".server.lock", timeout=0, thread_local=False)
    try:
        lock.acquire()
    except Timeout:
        raise ClassroomError(f"--out {out}: another classroom server is using it (it holds {lock.lock_file}); "
                             f"stop that one or choose another --out") from None
    except OSError as err:
        raise ClassroomError(f"--out {out}: cannot lock {lock.lock_file} ({err.strerror or err})") from None
    return lock


# --------------------------------------------------------------------------- the study
def folder_study(folder: str | os.PathLike, k: int = DEFAULTS.classroom_k, seed: int = DEFAULTS.seed):
    """A study of the images in ``folder`` (and its subfolders): each image a target with
    ``k`` candidates drawn at random (``seed``) from the others.

    Returns a :class:`clpips.datasets.RankingDataset` whose table lists the sets (its
    ``rater`` is ``"(design)"`` and ``rank`` the drawing order: no human ranking yet).
    """
    root = Path(folder)
    if not root.is_dir():
        raise ClassroomError(f"{folder}: no such folder")
    refs = sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if len(refs) < 3:
        raise ClassroomError(f"{folder}: a folder study needs at least 3 images, found {len(refs)}")
    k = min(int(k), len(refs) - 1)
    rng = np.random.default_rng(seed)
    rows = []
    for t, target in enumerate(refs):
        others = [r for r in refs if r != target]
        for i, j in enumerate(rng.choice(len(others), size=k, replace=False)):
            rows.append({"set_id": f"s{t:03d}", "target": target, "candidate": others[j],
                         "rater": "(design)", "rank": i + 1})
    return RankingDataset(table=pd.DataFrame(rows), root=root.resolve(), name=root.resolve().name,
                          description=f"the {len(refs)} images of {root}, {k} candidates per target")


def load_study(study: str, *, k: int = DEFAULTS.classroom_k, seed: int = DEFAULTS.seed,
               candidates: str = DEFAULTS.candidates):
    """The dataset behind ``--study``: a built-in name, a study CSV or a folder of images."""
    try:
        if study in DATASET_OPTIONS:
            return load_dataset(study, k=k, seed=seed, candidates=candidates)
        path = Path(study)
        if path.is_dir():
            return folder_study(path, k=k, seed=seed)
        if path.suffix.lower() == ".csv":
            if not path.is_file():
                raise ClassroomError(f"{study}: no such CSV file")
            return load_dataset(str(path))
    except (RankingDataError, ValueError) as err:     # ValueError: e.g. a k the dataset cannot give
        raise ClassroomError((str(err).strip().splitlines() or [type(err).__name__])[0]) from None
    raise ClassroomError(f"{study!r} is neither a built-in dataset ({', '.join(sorted(DATASET_OPTIONS))}), "
                         f"a .csv file nor a folder of images")


def class_sets(dataset, n_sets: int = DEFAULTS.classroom_sets, seed: int = DEFAULTS.seed) -> list[str]:
    """The sets every student ranks, in order: ``n_sets`` of the study's, drawn with ``seed``."""
    sets = sorted(dataset.table["set_id"].astype(str).unique())
    order = np.random.default_rng(seed).permutation(len(sets))
    return [sets[i] for i in order[:max(1, int(n_sets))]]


def sidecar_path(csv_path: str | os.PathLike) -> Path:
    """``class.csv`` -> ``class.json``: what the class ranked, beside its rankings."""
    return Path(csv_path).with_suffix(".json")


def write_sidecar(csv_path: str | os.PathLike, *, study: str, dataset, sets: Sequence[str], k: int,
                  seed: int, candidates: str) -> Path:
    """Record the study of a class CSV in its sidecar (``class.json``), refusing, by the sidecar's
    name, one that records another study, other sets or another number of candidates."""
    spec = study if study in DATASET_OPTIONS else str(Path(study).resolve())
    shown = dataset.k if dataset.k is not None else k      # the candidates a set really has
    record = {"study": spec, "root": str(Path(dataset.root).resolve()), "name": getattr(dataset, "name", ""),
              "k": int(shown), "seed": int(seed), "candidates": candidates, "sets": list(sets)}
    path = sidecar_path(csv_path)
    if path.exists():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ClassroomError(f"{path}: not a class record ({str(err).splitlines()[0]}); "
                                 f"choose another --out, or delete it if no class used it") from None
        old = old if isinstance(old, dict) else {}
        if [old.get(key) for key in ("study", "sets", "k")] != [record[key] for key in ("study", "sets", "k")]:
            raise ClassroomError(f"{path} records another study ({old.get('study')!r}, "
                                 f"{len(old.get('sets') or [])} sets, k={old.get('k')}), not this one ({spec!r}, "
                                 f"{len(sets)} sets, k={shown}); choose another --out, or delete {path.name} "
                                 f"if no class used it")
    return atomic.write_text(path, json.dumps(record, indent=2) + "\n")


def copy_images(dataset: RankingDataset, folder: str | os.PathLike, refs: Sequence[str] | None = None) -> list[Path]:
    """Copy the dataset's images (or ``refs``) into ``folder`` at their references, so that a CSV of its
    rankings saved there stands alone; returns the files written.

    A file already there with the same bytes is kept; one with other bytes refuses the whole copy
    (no image of another study is overwritten). Each copy is atomic.
    """
    folder = Path(folder)
    wanted = sorted(set(dataset.images() if refs is None else refs))
    clashes, todo = [], []
    for ref in wanted:
        source, dest = dataset.image_path(ref), Path(folder, *PurePosixPath(normalize_ref(ref)).parts)
        if not source.is_file():
            raise RankingDataError(f"{dataset.name}: image {ref!r} not found (looked for {source})")
        if dest.exists() and not filecmp.cmp(source, dest, shallow=False):
            clashes.append(dest)
        elif not dest.exists():
            todo.append((source, dest))
    if clashes:   # checked before anything is written: a refused copy leaves the folder as it was
        raise RankingDataError(f"{clashes[0]}: already exists with other content ({len(clashes)} such file"
                               f"{'s' if len(clashes) > 1 else ''}); copy {dataset.name}'s images into an "
                               f"empty folder")
    for source, dest in todo:
        dest.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_bytes(dest, source.read_bytes())
    return [dest for _, dest in todo]


def copy_class_images(dataset, csv_path: str | os.PathLike, refs: Sequence[str]) -> list[Path]:
    """Copy the images ``refs`` of the class's sets beside its CSV (each at its own reference), so the
    class folder stands alone: ``clpips fit --dataset class.csv`` works from any folder and on another
    computer (:func:`copy_images`; files already there with the same bytes are kept).
    An image of another study in the way is one :class:`ClassroomError` naming it."""
    folder = Path(csv_path).parent
    try:
        return copy_images(dataset, folder, refs)
    except RankingDataError as err:
        raise ClassroomError(f"--out {csv_path}: cannot copy the class's images beside it: "
                             f"{(str(err).strip().splitlines() or [type(err).__name__])[0]}") from None
    except OSError as err:
        raise ClassroomError(f"--out {csv_path}: cannot copy the class's images into {folder} "
                             f"({err.strerror or err})") from None


def class_root(csv_path: str | os.PathLike, refs: Sequence[str], record: dict) -> Path:
    """Where the images of a class CSV are: its own folder when every image ``refs`` is there (as
    :func:`copy_class_images` leaves it; a class folder moved to another computer), else the study's
    root recorded in the sidecar when that folder exists, else the CSV's folder (and a missing image
    is named when it is read)."""
    here = Path(csv_path).parent
    if all(Path(here, *PurePosixPath(normalize_ref(ref)).parts).is_file() for ref in refs):
        return here
    recorded = record.get("root")
    return Path(recorded) if recorded and Path(recorded).is_dir() else here


def read_class(csv_path: str | os.PathLike, root: Optional[str | os.PathLike] = None):
    """A class CSV as a :class:`clpips.datasets.RankingDataset`, its images found by :func:`class_root`
    (or in ``root`` when given).

    Returns ``(dataset, record)``, ``record`` being the sidecar's dict (empty when there is none).
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise ClassroomError(f"{csv_path}: no such class file")
    record: dict[str, Any] = {}
    if sidecar_path(csv_path).is_file():
        record = json.loads(sidecar_path(csv_path).read_text(encoding="utf-8"))
    data = from_csv(csv_path, root=csv_path.parent if root is None else root, check_images=False)
    if root is None:
        data = replace(data, root=class_root(csv_path, data.images(), record))
    data.name = f"class {csv_path.stem}"
    return data, record


# --------------------------------------------------------------------------- names and codes
def names_path(csv_path: str | os.PathLike) -> Path:
    """``class.csv`` -> ``class.names.json``: which browser holds which name (sha256 of its token)."""
    return Path(csv_path).with_suffix(".names.json")


def rater_key(name: object) -> str:
    """How names are compared: Unicode NFC, whitespace runs made one space, stripped, case folded.

    "Ana", " ana " and "ANA" are one student (:func:`clpips.apps.widget.normalise_rater` and then
    :meth:`str.casefold`); the key of a name already normalised is its NFC case fold.
    """
    squashed = re.sub(r"\s+", " ", unicodedata.normalize("NFC", str(name))).strip()
    return unicodedata.normalize("NFC", squashed.casefold())


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class NameRegister:
    """Who holds which name in a class: ``<out>.names.json`` maps each name (compared case-insensitively)
    to the name as first typed and the sha256 of the token that browser was given.

    The file is the truth, read at every check and written atomically under ``<file>.lock``, so a name
    survives a restart of the server and :func:`free_name` works while the server runs.
    """

    def __init__(self, csv_path: str | os.PathLike) -> None:
        self.path = names_path(csv_path)
        self._lock = threading.Lock()

    def read(self) -> dict:
        try:
            names = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as err:
            raise ClassroomError(f"{self.path}: not a list of the class's names ({str(err).splitlines()[0]}); "
                                 f"delete it to free every name") from None
        if not isinstance(names, dict) or not all(isinstance(v, dict) for v in names.values()):
            raise ClassroomError(f"{self.path}: not a list of the class's names; delete it to free every name")
        return names

    def _write(self, names: dict) -> None:
        atomic.write_json(self.path, names, sort_keys=True)

    def _file_lock(self) -> FileLock:
        return FileLock(str(self.path) + ".lock", timeout=30, thread_local=False)

    def claim(self, name: object, token: object = None,
              spelling: Callable[[str], Optional[str]] = lambda key: None) -> tuple[str, str]:
        """``(rater, token)``: a new name is bound to a new token; a taken one needs its token.

        ``spelling(key)``: how the class file already writes this name, if it does (a name freed and
        taken again, in another case, stays the student it was); else the name is kept as typed.
        """
        rater = normalise_rater(name)
        key = rater_key(rater)
        with self._lock, self._file_lock():
            names = self.read()
            held = names.get(key)
            if held is None:
                token = secrets.token_urlsafe(24)
                rater = spelling(key) or rater
                names[key] = {"name": rater, "sha256": _digest(token)}
                self._write(names)
                return rater, token
        if isinstance(token, str) and secrets.compare_digest(str(held.get("sha256")), _digest(token)):
            return str(held["name"]), token
        raise NameTakenError(f"the name {rater!r} is taken in this class: join from the browser you first "
                             f"used, or ask your teacher to free it")

    def check(self, name: object, token: object) -> str:
        """The rater whose token ``token`` is (PermissionError when it is not, or no longer)."""
        held = self.read().get(rater_key(normalise_rater(name)))
        if held is None or not isinstance(token, str) or not secrets.compare_digest(
                str(held.get("sha256")), _digest(token)):
            raise PermissionError("this page no longer holds your name (freed by your teacher?): reload and join")
        return str(held["name"])

    def free(self, name: object) -> str:
        """Release ``name`` (the next browser to join under it gets a new token); returns the name freed."""
        key = rater_key(normalise_rater(name))
        with self._lock, self._file_lock():
            names = self.read()
            if key not in names:
                raise ClassroomError(f"no student holds the name {normalise_rater(name)!r} in {self.path}")
            held = names.pop(key)
            self._write(names)
        return str(held.get("name"))


def free_name(csv_path: str | os.PathLike, name: object) -> str:
    """Free a student's name in the class of ``csv_path`` (``clpips classroom --out CSV --free NAME``):
    for a student on a new computer, or a name someone else took. Their rankings stay in the CSV."""
    freed = NameRegister(csv_path).free(name)
    return (f"freed the name {freed!r} in {names_path(csv_path)}: the next browser to join as {freed!r} "
            f"takes it (its rankings stay in {csv_path})")


class Throttle:
    """Wrong class (and teacher) codes per client address: ``tries`` within ``window`` seconds, then
    :class:`TooManyTries` until the oldest ages out (right codes included)."""

    def __init__(self, tries: int, window: float, clock=time.monotonic) -> None:
        self.tries, self.window, self.clock = int(tries), float(window), clock
        self._failures: dict[str, deque] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque:
        if len(self._failures) > 4096:          # forget clients whose tries have all aged out
            for old in [c for c, q in self._failures.items() if not q or q[-1] <= now - self.window]:
                del self._failures[old]
        recent = self._failures.setdefault(client, deque())
        while recent and recent[0] <= now - self.window:
            recent.popleft()
        return recent

    def attempt(self, client: str, right: bool) -> None:
        """Count a try of ``client`` (a wrong one is remembered); raise :class:`TooManyTries` when its
        wrong tries fill the window. One step under one lock: parallel guesses are counted too."""
        with self._lock:
            now = self.clock()
            recent = self._recent(client, now)
            if len(recent) >= self.tries:
                raise TooManyTries(max(1, math.ceil(recent[0] + self.window - now)))
            if not right:
                recent.append(now)



# --------------------------------------------------------------------------- the class file
@dataclass
class _Pending:
    """One ranking waiting for the next write of the class file, and what became of it."""

    rater: str
    key: str
    set_id: str
    target: str
    order: list[str]
    done: bool = False
    written: bool = False
    error: Optional[BaseException] = None

    def rows(self) -> pd.DataFrame:
        """The ranking as rows of the schema, typed as :func:`clpips.datasets.validate` returns them."""
        return pd.DataFrame({"set_id": self.set_id, "target": self.target, "candidate": self.order,
                             "rater": self.rater, "rank": np.arange(1, len(self.order) + 1, dtype=np.int64)},
                            columns=list(WRITTEN_COLUMNS))

    def shape(self) -> tuple[str, str, frozenset]:
        return self.set_id, self.target, frozenset(self.order)


def _batch_rows(batch: Sequence[_Pending]) -> pd.DataFrame:
    """The rankings of ``batch`` as one frame of rows (one frame built, not one per ranking)."""
    columns: dict[str, list] = {name: [] for name in WRITTEN_COLUMNS}
    for item in batch:
        k = len(item.order)
        columns["set_id"] += [item.set_id] * k
        columns["target"] += [item.target] * k
        columns["candidate"] += item.order
        columns["rater"] += [item.rater] * k
        columns["rank"] += range(1, k + 1)
    frame = pd.DataFrame(columns)
    frame["rank"] = frame["rank"].astype(np.int64)
    return frame


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (where the system allows opening a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _signature(stat: os.stat_result) -> tuple:
    """What tells one version of a file from another without reading it."""
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


class ClassLedger:
    """The class CSV, held in memory by the server that writes it, saved by group commit.

    Why: :meth:`RankingSession.save` reads, validates and rewrites the whole CSV for each
    ranking, about 0.1 s of pandas at 30 students x 10 sets, and 30 students saving at once
    waited for one another for seconds. Here the file is read and validated once, and again only
    when another program changed it (its inode, size or mtime differ from what this ledger last
    wrote or read); a set is validated (:func:`clpips.datasets.validate`) with the first ranking of
    it, and a later ranking of the same set, which differs only in its order (checked: each
    candidate once) and its rater (a name :func:`clpips.apps.widget.normalise_rater` accepted), is
    not validated again; the rankings that arrive while a write is under way go into the next
    write together. Measured (``benchmarks/bench_classroom.py``: 30 students saving 10 sets at
    once, 2 cores), with the refits moved off the request path (:class:`Background`): the server's
    CPU per save fell from 0.15-0.22 s to 4-5 ms, and the 95th percentile of a save from 10 s to
    0.21 s when the benchmark ran before the machine's other work (``nice -n -19``), from 14-22 s
    to 0.23-0.49 s when it shared the 2 cores with it.

    What :meth:`RankingSession.save` guarantees holds: every write is under the CSV's lock
    (:func:`clpips.apps.widget.save_lock`, which a notebook's session takes too), goes to a
    temporary file that is flushed to disk and renamed onto the CSV (a writer killed midway
    leaves the previous file, and the next write removes its temporary file), is idempotent per
    (set, rater) (a set the rater already saved is not written again: ``written`` False), and
    is spreadsheet-safe (:func:`clpips.datasets.schema.spreadsheet_safe`): a file another program
    wrote is rewritten whole through it at the next save; later saves append their rows, made
    safe, to the text this ledger wrote. Raters are compared by :func:`rater_key`, and a rater
    is written as the file first spelled them.
    """

    def __init__(self, csv_path: str | os.PathLike, root: Any = None) -> None:
        self.path = Path(csv_path)
        self.root = root
        self.version = 0                                 #: bumped by every change of the rankings
        self._state = threading.RLock()                  # the indexes below and the file's signature
        self._queue: list[_Pending] = []
        self._turn = threading.Condition()               # the queue, and whose turn it is to write
        self._writing = False
        self._signature: Optional[tuple] = ("unread",)
        self._reset()

    def _reset(self) -> None:
        self._raw = pd.DataFrame(columns=list(WRITTEN_COLUMNS), dtype=str)   # the file's cells, as read
        self._text: Optional[str] = None       # the file as this ledger wrote it (None: rewrite it whole)
        self._frames: list[pd.DataFrame] = []                    # the validated rows, as read or written
        self._done: dict[str, set[str]] = {}                     # rater key -> the sets saved
        self._spelling: dict[str, str] = {}                      # rater key -> the name as first written
        self._shapes: dict[str, tuple] = {}                      # set -> its (set, target, candidates)
        self._table: Optional[tuple[pd.DataFrame, pd.Series]] = None     # all rows, and their rater keys
        self._rows: dict[str, pd.DataFrame] = {}                 # rater key -> rows (of this version)

    # -------------------------------------------------------------- reading
    def refresh(self) -> None:
        """Read the file again if another program changed it since (one stat when it did not)."""
        try:
            signature: Optional[tuple] = _signature(os.stat(self.path))
        except FileNotFoundError:
            signature = None
        if signature == self._signature:
            return
        with self._state:                       # changed, or this ledger is renaming it: look again
            try:
                stat = os.stat(self.path)
            except FileNotFoundError:
                if self._signature is not None:
                    self._reset()
                    self._signature = None
                    self.version += 1
                return
            if _signature(stat) != self._signature:
                self._load()

    def _load(self) -> None:
        with open(self.path, encoding="utf-8-sig", newline="") as handle:
            signature = _signature(os.fstat(handle.fileno()))          # of exactly what is read
            raw = pd.read_csv(handle, dtype=str, keep_default_na=False)
        table = self._validated(raw) if len(raw) else raw
        self._reset()
        self._raw = raw
        self._absorb(table)
        self._signature = signature

    def _validated(self, raw: pd.DataFrame) -> pd.DataFrame:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)   # columns outside the schema are kept, not checked
            return validate(raw, self.root, source=str(self.path), check_images=False)

    def _absorb(self, table: pd.DataFrame, items: Sequence[_Pending] = ()) -> None:
        """Add validated rows to the indexes: those of ``items`` (the rankings just written, indexed from
        the items themselves: no pandas), or, with none, those of ``table`` (a file just read)."""
        rankings = [(item.key, item.rater, item.shape()) for item in items] or [
            (rater_key(rater), rater, (str(set_id), str(part["target"].iloc[0]), frozenset(part["candidate"])))
            for (rater, set_id), part in table.groupby(["rater", "set_id"], sort=False)]
        for key, rater, shape in rankings:
            self._spelling.setdefault(key, str(rater))
            self._done.setdefault(key, set()).add(shape[0])
            self._shapes.setdefault(shape[0], shape)
        if len(table):
            self._frames.append(table)
        self._table, self._rows = None, {}
        self.version += 1

    def _everything(self) -> tuple[pd.DataFrame, pd.Series]:
        """Every row (one frame per version) and its rater's key (called under the state lock)."""
        if self._table is None:
            table = pd.concat(self._frames, ignore_index=True) if self._frames else \
                pd.DataFrame(columns=list(WRITTEN_COLUMNS))
            self._table = table, table["rater"].map(rater_key)
        return self._table

    def rows_of(self, key: str) -> pd.DataFrame:
        """The saved rankings of the rater ``key`` (validated rows; empty with the schema's columns)."""
        with self._state:
            if key not in self._rows:
                table, keys = self._everything()
                self._rows[key] = table[keys == key].reset_index(drop=True)
            return self._rows[key]

    def done(self, key: str) -> set[str]:
        """The sets the rater ``key`` has saved."""
        with self._state:
            return set(self._done.get(key, ()))

    def spelling(self, key: str) -> Optional[str]:
        """How the file first wrote the rater ``key`` (None: not in the file)."""
        with self._state:
            return self._spelling.get(key)

    def raters(self) -> dict[str, str]:
        """Rater key -> name, for every rater in the file."""
        with self._state:
            return dict(self._spelling)

    def table(self) -> pd.DataFrame:
        """Every saved ranking, validated (one frame per version, shared: do not change it)."""
        with self._state:
            return self._everything()[0]

    def export(self) -> str:
        """The class CSV as text, spreadsheet-safe (what the teacher downloads)."""
        self.refresh()
        with self._state:
            if self._text is not None:
                return self._text
            return spreadsheet_safe(self._raw).to_csv(index=False, lineterminator="\n")

    # -------------------------------------------------------------- writing
    def save(self, rater: str, set_id: str, target: str, order: Sequence[str]) -> bool:
        """Write one ranking (``order``: most similar first) with any others that arrive meanwhile;
        returns False when the file already held a ranking of this set by this rater (nothing written).

        ``rater``: a name :func:`clpips.apps.widget.normalise_rater` returned. The first caller to
        find no write under way writes everything queued so far; the others wait for it and may find
        their ranking written when it ends (one write for many rankings).
        """
        item = _Pending(rater, rater_key(rater), str(set_id), str(target), [str(c) for c in order])
        if len(set(item.order)) != len(item.order) or len(item.order) < 2 or not rater.strip():
            raise SessionError(f"set {set_id!r}: a ranking needs a rater and two or more different candidates")
        with self._turn:
            self._queue.append(item)
            while not item.done:
                if self._writing:
                    self._turn.wait()
                    continue
                self._writing = True
                batch, self._queue = self._queue, []
                self._turn.release()
                try:
                    self._commit(batch)
                finally:
                    self._turn.acquire()
                    self._writing = False
                    self._turn.notify_all()
        if item.error is not None:
            raise item.error
        return item.written

    def _commit(self, batch: list[_Pending]) -> None:
        """Write ``batch`` in one atomic rewrite; every item ends done, written or with its error."""
        try:
            with save_lock(self.path):
                self._remove_stale_temporaries()
                self.refresh()                      # what another writer saved counts
                new = self._admit(batch)
                if new:
                    self._write(_batch_rows(new), new)
                    for item in new:
                        item.written = True
        except Timeout as err:                      # filelock's: another writer holds the CSV
            self._fail(batch, SessionError(f"{self.path} is locked by another writer ({err}); try again"))
        except BaseException as err:
            self._fail(batch, err)
            if not isinstance(err, Exception):
                raise
        finally:
            for item in batch:
                item.done = True

    @staticmethod
    def _fail(batch: list[_Pending], err: BaseException) -> None:
        for item in batch:
            if not item.written and item.error is None:
                item.error = err

    def _admit(self, batch: list[_Pending]) -> list[_Pending]:
        """The items to write: not yet in the file (nor earlier in the batch), of a set as the file has it
        (a set new to the file is validated with its first ranking)."""
        seen: set[tuple[str, str]] = set()
        shapes: dict[str, tuple] = {}               # sets new to the file, validated in this batch
        new = []
        for item in batch:
            if (item.key, item.set_id) in seen or item.set_id in self.done(item.key):
                continue                             # saved already: idempotent, written stays False
            with self._state:
                item.rater = self._spelling.get(item.key, item.rater)
                shape = self._shapes.get(item.set_id) or shapes.get(item.set_id)
            try:
                if shape is None:
                    self._validated(item.rows().astype(str))      # raises, naming the row, if it breaks a rule
                    shapes[item.set_id] = item.shape()
                elif shape != item.shape():
                    raise SessionError(f"{self.path} holds set {item.set_id!r} with other images than this "
                                       f"class shows; use another --out")
            except ValueError as err:                # RankingDataError, SessionError: this item alone fails
                item.error = err
                continue
            seen.add((item.key, item.set_id))
            new.append(item)
        return new

    def _write(self, rows: pd.DataFrame, new: Sequence[_Pending]) -> None:
        """Write the file with ``rows`` added (flushed to disk before the rename), then index them; the
        rename and the indexes change together, so :meth:`refresh` never takes this write for another's."""
        appended = spreadsheet_safe(rows.astype(str))
        if self._text is not None:
            text = self._text + appended.to_csv(index=False, header=False, lineterminator="\n")
        else:
            table = pd.concat([self._raw, appended], ignore_index=True).fillna("") if len(self._raw) else appended
            text = spreadsheet_safe(table).to_csv(index=False, lineterminator="\n")
        renaming = False
        try:
            with atomic.atomic_path(self.path) as tmp:
                with open(tmp, "w", encoding="utf-8", newline="") as handle:
                    handle.write(text)
                    handle.flush()
                    os.fsync(handle.fileno())
                self._state.acquire()            # held from the rename (leaving this block) to the indexes
                renaming = True
            self._signature = _signature(os.stat(self.path))
            self._absorb(rows, new)
            if self._text is not None or list(self._raw.columns) == list(WRITTEN_COLUMNS):
                self._text, self._raw = text, self._raw.iloc[:0]       # from now on: append
            else:                                                        # other columns: rewrite each time
                self._raw = pd.concat([self._raw, rows.astype(str)], ignore_index=True).fillna("")
        finally:
            if renaming:
                self._state.release()
        _fsync_folder(self.path.parent)

    def _remove_stale_temporaries(self) -> None:
        """Delete temporary files a killed writer left beside the CSV (called under the lock)."""
        for tmp in self.path.parent.glob(f".{glob_escape(self.path.name)}.*.tmp"):
            tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------- work that a save need not wait for
class Background:
    """The server's one worker thread, for the work an answer need not wait for.

    ``run(kind, key)`` does one task. Tasks wait by kind, in the order of :attr:`ORDER` (a
    student's scores before the class's agreement before anyone's refit: what a student waits to
    read first), and at most once per (kind, key): a task asked for again before it starts runs
    once, on the latest rankings (the latest save wins). ``gate()`` is called before each task
    starts (the classroom holds it while saves are being answered). One thread (a
    :class:`concurrent.futures.ThreadPoolExecutor` of one worker) because torch and pandas gain
    nothing from two on a class's tiny fits, and because a student's model then needs no lock.
    """

    ORDER = ("scores", "class", "fit")

    def __init__(self, run: Callable[[str, str], None], gate: Callable[[], None] = lambda: None) -> None:
        self._run, self._gate = run, gate
        self._waiting: dict[str, dict[str, None]] = {kind: {} for kind in self.ORDER}
        self._running: Optional[tuple[str, str]] = None
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clpips-classroom")

    def want(self, kind: str, key: str = "") -> None:
        """Ask for task ``(kind, key)`` (nothing new when it already waits)."""
        with self._lock:
            if key in self._waiting[kind]:
                return
            self._waiting[kind][key] = None
        try:
            self._pool.submit(self._step)
        except RuntimeError:                     # shut down: the server is stopping
            pass

    def pending(self, kind: str, key: str = "") -> bool:
        """Whether task ``(kind, key)`` waits or runs."""
        with self._lock:
            return key in self._waiting[kind] or self._running == (kind, key)

    def _step(self) -> None:
        """Run the first waiting task (one step per task asked for, so none is left behind), once ``gate``
        lets it start."""
        self._gate()
        with self._lock:
            kind = next((k for k in self.ORDER if self._waiting[k]), None)
            if kind is None or not threading.main_thread().is_alive():    # none, or Python is exiting
                return
            key = next(iter(self._waiting[kind]))
            del self._waiting[kind][key]
            self._running = (kind, key)
        try:
            self._run(kind, key)
        except Exception as err:                 # one line for the teacher; the class goes on
            print(f"clpips classroom: {kind} of {key or 'the class'} failed: {type(err).__name__}: {err}", flush=True)
        finally:
            with self._lock:
                self._running = None

    def settle(self, timeout: float = 60.0) -> None:
        """Wait until every task asked for so far has run (tests; TimeoutError after ``timeout`` s)."""
        self._pool.submit(lambda: None).result(timeout)

    def close(self) -> None:
        """Drop what waits, finish what runs."""
        self._pool.shutdown(wait=True, cancel_futures=True)


# --------------------------------------------------------------------------- plain words
#: Spearman's rho in words: the first band whose lower end the value reaches
RHO_WORDS = ((0.8, "almost the same order"), (0.5, "a similar order"), (0.2, "a somewhat similar order"),
             (-0.2, "no clear relation"), (-0.5, "somewhat opposite orders"), (-math.inf, "nearly opposite orders"))
#: what rho means, shown wherever a rho is
RHO_MEANING = "Spearman's rho runs from -1 (opposite orders) through 0 (unrelated) to +1 (the same order)."
#: what ICC(A,k) means, shown wherever one is
ICC_MEANING = ("ICC(A,k) is 1 when the ranks agree exactly and 0 when they agree no more than chance; below 0 "
               "they disagree, and with few rankings it can fall far below (-1 or less). Koo & Li (2016) call "
               "under 0.5 poor, 0.5-0.75 moderate, 0.75-0.9 good, above 0.9 excellent.")


def rho_words(rho: float) -> str:
    """Spearman's rho in words (:data:`RHO_WORDS`)."""
    if rho is None or not math.isfinite(rho):
        return "not defined (every candidate got the same rank)"
    return next(words for lower, words in RHO_WORDS if rho >= lower)


def icc_words(icc: float) -> str:
    """ICC(A,k) with its label on Koo & Li's scale (:func:`clpips.stats.koo_li_label`)."""
    if icc is None or not math.isfinite(icc):
        return "not defined yet (too few rankings)"
    return f"{icc:.2f}, {koo_li_label(min(icc, 1.0))} on Koo & Li's scale"


def _number(value: Any) -> Optional[float]:
    """A value for the page: rounded to 4 decimals, None when not defined."""
    if value is None:
        return None
    value = float(value)
    return None if not math.isfinite(value) else round(value, 4)


def set_feedback(mine: pd.DataFrame, lpips: np.ndarray, others: pd.DataFrame) -> list[dict]:
    """What a student reads after ranking one set: their order against LPIPS and against the class.

    ``mine``: the student's rows of the set; ``lpips``: LPIPS's distance of each of those rows;
    ``others``: the other students' rows of the set (their mean rank of each candidate is the class's
    order). Returns lines ``{"label", "text", "rho"}``.
    """
    ranks = mine["rank"].to_numpy(float)
    one = np.zeros(len(mine))
    rho = float(set_correlations(one, ranks, lpips)[0])
    lines = [{"label": "This set and LPIPS", "rho": _number(rho),
              "text": f"your order and LPIPS's: {rho_words(rho)} (rho = {rho:+.2f})."}]
    n_others = int(others["rater"].map(rater_key).nunique()) if len(others) else 0
    if n_others == 0:
        lines.append({"label": "This set and the class", "rho": None,
                      "text": "you are the first to rank this set: no class order to compare with yet."})
    else:
        mean = others.groupby("candidate")["rank"].mean().reindex(mine["candidate"]).to_numpy(float)
        rho = float(set_correlations(one, ranks, mean)[0])
        whose = "the other student's order" if n_others == 1 else f"the {n_others} other students' mean order"
        lines.append({"label": "This set and the class", "rho": _number(rho),
                      "text": f"your order and {whose}: {rho_words(rho)} (rho = {rho:+.2f})."})
    return lines


def overall_feedback(scores: pd.DataFrame) -> dict:
    """One line on all of a student's rankings: LPIPS's rho and ICC(A,k), in words."""
    row = scores.loc["LPIPS"]
    n = int(row["n_rankings"])
    return {"label": f"All your {n} ranking{'s' if n != 1 else ''} and LPIPS", "rho": _number(row["spearman"]),
            "icc": _number(row["icc_A_k"]),
            "text": f"rho = {float(row['spearman']):+.2f} ({rho_words(float(row['spearman']))}); "
                    f"ICC(A,k) = {icc_words(float(row['icc_A_k']))}."}


# --------------------------------------------------------------------------- the class's agreement
def class_agreement(table: pd.DataFrame, sets: Sequence[str]) -> dict:
    """How much the students of ``table`` agree with each other on the class's ``sets`` so far.

    The statistics of chapter 10 (:mod:`clpips.book.class_analysis`), from :mod:`clpips.stats`:
    ``pair_rho``, Spearman's rho of two students' ranks of a set, averaged over the sets both
    ranked and then over pairs (``n_pairs``); ``icc_a1`` and ``icc_ak``, ICC(A,1) (one student
    against another) and ICC(A,k) (the class's mean ranking) of each set's candidates x students
    ranks (:func:`clpips.stats.icc_from_matrix`), averaged over the sets at least two students
    ranked (``n_sets``). None where not defined yet.
    """
    table = table[table["set_id"].astype(str).isin(set(sets))]
    total: dict[tuple[str, str], list[float]] = {}
    iccs = []
    for _, part in table.groupby("set_id", sort=True):
        wide = part.assign(key=part["rater"].map(rater_key)).pivot_table(
            index="candidate", columns="key", values="rank", aggfunc="first").dropna(axis=1)
        if wide.shape[1] < 2 or wide.shape[0] < 2:
            continue
        ranks = wide.to_numpy(float)
        with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
            warnings.simplefilter("ignore", DegenerateDataWarning)
            values = icc_from_matrix(ranks)
            rho = np.corrcoef(ranks, rowvar=False)
        iccs.append((float(values["ICC(A,1)"]), float(values["ICC(A,k)"])))
        names = list(wide.columns)
        for i in range(len(names)):
            for j in range(i + 1, len(names)):
                total.setdefault((names[i], names[j]), []).append(float(rho[i, j]))
    pairs = [_finite_mean(v) for v in total.values() if _finite_mean(v) is not None]
    return {"pair_rho": _number(_finite_mean(pairs)), "n_pairs": len(pairs),
            "icc_a1": _number(_finite_mean([a for a, _ in iccs])),
            "icc_ak": _number(_finite_mean([k for _, k in iccs])), "n_sets": len(iccs)}


def _finite_mean(values: Sequence[Optional[float]]) -> Optional[float]:
    """The mean of the values that are defined (None when none is)."""
    values = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(values)) if values else None


def agreement_words(agreement: dict, lpips: dict) -> list[dict]:
    """The teacher's lines: students with each other, LPIPS with the students, in words."""
    lines = []
    if agreement["pair_rho"] is None:
        lines.append({"label": "Students with each other", "text": "waiting for two students to rank the same set."})
    else:
        lines.append({"label": "Students with each other",
                      "text": f"rho = {agreement['pair_rho']:+.2f} on average over {agreement['n_pairs']} pair"
                              f"{'s' if agreement['n_pairs'] != 1 else ''}: {rho_words(agreement['pair_rho'])}."})
        lines.append({"label": "One student and another",
                      "text": f"ICC(A,1) = {icc_words(agreement['icc_a1'])} (over {agreement['n_sets']} shared "
                              f"set{'s' if agreement['n_sets'] != 1 else ''})."})
        lines.append({"label": "The class's mean ranking",
                      "text": f"ICC(A,k) = {icc_words(agreement['icc_ak'])}: how far the class's mean order "
                              f"would stay the same with other students like these."})
    if lpips.get("rho") is None:
        lines.append({"label": "LPIPS with the students", "text": "waiting for a first ranking."})
    else:
        lines.append({"label": "LPIPS with the students",
                      "text": f"rho = {lpips['rho']:+.2f} ({rho_words(lpips['rho'])}), ICC(A,k) = "
                              f"{icc_words(lpips['icc'])}, averaged over {lpips['n']} student"
                              f"{'s' if lpips['n'] != 1 else ''}."})
    return lines


# --------------------------------------------------------------------------- the app
class LedgerSession(RankingSession):
    """A student's :class:`RankingSession` whose saved rankings are the class ledger's.

    The same session (the sets and their order, the personal fit, its scores), but asking what
    the student saved costs a dictionary look-up instead of reading the CSV: the server asks at
    every request. Saving goes through :meth:`ClassLedger.save`, never :meth:`RankingSession.save`.
    """

    def __init__(self, ledger: ClassLedger, *args: Any, **kwargs: Any) -> None:
        self.ledger = ledger                     # before RankingSession.__init__, which resumes
        super().__init__(*args, **kwargs)

    def collected(self) -> pd.DataFrame:
        """This student's saved rankings (the ledger's rows, names compared by :func:`rater_key`)."""
        return self.ledger.rows_of(rater_key(self.rater))

    def resume(self) -> None:
        """Queue the sets this student has not saved yet (the ledger's record of them: no rows read)."""
        done = self.ledger.done(rater_key(self.rater))
        self.pending = [s for s in self.sets if s not in done]
        self.reset()


def personal_refit(session: RankingSession) -> Any:
    """Refit a student's personal CLPIPS on their saved rankings (:meth:`RankingSession.fit`)."""
    return session.fit()


@dataclass
class Classroom:
    """The class's state: the study, the CSV (:class:`ClassLedger`), the codes and one session per student.

    ``refit``: how a student's personal model is refitted, on the background thread (tests give a
    slow one to show that no answer waits for it).
    """

    dataset: Any
    csv_path: Path
    sets: list[str]
    code: str
    features: Any = None
    base: Any = "lpips"
    thumb: int = 160
    seed: int = DEFAULTS.seed
    net: str = DEFAULTS.net
    device: str = DEFAULTS.device
    limits: Limits = field(default_factory=Limits)
    out_lock: Optional[FileLock] = None        #: the server's lock on the CSV (:func:`claim_out`)
    sessions: dict = field(default_factory=dict)   #: rater key -> :class:`LedgerSession`
    teacher_code: Optional[str] = None         #: the teacher's page's code (random when None)
    refit: Callable[[RankingSession], Any] = personal_refit

    def __post_init__(self) -> None:
        self.csv_path = Path(self.csv_path)
        self.teacher_code = (self.teacher_code or new_code(8)).strip()
        check_options(code=self.code, teacher_code=self.teacher_code)
        table = self.dataset.table
        chosen = table[table["set_id"].astype(str).isin(self.sets)].drop_duplicates(["set_id", "candidate"])
        self.refs = sorted(set(chosen["target"].astype(str)) | set(chosen["candidate"].astype(str)))
        self._ref_index = {r: i for i, r in enumerate(self.refs)}
        self._targets = chosen.groupby("set_id")["target"].first().astype(str).to_dict()
        self._candidates = {str(s): sorted(g["candidate"].astype(str)) for s, g in chosen.groupby("set_id")}
        self._png: dict[int, bytes] = {}
        self._lock = threading.Lock()            # the sessions dict
        self._rater_locks: dict[str, threading.Lock] = {}
        self.names = NameRegister(self.csv_path)
        self.throttle = Throttle(self.limits.code_tries, self.limits.code_window)
        self.ledger = ClassLedger(self.csv_path, self.dataset.root)
        self._saving = 0                         # saves being answered now
        self._quiet = threading.Condition()      # ...and their end
        self.background = Background(self._task, gate=self._give_way)
        self._lpips_weights = initial_weight_vector(self.net, "lpips")
        self._feedback: dict[str, dict] = {}     # rater key -> what the page shows after a ranking
        self._lpips: dict[str, tuple] = {}       # rater key -> (rankings, rho, ICC(A,k)) of LPIPS
        self._last_set: dict[str, str] = {}      # rater key -> the set saved last
        self._summary: dict = {"version": None, "agreement": class_agreement(self.ledger.table(), []),
                               "lpips": {"rho": None, "icc": None, "n": 0}, "lines": []}

    def load_images(self) -> "Classroom":
        """Read every image of the class's sets (their thumbnails, kept): one that cannot be used (a
        decompression bomb, a broken file) is one :class:`ClassroomError` naming it, before students arrive."""
        try:
            for index in range(len(self.refs)):
                self.image_png(index)
        except ImageReadError as err:
            raise ClassroomError(str(err).splitlines()[0]) from None
        return self

    def prepare(self) -> "Classroom":
        """:meth:`load_images`, the names file and the class file checked, and the pair features of the
        class's sets computed (cached on disk), before students arrive."""
        self.names.read()                        # a damaged names file is refused now, not mid-lesson
        try:
            self.ledger.refresh()                # ...and so is a class file that breaks the schema
        except ValueError as err:
            raise ClassroomError(str(err).splitlines()[0]) from None
        self.load_images()
        try:
            if self.features is None:
                table = self.dataset.table
                chosen = table[table["set_id"].astype(str).isin(self.sets)][["target", "candidate"]]
                pairs = list(chosen.drop_duplicates().astype(str).itertuples(index=False, name=None))
                self.features = pair_features(self.dataset, pairs, net=self.net, device=self.device, progress=False)
        except ImageReadError as err:
            raise ClassroomError(str(err).splitlines()[0]) from None
        return self

    def close(self) -> None:
        """Stop the background work and release the lock on the class CSV (the next server may use it)."""
        self.background.close()
        if self.out_lock is not None:
            self.out_lock.release()
            self.out_lock = None

    # -------------------------------------------------------------- codes
    def check_code(self, code: object, client: str = "local") -> None:
        """Refuse a wrong class code (PermissionError), and any code from a client address that got a
        code wrong too often lately (:class:`TooManyTries`, :class:`Throttle`)."""
        if not self._right(code, self.code, client):
            raise PermissionError("wrong class code: ask your teacher for it")

    def check_teacher(self, code: object, client: str = "local") -> None:
        """Refuse anything but the teacher code (the class code is not enough), throttled as class codes are."""
        if not self._right(code, self.teacher_code, client):
            raise PermissionError("wrong teacher code: it was printed where the class page was started")

    def _right(self, code: object, expected: str, client: str) -> bool:
        right = isinstance(code, str) and secrets.compare_digest(code.strip().upper().encode("utf-8", "replace"),
                                                                 expected.upper().encode("utf-8"))
        self.throttle.attempt(client, right)
        return right

    # -------------------------------------------------------------- students
    def session(self, rater: str) -> tuple[LedgerSession, threading.Lock]:
        """The session of ``rater`` (a name as :class:`NameRegister` holds it), created or resumed from
        the class file on first use, and the lock its requests take."""
        key = rater_key(rater)
        with self._lock:
            if key not in self.sessions:
                self.sessions[key] = LedgerSession(
                    self.ledger, self.dataset, self.csv_path, rater, sets=self.sets, seed=self.seed, base=self.base,
                    features=self.features, auto_last=False, net=self.net, device=self.device)
                self._rater_locks[key] = threading.Lock()
            return self.sessions[key], self._rater_locks[key]

    def _student(self, name: object, token: object) -> tuple[LedgerSession, threading.Lock]:
        """The session of the student whose token ``token`` is, resumed from the class file as it is now."""
        self.ledger.refresh()                    # what another program saved counts (a stat when nothing did)
        session, lock = self.session(self.names.check(name, token))
        with lock:
            session.resume()
        return session, lock

    def state(self, session: RankingSession) -> dict:
        """What the page shows: the current set (image ids), progress, and the feedback ready so far."""
        key = rater_key(session.rater)
        out: dict[str, Any] = {"rater": session.rater, "done": session.n_done, "total": len(session.sets)}
        if session.current is None:
            out["set"] = None
        else:
            out["set"] = {"set_id": session.current, "target": self._ref_index[session.target()],
                          "candidates": [{"ref": c, "image": self._ref_index[c]} for c in session.candidates()]}
        feedback = self._feedback.get(key)
        if feedback is not None:
            out.update(feedback)
        out["feedback_ready"] = session.n_done == 0 or (feedback is not None
                                                        and feedback["scored_on"] == session.n_done)
        out["personal"] = {"fitted_on": len(session.fitted_sets), "refitting": self.background.pending("fit", key)}
        out["meaning"] = [RHO_MEANING, ICC_MEANING]
        return out

    def join(self, name: object, code: object, *, token: object = None, client: str = "local") -> dict:
        """Admit a student: a new name gets a token (``state["token"]``, which the page keeps); a name
        already taken, in any case, needs the token it was given (:class:`NameTakenError` otherwise)."""
        self.check_code(code, client)
        self.ledger.refresh()
        rater, token = self.names.claim(name, token, spelling=self.ledger.spelling)
        session, lock = self.session(rater)
        with lock:
            session.resume()
        self._score_if_missing(session)
        return {**self.state(session), "token": token}

    def status(self, name: object, code: object, *, token: object = None, client: str = "local") -> dict:
        """The page's question while it waits for feedback: the state, nothing changed."""
        self.check_code(code, client)
        session, _ = self._student(name, token)
        self._score_if_missing(session)
        return self.state(session)

    def submit(self, name: object, code: object, set_id: object, order: Sequence[object], *,
               token: object = None, client: str = "local") -> dict:
        """Save one ranking (``order``: candidates, most similar first) and answer at once: the scores,
        the class's agreement and the personal refit follow on the background thread (:meth:`status`).

        Idempotent: submitting a set this student already saved (a double click, a
        second tab) writes nothing and returns the current state (``saved`` False).
        """
        self.check_code(code, client)
        session, lock = self._student(name, token)
        key, set_id = rater_key(session.rater), str(set_id)
        if set_id not in self._candidates:
            raise SessionError(f"set {set_id!r} is not one of this class's sets")
        with lock, self._answering():
            written = False
            if set_id not in self.ledger.done(key):
                written = self.ledger.save(session.rater, set_id, self._targets[set_id],
                                           self._checked_order(set_id, order))
                session.resume()
        if written:
            self._last_set[key] = set_id
            for kind, who in (("scores", key), ("class", ""), ("fit", key)):
                self.background.want(kind, who)
        return {**self.state(session), "saved": written}

    @contextmanager
    def _answering(self) -> Iterator[None]:
        """Count a save being answered (the background thread waits for none to be, :meth:`_give_way`)."""
        with self._quiet:
            self._saving += 1
        try:
            yield
        finally:
            with self._quiet:
                self._saving -= 1
                self._quiet.notify_all()

    def _give_way(self) -> None:
        """Hold the background thread while saves are being answered, for at most :data:`GIVE_WAY` seconds:
        a refit and a save share one interpreter lock, and the save is what a student waits for."""
        with self._quiet:
            self._quiet.wait_for(lambda: self._saving == 0, timeout=GIVE_WAY)

    def _checked_order(self, set_id: str, order: Sequence[object]) -> list[str]:
        try:
            order = [normalize_ref(str(c)) for c in order]    # images/./a.png is images/a.png
        except ValueError as err:
            raise SessionError(f"candidate {err}") from None
        if sorted(order) != self._candidates[set_id]:
            raise SessionError(f"rank every candidate of set {set_id} exactly once")
        return order

    def _score_if_missing(self, session: RankingSession) -> None:
        """Ask for a student's scores when the page has none for what they saved (a join after a restart)."""
        key = rater_key(session.rater)
        feedback = self._feedback.get(key)
        if session.n_done and (feedback is None or feedback["scored_on"] != session.n_done) \
                and not self.background.pending("scores", key):
            self.background.want("scores", key)

    # -------------------------------------------------------------- the background thread's tasks
    def _task(self, kind: str, key: str) -> None:
        if kind == "scores":
            self._score(key)
        elif kind == "fit":
            session = self.sessions.get(key)
            if session is not None and len(session.collected()):
                self.refit(session)
        else:
            self._summarise()

    def _score(self, key: str) -> None:
        """A student's feedback: this set against LPIPS and the class, all their rankings against the models."""
        session = self.sessions.get(key)
        mine = session.collected() if session is not None else pd.DataFrame()
        if mine.empty:
            return
        done = [s for s in session.sets if s in set(mine["set_id"].astype(str))]
        if not done:
            return
        scores = session.scores()       # the personal model has not seen the newest ranking yet
        latest = self._last_set.get(key)
        latest = latest if latest in done else done[-1]    # a save after `mine` was read: scored next time
        lines = self._set_lines(key, session, mine[mine["set_id"].astype(str) == latest])
        lines.append(overall_feedback(scores))
        lpips = scores.loc["LPIPS"]
        self._lpips[key] = (len(done), _number(lpips["spearman"]), _number(lpips["icc_A_k"]))
        self._feedback[key] = {
            "scored_on": len(done), "feedback": lines, "scores_html": scores_html(scores, len(session.fitted_sets)),
            "scores": {name: {"rho": _number(r["spearman"]), "icc": _number(r["icc_A_k"]),
                              "rho_new": _number(r["spearman_new"]), "icc_new": _number(r["icc_new"]),
                              "n": int(r["n_rankings"]), "n_new": int(r["n_new"])} for name, r in scores.iterrows()}}

    def _set_lines(self, key: str, session: RankingSession, part: pd.DataFrame) -> list[dict]:
        features = session.features
        rows = features.rows(part["target"], part["candidate"])
        lpips = (features.matrix[rows].float() @ self._lpips_weights.float()).numpy().astype(float)
        table = self.ledger.table()
        same = table[table["set_id"].astype(str) == str(part["set_id"].iloc[0])]
        return set_feedback(part, lpips, same[same["rater"].map(rater_key) != key])

    def _summarise(self) -> None:
        """The class's agreement so far (cached for the teacher's page until the rankings change)."""
        version, table = self.ledger.version, self.ledger.table()
        agreement = class_agreement(table, self.sets)
        lpips = self._lpips_means(table)
        self._summary = {"version": version, "agreement": agreement, "lpips": lpips,
                         "lines": agreement_words(agreement, lpips)}

    def _lpips_means(self, table: pd.DataFrame) -> dict:
        """LPIPS against each student (rho, ICC(A,k) on all their rankings), averaged over students."""
        table = table[table["set_id"].astype(str).isin(set(self.sets))]
        rhos, iccs = [], []
        for key, part in table.groupby(table["rater"].map(rater_key), sort=False):
            n = int(part["set_id"].nunique())
            if self._lpips.get(key, (None,))[0] != n and self.features is not None:
                scored = heldout_scores(part, self.features, {"LPIPS": self._lpips_weights}).loc["LPIPS"]
                self._lpips[key] = (n, _number(scored["spearman"]), _number(scored["icc_A_k"]))
            _, rho, icc = self._lpips.get(key, (n, None, None))
            rhos += [rho] if rho is not None else []
            iccs += [icc] if icc is not None else []
        return {"rho": _number(_finite_mean(rhos)), "icc": _number(_finite_mean(iccs)), "n": len(rhos)}

    # -------------------------------------------------------------- the teacher
    def roster(self) -> list[dict]:
        """Every student who joined (a name taken) or has rankings in the class file: sets done, LPIPS's rho."""
        names = {key: str(entry.get("name")) for key, entry in self.names.read().items()}
        for key, name in self.ledger.raters().items():
            names.setdefault(key, name)
        sets = set(self.sets)
        rows = [{"name": name, "done": len(self.ledger.done(key) & sets),
                 "lpips_rho": self._lpips.get(key, (0, None))[1]} for key, name in names.items()]
        return sorted(rows, key=lambda row: rater_key(row["name"]))

    def teacher_state(self) -> dict:
        """What the teacher's page shows: the roster and the class's agreement (as last computed)."""
        self.ledger.refresh()
        summary = self._summary
        if summary["version"] != self.ledger.version:
            self.background.want("class")
        students = self.roster()
        return {"study": str(getattr(self.dataset, "name", "") or "the study"), "total": len(self.sets),
                "students": students, "rankings": sum(s["done"] for s in students),
                "agreement": summary["agreement"], "lpips": summary["lpips"], "lines": summary["lines"],
                "up_to_date": summary["version"] == self.ledger.version, "meaning": [RHO_MEANING, ICC_MEANING]}

    # -------------------------------------------------------------- images
    def image_png(self, index: int) -> bytes:
        if not 0 <= index < len(self.refs):
            raise KeyError(index)
        if index not in self._png:
            self._png[index] = png_bytes(self.dataset.open_image(self.refs[index]), self.thumb)
        return self._png[index]


# --------------------------------------------------------------------------- HTTP
_LENGTH = re.compile(r"[0-9]{1,12}")


class RequestError(Exception):
    """A request refused before its body is used: ``status`` and a one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _error_reply(err: Exception) -> Optional[tuple[int, dict, Optional[dict]]]:
    """``(status, payload, headers)`` of the answer to a request that raised ``err`` (None: answer nothing)."""
    if isinstance(err, RequestError):
        return err.status, {"error": str(err)}, None
    if isinstance(err, TimeoutError):
        return 408, {"error": "the request came too slowly"}, None
    if isinstance(err, ConnectionError):
        return None
    if isinstance(err, TooManyTries):
        return 429, {"error": str(err)}, {"Retry-After": str(err.retry_after)}
    if isinstance(err, NameTakenError):
        return 409, {"error": str(err)}, None
    if isinstance(err, PermissionError):
        return 403, {"error": str(err)}, None
    if isinstance(err, (RaterNameError, SessionError, ValueError, RecursionError)):
        return 400, {"error": str(err).splitlines()[0] if str(err) else "bad request"}, None
    print(f"clpips classroom: {type(err).__name__}: {err}", flush=True)    # one line for the teacher
    return 500, {"error": f"the server failed: {type(err).__name__}; tell your teacher"}, None


class _Handler(BaseHTTPRequestHandler):
    server_version = "clpips-classroom"
    classroom: Classroom  # set on the subclass made by ClassroomServer
    timeout = Limits.timeout  # a socket timeout on every read (StreamRequestHandler.setup); set from the limits

    def log_message(self, format: str, *args: Any) -> None:   # quiet: the terminal is the teacher's
        pass

    def _send(self, status: int, body: bytes, ctype: str, cache: bool = False, headers: Optional[dict] = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=3600" if cache else "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: dict, headers: Optional[dict] = None) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json", headers=headers)

    def _answer(self, produce: Callable[[], tuple[bytes, str, dict]]) -> None:
        """Send what ``produce`` returns (body, content type, headers), or the error it raised as JSON."""
        try:
            body, ctype, headers = produce()
        except Exception as err:  # never a traceback to a client
            reply = _error_reply(err)
            if reply is not None:
                self._json(*reply)
            return
        self._send(200, body, ctype, headers=headers)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            self._send(200, PAGE.encode(), "text/html; charset=utf-8")
        elif path == "/teacher":
            self._send(200, TEACHER_PAGE.encode(), "text/html; charset=utf-8")
        elif path.startswith("/image/") and path.endswith(".png"):
            try:
                self._send(200, self.classroom.image_png(int(path[len("/image/"):-len(".png")])), "image/png",
                           cache=True)
            except (KeyError, ValueError):
                self._send(404, b"no such image", "text/plain")
        elif path == "/favicon.ico":
            self._send(200, base64.b64decode(_FAVICON), "image/png", cache=True)
        elif path == "/qr.svg" and self.server.lan:
            self._send(200, qr_svg(self.server.join_url).encode(), "image/svg+xml")
        elif path == "/api/teacher":
            self._answer(lambda: (json.dumps(self._teacher_state()).encode(), "application/json", {}))
        elif path == "/api/teacher/class.csv":
            self._answer(self._export)
        else:
            self._send(404, b"not found", "text/plain")

    def _teacher_state(self) -> dict:
        self.classroom.check_teacher(self.headers.get("X-Teacher-Code"), self.client_address[0])
        return {**self.classroom.teacher_state(), "url": self.server.join_url, "lan": self.server.lan,
                "warning": PLAIN_HTTP if self.server.lan else None}

    def _export(self) -> tuple[bytes, str, dict]:
        self.classroom.check_teacher(self.headers.get("X-Teacher-Code"), self.client_address[0])
        name = re.sub(r"[^A-Za-z0-9._-]", "_", self.classroom.csv_path.name)
        return (self.classroom.ledger.export().encode("utf-8"), "text/csv; charset=utf-8",
                {"Content-Disposition": f'attachment; filename="{name}"'})

    def _body(self) -> bytes:
        """The request's body: a ``Content-Length`` of 0..MAX_BODY, checked before anything is read, and
        read within :attr:`timeout` seconds in all (a stalled upload frees the thread)."""
        if self.headers.get("Transfer-Encoding") is not None:
            raise RequestError(411, "send the request with a Content-Length (chunked bodies are not accepted)")
        given = {v.strip() for v in self.headers.get_all("Content-Length") or []}
        if not given:
            raise RequestError(411, "a Content-Length is required")
        value = given.pop()
        if given or not _LENGTH.fullmatch(value):
            raise RequestError(400, "Content-Length must be one whole number of bytes")
        if int(value) > MAX_BODY:
            raise RequestError(413, f"request too large (at most {MAX_BODY} bytes)")
        left, chunks = int(value), []
        deadline = time.monotonic() + self.timeout
        while left:
            wait = deadline - time.monotonic()
            if wait <= 0:
                raise TimeoutError
            self.connection.settimeout(wait)
            chunk = self.rfile.read1(left)
            if not chunk:
                raise ConnectionError("the client closed the connection mid-request")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def do_POST(self) -> None:  # noqa: N802
        self.close_connection = True
        if self.path not in ("/api/join", "/api/submit", "/api/state"):
            self._json(404, {"error": "not found"})
            return
        self._answer(lambda: (json.dumps(self._api(self._body())).encode(), "application/json", {}))

    def _api(self, raw: bytes) -> dict:
        body = json.loads(raw or b"{}")
        if not isinstance(body, dict):
            raise ValueError("expected a JSON object")
        room, client = self.classroom, self.client_address[0]
        if self.path == "/api/join":
            return room.join(body.get("name"), body.get("code"), token=body.get("token"), client=client)
        if self.path == "/api/state":
            return room.status(body.get("name"), body.get("code"), token=body.get("token"), client=client)
        order = body.get("order")
        if not isinstance(order, list):
            raise SessionError("order must be a list of candidates")
        return room.submit(body.get("name"), body.get("code"), body.get("set_id"), order,
                           token=body.get("token"), client=client)


_BUSY = json.dumps({"error": "the class page is busy: try again in a moment"}).encode()


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer with at most ``limits.max_clients`` handler threads at once: a connection
    waits ``limits.queue_wait`` seconds for a free one, then gets 503 without a thread."""

    daemon_threads = True
    request_queue_size = 128
    lan = False               #: whether students join over the network (the QR code is served)
    join_url = ""             #: the address students type

    def __init__(self, address: tuple, handler: type, limits: Limits) -> None:
        self.limits = limits
        self.slots = threading.BoundedSemaphore(limits.max_clients)
        super().__init__(address, handler)

    def process_request(self, request, client_address) -> None:
        if not self.slots.acquire(timeout=self.limits.queue_wait):
            _refuse_busy(request)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request, client_address) -> None:   # one line, never a traceback
        err = sys.exc_info()[1]
        if not isinstance(err, OSError):          # a client that went away is no news
            print(f"clpips classroom: {type(err).__name__}: {err}", flush=True)


def _refuse_busy(request: socket.socket) -> None:
    """Answer 503 on a connection no thread can take (its request read briefly, so closing it
    does not reset the connection before the answer arrives)."""
    try:
        request.settimeout(0.2)
        request.recv(MAX_BODY)
        request.sendall(b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                        b"Retry-After: 2\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(_BUSY), _BUSY))
    except OSError:
        pass


class ClassroomServer:
    """The class app served over HTTP (threads), started and stopped from code or the CLI.

    ``host``: the address to bind (default: this computer alone, ``127.0.0.1``; with ``lan``:
    every interface, ``0.0.0.0``). ``lan``: whether students join over the room's network, so that
    the address they type is announced with a QR code (:func:`describe`, ``/qr.svg`` on the teacher's
    page); by default, whenever ``host`` is not this computer alone. ``stop_after``: seconds after
    which the server stops by itself (None: until :meth:`shutdown`). The classroom's :class:`Limits`
    bound threads, reads and code tries. :meth:`shutdown` also stops the classroom's background
    work and releases its lock on the CSV.
    """

    def __init__(self, classroom: Classroom, host: Optional[str] = None, port: int = DEFAULTS.classroom_port,
                 stop_after: Optional[float] = None, *, lan: Optional[bool] = None) -> None:
        check_options(port=port, stop_after=stop_after)
        host = host or ("0.0.0.0" if lan else DEFAULTS.classroom_host)
        limits = classroom.limits
        handler = type("Handler", (_Handler,), {"classroom": classroom, "timeout": limits.timeout})
        self.classroom = classroom
        self.httpd = _Server((host, int(port)), handler, limits)
        self.host, self.port = host, self.httpd.server_address[1]
        self.lan = host not in LOOPBACK if lan is None else bool(lan)
        self.httpd.lan, self.httpd.join_url = self.lan, self.url
        self.stop_after = stop_after
        self._thread: Optional[threading.Thread] = None
        self._timer: Optional[threading.Timer] = None

    @property
    def url(self) -> str:
        """The address students type (a wildcard bind: this computer's address on the network)."""
        host = display_host(self.host)
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}/"

    def start(self) -> "ClassroomServer":
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        daemon=True)
        self._thread.start()
        if self.stop_after is not None:
            self._timer = threading.Timer(self.stop_after, self.httpd.shutdown)
            self._timer.daemon = True
            self._timer.start()
        return self

    def serve(self) -> None:
        """Serve in this thread until Ctrl-C or ``stop_after``."""
        self.start()
        try:
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(0.5)
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._thread is not None and self._thread.is_alive():
            self.httpd.shutdown()
            self._thread.join(10)
        self.httpd.server_close()
        self.classroom.close()

    def __enter__(self) -> "ClassroomServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()


def display_host(host: str) -> str:
    """The address to give students: a wildcard bind (``0.0.0.0``) becomes this computer's address on
    the network it reaches others through."""
    if host not in ("0.0.0.0", "::", ""):
        return host
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))   # no packet is sent: this only picks the outgoing interface
            return s.getsockname()[0]
    except OSError:
        return socket.gethostname()


def new_code(length: int = 5) -> str:
    """A random code of ``length`` letters and digits, without look-alikes (0/O, 1/I): 5 for the class
    (typed by every student), 8 for the teacher (32**8 guesses, against a handful a minute)."""
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "".join(secrets.choice(alphabet) for _ in range(length))


# --------------------------------------------------------------------------- joining from the room's network
#: the one line said wherever the LAN address is shown
PLAIN_HTTP = ("Warning: the class page is plain HTTP on the local network: anyone on it can read the names, "
              "rankings and codes sent; use it on a network you trust.")


def join_qr(url: str) -> segno.QRCode:
    """The QR code of the address students type: a full QR code (phones' cameras read no Micro QR),
    error correction M (15% of it may be lost: a projected code stays readable through some blur)."""
    return segno.make_qr(url, error="m", boost_error=False)


def qr_text(url: str) -> str:
    """:func:`join_qr` for a terminal: Unicode half blocks, two modules a character (segno's compact form)."""
    buffer = io.StringIO()
    join_qr(url).terminal(out=buffer, compact=True)
    return buffer.getvalue()


def qr_svg(url: str) -> str:
    """:func:`join_qr` as an SVG image (the teacher's page shows it)."""
    buffer = io.BytesIO()
    join_qr(url).save(buffer, kind="svg", scale=10, border=4, title=url)
    return buffer.getvalue().decode("utf-8")


def announce(url: str, encoding: Optional[str] = None) -> list[str]:
    """The lines that let students on the room's network in: the address, its QR code, the warning.

    ``encoding``: the terminal's (default: standard output's); one that cannot show the QR code's
    block characters gets a line pointing to the teacher's page instead.
    """
    qr = qr_text(url).rstrip("\n")
    try:
        qr.encode(encoding or getattr(sys.stdout, "encoding", None) or "ascii")
    except (UnicodeEncodeError, LookupError):
        qr = "(this terminal cannot show the QR code: the teacher's page shows it)"
    return [f"Students type {url} or scan:", qr, PLAIN_HTTP]


def open_classroom(study: str, out: str | os.PathLike = DEFAULTS.classroom_out, *,
                   code: Optional[str] = None, n_sets: int = DEFAULTS.classroom_sets,
                   k: int = DEFAULTS.classroom_k, seed: int = DEFAULTS.seed, candidates: str = DEFAULTS.candidates,
                   weights: Optional[str] = None, net: str = DEFAULTS.net,
                   device: str = DEFAULTS.device, teacher_code: Optional[str] = None) -> Classroom:
    """Check the options and ``out``, load the study, pick the class's sets, lock ``out``
    (:func:`claim_out`), read the images, record the sets beside ``out`` and compute features.
    Every problem is one :class:`ClassroomError`.

    ``weights``: a CLPIPS weights file the personal models start from and are pulled
    towards (default: LPIPS). ``code``, ``teacher_code``: the students' and the teacher's codes
    (random when not given; never the same).
    """
    check_options(k=k, n_sets=n_sets, seed=seed, device=device, code=code, teacher_code=teacher_code)
    check_out(out)
    if weights is not None:
        try:
            read_weight_vector(weights, net)
        except (OSError, ValueError, RuntimeError) as err:
            raise ClassroomError(f"cannot use --weights {weights}: {err}") from None
    dataset = load_study(study, k=k, seed=seed, candidates=candidates)
    sets = class_sets(dataset, n_sets, seed)
    lock = claim_out(out)                     # before anything is written beside it
    try:
        room = Classroom(dataset, Path(out), sets, (code or new_code()).strip(), base=weights or "lpips",
                         seed=seed, net=net, device=device, out_lock=lock, teacher_code=teacher_code)
        room.load_images()                    # a bad image is refused before anything is recorded
        write_sidecar(out, study=study, dataset=dataset, sets=sets, k=k, seed=seed, candidates=candidates)
        copy_class_images(dataset, out, room.refs)     # the class folder stands alone
        return room.prepare()
    except BaseException:
        lock.release()
        raise


# --------------------------------------------------------------------------- the pages
_FAVICON = ("iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAYAAAAf8/9hAAAAH0lEQVR42mNkYPj/n4EIwDiqkH6KRhWOKhxVSD"
            "+FACqJH/HXuT9rAAAAAElFTkSuQmCC")

#: the students' page and the teacher's (plain files: they load nothing from another host)
PAGE = (STATIC / "student.html").read_text(encoding="utf-8")
TEACHER_PAGE = (STATIC / "teacher.html").read_text(encoding="utf-8")


def describe(server: ClassroomServer, encoding: Optional[str] = None) -> str:
    """The lines the teacher reads at start (``encoding``: the terminal's, for the QR code)."""
    room = server.classroom
    lines = [f"Class page: {server.url}   class code: {room.code}",
             f"Teacher's page: {server.url}teacher   teacher code: {room.teacher_code} (yours alone: it shows "
             f"the whole class and exports its rankings)",
             f"{len(room.sets)} sets of {getattr(room.dataset, 'name', 'the study')}, "
             f"rankings saved to {room.csv_path} (study recorded in {sidecar_path(room.csv_path).name}, "
             f"its images copied beside it)"]
    if server.lan:
        lines += announce(server.url, encoding)
    elif server.host in LOOPBACK:
        lines.append("Only this computer can open it; use --lan (or --host 0.0.0.0) to let students on your "
                     "network in.")
    lines.append(f"Each name belongs to the browser that first joined with it; to free one (a student on "
                 f"another computer): clpips classroom --out {room.csv_path} --free NAME")
    if server.stop_after:
        lines.append(f"Stops by itself after {server.stop_after:.0f} s; Ctrl-C stops it now.")
    else:
        lines.append("Ctrl-C stops it. Then: clpips run 10_your_class -p class_csv " + str(room.csv_path.resolve()))
    return "\n".join(lines)


def wait_until_ready(url: str, timeout: float = 30) -> None:
    """Block until ``url`` answers (for tests and scripts)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
