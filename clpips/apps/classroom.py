"""The classroom: students rank a teacher's study in their browsers, into one class CSV.

``clpips classroom --study mur92`` serves one page. A student types a name and
the class code, is shown the study's sets one at a time (a target and its
candidates), clicks the candidates from most to least similar and submits; after
each ranking the page shows how well LPIPS, and the student's own personal
CLPIPS, agree with the student (Spearman's rho and ICC(A,k), as in the paper).
Every ranking is appended to the class CSV (``--out``, the project's schema,
``data/README.md``), which chapter 10 ("Your class") reads.

Why a small app on Python's standard library rather than Voila: one process
serves the whole class with *one* copy of the study's pair features and no
kernel per student (a Voila kernel imports torch and holds its own features:
about 0.3 GB and seconds of start-up per student), it needs no package beyond
the project's, and the page loads nothing from another host (no widget
JavaScript at all). The logic is not re-implemented here: each student is a
:class:`clpips.apps.widget.RankingSession` (clicks, saving under the file lock,
idempotent per (set, rater), resume, personal fit, scores) and the score table
is :func:`clpips.apps.widget.scores_html`, the widget's.

The study (``--study``) is a built-in dataset (``mur92``, ``simulated``), a study
CSV (its sets: targets and candidates; rankings in it are not shown), or a
folder of images (each image a target, ``k`` candidates drawn from the others).
Every student ranks the same ``n_sets`` sets in the same order, so the class has
shared sets to compare on. A sidecar ``<out>.json`` (e.g. ``class.json``) records
the study, its image root and the sets, so the class CSV can be read back:
:func:`read_class`.

Security (the class network is not trusted): the server binds to 127.0.0.1 unless
told otherwise; a write needs the class code (printed at start, random unless
``--code`` is given), and a client address that gets it wrong
:attr:`Limits.code_tries` times in :attr:`Limits.code_window` seconds is answered
429 (with ``Retry-After``) until the oldest try ages out. A name is bound at its
first join to a token the student's browser keeps (``<out>.names.json`` holds its
sha256): joining or saving under a name taken by another browser is refused, and
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
import hashlib
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
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd
import torch
from filelock import FileLock, Timeout

from clpips import atomic
from clpips.defaults import DEFAULTS
from clpips.features import pair_features
from clpips.images import ImageReadError
from clpips.apps.widget import (RankingSession, RaterNameError, SessionError, normalise_rater, png_bytes, read_weight_vector,
                     scores_html)

#: image files a folder study takes
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
#: the largest request body accepted (bytes)
MAX_BODY = 64 * 1024
#: candidates per set a class page can show (``--k``)
MIN_K, MAX_K = 2, 16
#: the longest class code (the page's code field takes this many characters)
MAX_CODE = 32


class ClassroomError(ValueError):
    """A study, class file or option that cannot be used (one line, for the command line)."""


class NameTakenError(ClassroomError):
    """A name another student's browser holds (HTTP 409)."""


class TooManyTries(PermissionError):
    """Too many wrong class codes from one client address (HTTP 429); ``retry_after`` in seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many wrong class codes from your computer: try again in {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class Limits:
    """What the server grants any client (the defaults suit a class; tests shrink them)."""

    max_clients: int = 64        #: requests served at once (one thread each)
    queue_wait: float = 2.0      #: seconds a connection waits for a free thread before a 503
    timeout: float = 10.0        #: seconds for each read of a request, and for its whole body
    code_tries: int = 5          #: wrong class codes per client address...
    code_window: float = 60.0    #: ...within this many seconds, then 429 until the oldest ages out


# --------------------------------------------------------------------------- options
def _whole(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_options(*, port: Any = None, stop_after: Any = None, k: Any = None, n_sets: Any = None,
                  seed: Any = None, device: Optional[str] = None, code: Optional[str] = None) -> None:
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
    if code is not None and not (0 < len(code.strip()) <= MAX_CODE and code.strip().isprintable()
                                 and not re.search(r"\s", code.strip())):
        raise ClassroomError(f"--code {code!r}: must be 1 to {MAX_CODE} characters, no spaces")
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
    from clpips.datasets import RankingDataset
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
    from clpips.datasets import RankingDataError
    from clpips.experiment import DATASET_OPTIONS, load_dataset
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
    spec = study if study in _builtin() else str(Path(study).resolve())
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


def _builtin() -> tuple[str, ...]:
    from clpips.experiment import DATASET_OPTIONS
    return tuple(DATASET_OPTIONS)


def read_class(csv_path: str | os.PathLike, root: Optional[str | os.PathLike] = None):
    """A class CSV as a :class:`clpips.datasets.RankingDataset` (its image root from the sidecar).

    Returns ``(dataset, record)``, ``record`` being the sidecar's dict (empty when there is none).
    """
    from clpips.datasets import from_csv
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise ClassroomError(f"{csv_path}: no such class file")
    record: dict[str, Any] = {}
    if sidecar_path(csv_path).is_file():
        record = json.loads(sidecar_path(csv_path).read_text(encoding="utf-8"))
    where = root or record.get("root") or csv_path.parent
    data = from_csv(csv_path, root=where, check_images=False)
    data.name = f"class {csv_path.stem}"
    return data, record


# --------------------------------------------------------------------------- names and codes
def names_path(csv_path: str | os.PathLike) -> Path:
    """``class.csv`` -> ``class.names.json``: which browser holds which name (sha256 of its token)."""
    return Path(csv_path).with_suffix(".names.json")


def _name_key(rater: str) -> str:
    return unicodedata.normalize("NFC", rater.casefold())


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

    def claim(self, name: object, token: object = None) -> tuple[str, str]:
        """``(rater, token)``: a new name is bound to a new token; a taken one needs its token."""
        rater = normalise_rater(name)
        key = _name_key(rater)
        with self._lock, self._file_lock():
            names = self.read()
            held = names.get(key)
            if held is None:
                token = secrets.token_urlsafe(24)
                names[key] = {"name": rater, "sha256": _digest(token)}
                self._write(names)
                return rater, token
        if isinstance(token, str) and secrets.compare_digest(str(held.get("sha256")), _digest(token)):
            return str(held["name"]), token
        raise NameTakenError(f"the name {rater!r} is taken in this class: join from the browser you first "
                             f"used, or ask your teacher to free it")

    def check(self, name: object, token: object) -> str:
        """The rater whose token ``token`` is (PermissionError when it is not, or no longer)."""
        held = self.read().get(_name_key(normalise_rater(name)))
        if held is None or not isinstance(token, str) or not secrets.compare_digest(
                str(held.get("sha256")), _digest(token)):
            raise PermissionError("this page no longer holds your name (freed by your teacher?): reload and join")
        return str(held["name"])

    def free(self, name: object) -> str:
        """Release ``name`` (the next browser to join under it gets a new token); returns the name freed."""
        key = _name_key(normalise_rater(name))
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
    """Wrong class codes per client address: ``tries`` within ``window`` seconds, then
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


# --------------------------------------------------------------------------- the app
@dataclass
class Classroom:
    """The class's state: the study, the CSV, the class code and one session per student."""

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
    sessions: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.csv_path = Path(self.csv_path)
        table = self.dataset.table
        chosen = table[table["set_id"].astype(str).isin(self.sets)]
        self.refs = sorted(set(chosen["target"].astype(str)) | set(chosen["candidate"].astype(str)))
        self._ref_index = {r: i for i, r in enumerate(self.refs)}
        self._png: dict[int, bytes] = {}
        self._lock = threading.Lock()            # the sessions dict
        self._model_lock = threading.Lock()      # fits and scores: one at a time (torch threads)
        self._rater_locks: dict[str, threading.Lock] = {}
        self.names = NameRegister(self.csv_path)
        self.throttle = Throttle(self.limits.code_tries, self.limits.code_window)

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
        """:meth:`load_images`, the names file checked, and the pair features of the class's sets
        computed (cached on disk), before students arrive."""
        self.names.read()                        # a damaged names file is refused now, not mid-lesson
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
        """Release the lock on the class CSV (the next server may use it)."""
        if self.out_lock is not None:
            self.out_lock.release()
            self.out_lock = None

    # -------------------------------------------------------------- students
    def check_code(self, code: object, client: str = "local") -> None:
        """Refuse a wrong class code (PermissionError), and any code from a client address that got it
        wrong too often lately (:class:`TooManyTries`, :class:`Throttle`)."""
        right = isinstance(code, str) and secrets.compare_digest(code.strip().upper().encode("utf-8", "replace"),
                                                                 self.code.upper().encode("utf-8"))
        self.throttle.attempt(client, right)
        if not right:
            raise PermissionError("wrong class code: ask your teacher for it")

    def session(self, rater: str):
        """The :class:`RankingSession` of ``rater`` (a name as :class:`NameRegister` holds it), created or
        resumed from the CSV on first use, and the lock its requests take."""
        with self._lock:
            if rater not in self.sessions:
                self.sessions[rater] = RankingSession(
                    self.dataset, self.csv_path, rater, sets=self.sets, seed=self.seed, base=self.base,
                    features=self.features, auto_last=False, net=self.net, device=self.device)
                self._rater_locks[rater] = threading.Lock()
            return self.sessions[rater], self._rater_locks[rater]

    def state(self, session, *, scores: Optional[pd.DataFrame] = None, saved: Optional[bool] = None) -> dict:
        """What the page shows: the current set (image ids), progress and scores."""
        out: dict[str, Any] = {"rater": session.rater, "done": session.n_done, "total": len(session.sets)}
        if session.current is None:
            out["set"] = None
        else:
            out["set"] = {"set_id": session.current, "target": self._ref_index[session.target()],
                          "candidates": [{"ref": c, "image": self._ref_index[c]} for c in session.candidates()]}
        if saved is not None:
            out["saved"] = saved
        if scores is not None:
            out["scores"] = {name: {"rho": _num(r["spearman"]), "icc": _num(r["icc_A_k"]),
                                    "rho_new": _num(r["spearman_new"]), "icc_new": _num(r["icc_new"]),
                                    "n": int(r["n_rankings"]), "n_new": int(r["n_new"])}
                             for name, r in scores.iterrows()}
            out["scores_html"] = scores_html(scores, len(session.fitted_sets))
        return out

    def join(self, name: object, code: object, *, token: object = None, client: str = "local") -> dict:
        """Admit a student: a new name gets a token (``state["token"]``, which the page keeps); a name
        already taken needs the token it was given (:class:`NameTakenError` otherwise)."""
        self.check_code(code, client)
        rater, token = self.names.claim(name, token)
        session, lock = self.session(rater)
        with lock:
            session.resume()
            scores = self._scores(session) if session.n_done else None
            return {**self.state(session, scores=scores), "token": token}

    def submit(self, name: object, code: object, set_id: object, order: Sequence[object], *,
               token: object = None, client: str = "local") -> dict:
        """Save one ranking (``order``: candidates, most similar first); refit; return the scores.

        Idempotent: submitting a set this student already saved (a double click, a
        second tab) writes nothing and returns the current state (``saved`` False).
        """
        self.check_code(code, client)
        session, lock = self.session(self.names.check(name, token))
        set_id = str(set_id)
        with lock:
            if set_id not in session.sets:
                raise SessionError(f"set {set_id!r} is not one of this class's sets")
            session.resume()                         # the CSV decides what is saved (another tab, a restart)
            if set_id not in session.pending:        # already saved
                return self.state(session, scores=self._scores(session), saved=False)
            session.pending.remove(set_id)
            session.pending.insert(0, set_id)
            order = [str(c) for c in order]
            if sorted(order) != sorted(session.candidates()):
                raise SessionError(f"rank every candidate of set {set_id} exactly once")
            for candidate in order:
                session.click(candidate)
            session.save()
            written = bool(session.last_save_written)
            scores = self._scores(session)           # the personal model has not seen this ranking yet
            with self._model_lock:
                session.fit()                        # ...and is refitted on it for the next one
            return self.state(session, scores=scores, saved=written)

    def _scores(self, session) -> Optional[pd.DataFrame]:
        with self._model_lock:
            return session.scores() if len(session.collected()) else None

    # -------------------------------------------------------------- images
    def image_png(self, index: int) -> bytes:
        if not 0 <= index < len(self.refs):
            raise KeyError(index)
        if index not in self._png:
            self._png[index] = png_bytes(self.dataset.open_image(self.refs[index]), self.thumb)
        return self._png[index]


def _num(value: Any) -> Optional[float]:
    value = float(value)
    return None if np.isnan(value) else round(value, 4)


# --------------------------------------------------------------------------- HTTP
_LENGTH = re.compile(r"[0-9]{1,12}")


class RequestError(Exception):
    """A request refused before its body is used: ``status`` and a one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


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

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            self._send(200, PAGE.encode(), "text/html; charset=utf-8")
        elif path.startswith("/image/") and path.endswith(".png"):
            try:
                self._send(200, self.classroom.image_png(int(path[len("/image/"):-len(".png")])), "image/png",
                           cache=True)
            except (KeyError, ValueError):
                self._send(404, b"no such image", "text/plain")
        elif path == "/favicon.ico":
            self._send(200, base64.b64decode(_FAVICON), "image/png", cache=True)
        else:
            self._send(404, b"not found", "text/plain")

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
        if self.path not in ("/api/join", "/api/submit"):
            self._json(404, {"error": "not found"})
            return
        try:
            status, payload, headers = 200, self._api(self._body()), None
        except RequestError as err:
            status, payload, headers = err.status, {"error": str(err)}, None
        except TimeoutError:
            status, payload, headers = 408, {"error": "the request came too slowly"}, None
        except ConnectionError:
            return
        except TooManyTries as err:
            status, payload, headers = 429, {"error": str(err)}, {"Retry-After": str(err.retry_after)}
        except NameTakenError as err:
            status, payload, headers = 409, {"error": str(err)}, None
        except PermissionError as err:
            status, payload, headers = 403, {"error": str(err)}, None
        except (RaterNameError, SessionError, ValueError, RecursionError) as err:
            status, payload, headers = 400, {"error": str(err).splitlines()[0] if str(err) else "bad request"}, None
        except Exception as err:   # never a traceback to a student; one line for the teacher
            print(f"clpips classroom: {type(err).__name__}: {err}", flush=True)
            failed = f"the server failed: {type(err).__name__}; tell your teacher"
            status, payload, headers = 500, {"error": failed}, None
        self._json(status, payload, headers)

    def _api(self, raw: bytes) -> dict:
        body = json.loads(raw or b"{}")
        if not isinstance(body, dict):
            raise ValueError("expected a JSON object")
        client = self.client_address[0]
        if self.path == "/api/join":
            return self.classroom.join(body.get("name"), body.get("code"), token=body.get("token"), client=client)
        order = body.get("order")
        if not isinstance(order, list):
            raise SessionError("order must be a list of candidates")
        return self.classroom.submit(body.get("name"), body.get("code"), body.get("set_id"), order,
                                     token=body.get("token"), client=client)


_BUSY = json.dumps({"error": "the class page is busy: try again in a moment"}).encode()


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer with at most ``limits.max_clients`` handler threads at once: a connection
    waits ``limits.queue_wait`` seconds for a free one, then gets 503 without a thread."""

    daemon_threads = True
    request_queue_size = 128

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

    ``stop_after``: seconds after which the server stops by itself (None: until :meth:`shutdown`).
    The classroom's :class:`Limits` bound threads, reads and class-code tries. :meth:`shutdown`
    also releases the classroom's lock on its CSV.
    """

    def __init__(self, classroom: Classroom, host: str = DEFAULTS.classroom_host,
                 port: int = DEFAULTS.classroom_port, stop_after: Optional[float] = None) -> None:
        check_options(port=port, stop_after=stop_after)
        limits = classroom.limits
        handler = type("Handler", (_Handler,), {"classroom": classroom, "timeout": limits.timeout})
        self.classroom = classroom
        self.httpd = _Server((host, int(port)), handler, limits)
        self.host, self.port = host, self.httpd.server_address[1]
        self.stop_after = stop_after
        self._thread: Optional[threading.Thread] = None
        self._timer: Optional[threading.Timer] = None

    @property
    def url(self) -> str:
        return f"http://{_display_host(self.host)}:{self.port}/"

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


def _display_host(host: str) -> str:
    """The address to give students: a wildcard bind becomes this machine's LAN address."""
    if host not in ("0.0.0.0", "::", ""):
        return host
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))   # no packet is sent: this only picks the outgoing interface
            return s.getsockname()[0]
    except OSError:
        return socket.gethostname()


def new_code() -> str:
    """A random class code: 5 letters and digits, without look-alikes (0/O, 1/I)."""
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "".join(secrets.choice(alphabet) for _ in range(5))


def open_classroom(study: str, out: str | os.PathLike = DEFAULTS.classroom_out, *,
                   code: Optional[str] = None, n_sets: int = DEFAULTS.classroom_sets,
                   k: int = DEFAULTS.classroom_k, seed: int = DEFAULTS.seed, candidates: str = DEFAULTS.candidates,
                   weights: Optional[str] = None, net: str = DEFAULTS.net,
                   device: str = DEFAULTS.device) -> Classroom:
    """Check the options and ``out``, load the study, pick the class's sets, lock ``out``
    (:func:`claim_out`), read the images, record the sets beside ``out`` and compute features.
    Every problem is one :class:`ClassroomError`.

    ``weights``: a CLPIPS weights file the personal models start from and are pulled
    towards (default: LPIPS).
    """
    check_options(k=k, n_sets=n_sets, seed=seed, device=device, code=code)
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
                         seed=seed, net=net, device=device, out_lock=lock)
        room.load_images()                    # a bad image is refused before anything is recorded
        write_sidecar(out, study=study, dataset=dataset, sets=sets, k=k, seed=seed, candidates=candidates)
        return room.prepare()
    except BaseException:
        lock.release()
        raise


# --------------------------------------------------------------------------- the page
_FAVICON = ("iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAYAAAAf8/9hAAAAH0lEQVR42mNkYPj/n4EIwDiqkH6KRhWOKhxVSD"
            "+FACqJH/HXuT9rAAAAAElFTkSuQmCC")

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Rank images - CLPIPS classroom</title>
<style>
 [hidden] { display: none !important; }
 body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1100px; color: #222; padding: 0 1em; }
 h1 { font-size: 1.4em; } .muted { color: #666; font-size: 90%; }
 #join input { font-size: 1em; padding: .3em; margin-right: .5em; }
 button { font-size: 1em; padding: .35em .8em; margin: .2em; cursor: pointer; }
 button:disabled { cursor: default; opacity: .5; }
 #stage { display: flex; gap: 24px; align-items: flex-start; margin: 1em 0; }
 #target img { border: 3px solid #333; }
 #grid { display: grid; grid-template-columns: repeat(auto-fill, 176px); gap: 10px; flex: 1; }
 .candidate { border: 3px solid #ccc; background: #fff; padding: 4px; position: relative; margin: 0; }
 .candidate.ranked { border-color: #2a7; background: #e9f7ef; }
 .candidate .badge { display: block; font-weight: bold; min-height: 1.2em; }
 img.thumb { width: 160px; height: 160px; object-fit: contain; display: block; }
 #status { min-height: 1.4em; } .error { color: #a00; } .ok { color: #060; }
 #scores table td, #scores table th { padding: 0 .6em; text-align: right; }
</style></head>
<body>
<h1>Which images look most alike?</h1>
<p class="muted">Click the candidates from the <b>most</b> to the <b>least</b> similar to the target, then
submit. After each ranking you see how well LPIPS, and a CLPIPS fitted to you alone, agree with you.</p>
<form id="join" onsubmit="join(); return false;">
 <input id="name" placeholder="your name" autocomplete="off" maxlength="64" required>
 <input id="code" placeholder="class code" autocomplete="off" maxlength="32" required>
 <button id="join-button" type="submit">Start</button>
</form>
<div id="work" hidden>
 <h2 id="title"></h2>
 <div id="stage"><div id="target"><div><b>target</b></div><img class="thumb" id="target-image" alt="target"></div>
  <div id="grid"></div></div>
 <div><button id="undo" type="button" onclick="undo()">Undo</button>
  <button id="reset" type="button" onclick="resetRanks()">Reset</button>
  <button id="submit" type="button" onclick="submitRanking()" disabled>Submit ranking</button></div>
</div>
<p id="status"></p>
<div id="scores"></div>
<script>
"use strict";
let me = null, code = null, token = null, current = null, order = [], busy = false;
const $ = id => document.getElementById(id);
function say(text, error) { $("status").textContent = text; $("status").className = error ? "error" : "ok"; }
// the token the server gave this browser for a name: it alone may join and save under that name again
function tokenKey(name) { return "clpips-token:" + name.normalize("NFC").trim().replace(/\\s+/g, " ").toLowerCase(); }
function storedToken(name) { try { return localStorage.getItem(tokenKey(name)); } catch (err) { return null; } }
function storeToken(name, value) { try { localStorage.setItem(tokenKey(name), value); } catch (err) {} }
async function post(path, body) {
  const response = await fetch(path, {method: "POST", headers: {"Content-Type": "application/json"},
                                      body: JSON.stringify(body)});
  let data = {};
  try { data = await response.json(); } catch (err) {}
  if (!response.ok) throw new Error(data.error || response.statusText || ("error " + response.status));
  return data;
}
async function join() {
  try {
    const name = $("name").value;
    const data = await post("/api/join", {name: name, code: $("code").value, token: storedToken(name)});
    me = data.rater; code = $("code").value; token = data.token; storeToken(me, token);
    $("join").hidden = true; $("work").hidden = false;
    say("Welcome, " + me + ".", false);
    show(data);
  } catch (err) { say(err.message, true); }
}
function show(data) {
  current = data.set; order = [];
  if (data.scores_html) $("scores").innerHTML = data.scores_html;
  document.body.dataset.done = data.done;
  if (!current) {
    $("title").textContent = "All " + data.total + " sets ranked: thank you, " + data.rater + "!";
    $("stage").hidden = true;
    ["undo", "reset", "submit"].forEach(id => $(id).disabled = true);
    return;
  }
  $("title").textContent = "Set " + (data.done + 1) + " of " + data.total;
  $("target-image").src = "/image/" + current.target + ".png";
  const grid = $("grid"); grid.innerHTML = "";
  current.candidates.forEach((c, i) => {
    const b = document.createElement("button");
    b.type = "button"; b.className = "candidate"; b.id = "candidate-" + i; b.dataset.ref = c.ref;
    b.innerHTML = '<span class="badge"></span><img class="thumb" alt="candidate ' + (i + 1) + '">';
    b.querySelector("img").src = "/image/" + c.image + ".png";
    b.onclick = () => rank(c.ref);
    grid.appendChild(b);
  });
  draw();
}
function rank(ref) { if (!order.includes(ref)) { order.push(ref); draw(); } }
function undo() { order.pop(); draw(); }
function resetRanks() { order = []; draw(); }
function draw() {
  if (!current) return;
  current.candidates.forEach((c, i) => {
    const b = $("candidate-" + i), r = order.indexOf(c.ref);
    b.classList.toggle("ranked", r >= 0);
    b.querySelector(".badge").textContent = r >= 0 ? "rank " + (r + 1) : "click to rank";
  });
  $("submit").disabled = busy || order.length !== current.candidates.length;
  $("undo").disabled = order.length === 0;
}
async function submitRanking() {
  if (busy || !current || order.length !== current.candidates.length) return;
  busy = true; draw(); say("Saving...", false);
  try {
    const data = await post("/api/submit", {name: me, code: code, token: token, set_id: current.set_id,
                                            order: order});
    say(data.saved === false ? "That ranking was already saved." : "Saved ranking " + data.done + ".", false);
    busy = false; show(data);
  } catch (err) { busy = false; draw(); say(err.message, true); }
}
</script>
</body></html>
"""


def describe(server: ClassroomServer) -> str:
    """The lines the teacher reads at start."""
    room = server.classroom
    lines = [f"Class page: {server.url}   class code: {room.code}",
             f"{len(room.sets)} sets of {getattr(room.dataset, 'name', 'the study')}, "
             f"rankings saved to {room.csv_path} (study recorded in {sidecar_path(room.csv_path)})"]
    if server.host in ("127.0.0.1", "localhost", "::1"):
        lines.append("Only this computer can open it; use --host 0.0.0.0 to let students on your network in.")
    lines.append(f"Each name belongs to the browser that first joined with it; to free one (a student on "
                 f"another computer): clpips classroom --out {room.csv_path} --free NAME")
    if server.stop_after:
        lines.append(f"Stops by itself after {server.stop_after:.0f} s; Ctrl-C stops it now.")
    else:
        lines.append("Ctrl-C stops it. Then: clpips run 10_your_class -p class_csv " + str(room.csv_path.resolve()))
    return "\n".join(lines)


def wait_until_ready(url: str, timeout: float = 30) -> None:
    """Block until ``url`` answers (for tests and scripts)."""
    import urllib.request
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
