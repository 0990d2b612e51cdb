"""The ``clpips`` command line.

Every option's default comes from :data:`clpips.book.defaults.DEFAULTS`. Errors the
user can fix (a missing file, a bad CSV, unreadable weights) are printed as one
line on stderr with a non-zero exit status, never as a traceback.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import math
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

from clpips.choices import (BASELINES, CANDIDATE_RULES, LINEAR_INITS, LOSSES, NETS, PROTOCOL_METRICS, SELECT,
                      SPLIT_MODES, TIES)
from clpips.book.defaults import DEFAULTS

EXAMPLES = {
    "score": """examples:
  clpips score target.png cand1.png cand2.png
  clpips score target.png cand*.jpg --net vgg
  clpips score target.png cand1.png --weights runs/mur92/weights.pth""",
    "run": """examples:
  clpips run --list                          # the notebooks and their parameters
  clpips run 03_training -p margin 0.1 -p project false
  clpips run notebooks/04_evaluation.py --out /tmp/nb
  clpips run --all -p seed 1                 # every notebook; seed where declared

Parameters are converted to the type of their default in clpips.book.defaults
(margin -> float, project -> bool), other names are read as YAML scalars.
The executed notebook is written to OUT/NAME.ipynb, run times to OUT/execution.json.""",
}


EXAMPLES["fit"] = """examples:
  clpips fit --dataset mur92 --out runs/mur92
  clpips fit --dataset mur92 --out runs/m01 --margin 0.01 --lr 0.01 --seed 1
  clpips fit --dataset study/rankings.csv --out runs/mine --epochs 50
  clpips fit --dataset simulated --out runs/sim --layers 0,1 --no-project

Writes OUT/weights.pth (the lpips package's format; lpips.LPIPS(model_path=...) loads it),
OUT/weights.json (provenance) and OUT/metrics.json (split, settings, held-out alignment of
LPIPS and CLPIPS with CIs and p-values, and the paired bootstrap of the differences)."""
EXAMPLES["crossval"] = """examples:
  clpips crossval --dataset mur92 --out runs/cv-mur92              # split by target, the defaults
  clpips crossval --dataset mur92 --out runs/cv --split-mode both  # by target and by image
  clpips crossval --dataset study/rankings.csv --out runs/cv-mine --repeats 5
  clpips crossval --dataset mur92 --out runs/cv --margins 0.01,0.05 --lrs 0.003 --epochs-grid 10,20
  clpips crossval --dataset zappos --out runs/cv-global --metric global     # chapter 09's metrics
  clpips crossval --dataset mur92 --out runs/cv --dask tcp://10.0.0.5:8786  # the fits on a Dask cluster

Outer K-fold by target (or image) x repeats; on each outer training side an inner K-fold
chooses margin, learning rate and epochs, or not to train (LPIPS's weights); the choice is
refitted and scored held-out. A value chosen at a grid edge in most folds is warned about.
Split by image, a study with fixed candidates (a CSV) scores only held-out rankings that keep
--min-candidates candidates, and is refused when a fold would score under half of its own.
Writes OUT/crossval.json (settings, summary with intervals, per-fold rows) and
OUT/folds.csv, OUT/inner.csv, OUT/oof.csv (OUT/MODE/... with --split-mode both)."""
EXAMPLES["evaluate"] = """examples:
  clpips evaluate --dataset mur92 --weights runs/mur92/weights.pth
  clpips evaluate --dataset mur92 --weights a.pth --weights b.pth --json table.json
  clpips evaluate --dataset mur92 --weights runs/mur92/weights.pth --split all
  clpips evaluate --dataset mur92 --weights runs/mur92/weights.pth --baselines
  clpips evaluate --dataset mur92 --weights runs/mur92/weights.pth --baselines ssim,lpips_vgg

Evaluates on the held-out targets of the split recorded in the first weights file's
sidecar (its seed and test size) unless --seed/--test-size are given."""
EXAMPLES["classroom"] = """examples:
  clpips classroom --study mur92                          # 127.0.0.1 only; prints the address and code
  clpips classroom --study mur92 --lan --port 8866 --code OWL42 --out class.csv   # phones join by QR code
  clpips classroom --study my_images/ --k 5 --sets 8      # a folder of images: each a target
  clpips classroom --study study/rankings.csv             # the sets of a study CSV

Students open the printed address, type their name and the class code, and rank the sets;
after each ranking they see, in words, how their order agrees with LPIPS and with the class.
The teacher watches at /teacher (the printed teacher code). Rankings go to OUT (the project's CSV
schema), the study to OUT's .json sidecar, its images beside OUT. Then:
  clpips classroom report class.csv --out report.html     # the class's analysis as one page
  clpips fit --dataset class.csv --out class_fit          # the class's own metric, from any folder"""


class UserError(Exception):
    """An error caused by the user's input: printed as one line, exit status 2 (or ``status``)."""

    def __init__(self, message: str, status: int = 2):
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------- option types: checked while parsing
def _number(text: str, kind: type = float, low: float | None = None, high: float | None = None,
            low_open: bool = False, high_open: bool = False) -> float | int:
    """``text`` as a finite ``kind`` within [low, high] (open ends where asked); else an argparse error."""
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a{' whole' if kind is int else ''} number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r}: must be a finite number")
    shown = (lambda bound: f"{bound:d}") if kind is int else (lambda bound: f"{bound:g}")
    if low is not None and (value < low or (low_open and value == low)):
        raise argparse.ArgumentTypeError(f"{text!r}: must be {'>' if low_open else '>='} {shown(low)}")
    if high is not None and (value > high or (high_open and value == high)):
        raise argparse.ArgumentTypeError(f"{text!r}: must be {'<' if high_open else '<='} {shown(high)}")
    return value


def _folder(text: str) -> str:
    """An existing folder (``--root``)."""
    if not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text!r}: no such folder")
    return text


def _positive_float(text: str) -> float:
    return _number(text, float, 0, low_open=True)


def _share(text: str) -> float:
    return _number(text, float, 0, 1, low_open=True, high_open=True)


def _positive_int(text: str) -> int:
    return _number(text, int, 1)


def _at_least_two(text: str) -> int:
    return _number(text, int, 2)


#: the seeds the CLI takes (numpy's and torch's generators take each of them)
SEED_RANGE = (0, 2 ** 32 - 1)


def _seed(text: str) -> int:
    return _number(text, int, *SEED_RANGE)


def _number_list(kind: type = float, low: float = 0, low_open: bool = True) -> Callable[[str], str]:
    """An option type: comma-separated numbers, each checked as :func:`_number` checks one; the text is
    kept as given (the library parses it)."""
    def check(text: str) -> str:
        items = [item.strip() for item in text.split(",") if item.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"{text!r}: give one or more numbers, comma-separated")
        for item in items:
            _number(item, kind, low, low_open=low_open)
        return text
    return check


def _layers(text: str) -> str:
    """``all`` or comma-separated layer numbers, as :func:`clpips.train.parse_layers` reads them."""
    from clpips.train import parse_layers  # imports torch, as --device's check does
    try:
        parse_layers(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix("layers ")) from None
    return text


def _baselines(text: str) -> str:
    """Comma-separated names among :data:`clpips.choices.BASELINES`."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in BASELINES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"{', '.join(map(repr, unknown)) or repr(text)}: choose among "
                                          f"{', '.join(BASELINES)} (comma-separated)")
    return text


#: the schemes of a Dask scheduler's address (``distributed``'s comms)
DASK_SCHEMES = ("tcp", "tls", "ucx", "ws", "wss", "inproc")


def _dask_address(text: str) -> str:
    """A Dask scheduler's address, ``[SCHEME://]HOST:PORT`` (e.g. ``tcp://10.0.0.5:8786``): its form is
    checked here; whether a scheduler answers there, when the command starts its work."""
    scheme, _, rest = text.rpartition("://")
    if scheme and scheme not in DASK_SCHEMES:
        raise argparse.ArgumentTypeError(f"{text!r}: unknown address scheme {scheme!r} "
                                         f"(one of {', '.join(DASK_SCHEMES)})")
    host, _, port = rest.rpartition(":")
    if scheme != "inproc" and (not host or not port.isdigit() or not 0 < int(port) < 65536):
        raise argparse.ArgumentTypeError(f"{text!r}: give the scheduler's address as [SCHEME://]HOST:PORT, "
                                         "e.g. tcp://10.0.0.5:8786")
    return text


def _device(text: str) -> str:
    """A torch device that exists on this machine."""
    import torch
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a torch device (cpu, cuda, cuda:1, mps)") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise argparse.ArgumentTypeError(f"{text!r}: no CUDA GPU is available here "
                                             "(torch.cuda.is_available() is False); use --device cpu")
        if device.index is not None and device.index >= count:
            raise argparse.ArgumentTypeError(f"{text!r}: this machine has {count} CUDA GPU(s), cuda:0..cuda:{count - 1}")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise argparse.ArgumentTypeError(f"{text!r}: Apple MPS is not available here; use --device cpu")
    return text


class _Parser(argparse.ArgumentParser):
    """argparse, with a hint when a file name beginning with ``-`` was read as an option."""

    argv: Sequence[str] = ()

    def error(self, message: str):  # type: ignore[override]
        dashed = [a for a in _Parser.argv if a.startswith("-") and a != "-" and not a.startswith("--")
                  and (os.path.exists(a) or re.search(r"\.[A-Za-z0-9]{2,5}$", a))]
        if dashed:
            message += (f"; {dashed[0]!r} begins with '-' and reads as an option: write ./{dashed[0]} "
                        "or put -- before the file names")
        super().error(message)


def _cmd_score(args: argparse.Namespace) -> int:
    import torch

    from clpips.images import ImageReadError, load_image, match_sizes
    from clpips.model import CLPIPS
    from clpips.weights import WeightsUnavailableError

    from clpips.conventions import check_size
    try:
        target = load_image(args.target)
        candidates = [load_image(p) for p in args.images]
        check_size(args.size or target.shape[-2:], args.net, "--size" if args.size else args.target)
    except (ImageReadError, ValueError) as err:
        raise UserError(str(err)) from None
    linear = args.weights if args.weights else "lpips"
    try:
        metric = CLPIPS(net=args.net, linear=linear).to(args.device)
    except (FileNotFoundError, KeyError, ValueError, WeightsUnavailableError) as err:
        raise UserError(f"cannot load weights: {err}") from None
    size = "target" if args.size is None else tuple(args.size)
    with torch.no_grad():
        for path, cand in zip(args.images, candidates):
            t, c = match_sizes(target, cand, size)
            print(f"{path}\t{float(metric(t, c)):.6f}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from clpips.apps import notebook_runner as nr

    given = {name: value for name, value in (args.param or [])}
    if len(given) != len(args.param or []):
        raise UserError("a parameter is given twice")
    try:
        if args.list:
            for source in nr.list_notebooks():
                params = nr.notebook_parameters(source)
                listed = ", ".join(f"{p.name}={p.value}" for p in params.values())
                print(f"{source.stem}\t{listed or '(no parameters)'}")
            return 0
        bar = sys.stderr.isatty()
        if args.all:
            if args.notebook:
                raise UserError("give either a NOTEBOOK or --all")
            nr.run_all(args.out, {"*": given}, progress_bar=bar, jobs=args.jobs,
                       log=lambda msg: print(msg, file=sys.stderr))
            return 0
        if not args.notebook:
            raise UserError("name a NOTEBOOK, or use --all or --list")
        print(nr.run_notebook(args.notebook, given, args.out, progress_bar=bar))
        return 0
    except nr.NotebookExecutionError as err:  # a cell raised: its error, exit status 1
        print(f"clpips run: {err}", file=sys.stderr)
        return 1
    except nr.NotebookError as err:
        raise UserError(str(err)) from None


def _load_dataset(args: argparse.Namespace):
    """The dataset of ``--dataset``, its target images checked against ``--net``'s smallest size."""
    from clpips.datasets import RankingDataError
    from clpips.experiment import DATASET_OPTIONS, load_dataset
    options = {"k": args.k, "candidates": args.candidates, "seed": args.seed}
    try:
        if args.dataset.lower().endswith(".csv"):
            dataset = load_dataset(args.dataset, ties=args.ties, root=args.root)
        else:
            if args.root is not None:
                raise UserError(f"--root {args.root}: applies to a CSV dataset, not the built-in {args.dataset}")
            dataset = load_dataset(args.dataset, **options)
    except (RankingDataError, OSError) as err:
        raise UserError(str(err).splitlines()[0] if len(str(err)) > 400 else str(err)) from None
    except ValueError as err:  # a built-in dataset's options out of its range (mur92's --k 200)
        given = " ".join(f"--{name} {options[name]}" for name in DATASET_OPTIONS.get(args.dataset, ()))
        raise UserError(f"{args.dataset}{f' ({given})' if given else ''}: {err}") from None
    _check_target_sizes(dataset, args.net, args.dataset)
    return dataset


def _check_target_sizes(dataset, net: str, source: str) -> None:
    """Every target image is at least the size ``net`` takes (candidates are resized to their target's
    size), checked from the files' headers before any feature is computed."""
    from clpips.conventions import MIN_SIZE
    from clpips.images import ImageReadError, image_size
    low = MIN_SIZE[net]
    for ref in sorted(set(dataset.table["target"])):
        path = dataset.image_path(ref)
        try:
            height, width = image_size(path)
        except ImageReadError as err:
            raise UserError(f"{source}: {err}") from None
        if min(height, width) < low:
            other = [f"--net {name} (at least {size} x {size})" for name, size in MIN_SIZE.items()
                     if size <= min(height, width)]
            raise UserError(f"{source}: target image {path}: {height} x {width} pixels is smaller than the {low} x "
                            f"{low} that --net {net} takes; use larger images{' or ' + other[0] if other else ''}")


def _check_out_dir(out: Path, named: str = "") -> None:
    """The folder ``out`` exists (created here) and clpips can write there, before any work is done;
    ``named``: how messages name it (default ``--out OUT``)."""
    named = named or f"--out {out}"
    if out.exists() and not out.is_dir():
        raise UserError(f"{named}: is an existing file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        import tempfile
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as err:
        raise UserError(f"{named}: cannot write there ({err.strerror or err})") from None


def _check_out_file(path: Path, option: str) -> None:
    """``option``'s file can be written (its folder created here), before any work is done."""
    if path.is_dir():
        raise UserError(f"{option} {path}: is a folder, not a file")
    _check_out_dir(path.parent, f"{option} {path}: its folder {path.parent}")


#: fewest targets on each side of the protocol: held out (the bootstrap resamples them) and
#: training (fit holds some out again for early stopping)
MIN_TEST_TARGETS, MIN_TRAIN_TARGETS = 2, 2


def _check_study_size(dataset, test_size: float, source: str) -> None:
    """One line when the study has too few targets for the split, early stopping and the bootstrap."""
    def sides(n: int) -> tuple[int, int]:  # the rule of clpips.datasets.split_by_target
        n_test = min(max(int(round(test_size * n)), 1), n - 1) if n >= 2 else n
        return n - n_test, n_test

    have = int(dataset.table["target"].nunique())
    need = next(n for n in range(2, 10_000) if sides(n)[0] >= MIN_TRAIN_TARGETS and sides(n)[1] >= MIN_TEST_TARGETS)
    if have < need:
        raise UserError(f"{source}: {have} target image(s); fit with --test-size {test_size:g} needs at least {need} "
                        f"({MIN_TRAIN_TARGETS} to train on, {MIN_TEST_TARGETS} held out for evaluation and the "
                        "bootstrap)")


def _cmd_fit(args: argparse.Namespace) -> int:
    from clpips import atomic
    from clpips.apps.outputs import bootstrap_summary, metrics_json
    from clpips.experiment import fit_cache_path, fit_options, run

    out = Path(args.out)
    _check_out_dir(out)                      # everything checkable is checked before training
    dataset = _load_dataset(args)
    _check_study_size(dataset, args.test_size, args.dataset)
    settings = {"seed": args.seed, "test_size": args.test_size, "net": args.net, "device": args.device,
                **fit_options(vars(args))}  # as clpips.experiment.run keys its cached fit
    try:
        exp = run(dataset, progress=not args.quiet, **settings)
        exp.settings.update(k=args.k, candidates=args.candidates)
    except ValueError as err:
        raise UserError(str(err)) from None
    # the weights and their sidecar are written as soon as training ends; later steps cannot lose them
    provenance = {"trained_on": exp.settings["dataset"], "dataset_citation": getattr(dataset, "citation", ""),
                  "seed": args.seed, "parameters": exp.settings, "metrics": {"heldout": metrics_json(exp)["heldout"]}}
    model = exp.result.metric(args.net)
    model.provenance = {"init": args.init}
    try:
        model.save_weights(out / "weights.pth", provenance=provenance)
    except OSError as err:  # --out went away or filled up while the fit ran (it was writable at the start)
        raise _late_write_error(out / "weights.pth", err, "fit", fit_cache_path(dataset, settings)) from None
    saved = f"{out / 'weights.pth'} and {out / 'weights.json'} are saved"
    step = "the bootstrap"
    try:
        boot = bootstrap_summary(exp.scored, "lpips", "clpips", n_boot=args.n_boot, seed=args.seed)
        step = f"writing {out / 'metrics.json'}"
        atomic.write_json(out / "metrics.json", metrics_json(exp, boot))
        step = "printing the table"
        _print_alignment(exp.table, boot)
    except Exception as err:  # noqa: BLE001 - report any failure with what is already on disk
        reason = str(err).splitlines()[0] if str(err) else ""
        raise UserError(f"{step} failed ({type(err).__name__}: {reason}); {saved}", status=1) from None
    print(f"wrote {out / 'weights.pth'}, {out / 'weights.json'}, {out / 'metrics.json'}")
    return 0


def _late_write_error(path: Path, err: OSError, what: str = "", cached: Optional[Path] = None) -> UserError:
    """The one line (exit status 1) for an output that could not be written after the work was done: the
    path, why, and whether the work (``what``) is cached so that running the command again is quick. (Each
    file is written atomically, so none is left half-written.)"""
    message = f"cannot write {path} ({err.strerror or err})"
    if what:
        message += (f"; the {what} is cached ({cached}): the same command with a writable --out writes it "
                    "without computing it again" if cached is not None and cached.exists()
                    else f"; the {what} could not be cached either")
    return UserError(message, status=1)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from clpips import atomic
    from clpips.datasets import split_by_target
    from clpips.evaluate import alignment_table, score_rankings
    from clpips.apps.outputs import bootstrap_summary
    from clpips.model import CLPIPS, initial_weight_vector
    from clpips.train import pair_features_for

    if args.json:
        _check_out_file(Path(args.json), "--json")
    metrics, models = {"lpips": initial_weight_vector(args.net, "lpips")}, {}
    for i, path in enumerate(args.weights):
        try:
            models[path] = CLPIPS(net=args.net, linear=path)
        except (FileNotFoundError, KeyError, ValueError) as err:
            raise UserError(f"cannot load weights: {err}") from None
        name = Path(path).parent.name if Path(path).stem == "weights" else Path(path).stem
        metrics[name or f"weights{i}"] = models[path].weight_vector()
    # the split (and mur92's candidate draw) recorded by `clpips fit`, unless given here
    recorded = next(iter(models.values())).provenance.get("parameters", {}) if models else {}
    if args.seed_given is None and "seed" in recorded:
        args.seed = recorded["seed"]
        args.test_size = recorded.get("test_size", args.test_size)
        args.k = recorded.get("k", args.k)
        args.candidates = recorded.get("candidates", args.candidates)
    seed, test_size = args.seed, args.test_size
    dataset = _load_dataset(args)
    table = dataset.table
    if args.split == "test":
        try:
            table = split_by_target(table, test_size=test_size, seed=seed)[1]
        except ValueError as err:  # fewer than two targets
            raise UserError(f"{args.dataset}: {err} (--split test holds some out; --split all uses every one)") \
                from None
    features = pair_features_for(dataset, table, net=args.net, device=args.device, progress=not args.quiet)
    scored = score_rankings(table, features, metrics)
    baseline_names = [b.strip() for b in (args.baselines or "").split(",") if b.strip()]
    if baseline_names:
        from clpips.book.baselines import add_baselines
        try:
            scored = add_baselines(scored, dataset, baseline_names, device=args.device, progress=not args.quiet,
                                   alex_features=features if args.net == "alex" else None)
        except ValueError as err:
            raise UserError(str(err)) from None
    result = alignment_table(scored, list(metrics) + [b for b in baseline_names if b not in metrics])
    boot = {name: bootstrap_summary(scored, "lpips", name, n_boot=args.n_boot, seed=seed)
            for name in metrics if name != "lpips"}
    _print_alignment(result, next(iter(boot.values()), None))
    if args.json:
        payload = {"dataset": args.dataset, "split": args.split, "seed": seed, "test_size": test_size,
                   "heldout": result.to_dict(orient="index"), "bootstrap": boot}
        try:
            atomic.write_json(Path(args.json), payload)
        except OSError as err:  # the folder went away while the evaluation ran (it was writable at the start)
            raise _late_write_error(Path(args.json), err) from None
        print(f"wrote {args.json}")
    return 0


def _cmd_classroom(args: argparse.Namespace) -> int:
    from clpips.apps.classroom import ClassroomError, ClassroomServer, check_options, describe, free_name, open_classroom
    from clpips.apps.widget import RaterNameError
    try:
        if args.free is not None:
            print(free_name(args.out, args.free))
            return 0
        if not args.study:
            raise ClassroomError("--study is required: a built-in dataset (mur92, simulated), a study CSV "
                                 "or a folder of images")
        check_options(port=args.port, stop_after=args.stop_after)   # the others: open_classroom, first thing
        room = open_classroom(args.study, args.out, code=args.code, n_sets=args.sets, k=args.k, seed=args.seed,
                              candidates=args.candidates, weights=args.weights, net=args.net, device=args.device,
                              teacher_code=args.teacher_code)
    except (ClassroomError, RaterNameError, FileNotFoundError) as err:
        raise UserError(str(err)) from None
    try:
        host = "0.0.0.0" if args.lan else args.host
        server = ClassroomServer(room, host, args.port, stop_after=args.stop_after, lan=args.lan or None)
    except OSError as err:  # the port is taken, the address is not this machine's
        room.close()
        raise UserError(f"cannot serve on {host}:{args.port}: {err.strerror or err}") from None
    print(describe(server), flush=True)
    server.serve()
    return 0


def _cmd_classroom_report(args: argparse.Namespace) -> int:
    from clpips.apps.class_report import ReportError, write_report
    out = args.report_out or str(Path(args.class_csv).with_suffix(".html"))
    print(f"running chapter 10 on {args.class_csv} ...", file=sys.stderr)
    try:
        print(f"wrote {write_report(args.class_csv, out)}")
    except ReportError as err:
        raise UserError(str(err)) from None
    return 0


def _print_alignment(table, boot) -> None:
    cols = ["spearman", "spearman_pval", "kendall", "icc_A_k", "icc_A_k_ci_low", "icc_A_k_ci_high",
            "icc_A_k_pval", "icc_A_k_koo_li", "n_rankings"]
    print(table[cols].to_string(float_format=lambda v: f"{v:.4g}"))
    if boot:
        for key, row in boot["differences"].items():
            print(f"{key}: {row['delta']:+.4f}  95% CI [{row['ci_low']:+.4f}, {row['ci_high']:+.4f}]  "
                  f"p(Δ<=0) = {row['p_value']:.4g}")


def _crossval_setup(args: argparse.Namespace):
    """The dataset, the protocol's settings (split by target), the metric's family and how to compute, from
    ``clpips crossval``'s options; a bad option is a one-line error naming it."""
    # the protocol and chapter 09's families load torch: imported here, so that `clpips --help` stays quick
    from clpips.book.families import family
    from clpips.protocol import Compute, Grid, Settings
    try:
        grid = Grid.parse(args.margins, args.lrs, args.epochs_grid)
    except ValueError as err:
        raise UserError(f"--margins/--lrs/--epochs-grid: {err}") from None
    try:
        metric = family(args.metric, {name: value for name, value in vars(args).items()
                                      if name.startswith(("transform_", "teacher_"))})
    except ValueError as err:
        raise UserError(f"--metric {args.metric}: {err}") from None
    data = _load_dataset(args)
    _check_folds(data, args)
    settings = Settings(folds=args.folds, repeats=args.repeats, inner_folds=args.inner_folds, grid=grid,
                        select=args.select, seed=args.seed, net=args.net, min_candidates=args.min_candidates)
    return data, settings, metric, Compute(device=args.device, progress=not args.quiet, workers=args.workers)


def _cmd_crossval(args: argparse.Namespace) -> int:
    from clpips import atomic
    from clpips.protocol import check_split

    out = Path(args.out)
    _check_out_dir(out)
    data, settings, metric, compute = _crossval_setup(args)
    modes = ["target", "image"] if args.split_mode == "both" else [args.split_mode]
    for mode in modes:  # a split that would leave too little held out to judge is refused before any run
        try:
            check_split(data, settings.replace(mode=mode))
        except ValueError as err:
            raise UserError(f"{args.dataset}: {err}") from None
    report: dict = {"dataset": getattr(data, "name", args.dataset), "modes": {}}
    with _dask_executor(args.dask) as executor:
        compute = dataclasses.replace(compute, executor=executor)
        for mode in modes:
            report["modes"][mode], store = _crossval_mode(args, data, settings.replace(mode=mode), metric, compute,
                                                          out / mode if len(modes) > 1 else out)
    try:
        atomic.write_json(out / "crossval.json", report)
    except OSError as err:
        raise _late_write_error(out / "crossval.json", err, "cross-validation", store) from None
    print(f"wrote {out / 'crossval.json'} and per-fold CSVs (folds.csv, inner.csv, oof.csv)")
    return 0


def _crossval_mode(args: argparse.Namespace, data, settings, metric, compute,
                   folder: Path) -> tuple[dict, Optional[Path]]:
    """One split mode of ``clpips crossval``: the run (or its cached result), its tables written to ``folder``,
    its summary printed with any grid edge as one warning line; its report and its cache folder."""
    from clpips.apps.outputs import crossval_json, kept
    from clpips.protocol import GridEdgeWarning, crossval, grid_edges, write_result
    try:
        with warnings.catch_warnings():   # a grid edge is printed below with the summary, one line each
            warnings.simplefilter("ignore", GridEdgeWarning)
            res = crossval(data, settings, metric, compute=compute)
    except ValueError as err:
        raise UserError(str(err)) from None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_result(res, folder)
    except OSError as err:  # --out went away or filled up during the run (it was writable at the start)
        raise _late_write_error(folder, err, "cross-validation", res.store) from None
    _print_crossval(settings.mode, res.summary(ci=args.ci, n_boot=args.n_boot), args.metric, kept(res))
    for line in grid_edges(res.folds, res.inner, warn=False)["warning"]:
        if line:
            print(f"clpips: warning: split by {settings.mode}: {line}", file=sys.stderr)
    return crossval_json(res, ci=args.ci, n_boot=args.n_boot), res.store


@contextlib.contextmanager
def _dask_executor(address: Optional[str]) -> Iterator[Optional[concurrent.futures.Executor]]:
    """The executor of the Dask scheduler at ``address`` (``--dask``), its client closed afterwards; None
    without an address (the fits run in local processes)."""
    if not address:
        yield None
        return
    try:
        import distributed   # optional, and heavy: only --dask needs it
    except ImportError:
        raise UserError("--dask needs the distributed package: pip install distributed") from None
    try:
        client = distributed.Client(address, timeout="30s")
    except (OSError, ValueError) as err:   # unreachable (a TimeoutError is an OSError), or not an address
        raise UserError(f"--dask {address}: no Dask scheduler answered there ({err})") from None
    try:
        yield client.get_executor()
    finally:
        client.close()


def _check_folds(dataset, args: argparse.Namespace) -> None:
    """``--folds`` outer folds of the targets, and ``--inner-folds`` of each outer training side, have a
    target each (the folds of :func:`clpips.datasets.kfold_by_target`: sizes differ by at most one)."""
    targets = int(dataset.table["target"].nunique())
    if targets < args.folds:
        fix = f"give --folds between 2 and {targets}" if targets >= 2 else "the protocol needs at least 2"
        raise UserError(f"{args.dataset}: {targets} target image(s), fewer than --folds {args.folds}; {fix}")
    training = targets - math.ceil(targets / args.folds)  # the smallest outer training side
    if training < args.inner_folds:
        raise UserError(f"{args.dataset}: the smallest outer training side ({targets} targets, --folds {args.folds}) "
                        f"has {training} target(s), fewer than --inner-folds {args.inner_folds}; give fewer "
                        "inner folds or more outer folds")


def _print_crossval(mode: str, summary, metric: str = "clpips", kept: Optional[dict] = None) -> None:
    """The summary: per statistic the mean Δ over folds with its interval, and the target bootstrap's Δ (its own
    centre: the out-of-fold rankings pooled) with its interval; then what the folds kept
    (:func:`clpips.apps.outputs.kept`)."""
    name = metric.upper() if metric == "clpips" else metric
    print(f"split by {mode}: mean over folds ({name} - LPIPS), 95% corrected resampled t; "
          "bootstrap over targets (its own delta)")
    for stat, row in summary.iterrows():
        boot = "" if row["boot_low"] != row["boot_low"] else \
            f"  boot {row['boot_delta']:+.3f} [{row['boot_low']:+.3f}, {row['boot_high']:+.3f}]"
        print(f"  {stat:14s} LPIPS {row['lpips']:.3f}  {name} {row['clpips']:.3f}  "
              f"delta {row['delta']:+.3f} [{row['nb_low']:+.3f}, {row['nb_high']:+.3f}]{boot}")
    if kept:
        print(f"  kept: {kept['test_rankings']} held-out rankings scored over {kept['folds']} folds "
              f"({kept['test_candidates_min']}-{kept['test_candidates_max']} candidates, median "
              f"{kept['test_candidates_median']:g}), {kept['test_rankings_dropped']} not scored (fewer than "
              f"{kept['min_candidates']} candidates left); {kept['train_rankings_dropped']} training rankings "
              f"dropped; {kept['rows_on_neither_side_share']:.0%} of a fold's rows on neither side")
        print(f"  bootstrap over {kept['boot_targets']} of {kept['heldout_targets']} held-out targets (those every "
              f"repeat scored); not trained (LPIPS's weights chosen) in {kept['untrained_folds']} of "
              f"{kept['folds']} folds")


def _add_experiment_options(p: argparse.ArgumentParser) -> None:
    d = DEFAULTS
    p.add_argument("--dataset", default=d.dataset, help=f"dataset name or CSV path (default {d.dataset})")
    p.add_argument("--root", type=_folder, metavar="DIR", help="folder a CSV dataset's image paths are relative to "
                   "(default: the CSV's own folder)")
    p.add_argument("--net", choices=NETS, default=d.net)
    p.add_argument("--k", type=_at_least_two, default=d.k, help="candidates per set (built-in datasets; at least 2)")
    p.add_argument("--candidates", choices=CANDIDATE_RULES, default=d.candidates,
                   help="how mur92 candidates are drawn")
    p.add_argument("--test-size", type=_share, default=d.test_size, help="held-out share of targets, in (0, 1)")
    p.add_argument("--device", type=_device, default=d.device)
    p.add_argument("--n-boot", type=_positive_int, default=d.n_boot, help="bootstrap resamples (at least 1)")
    p.add_argument("--ties", choices=TIES, default=TIES[0],
                   help="tied ranks in a CSV study: refuse them (default) or read them as average ranks")
    _add_max_pixels(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_max_pixels(p: argparse.ArgumentParser) -> None:
    from clpips.defaults import MAX_PIXELS
    p.add_argument("--max-pixels", type=_positive_int, metavar="N",
                   help=f"refuse images with more pixels (default {MAX_PIXELS:,}, or $CLPIPS_MAX_PIXELS)")


def _add_score(sub) -> None:
    """The ``score`` sub-command's options."""
    p = sub.add_parser("score", help="distance of each image to a target (lower = more similar)",
                       description="Print one line per IMAGE: its path, a tab, its distance to TARGET.",
                       epilog=EXAMPLES["score"], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", metavar="TARGET")
    p.add_argument("images", metavar="IMAGE", nargs="+")
    p.add_argument("--net", choices=NETS, default=DEFAULTS.net)
    p.add_argument("--weights", metavar="FILE", help="linear weights (clpips or lpips .pth); default: LPIPS v0.1")
    p.add_argument("--size", type=_positive_int, nargs=2, metavar=("H", "W"),
                   help="resize both images to H x W (default: each candidate to the target's size)")
    p.add_argument("--device", type=_device, default=DEFAULTS.device)
    _add_max_pixels(p)
    p.set_defaults(func=_cmd_score)


def _add_run(sub) -> None:
    """The ``run`` sub-command's options."""
    p = sub.add_parser("run", help="execute a notebook with papermill (the book's chapters)",
                       description="Execute NOTEBOOK (a name such as 03_training, or a path to a "
                                   "jupytext .py) with papermill and print the executed notebook's path.",
                       epilog=EXAMPLES["run"], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("notebook", metavar="NOTEBOOK", nargs="?")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--list", action="store_true", help="list the notebooks and their parameters")
    which.add_argument("--all", action="store_true", help="run every notebook, in order")
    p.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"),
                   help="set a parameter (repeatable)")
    p.add_argument("--out", metavar="DIR", default="out/notebooks",
                   help="folder for executed notebooks (default: out/notebooks)")
    p.add_argument("--jobs", type=_positive_int, default=1,
                   help="with --all: notebooks run at once, each in its own process (default 1)")
    p.set_defaults(func=_cmd_run)



def _add_fit(sub) -> None:
    """The ``fit`` sub-command's options."""
    d = DEFAULTS
    p = sub.add_parser("fit", help="fine-tune the linear weights on a dataset's rankings",
                       description="Split by target, fit CLPIPS on the training side, evaluate held-out.",
                       epilog=EXAMPLES["fit"], formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_experiment_options(p)
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--seed", type=_seed, default=d.seed, help=f"0..{SEED_RANGE[1]}")
    p.add_argument("--loss", choices=LOSSES, default=d.loss)
    p.add_argument("--margin", type=_positive_float, default=d.margin, help="> 0")
    p.add_argument("--lr", type=_positive_float, default=d.lr)
    p.add_argument("--batch-size", type=_positive_int, default=d.batch_size)
    p.add_argument("--epochs", type=_positive_int, default=d.epochs)
    p.add_argument("--patience", type=_positive_int, default=d.patience, help="epochs without improvement (at least 1)")
    p.add_argument("--init", choices=LINEAR_INITS, default=d.init)
    p.add_argument("--layers", type=_layers, default=d.layers, help="layers to train: all or e.g. 0,1,4 (of 0..4)")
    p.add_argument("--no-project", dest="project", action="store_false", help="allow negative weights")
    p.set_defaults(func=_cmd_fit, project=d.project)


def _add_crossval(sub) -> None:
    """The ``crossval`` sub-command's options."""
    d = DEFAULTS
    p = sub.add_parser("crossval", help="the nested, repeated cross-validation protocol (robust answer)",
                       description="Repeated outer K-fold by target or image; inner K-fold chooses the setting; "
                                   "mean held-out differences of CLPIPS and LPIPS with intervals.",
                       epilog=EXAMPLES["crossval"], formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_experiment_options(p)
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--seed", type=_seed, default=d.seed, help=f"0..{SEED_RANGE[1]}")
    p.add_argument("--split-mode", choices=[*SPLIT_MODES, "both"], default=d.split_mode,
                   help="target: the paper's split; image: no image on both sides; both")
    p.add_argument("--folds", type=_at_least_two, default=d.protocol_folds, help="outer folds (at least 2)")
    p.add_argument("--repeats", type=_positive_int, default=d.protocol_repeats, help="repeats of the outer split")
    p.add_argument("--inner-folds", type=_at_least_two, default=d.protocol_inner_folds,
                   help="inner folds that choose the setting (at least 2)")
    p.add_argument("--margins", type=_number_list(), default=d.protocol_margins,
                   help="margins to choose among, comma-separated (each > 0)")
    p.add_argument("--lrs", type=_number_list(), default=d.protocol_lrs,
                   help="learning rates to choose among, comma-separated (each > 0)")
    p.add_argument("--epochs-grid", type=_number_list(int, 1, False), default=d.protocol_epochs,
                   help="epoch counts to choose among, comma-separated (each a whole number >= 1)")
    p.add_argument("--select", choices=SELECT,
                   default=d.protocol_select, help="inner criterion")
    p.add_argument("--min-candidates", type=_at_least_two, default=d.protocol_min_candidates,
                   help="split by image of a study with fixed candidates: a held-out ranking left with fewer "
                        f"candidates is not scored (at least 2; default {d.protocol_min_candidates})")
    p.add_argument("--ci", type=_share, default=d.ci, help="confidence level")
    p.add_argument("--workers", type=_positive_int, default=d.workers,
                   help="processes for the fits (the results do not depend on it)")
    p.add_argument("--dask", metavar="ADDRESS", type=_dask_address,
                   help="run the fits on the Dask cluster whose scheduler is at ADDRESS (e.g. tcp://10.0.0.5:8786; "
                        "needs the distributed package) instead of --workers local processes: the same numbers")
    p.add_argument("--metric", choices=PROTOCOL_METRICS, default=d.protocol_metric,
                   help="the metric fitted and compared with LPIPS (chapter 09): clpips, global (pooled channel "
                        "re-weighting, tuned over the same grid), transform (a low-rank transform of the pooled "
                        "representation), teacher (CLPIPS taught by the transform: self-distillation)")
    p.add_argument("--transform-lambdas", type=_number_list(float, 0, False), default=d.transform_lambdas,
                   help="transform: pulls towards the identity to choose among (each >= 0)")
    p.add_argument("--transform-lrs", type=_number_list(), default=d.transform_lrs,
                   help="transform: learning rates to choose among (each > 0)")
    p.add_argument("--transform-steps", type=_number_list(int, 1, False), default=d.transform_steps,
                   help="transform: full-batch steps to choose among (each a whole number >= 1)")
    p.add_argument("--transform-rank", type=_positive_int, default=d.transform_rank, help="transform: rank of U V^T")
    p.add_argument("--transform-margins", type=_number_list(), default=d.transform_margins,
                   help="transform: margins to choose among (each > 0)")
    p.add_argument("--teacher-sets", type=_positive_int, default=d.teacher_sets,
                   help="teacher: new candidate sets ranked per training target")
    p.add_argument("--teacher-weight", type=_positive_float, default=d.teacher_weight,
                   help="teacher: weight of its pairs against the human pairs")
    p.set_defaults(func=_cmd_crossval)


def _add_evaluate(sub) -> None:
    """The ``evaluate`` sub-command's options."""
    d = DEFAULTS
    p = sub.add_parser("evaluate", help="alignment of LPIPS and fitted weights with human rankings",
                       description="Print Spearman, Kendall and ICC(A,k) (with 95%% CI and p) of baseline "
                                   "LPIPS and each weights file on held-out rankings.",
                       epilog=EXAMPLES["evaluate"], formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_experiment_options(p)
    p.add_argument("--weights", action="append", default=[], metavar="FILE", help="weights file (repeatable)")
    p.add_argument("--split", choices=["test", "all"], default="test", help="held-out targets or all rankings")
    p.add_argument("--seed", dest="seed_given", type=_seed, default=None,
                   help="split seed (default: the first weights file's, else %d)" % d.seed)
    p.add_argument("--json", metavar="FILE", help="also write the table as JSON")
    p.add_argument("--baselines", type=_baselines, nargs="?", const=d.baselines, default=None, metavar="NAMES",
                   help=f"also list baseline metrics: comma-separated names among {', '.join(BASELINES)} "
                        f"(clpips.book.baselines); alone: {d.baselines}")
    p.set_defaults(func=_cmd_evaluate)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="clpips",
        description="CLPIPS: LPIPS fine-tuned on human similarity rankings.",
        epilog="""examples:
  clpips score target.png cand1.png cand2.png        # LPIPS distance of each candidate
  clpips fit --dataset mur92 --out runs/mur92         # fine-tune on human rankings, evaluate held-out
  clpips evaluate --dataset mur92 --weights runs/mur92/weights.pth --baselines
  clpips run 03_training -p margin 0.1                # re-run a book chapter with a new parameter
  clpips classroom --study mur92                      # a ranking page for a class
  python -m clpips --help                             # the same command, as a module

Run `clpips COMMAND --help` for each command's options and examples.""",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    from clpips import __version__
    parser.add_argument("--version", action="version", version=f"clpips {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    _add_score(sub)
    _add_run(sub)
    _add_fit(sub)
    _add_crossval(sub)
    _add_evaluate(sub)

    d = DEFAULTS
    p = sub.add_parser("classroom", help="serve a ranking page for a class (students rank, see their scores)",
                       description="Serve a page where students rank the sets of STUDY by similarity and see "
                                   "how well LPIPS and their own CLPIPS agree with them; rankings go to one CSV.",
                       epilog=EXAMPLES["classroom"], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--study", help="a built-in dataset (mur92, simulated), a study CSV, or a folder of images "
                                   "(required, except with --free)")
    p.add_argument("--out", default=d.classroom_out, metavar="CSV",
                   help=f"the class's rankings (default {d.classroom_out}; the study goes to its .json)")
    p.add_argument("--host", default=d.classroom_host,
                   help=f"address to bind (default {d.classroom_host}: this computer only; 0.0.0.0: the network)")
    p.add_argument("--port", type=int, default=d.classroom_port,
                   help=f"port, 0..65535 (default {d.classroom_port}; 0: any free port)")
    p.add_argument("--code", help="the class code students must type (default: a random one, printed)")
    p.add_argument("--teacher-code", help="code of the teacher's page /teacher (default: random, printed; must "
                                          "differ from --code)")
    p.add_argument("--lan", action="store_true", help="let students on this computer's network join: binds 0.0.0.0, "
                   "prints the address and a QR code (plain HTTP: use a network you trust)")
    p.add_argument("--sets", type=int, default=d.classroom_sets, help="sets every student ranks (at least 1)")
    p.add_argument("--k", type=int, default=d.classroom_k,
                   help="candidates per set (built-in datasets, folders; the range is checked at start)")
    p.add_argument("--candidates", choices=CANDIDATE_RULES, default=d.candidates,
                   help="how mur92 candidates are drawn")
    p.add_argument("--seed", type=int, default=d.seed, help="seeds the sets, their order and the candidates (>= 0)")
    p.add_argument("--weights", metavar="FILE", help="start personal models from these CLPIPS weights "
                                                     "(default: LPIPS)")
    p.add_argument("--net", choices=NETS, default=d.net)
    p.add_argument("--device", default=d.device)
    p.add_argument("--stop-after", type=float, metavar="SECONDS", help="stop by itself after this long (> 0)")
    p.add_argument("--free", metavar="NAME", help="free a student's name in the class of --out (a student on "
                                                  "another computer), then exit; works while the server runs")
    p.set_defaults(func=_cmd_classroom)
    actions = p.add_subparsers(dest="action", metavar="{report}", required=False)
    r = actions.add_parser("report", help="chapter 10 on a class file, as one standalone HTML page")
    r.add_argument("class_csv", metavar="CLASS_CSV", help="the class's rankings (clpips classroom --out)")
    r.add_argument("--out", dest="report_out", metavar="HTML", help="the report (default: CLASS_CSV with .html)")
    r.set_defaults(func=_cmd_classroom_report)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``clpips ARGV`` (default: the command line): its exit status. Ctrl-C, while the options are read
    (some load torch) or while the command runs, prints "interrupted" and gives status 130."""
    try:
        return _run_command(argv)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        if argv is not None:    # called from Python (a test, a notebook): the caller goes on
            return 130
        # the program itself: end now. Python's own shutdown, after torch, takes about a second more, and
        # nothing is left to finish (every result is written atomically, worker processes end with us)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)


def _run_command(argv: Optional[Sequence[str]]) -> int:
    """:func:`main` but for Ctrl-C: the options parsed, the command run, a :class:`UserError` as one line."""
    parser = build_parser()
    _Parser.argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if getattr(args, "max_pixels", None):
        os.environ["CLPIPS_MAX_PIXELS"] = str(args.max_pixels)  # read by clpips.images.max_pixels
    if args.command == "evaluate":
        args.seed = DEFAULTS.seed if args.seed_given is None else args.seed_given
    func: Callable[[argparse.Namespace], int] = args.func
    shown = warnings.formatwarning  # warnings (a rebuilt cache entry, an unwritable cache) as one line each
    warnings.formatwarning = lambda message, category, *rest, **kw: f"clpips: warning: {message}\n"
    try:
        return func(args)
    except UserError as err:
        print(f"clpips {args.command}: error: {err}", file=sys.stderr)
        return err.status
    finally:
        warnings.formatwarning = shown


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
