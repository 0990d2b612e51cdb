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
:class:`clpips.widget.RankingSession` (clicks, saving under the file lock,
idempotent per (set, rater), resume, personal fit, scores) and the score table
is :func:`clpips.widget.scores_html`, the widget's.

The study (``--study``) is a built-in dataset (``mur92``, ``simulated``), a study
CSV (its sets: targets and candidates; rankings in it are not shown), or a
folder of images (each image a target, ``k`` candidates drawn from the others).
Every student ranks the same ``n_sets`` sets in the same order, so the class has
shared sets to compare on. A sidecar ``<out>.json`` (e.g. ``class.json``) records
the study, its image root and the sets, so the class CSV can be read back:
:func:`read_class`.

Security: the server binds to 127.0.0.1 unless told otherwise; a write needs the
class code (printed at start, random unless ``--code`` is given); images are
served only from the study's list; request bodies are capped.
"""
from __future__ import annotations

import base64
import json
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

from .defaults import DEFAULTS

#: image files a folder study takes
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
#: the largest request body accepted (bytes)
MAX_BODY = 64 * 1024


class ClassroomError(ValueError):
    """A study or class file that cannot be used (one line, for the command line)."""


# --------------------------------------------------------------------------- the study
def folder_study(folder: str | os.PathLike, k: int = DEFAULTS.classroom_k, seed: int = DEFAULTS.seed):
    """A study of the images in ``folder`` (and its subfolders): each image a target with
    ``k`` candidates drawn at random (``seed``) from the others.

    Returns a :class:`clpips.datasets.RankingDataset` whose table lists the sets (its
    ``rater`` is ``"(design)"`` and ``rank`` the drawing order: no human ranking yet).
    """
    from .datasets import RankingDataset
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
    from .datasets import RankingDataError
    from .experiment import DATASET_OPTIONS, load_dataset
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
    except RankingDataError as err:
        raise ClassroomError(str(err).splitlines()[0]) from None
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
    """Record the study of a class CSV (refusing a CSV that belongs to another study)."""
    from . import atomic
    spec = study if study in _builtin() else str(Path(study).resolve())
    record = {"study": spec, "root": str(Path(dataset.root).resolve()), "name": getattr(dataset, "name", ""),
              "k": int(k), "seed": int(seed), "candidates": candidates, "sets": list(sets)}
    path = sidecar_path(csv_path)
    if path.exists():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = {}
        if Path(csv_path).exists() and (old.get("study"), old.get("sets")) != (record["study"], record["sets"]):
            raise ClassroomError(f"{csv_path} holds the rankings of another study ({old.get('study')!r}, "
                                 f"{len(old.get('sets') or [])} sets); choose another --out")
    return atomic.write_text(path, json.dumps(record, indent=2) + "\n")


def _builtin() -> tuple[str, ...]:
    from .experiment import DATASET_OPTIONS
    return tuple(DATASET_OPTIONS)


def read_class(csv_path: str | os.PathLike, root: Optional[str | os.PathLike] = None):
    """A class CSV as a :class:`clpips.datasets.RankingDataset` (its image root from the sidecar).

    Returns ``(dataset, record)``, ``record`` being the sidecar's dict (empty when there is none).
    """
    from .datasets import from_csv
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

    def prepare(self) -> "Classroom":
        """Compute the pair features of the class's sets once (cached on disk), before students arrive."""
        if self.features is None:
            from .features import pair_features
            table = self.dataset.table
            chosen = table[table["set_id"].astype(str).isin(self.sets)][["target", "candidate"]].drop_duplicates()
            self.features = pair_features(self.dataset, list(chosen.astype(str).itertuples(index=False, name=None)),
                                          net=self.net, device=self.device, progress=False)
        return self

    # -------------------------------------------------------------- students
    def check_code(self, code: object) -> None:
        if not secrets.compare_digest(str(code or "").strip().upper(), self.code.upper()):
            raise PermissionError("wrong class code: ask your teacher for it")

    def session(self, name: object):
        """The student's :class:`RankingSession` (created, or resumed from the CSV, on first use)."""
        from .widget import RankingSession, normalise_rater
        rater = normalise_rater(name)
        with self._lock:
            if rater not in self.sessions:
                self.sessions[rater] = RankingSession(
                    self.dataset, self.csv_path, rater, sets=self.sets, seed=self.seed, base=self.base,
                    features=self.features, auto_last=False, net=self.net, device=self.device)
                self._rater_locks[rater] = threading.Lock()
            return self.sessions[rater], self._rater_locks[rater]

    def state(self, session, *, scores: Optional[pd.DataFrame] = None, saved: Optional[bool] = None) -> dict:
        """What the page shows: the current set (image ids), progress and scores."""
        from .widget import scores_html
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

    def join(self, name: object, code: object) -> dict:
        self.check_code(code)
        session, lock = self.session(name)
        with lock:
            session.resume()
            scores = self._scores(session) if session.n_done else None
            return self.state(session, scores=scores)

    def submit(self, name: object, code: object, set_id: object, order: Sequence[object]) -> dict:
        """Save one ranking (``order``: candidates, most similar first); refit; return the scores.

        Idempotent: submitting a set this student already saved (a double click, a
        second tab) writes nothing and returns the current state (``saved`` False).
        """
        from .widget import SessionError
        self.check_code(code)
        session, lock = self.session(name)
        set_id = str(set_id)
        with lock:
            if set_id not in session.sets:
                raise SessionError(f"set {set_id!r} is not one of this class's sets")
            if set_id not in session.pending:
                session.resume()
            if set_id not in session.pending:        # already saved (by this page or another tab)
                return self.state(session, scores=self._scores(session), saved=False)
            session.pending.remove(set_id)
            session.pending.insert(0, set_id)
            session.reset()
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
        from .widget import png_bytes
        if not 0 <= index < len(self.refs):
            raise KeyError(index)
        if index not in self._png:
            self._png[index] = png_bytes(self.dataset.open_image(self.refs[index]), self.thumb)
        return self._png[index]


def _num(value: Any) -> Optional[float]:
    value = float(value)
    return None if np.isnan(value) else round(value, 4)


# --------------------------------------------------------------------------- HTTP
class _Handler(BaseHTTPRequestHandler):
    server_version = "clpips-classroom"
    classroom: Classroom  # set on the subclass made by make_server

    def log_message(self, format: str, *args: Any) -> None:   # quiet: the terminal is the teacher's
        pass

    def _send(self, status: int, body: bytes, ctype: str, cache: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=3600" if cache else "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: dict) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

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

    def do_POST(self) -> None:  # noqa: N802
        from .widget import RaterNameError, SessionError
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._json(413, {"error": "request too large"})
            return
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(body, dict):
                raise ValueError("expected a JSON object")
            if self.path == "/api/join":
                self._json(200, self.classroom.join(body.get("name"), body.get("code")))
            elif self.path == "/api/submit":
                order = body.get("order")
                if not isinstance(order, list):
                    raise SessionError("order must be a list of candidates")
                self._json(200, self.classroom.submit(body.get("name"), body.get("code"), body.get("set_id"), order))
            else:
                self._json(404, {"error": "not found"})
        except PermissionError as err:
            self._json(403, {"error": str(err)})
        except (RaterNameError, SessionError, ValueError) as err:
            self._json(400, {"error": str(err)})
        except Exception as err:   # never a traceback to a student; one line for the teacher
            print(f"clpips classroom: {type(err).__name__}: {err}", flush=True)
            self._json(500, {"error": f"the server failed: {type(err).__name__}; tell your teacher"})


class ClassroomServer:
    """The class app served over HTTP (threads), started and stopped from code or the CLI.

    ``stop_after``: seconds after which the server stops by itself (None: until :meth:`shutdown`).
    """

    def __init__(self, classroom: Classroom, host: str = DEFAULTS.classroom_host,
                 port: int = DEFAULTS.classroom_port, stop_after: Optional[float] = None) -> None:
        handler = type("Handler", (_Handler,), {"classroom": classroom})
        self.classroom = classroom
        self.httpd = ThreadingHTTPServer((host, int(port)), handler)
        self.httpd.daemon_threads = True
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
    """Load the study, pick the class's sets, record them beside ``out`` and compute features.

    ``weights``: a CLPIPS weights file the personal models start from and are pulled
    towards (default: LPIPS).
    """
    if weights is not None:
        from .widget import read_weight_vector
        try:
            read_weight_vector(weights, net)
        except (OSError, ValueError, RuntimeError) as err:
            raise ClassroomError(f"cannot use --weights {weights}: {err}") from None
    dataset = load_study(study, k=k, seed=seed, candidates=candidates)
    sets = class_sets(dataset, n_sets, seed)
    out = Path(out)
    write_sidecar(out, study=study, dataset=dataset, sets=sets, k=k, seed=seed, candidates=candidates)
    code = (code or new_code()).strip()
    if not code:
        raise ClassroomError("the class code is empty")
    room = Classroom(dataset, out, sets, code, base=weights or "lpips", seed=seed, net=net, device=device)
    return room.prepare()


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
let me = null, code = null, current = null, order = [], busy = false;
const $ = id => document.getElementById(id);
function say(text, error) { $("status").textContent = text; $("status").className = error ? "error" : "ok"; }
async function post(path, body) {
  const response = await fetch(path, {method: "POST", headers: {"Content-Type": "application/json"},
                                      body: JSON.stringify(body)});
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}
async function join() {
  try {
    const data = await post("/api/join", {name: $("name").value, code: $("code").value});
    me = data.rater; code = $("code").value;
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
    const data = await post("/api/submit", {name: me, code: code, set_id: current.set_id, order: order});
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
