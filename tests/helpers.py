"""Small helpers several test modules share (fixtures shared the same way live in conftest.py)."""
from __future__ import annotations

from pathlib import Path

from clpips.cli import main


class Folder:
    """A dataset stand-in whose images lie under ``root`` (what feature extraction asks of a dataset)."""

    def __init__(self, root: Path):
        self.root = root

    def image_path(self, ref: str) -> Path:
        return self.root / ref


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    """``clpips ARGS`` in-process: exit status, stdout, stderr (argparse's errors included)."""
    try:
        code = main(args)
    except SystemExit as stop:
        code = stop.code
    out, err = capsys.readouterr()
    return code, out, err
