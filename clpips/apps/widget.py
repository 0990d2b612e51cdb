"""A ranking widget: rank candidates by similarity, save, and fit your own CLPIPS.

For teaching and for collecting one's own data. A target image is shown with
its candidates; you click the candidates in order of similarity (the first
click gets rank 1; with ``auto_last`` the last candidate is ranked for you),
with *Undo* and *Reset*; *Save ranking* appends the ranking to a CSV in the
project's schema (``set_id, target, candidate, rater, rank[, group]``, see
``data/README.md``) and moves on to the next set; *Fit my CLPIPS* fits a
personal CLPIPS on the rankings collected so far. After each ranking the
widget shows how well baseline LPIPS (and, once fitted, your personal CLPIPS)
agrees with your rankings: Spearman's rho and ICC(A,k), as in the paper.

Two layers, so the logic is tested without a browser:

* :class:`RankingSession`: the state machine (current set, clicks, undo,
  reset, skip, save, resume, fit, scores); no ipywidgets;
* :class:`RankingWidget`: an ipywidgets view of a session (core controls
  only, so a notebook's saved widget state renders in the static book).

Saving is atomic and never loses earlier rankings, also when many sessions
(a class of students, in one process or many) save into one CSV at once: under
an exclusive lock on ``<csv>.lock`` (:func:`save_lock`, ``filelock``), the whole
new file (the rankings already on disk, read again, plus the new one) is
validated with :func:`clpips.datasets.validate`, written to a temporary file,
flushed to disk and renamed onto the CSV (:func:`clpips.atomic.atomic_path`). An
error anywhere, or a writer killed mid-save, leaves the previous CSV as it was
(and an error leaves the ranking in progress unchanged). Saving is idempotent
per (set, rater): saving a ranking the CSV already holds (a double click, a
second tab, a resumed session) writes nothing and moves on; a *different*
ranking of a set this rater already saved is refused. A new session on the same
CSV and rater *resumes*: the sets this rater already ranked are skipped.

Rater names are normalised (:func:`normalise_rater`: Unicode NFC, surrounding
whitespace removed, inner runs of whitespace made one space) or refused with a
one-line :class:`RaterNameError`, so ``" Ana"`` and ``"Ana"`` are one rater. A
name must be text and may not begin with what a spreadsheet runs as a formula
(``=``, ``+``, ``-``, ``@``); the CSV is written through
:func:`clpips.datasets.schema.spreadsheet_safe` all the same, and everything the
view shows (names, set ids, messages) is HTML-escaped.

The CSV's image references are relative to the dataset's root (for ``mur92``,
the cache folder holding its images); read it back with
``clpips.datasets.from_csv(csv, root=dataset.root)``.

Example (in Jupyter)::

    from clpips.experiment import load_dataset
    from clpips.apps.widget import RankingSession, RankingWidget
    data = load_dataset("mur92")
    session = RankingSession(data, "my_rankings.csv", rater="me")
    RankingWidget(session)
"""
from __future__ import annotations

import html
import io
import os
import re
import unicodedata
import warnings
import zlib
from glob import escape as glob_escape
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np
import pandas as pd
import torch

from clpips.atomic import atomic_path
from clpips.datasets.schema import formula_like, spreadsheet_safe
from clpips.book.defaults import DEFAULTS
from clpips.model import initial_weight_vector, read_weights_file, weight_vector_from_state

#: columns the widget writes (``group`` only when the session has one)
WRITTEN_COLUMNS = ("set_id", "target", "candidate", "rater", "rank")


#: longest rater name accepted (characters, after normalisation)
MAX_RATER_LENGTH = 64
#: seconds a save waits for another writer's lock before giving up
LOCK_TIMEOUT = 60.0


class SessionError(RuntimeError):
    """An action that does not fit the session's state (e.g. saving an unfinished ranking)."""


class RaterNameError(ValueError):
    """A rater name that cannot be used (empty, too long, control characters); one line."""


def _squash(name: object) -> str:
    """NFC, whitespace collapsed to single spaces, stripped (never raises)."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFC", str(name))).strip()


def normalise_rater(name: object) -> str:
    """A rater name as saved: Unicode NFC, stripped, inner whitespace runs made one space.

    ``" Ana  María\t"`` (in any Unicode composition) becomes ``"Ana María"``.
    Raises :class:`RaterNameError`, with a one-line message, for a name that is
    not text (``None``, a number), empty after that, longer than
    :data:`MAX_RATER_LENGTH` characters, holds control or format characters, or
    begins like a spreadsheet formula (:func:`clpips.datasets.schema.formula_like`).
    """
    if not isinstance(name, str):
        raise RaterNameError(f"rater name must be text, got {type(name).__name__}: type a name")
    text = _squash(name)
    if not text:
        raise RaterNameError("rater name is empty: type a name (letters, digits, spaces)")
    if len(text) > MAX_RATER_LENGTH:
        raise RaterNameError(f"rater name is {len(text)} characters long; use at most {MAX_RATER_LENGTH}")
    bad = sorted({f"U+{ord(ch):04X}" for ch in text if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn")})
    if bad:
        raise RaterNameError(f"rater name {text!r} holds invisible or control characters ({', '.join(bad)}); "
                             f"type it again")
    if formula_like(text):
        raise RaterNameError(f"rater name {text[:20]!r} begins with {text[0]!r}, which a spreadsheet runs as a "
                             f"formula; begin it with a letter or digit")
    return text


def save_lock(csv_path: str | os.PathLike, timeout: float = LOCK_TIMEOUT):
    """The exclusive lock every save into ``csv_path`` holds: ``<csv>.lock`` beside it (``filelock``).

    An OS-level lock (``flock``): released by the kernel when its holder dies,
    so a writer killed mid-save never blocks the others.
    """
    from filelock import FileLock
    path = Path(csv_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path.with_name(path.name + ".lock")), timeout=timeout)


def read_weight_vector(path: str | os.PathLike, net: str = DEFAULTS.net) -> torch.Tensor:
    """A weights file in the ``lpips`` format (``lin{l}.model.1.weight``) as one weight vector.

    Reads only the linear layers (no backbone is built), checked as :class:`clpips.CLPIPS` checks them
    (:func:`clpips.model.weight_vector_from_state`).
    """
    return weight_vector_from_state(read_weights_file(path), net, source=str(path))


class RankingSession:
    """The logic of the ranking widget (no user interface).

    Parameters
    ----------
    dataset : RankingDataset
        Gives the sets (a target and its candidates, from ``dataset.table``) and the images.
    csv_path : path
        Where rankings are appended (created on the first save).
    rater : str
        Your rater id in the CSV.
    group : str, optional
        Written to a ``group`` column when given.
    sets : sequence of set ids, optional
        The sets to rank, in order (default: all of the dataset's, shuffled by ``seed``).
    seed : int
        Seeds the order of the sets (when ``sets`` is not given) and of each set's candidates.
    base : "lpips", path or weight vector
        Where the personal fit starts and what it is pulled towards (``l2``):
        baseline LPIPS, a weights file (e.g. a pooled CLPIPS) or a vector.
    l2, epochs : float, int
        Pull strength and epochs of the personal fit (:func:`clpips.book.personal.fit_personal`).
    features : PairFeatures, optional
        Pair features of the sets' (target, candidate) pairs; computed (and cached
        on disk) on first need otherwise.
    auto_last : bool
        Rank the last remaining candidate automatically.
    net, device : backbone and torch device.
    """

    def __init__(self, dataset, csv_path: str | os.PathLike, rater: str, *, group: Optional[str] = None,
                 sets: Optional[Sequence[str]] = None, seed: int = DEFAULTS.seed,
                 base: str | os.PathLike | torch.Tensor = "lpips", l2: float = DEFAULTS.personal_l2,
                 epochs: int = DEFAULTS.epochs, features=None, auto_last: bool = True,
                 net: str = DEFAULTS.net, device: str = DEFAULTS.device) -> None:
        self.dataset = dataset
        self.csv_path = Path(csv_path)
        self.rater, self.group = normalise_rater(rater), (None if group is None else _squash(group))
        self.seed, self.l2, self.epochs, self.net, self.device = seed, l2, epochs, net, device
        self.auto_last = auto_last
        self._features = features
        self._base_spec = base
        self._base: Optional[torch.Tensor] = None
        table = dataset.table
        first = table.drop_duplicates(["set_id", "candidate"])
        self._set_target = first.groupby("set_id", sort=False)["target"].first().astype(str).to_dict()
        self._set_candidates = {str(s): list(g["candidate"].astype(str))
                                for s, g in first.groupby("set_id", sort=False)}
        if sets is None:
            order = sorted(self._set_target)
            rng = np.random.default_rng(seed)
            sets = [order[i] for i in rng.permutation(len(order))]
        else:
            sets = [str(s) for s in sets]
            unknown = [s for s in sets if s not in self._set_target]
            if unknown:
                raise ValueError(f"unknown set ids {unknown[:5]}; the dataset has {len(self._set_target)} sets")
        self.sets: list[str] = list(dict.fromkeys(sets))
        odd = [v for v in (self.group, *self.sets, *(self._set_target[t] for t in self.sets),
                           *(c for t in self.sets for c in self._set_candidates[t])) if formula_like(v)]
        if odd:      # the CSV would hold it neutralised ('=...), and resume would no longer find it
            raise ValueError(f"{odd[0]!r} begins with {odd[0][0]!r}, which a spreadsheet runs as a formula; "
                             f"rename that set, image or group")
        self.clicks: list[str] = []
        self._auto = False          # the last entry of clicks was ranked automatically
        self.weights: Optional[torch.Tensor] = None      #: the personal CLPIPS (after :meth:`fit`)
        self.fitted_sets: frozenset[str] = frozenset()   #: the sets the personal model was fitted on
        self.fit_result = None
        self.messages: list[str] = []
        self.resume()

    # ------------------------------------------------------------------ state
    def resume(self) -> None:
        """Read the CSV (if any) and queue the sets this rater has not ranked yet."""
        done = set(self.collected()["set_id"].astype(str))
        self.pending: list[str] = [s for s in self.sets if s not in done]
        self.clicks, self._auto = [], False

    def _read_raw(self) -> pd.DataFrame:
        """The CSV as written (every cell a string; empty when there is no file yet)."""
        if not self.csv_path.exists():
            return pd.DataFrame(columns=list(WRITTEN_COLUMNS), dtype=str)
        return pd.read_csv(self.csv_path, dtype=str, keep_default_na=False, encoding="utf-8-sig")

    def _validated(self, raw: pd.DataFrame) -> pd.DataFrame:
        from clpips.datasets import validate
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)   # columns outside the schema are kept, not checked
            return validate(raw, self.dataset.root, source=str(self.csv_path), check_images=False)

    def _read_csv(self) -> pd.DataFrame:
        """Everything in the CSV, validated (empty with the schema's columns when absent)."""
        raw = self._read_raw()
        return self._validated(raw) if len(raw) else raw

    def collected(self) -> pd.DataFrame:
        """This rater's saved rankings (rows of the CSV; names compared normalised)."""
        table = self._read_csv()
        return table[table["rater"].map(_squash) == self.rater].reset_index(drop=True)

    @property
    def current(self) -> Optional[str]:
        """The set being ranked (None when every set is done)."""
        return self.pending[0] if self.pending else None

    @property
    def n_done(self) -> int:
        return len(self.sets) - len(self.pending)

    def target(self) -> str:
        return self._set_target[self._need_current()]

    def candidates(self) -> list[str]:
        """The current set's candidates in display order (shuffled per set by ``seed``)."""
        set_id = self._need_current()
        cands = self._set_candidates[set_id]
        rng = np.random.default_rng([self.seed, zlib.crc32(set_id.encode())])
        return [cands[i] for i in rng.permutation(len(cands))]

    def _need_current(self) -> str:
        if self.current is None:
            raise SessionError("every set has been ranked")
        return self.current

    def ranks(self) -> dict[str, int]:
        """Candidate -> rank assigned so far in the current set."""
        return {c: i + 1 for i, c in enumerate(self.clicks)}

    @property
    def complete(self) -> bool:
        return self.current is not None and len(self.clicks) == len(self._set_candidates[self.current])

    # ------------------------------------------------------------------ actions
    def click(self, candidate: str | int) -> int:
        """Give the next rank to ``candidate`` (a reference or an index into :meth:`candidates`).

        Returns the rank given. With ``auto_last``, when one candidate is left it
        is ranked last at once.
        """
        cands = self.candidates()
        if isinstance(candidate, (int, np.integer)) and not isinstance(candidate, bool):
            if not 0 <= int(candidate) < len(cands):
                raise SessionError(f"candidate index {candidate} outside 0..{len(cands) - 1}")
            candidate = cands[int(candidate)]
        from clpips.datasets.validate import normalize_ref  # images/./a.png and images//a.png are images/a.png
        try:
            candidate = normalize_ref(str(candidate))
        except ValueError as err:
            raise SessionError(f"candidate {err}") from None
        if candidate not in cands:
            raise SessionError(f"{candidate!r} is not a candidate of set {self.current!r}")
        if candidate in self.clicks:
            raise SessionError(f"{candidate!r} already has rank {self.clicks.index(candidate) + 1}")
        self.clicks.append(candidate)
        self._auto = False
        rank = len(self.clicks)
        left = [c for c in cands if c not in self.clicks]
        if self.auto_last and len(left) == 1:
            self.clicks.append(left[0])
            self._auto = True
        return rank

    def undo(self) -> None:
        """Take back the last click (and the automatic last rank it triggered)."""
        if self._auto:
            self.clicks.pop()
            self._auto = False
        if self.clicks:
            self.clicks.pop()

    def reset(self) -> None:
        """Clear the current set's ranks."""
        self.clicks, self._auto = [], False

    def skip(self) -> None:
        """Put the current set at the end of the queue (its clicks are dropped)."""
        if self.pending:
            self.pending.append(self.pending.pop(0))
        self.reset()

    def ranking_rows(self) -> pd.DataFrame:
        """The current (complete) ranking as rows of the schema."""
        if not self.complete:
            raise SessionError(f"rank all {len(self.candidates())} candidates first "
                               f"({len(self.clicks)} ranked)")
        rows = pd.DataFrame({"set_id": self.current, "target": self.target(), "candidate": self.clicks,
                             "rater": self.rater, "rank": np.arange(1, len(self.clicks) + 1)})
        if self.group is not None:
            rows["group"] = self.group
        return rows

    def save(self) -> pd.DataFrame:
        """Append the current ranking to the CSV atomically and move to the next set.

        Under the CSV's lock (:func:`save_lock`) the file on disk is read again,
        the new rows appended, the whole table validated and written to a
        temporary file that is flushed to disk and then replaces the CSV. The
        earlier rows are written back as they were read (columns outside the
        schema included). If the CSV already holds this very ranking (same set,
        rater and order) nothing is written (:attr:`last_save_written` is False);
        a different ranking of that set by this rater raises :class:`SessionError`.
        On any error the CSV and the ranking in progress are left unchanged.
        Returns the ranking's rows.
        """
        rows = self.ranking_rows()
        try:
            with save_lock(self.csv_path):
                self._remove_stale_temporaries()
                raw = self._read_raw()
                saved = raw[(raw["set_id"] == self.current) & (raw["rater"].map(_squash) == self.rater)]
                if len(saved):
                    order = list(saved.assign(r=pd.to_numeric(saved["rank"], errors="coerce"))
                                 .sort_values("r")["candidate"])
                    if order != self.clicks:
                        raise SessionError(f"{self.csv_path} already holds a different ranking of set "
                                           f"{self.current!r} by rater {self.rater!r}; call resume()")
                    written = False                       # the same ranking again: nothing to add
                else:
                    new = rows.astype(str)
                    table = pd.concat([raw, new], ignore_index=True).fillna("") if len(raw) else new
                    self._validated(table)                # raises, naming the line, if anything is wrong
                    self._write(table)
                    written = True
        except TimeoutError as err:                       # filelock.Timeout
            raise SessionError(f"{self.csv_path} is locked by another writer ({err}); try again") from None
        self.last_save_written = written
        self.pending.pop(0)
        self.clicks, self._auto = [], False
        return rows

    #: whether the last :meth:`save` wrote rows (False: the CSV already held that ranking)
    last_save_written: Optional[bool] = None

    def _write(self, table: pd.DataFrame) -> None:
        """Write the whole table to a temporary file beside the CSV, flush it to disk, rename it onto the CSV."""
        with atomic_path(self.csv_path) as tmp:
            with open(tmp, "w", encoding="utf-8", newline="") as handle:
                spreadsheet_safe(table).to_csv(handle, index=False, lineterminator="\n")
                handle.flush()
                os.fsync(handle.fileno())
        try:                                              # make the rename itself durable
            fd = os.open(self.csv_path.parent, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)

    def _remove_stale_temporaries(self) -> None:
        """Delete temporary files a killed writer left beside the CSV (called under the lock)."""
        for tmp in self.csv_path.parent.glob(f".{glob_escape(self.csv_path.name)}.*.tmp"):
            tmp.unlink(missing_ok=True)

    # ------------------------------------------------------------------ model
    @property
    def features(self):
        """Pair features of every (target, candidate) of the session's sets (computed once, cached on disk)."""
        if self._features is None:
            from clpips.features import pair_features
            pairs = [(self._set_target[s], c) for s in self.sets for c in self._set_candidates[s]]
            self._features = pair_features(self.dataset, pairs, net=self.net, device=self.device, progress=False)
        return self._features

    @property
    def base(self) -> torch.Tensor:
        """The starting weights of the personal fit."""
        if self._base is None:
            spec = self._base_spec
            if isinstance(spec, torch.Tensor):
                self._base = spec.detach().float().flatten()
            elif isinstance(spec, str) and spec == "lpips":
                self._base = initial_weight_vector(self.net, "lpips")
            else:
                self._base = read_weight_vector(spec, self.net)
        return self._base

    @property
    def base_name(self) -> str:
        spec = self._base_spec
        if isinstance(spec, str) and spec == "lpips":
            return "LPIPS"
        return "pooled CLPIPS" if isinstance(spec, torch.Tensor) else f"CLPIPS ({Path(spec).name})"

    def fit(self, weights_path: Optional[str | os.PathLike] = None, **options):
        """Fit a personal CLPIPS on this rater's saved rankings, from :attr:`base` with the L2 pull.

        Returns the :class:`clpips.train.FitResult`; the weights are kept in
        :attr:`weights` and, with ``weights_path``, saved in the ``lpips`` format
        with a provenance sidecar (:meth:`clpips.CLPIPS.save_weights`).
        """
        from clpips.book.personal import fit_personal
        from clpips.train import ranking_pair_index
        mine = self.collected()
        if mine.empty:
            raise SessionError("save at least one ranking before fitting")
        pairs = ranking_pair_index(self.features, mine)
        result = fit_personal(self.features, pairs, self.base, l2=self.l2, epochs=self.epochs, seed=self.seed,
                              net=self.net, device=self.device, **options)
        self.weights, self.fit_result = result.weights, result
        self.fitted_sets = frozenset(mine["set_id"].astype(str))
        if weights_path is not None:
            result.metric(self.net).save_weights(weights_path, provenance={
                "personal": {"rater": self.rater, "csv": str(self.csv_path), "base": self.base_name,
                             "l2": self.l2, "n_rankings": len(self.fitted_sets)}})
        return result

    def scores(self) -> pd.DataFrame:
        """Agreement of LPIPS, the base model and the personal CLPIPS with this rater's saved rankings.

        One row per model: ``spearman`` and ``icc_A_k`` on all saved rankings
        (``n_rankings``), and on the rankings saved *after* the last fit only
        (``spearman_new``, ``icc_new``, ``n_new``: for the personal model the
        others are its training data, an optimistic score).
        """
        from clpips.evaluate import heldout_scores
        mine = self.collected()
        models = {"LPIPS": initial_weight_vector(self.net, "lpips")}
        if self.base_name != "LPIPS":
            models[self.base_name] = self.base
        if self.weights is not None:
            models["personal CLPIPS"] = self.weights
        everything = heldout_scores(mine, self.features, models)
        new = mine[~mine["set_id"].astype(str).isin(self.fitted_sets)]
        fresh = heldout_scores(new, self.features, models)
        out = everything.copy()
        out["spearman_new"], out["icc_new"], out["n_new"] = fresh["spearman"], fresh["icc_A_k"], fresh["n_rankings"]
        return out


# ====================================================================== the view
def png_bytes(image, size: int = 128) -> bytes:
    """A PIL image as PNG bytes, its longer side at most ``size`` pixels."""
    img = image.copy()
    img.thumbnail((size, size))
    buffer = io.BytesIO()
    img.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def scores_html(scores: Optional[pd.DataFrame], n_fitted: int = 0) -> str:
    """The scores table as HTML (what the widget shows under the images)."""
    if scores is None or scores.empty or int(scores["n_rankings"].max()) == 0:
        return "<p><i>Save a ranking to see how well LPIPS agrees with you.</i></p>"

    def fmt(v: Any) -> str:
        return "–" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.2f}"

    head = ("<tr><th style='text-align:left;padding-right:1em'>metric</th><th>rho</th><th>ICC(A,k)</th>"
            "<th style='padding-left:1em'>rho (new)</th><th>ICC (new)</th></tr>")
    body = "".join(f"<tr><td style='padding-right:1em'>{html.escape(str(name))}</td><td>{fmt(r['spearman'])}</td>"
                   f"<td>{fmt(r['icc_A_k'])}</td><td style='padding-left:1em'>{fmt(r['spearman_new'])}</td>"
                   f"<td>{fmt(r['icc_new'])}</td></tr>" for name, r in scores.iterrows())
    n_all, n_new = int(scores["n_rankings"].max()), int(scores["n_new"].max())
    note = (f"On your {n_all} saved ranking{'s' if n_all != 1 else ''}; <i>new</i>: the {n_new} saved after the "
            f"last fit" + (f" (the personal model was fitted on {n_fitted})" if n_fitted else "") + ".")
    return f"<table style='font-size:90%'>{head}{body}</table><p style='font-size:85%'>{note}</p>"


def _widgets():
    import ipywidgets
    return ipywidgets


class RankingWidget:
    """An ipywidgets view of a :class:`RankingSession` (display it in Jupyter).

    Click the candidates from most to least similar to the target; *Undo*,
    *Reset* and *Skip* correct; *Save ranking* appends it to the CSV; *Fit my
    CLPIPS* fits a personal model on what you saved. Only ipywidgets' core
    controls are used (Image, Button, HTML, boxes), so a notebook executed with
    the widget state stored renders it in the static book.

    ``weights_path``: where *Fit my CLPIPS* saves the personal weights (optional).
    """

    def __init__(self, session: RankingSession, *, thumb: int = 128, columns: int = 5,
                 weights_path: Optional[str | os.PathLike] = None, show_scores: bool = True) -> None:
        w = _widgets()
        self.session, self.thumb, self.weights_path = session, thumb, weights_path
        self.show_scores = show_scores
        self._png: dict[str, bytes] = {}
        self.title = w.HTML()
        self.target_image = w.Image(format="png", layout=w.Layout(width=f"{thumb}px", height=f"{thumb}px"))
        n = max((len(c) for c in session._set_candidates.values()), default=0)
        self.images = [w.Image(format="png", layout=w.Layout(width=f"{thumb}px", height=f"{thumb}px"))
                       for _ in range(n)]
        self.buttons = [w.Button(description="rank", layout=w.Layout(width=f"{thumb}px")) for _ in range(n)]
        for i, button in enumerate(self.buttons):
            button.on_click(self._on_candidate(i))
        self.undo_button = w.Button(description="Undo", icon="undo")
        self.reset_button = w.Button(description="Reset", icon="refresh")
        self.skip_button = w.Button(description="Skip set", icon="forward")
        self.save_button = w.Button(description="Save ranking", icon="save", button_style="primary")
        self.fit_button = w.Button(description="Fit my CLPIPS", icon="cogs", button_style="info")
        for button, action in ((self.undo_button, self.undo), (self.reset_button, self.reset),
                               (self.skip_button, self.skip), (self.save_button, self.save),
                               (self.fit_button, self.fit)):
            button.on_click(lambda _b, action=action: action())
        self.status = w.HTML()
        self.scores = w.HTML()
        cells = [w.VBox([img, btn], layout=w.Layout(align_items="center"))
                 for img, btn in zip(self.images, self.buttons)]
        self.grid = w.GridBox(cells, layout=w.Layout(grid_template_columns=f"repeat({columns}, {thumb + 12}px)",
                                                      grid_gap="6px"))
        target_box = w.VBox([w.HTML("<b>target</b>"), self.target_image], layout=w.Layout(align_items="center",
                                                                                          margin="0 16px 0 0"))
        controls = w.HBox([self.undo_button, self.reset_button, self.skip_button, self.save_button, self.fit_button])
        self.box = w.VBox([self.title, w.HBox([target_box, self.grid]), controls, self.status, self.scores])
        self.refresh(scores=True)

    def _ipython_display_(self):  # Jupyter displays the root box
        from IPython.display import display
        display(self.box)

    # ------------------------------------------------------------------ rendering
    def _image(self, ref: str) -> bytes:
        if ref not in self._png:
            self._png[ref] = png_bytes(self.session.dataset.open_image(ref), self.thumb)
        return self._png[ref]

    def refresh(self, scores: bool = False) -> None:
        """Redraw the current set, the ranks given so far and (with ``scores``) the scores."""
        s = self.session
        if s.current is None:
            self.title.value = (f"<h4>All {len(s.sets)} sets ranked, thank you (rater "
                                f"<code>{html.escape(s.rater)}</code>).</h4>")
            for img, btn in zip(self.images, self.buttons):
                img.layout.visibility, btn.layout.visibility = "hidden", "hidden"
            self.target_image.layout.visibility = "hidden"
            for b in (self.undo_button, self.reset_button, self.skip_button, self.save_button):
                b.disabled = True
        else:
            self.title.value = (f"<h4>Set {s.n_done + 1} of {len(s.sets)} (<code>{html.escape(s.current)}</code>), "
                                f"rater <code>{html.escape(s.rater)}</code>: click the candidates from most to "
                                f"least similar to the target.</h4>")
            self.target_image.value = self._image(s.target())
            ranks = s.ranks()
            cands = s.candidates()
            for i, (img, btn) in enumerate(zip(self.images, self.buttons)):
                if i < len(cands):
                    img.value = self._image(cands[i])
                    img.layout.visibility = btn.layout.visibility = "visible"
                    rank = ranks.get(cands[i])
                    btn.description = f"rank {rank}" if rank else "click to rank"
                    btn.button_style = "success" if rank else ""
                    btn.disabled = rank is not None
                else:
                    img.layout.visibility = btn.layout.visibility = "hidden"
            self.save_button.disabled = not s.complete
            self.undo_button.disabled = not s.clicks
        self.fit_button.disabled = s.n_done == 0 and not len(s.collected())
        if scores and self.show_scores:
            self.update_scores()

    def update_scores(self) -> None:
        try:
            table = self.session.scores() if len(self.session.collected()) else None
        except Exception as err:  # scores are a courtesy: never break the widget over them
            self.scores.value = (f"<p style='color:#a00'>Scores unavailable: "
                                 f"{html.escape(f'{type(err).__name__}: {err}')}</p>")
            return
        self.scores.value = scores_html(table, len(self.session.fitted_sets))

    def _say(self, text: str, error: bool = False) -> None:
        colour = "#a00" if error else "#060"
        self.status.value = f"<p style='color:{colour}'>{html.escape(text)}</p>"

    def _guard(self, action: Callable[[], Any], done: Optional[str] = None, scores: bool = False) -> Any:
        try:
            out = action()
        except Exception as err:
            self._say(f"{type(err).__name__}: {err}", error=True)
            self.refresh()
            return None
        if done:
            self._say(done)
        self.refresh(scores=scores)
        return out

    # ------------------------------------------------------------------ actions (also for code)
    def _on_candidate(self, index: int):
        def handler(_button):
            self.click(index)
        return handler

    def click(self, index: int) -> None:
        """Rank the candidate shown at position ``index`` (what clicking its button does)."""
        self._guard(lambda: self.session.click(index))

    def play(self, ranks: Mapping[str, float], n_clicks: Optional[int] = None) -> None:
        """Click the current set's buttons in the order of ``ranks`` (candidate -> rank, 1 first).

        For demonstrations and tests: it does what a user clicking would do.
        ``n_clicks`` stops early, leaving the ranking partly done.
        """
        shown = self.session.candidates()
        missing = [c for c in shown if c not in ranks]
        if missing:
            raise SessionError(f"no rank given for candidate(s) {missing}")
        for candidate in sorted(shown, key=lambda c: ranks[c])[:n_clicks]:
            if self.session.complete:
                break
            self.buttons[shown.index(candidate)].click()

    def undo(self) -> None:
        self._guard(self.session.undo)

    def reset(self) -> None:
        self._guard(self.session.reset)

    def skip(self) -> None:
        self._guard(self.session.skip)

    def save(self) -> None:
        n = self.session.n_done + 1
        self._guard(self.session.save, done=f"Saved ranking {n} to {self.session.csv_path.name}.", scores=True)

    def fit(self) -> None:
        result = self._guard(lambda: self.session.fit(self.weights_path), scores=True)
        if result is not None:
            where = f", saved to {Path(self.weights_path).name}" if self.weights_path else ""
            self._say(f"Fitted your CLPIPS on {len(self.session.fitted_sets)} ranking"
                      f"{'s' if len(self.session.fitted_sets) != 1 else ''} ({result.config['n_train_pairs']} "
                      f"pairs, from {self.session.base_name}){where}.")
