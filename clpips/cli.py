"""The ``clpips`` command line.

Every option's default comes from :data:`clpips.defaults.DEFAULTS`. Errors the
user can fix (a missing file, a bad CSV, unreadable weights) are printed as one
line on stderr with a non-zero exit status, never as a traceback.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Optional, Sequence

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


class UserError(Exception):
    """An error caused by the user's input: printed as one line, exit status 2."""


def _cmd_score(args: argparse.Namespace) -> int:
    import torch

    from .images import ImageReadError, load_image, match_sizes
    from .model import CLPIPS
    from .weights import WeightsUnavailableError

    try:
        target = load_image(args.target)
        candidates = [load_image(p) for p in args.images]
    except ImageReadError as err:
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
                listed = ", ".join(f"{p.name}={p.default}" for p in params.values())
                print(f"{source.stem}\t{listed or '(no parameters)'}")
            return 0
        bar = sys.stderr.isatty()
        if args.all:
            if args.notebook:
                raise UserError("give either a NOTEBOOK or --all")
            nr.run_all(args.out, {"*": given}, progress_bar=bar,
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clpips",
        description="CLPIPS: LPIPS fine-tuned on human similarity rankings.",
        epilog="Run `clpips COMMAND --help` for each command's options and examples.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    from . import __version__
    parser.add_argument("--version", action="version", version=f"clpips {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("score", help="distance of each image to a target (lower = more similar)",
                       description="Print one line per IMAGE: its path, a tab, its distance to TARGET.",
                       epilog=EXAMPLES["score"], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", metavar="TARGET")
    p.add_argument("images", metavar="IMAGE", nargs="+")
    p.add_argument("--net", choices=["alex", "vgg"], default=DEFAULTS.net)
    p.add_argument("--weights", metavar="FILE", help="linear weights (clpips or lpips .pth); default: LPIPS v0.1")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"),
                   help="resize both images to H x W (default: each candidate to the target's size)")
    p.add_argument("--device", default=DEFAULTS.device)
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
    p.set_defaults(func=_cmd_run)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except UserError as err:
        print(f"clpips {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
