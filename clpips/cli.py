"""The ``clpips`` command line.

Every option's default comes from :data:`clpips.defaults.DEFAULTS`. Errors the
user can fix (a missing file, a bad CSV, unreadable weights) are printed as one
line on stderr with a non-zero exit status, never as a traceback.
"""
from __future__ import annotations

import argparse
import math
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Callable, Optional, Sequence

from .choices import (BASELINES, CANDIDATE_RULES, LINEAR_INITS, LOSSES, NETS, PROTOCOL_METRICS, SELECT,
                      SPLIT_MODES, TIES)
from .defaults import DEFAULTS

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

Parameters are converted to the type of their default in clpips.defaults
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

Outer K-fold by target (or image) x repeats; on each outer training side an inner K-fold
chooses margin, learning rate and epochs; the choice is refitted and scored held-out.
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
  clpips classroom --study mur92 --host 0.0.0.0 --port 8866 --code OWL42 --out class.csv
  clpips classroom --study my_images/ --k 5 --sets 8      # a folder of images: each a target
  clpips classroom --study study/rankings.csv             # the sets of a study CSV

Students open the printed address, type their name and the class code, and rank the sets;
after each ranking they see rho and ICC(A,k) of LPIPS and of their own CLPIPS with them.
Rankings go to OUT (the project's CSV schema), the study to OUT's .json sidecar. Then:
  clpips run 10_your_class -p class_csv $PWD/class.csv    # the teacher's view (chapter 10)"""


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
    if low is not None and (value < low or (low_open and value == low)):
        raise argparse.ArgumentTypeError(f"{text!r}: must be {'>' if low_open else '>='} {low:g}")
    if high is not None and (value > high or (high_open and value == high)):
        raise argparse.ArgumentTypeError(f"{text!r}: must be {'<' if high_open else '<='} {high:g}")
    return value


def _positive_float(text: str) -> float:
    return _number(text, float, 0, low_open=True)


def _nonnegative_float(text: str) -> float:
    return _number(text, float, 0)


def _share(text: str) -> float:
    return _number(text, float, 0, 1, low_open=True, high_open=True)


def _positive_int(text: str) -> int:
    return _number(text, int, 1)


def _nonnegative_int(text: str) -> int:
    return _number(text, int, 0)


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

    from .images import ImageReadError, load_image, match_sizes
    from .model import CLPIPS
    from .weights import WeightsUnavailableError

    from .conventions import check_size
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
    from . import notebook_runner as nr

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
    from .datasets import RankingDataError
    from .experiment import load_dataset
    options = {"k": args.k, "candidates": args.candidates, "seed": args.seed}
    try:
        if args.dataset.lower().endswith(".csv"):
            return load_dataset(args.dataset, ties=args.ties)
        return load_dataset(args.dataset, **options)
    except (RankingDataError, OSError) as err:
        raise UserError(str(err).splitlines()[0] if len(str(err)) > 400 else str(err)) from None
    except ValueError as err:
        raise UserError(str(err)) from None


def _check_out_dir(out: Path) -> None:
    """``--out`` is a folder clpips can write (created here), before any work is done."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: is an existing file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        import tempfile
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as err:
        raise UserError(f"--out {out}: cannot write there ({err.strerror or err})") from None


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
    from . import atomic
    from .experiment import bootstrap_summary, fit_options, metrics_json, run

    out = Path(args.out)
    _check_out_dir(out)                      # everything checkable is checked before training
    dataset = _load_dataset(args)
    _check_study_size(dataset, args.test_size, args.dataset)
    try:
        exp = run(dataset, seed=args.seed, test_size=args.test_size, net=args.net, device=args.device,
                  progress=not args.quiet, **fit_options(vars(args)))
        exp.settings.update(k=args.k, candidates=args.candidates)
    except ValueError as err:
        raise UserError(str(err)) from None
    # the weights and their sidecar are written as soon as training ends; later steps cannot lose them
    provenance = {"trained_on": exp.settings["dataset"], "dataset_citation": getattr(dataset, "citation", ""),
                  "seed": args.seed, "parameters": exp.settings, "metrics": {"heldout": metrics_json(exp)["heldout"]}}
    model = exp.result.metric(args.net)
    model.provenance = {"init": args.init}
    model.save_weights(out / "weights.pth", provenance=provenance)
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


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from . import atomic
    from .datasets import split_by_target
    from .evaluate import alignment_table, score_rankings
    from .experiment import bootstrap_summary
    from .model import CLPIPS, initial_weight_vector
    from .train import pair_features_for

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
        table = split_by_target(table, test_size=test_size, seed=seed)[1]
    features = pair_features_for(dataset, table, net=args.net, device=args.device, progress=not args.quiet)
    scored = score_rankings(table, features, metrics)
    baseline_names = [b.strip() for b in (args.baselines or "").split(",") if b.strip()]
    if baseline_names:
        from .baselines import add_baselines
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
        atomic.write_json(Path(args.json), payload)
        print(f"wrote {args.json}")
    return 0


def _cmd_classroom(args: argparse.Namespace) -> int:
    from .classroom import ClassroomError, ClassroomServer, describe, open_classroom
    from .widget import RaterNameError
    try:
        room = open_classroom(args.study, args.out, code=args.code, n_sets=args.sets, k=args.k, seed=args.seed,
                              candidates=args.candidates, weights=args.weights, net=args.net, device=args.device)
        server = ClassroomServer(room, args.host, args.port, stop_after=args.stop_after)
    except (ClassroomError, RaterNameError, FileNotFoundError) as err:
        raise UserError(str(err)) from None
    except OSError as err:  # the port is taken, the address is not this machine's
        raise UserError(f"cannot serve on {args.host}:{args.port}: {err.strerror or err}") from None
    print(describe(server), flush=True)
    server.serve()
    return 0


def _print_alignment(table, boot) -> None:
    cols = ["spearman", "spearman_pval", "kendall", "icc_A_k", "icc_A_k_ci_low", "icc_A_k_ci_high",
            "icc_A_k_pval", "icc_A_k_koo_li", "n_rankings"]
    print(table[cols].to_string(float_format=lambda v: f"{v:.4g}"))
    if boot:
        for key, row in boot["differences"].items():
            print(f"{key}: {row['delta']:+.4f}  95% CI [{row['ci_low']:+.4f}, {row['ci_high']:+.4f}]  "
                  f"p(Δ<=0) = {row['p_value']:.4g}")


def _cmd_crossval(args: argparse.Namespace) -> int:
    from . import atomic
    from .protocol import CrossvalResult, Grid, crossval, write_result

    out = Path(args.out)
    _check_out_dir(out)
    try:
        grid = Grid.parse(args.margins, args.lrs, args.epochs_grid)
    except ValueError as err:
        raise UserError(f"--margins/--lrs/--epochs-grid: {err}") from None
    data = _load_dataset(args)
    modes = ["target", "image"] if args.split_mode == "both" else [args.split_mode]
    report: dict = {"dataset": getattr(data, "name", args.dataset), "modes": {}}
    for mode in modes:
        try:
            res: CrossvalResult = crossval(data, mode=mode, folds=args.folds, repeats=args.repeats,
                                           inner_folds=args.inner_folds, grid=grid, select=args.select,
                                           seed=args.seed, net=args.net, device=args.device,
                                           workers=args.workers, progress=not args.quiet, metric=args.metric,
                                           transform_lambdas=args.transform_lambdas,
                                           transform_lrs=args.transform_lrs, transform_steps=args.transform_steps,
                                           transform_rank=args.transform_rank,
                                           transform_margins=args.transform_margins, teacher_sets=args.teacher_sets,
                                           teacher_weight=args.teacher_weight)
        except ValueError as err:
            raise UserError(str(err)) from None
        folder = out / mode if len(modes) > 1 else out
        folder.mkdir(parents=True, exist_ok=True)
        write_result(res, folder)
        report["modes"][mode] = res.to_json(ci=args.ci, n_boot=args.n_boot)
        _print_crossval(mode, res.summary(ci=args.ci, n_boot=args.n_boot), args.metric)
    atomic.write_json(out / "crossval.json", report)
    print(f"wrote {out / 'crossval.json'} and per-fold CSVs (folds.csv, inner.csv, oof.csv)")
    return 0


def _print_crossval(mode: str, summary, metric: str = "clpips") -> None:
    name = metric.upper() if metric == "clpips" else metric
    print(f"split by {mode}: mean over folds ({name} - LPIPS), 95% corrected resampled t; bootstrap over targets")
    for stat, row in summary.iterrows():
        boot = "" if row["boot_low"] != row["boot_low"] else f"  boot [{row['boot_low']:+.3f}, {row['boot_high']:+.3f}]"
        print(f"  {stat:14s} LPIPS {row['lpips']:.3f}  {name} {row['clpips']:.3f}  "
              f"delta {row['delta']:+.3f} [{row['nb_low']:+.3f}, {row['nb_high']:+.3f}]{boot}")


def _add_experiment_options(p: argparse.ArgumentParser) -> None:
    d = DEFAULTS
    p.add_argument("--dataset", default=d.dataset, help=f"dataset name or CSV path (default {d.dataset})")
    p.add_argument("--net", choices=NETS, default=d.net)
    p.add_argument("--k", type=_positive_int, default=d.k, help="candidates per set (built-in datasets)")
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
    from .defaults import MAX_PIXELS
    p.add_argument("--max-pixels", type=_positive_int, metavar="N",
                   help=f"refuse images with more pixels (default {MAX_PIXELS:,}, or $CLPIPS_MAX_PIXELS)")


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
    from . import __version__
    parser.add_argument("--version", action="version", version=f"clpips {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

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

    d = DEFAULTS
    p = sub.add_parser("fit", help="fine-tune the linear weights on a dataset's rankings",
                       description="Split by target, fit CLPIPS on the training side, evaluate held-out.",
                       epilog=EXAMPLES["fit"], formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_experiment_options(p)
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--loss", choices=LOSSES, default=d.loss)
    p.add_argument("--margin", type=_nonnegative_float, default=d.margin)
    p.add_argument("--lr", type=_positive_float, default=d.lr)
    p.add_argument("--batch-size", type=_positive_int, default=d.batch_size)
    p.add_argument("--epochs", type=_positive_int, default=d.epochs)
    p.add_argument("--patience", type=_nonnegative_int, default=d.patience)
    p.add_argument("--init", choices=LINEAR_INITS, default=d.init)
    p.add_argument("--layers", default=d.layers, help="layers to train: all or e.g. 0,1,4")
    p.add_argument("--no-project", dest="project", action="store_false", help="allow negative weights")
    p.set_defaults(func=_cmd_fit, project=d.project)

    p = sub.add_parser("crossval", help="the nested, repeated cross-validation protocol (robust answer)",
                       description="Repeated outer K-fold by target or image; inner K-fold chooses the setting; "
                                   "mean held-out differences of CLPIPS and LPIPS with intervals.",
                       epilog=EXAMPLES["crossval"], formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_experiment_options(p)
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--split-mode", choices=[*SPLIT_MODES, "both"], default=d.split_mode,
                   help="target: the paper's split; image: no image on both sides; both")
    p.add_argument("--folds", type=_positive_int, default=d.protocol_folds, help="outer folds (at least 2)")
    p.add_argument("--repeats", type=_positive_int, default=d.protocol_repeats, help="repeats of the outer split")
    p.add_argument("--inner-folds", type=_positive_int, default=d.protocol_inner_folds,
                   help="inner folds that choose the setting (at least 2)")
    p.add_argument("--margins", default=d.protocol_margins, help="margins to choose among, comma-separated")
    p.add_argument("--lrs", default=d.protocol_lrs, help="learning rates to choose among, comma-separated")
    p.add_argument("--epochs-grid", default=d.protocol_epochs, help="epoch counts to choose among, comma-separated")
    p.add_argument("--select", choices=SELECT,
                   default=d.protocol_select, help="inner criterion")
    p.add_argument("--ci", type=_share, default=d.ci, help="confidence level")
    p.add_argument("--workers", type=_positive_int, default=d.workers,
                   help="processes for the fits (the results do not depend on it)")
    p.add_argument("--metric", choices=PROTOCOL_METRICS, default=d.protocol_metric,
                   help="the metric fitted and compared with LPIPS (chapter 09): clpips, global (pooled features), "
                        "transform (AligNet-style), teacher (CLPIPS taught by the transform)")
    p.add_argument("--transform-lambdas", default=d.transform_lambdas,
                   help="transform: pulls towards the identity to choose among")
    p.add_argument("--transform-lrs", default=d.transform_lrs, help="transform: learning rates to choose among")
    p.add_argument("--transform-steps", default=d.transform_steps, help="transform: full-batch steps to choose among")
    p.add_argument("--transform-rank", type=_positive_int, default=d.transform_rank, help="transform: rank of U V^T")
    p.add_argument("--transform-margins", default=d.transform_margins, help="transform: margins to choose among")
    p.add_argument("--teacher-sets", type=_positive_int, default=d.teacher_sets,
                   help="teacher: new candidate sets ranked per training target")
    p.add_argument("--teacher-weight", type=_positive_float, default=d.teacher_weight,
                   help="teacher: weight of its pairs against the human pairs")
    p.set_defaults(func=_cmd_crossval)

    p = sub.add_parser("evaluate", help="alignment of LPIPS and fitted weights with human rankings",
                       description="Print Spearman, Kendall and ICC(A,k) (with 95%% CI and p) of baseline "
                                   "LPIPS and each weights file on held-out rankings.",
                       epilog=EXAMPLES["evaluate"], formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_experiment_options(p)
    p.add_argument("--weights", action="append", default=[], metavar="FILE", help="weights file (repeatable)")
    p.add_argument("--split", choices=["test", "all"], default="test", help="held-out targets or all rankings")
    p.add_argument("--seed", dest="seed_given", type=int, default=None,
                   help="split seed (default: the first weights file's, else %d)" % d.seed)
    p.add_argument("--json", metavar="FILE", help="also write the table as JSON")
    p.add_argument("--baselines", nargs="?", const=d.baselines, default=None, metavar="NAMES",
                   help=f"also list baseline metrics: comma-separated names among {', '.join(BASELINES)} "
                        f"(clpips.baselines); alone: {d.baselines}")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("classroom", help="serve a ranking page for a class (students rank, see their scores)",
                       description="Serve a page where students rank the sets of STUDY by similarity and see "
                                   "how well LPIPS and their own CLPIPS agree with them; rankings go to one CSV.",
                       epilog=EXAMPLES["classroom"], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--study", required=True,
                   help="a built-in dataset (mur92, simulated), a study CSV, or a folder of images")
    p.add_argument("--out", default=d.classroom_out, metavar="CSV",
                   help=f"the class's rankings (default {d.classroom_out}; the study goes to its .json)")
    p.add_argument("--host", default=d.classroom_host,
                   help=f"address to bind (default {d.classroom_host}: this computer only; 0.0.0.0: the network)")
    p.add_argument("--port", type=int, default=d.classroom_port, help=f"port (default {d.classroom_port}; 0: any)")
    p.add_argument("--code", help="the class code students must type (default: a random one, printed)")
    p.add_argument("--sets", type=int, default=d.classroom_sets, help="sets every student ranks")
    p.add_argument("--k", type=int, default=d.classroom_k, help="candidates per set (built-in datasets, folders)")
    p.add_argument("--candidates", choices=CANDIDATE_RULES, default=d.candidates,
                   help="how mur92 candidates are drawn")
    p.add_argument("--seed", type=int, default=d.seed, help="seeds the sets, their order and the candidates")
    p.add_argument("--weights", metavar="FILE", help="start personal models from these CLPIPS weights "
                                                     "(default: LPIPS)")
    p.add_argument("--net", choices=NETS, default=d.net)
    p.add_argument("--device", default=d.device)
    p.add_argument("--stop-after", type=float, metavar="SECONDS", help="stop by itself after this long")
    p.set_defaults(func=_cmd_classroom)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
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
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = shown


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
