#!/usr/bin/env python3
"""Every value an executed chapter glues, as JSON; and the comparison of two such files.

    glue_values.py [FOLDER_OR_NOTEBOOK ...] [--out FILE]   # default folder: out/notebooks
    glue_values.py compare OLD.json NEW.json [--ignore REGEX] [--only CHAPTER ...]

A glued value is a myst_nb glue output (``application/papermill.record/*`` display data,
named in its ``scrapbook`` metadata): its ``text/plain`` is recorded (``text/html`` when it
has none); a figure (an ``image/*`` record) is recorded by name only, as ``"<figure>"``.
The JSON maps each chapter (the notebook's stem) to ``{name: value}``.

``compare`` lists every glue name whose value differs, or is present on one side only, for
the chapters present in both files, and exits 1 if there is any; names matching
``--ignore`` (default: timings, ``seconds|elapsed|_time$``) are skipped, as they change
from run to run.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

PREFIX = "application/papermill.record/"
DEFAULT_IGNORE = r"seconds|elapsed|_time$"


def glued(notebook: Path) -> dict[str, str]:
    """``{name: value text}`` of every glue output of one executed notebook (later glues win)."""
    nb = json.loads(Path(notebook).read_text(encoding="utf-8"))
    out: dict[str, str] = {}
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []):
            name = output.get("metadata", {}).get("scrapbook", {}).get("name")
            data = output.get("data", {})
            if name is None or not any(key.startswith(PREFIX) for key in data):
                continue
            kinds = {key[len(PREFIX):]: value for key, value in data.items() if key.startswith(PREFIX)}
            if any(kind.startswith("image/") for kind in kinds):
                out[name] = "<figure>"
                continue
            text = kinds.get("text/plain", kinds.get("text/html", sorted(kinds)))
            out[name] = "".join(text) if isinstance(text, list) and all(isinstance(t, str) for t in text) else text
    return out


def collect(paths: list[Path]) -> dict[str, dict[str, str]]:
    notebooks: list[Path] = []
    for path in paths:
        if path.is_dir():
            notebooks += sorted(path.glob("[0-9][0-9]_*.ipynb"))
        elif path.suffix == ".ipynb" and path.is_file():
            notebooks.append(path)
        else:
            raise SystemExit(f"glue_values: {path} is neither a folder nor an executed .ipynb")
    return {nb.stem: glued(nb) for nb in notebooks}


def compare(old: dict, new: dict, ignore: str, only: list[str] | None = None) -> list[str]:
    """One line per difference between two glue JSONs, over the chapters present in both."""
    skip = re.compile(ignore) if ignore else None
    lines = []
    for chapter in sorted(set(old) & set(new)):
        if only and chapter not in only:
            continue
        a, b = old[chapter], new[chapter]
        for name in sorted(set(a) | set(b)):
            if skip is not None and skip.search(name):
                continue
            if name not in a:
                lines.append(f"{chapter}: {name}: only after: {b[name]!r}")
            elif name not in b:
                lines.append(f"{chapter}: {name}: only before: {a[name]!r}")
            elif a[name] != b[name]:
                lines.append(f"{chapter}: {name}: {a[name]!r} -> {b[name]!r}")
    return lines


def main(argv: list[str]) -> int:
    if argv[:1] == ["compare"]:
        parser = argparse.ArgumentParser(prog="glue_values.py compare")
        parser.add_argument("old", type=Path)
        parser.add_argument("new", type=Path)
        parser.add_argument("--ignore", default=DEFAULT_IGNORE, help=f"names to skip (regex; default {DEFAULT_IGNORE!r})")
        parser.add_argument("--only", nargs="*", help="chapters to compare (default: all present in both)")
        args = parser.parse_args(argv[1:])
        old, new = (json.loads(p.read_text(encoding="utf-8")) for p in (args.old, args.new))
        both = sorted(set(old) & set(new))
        if not both:
            print("no chapter is present in both", file=sys.stderr)
            return 1
        lines = compare(old, new, args.ignore, args.only)
        for line in lines:
            print(line)
        n = sum(len(old[c]) for c in both if not args.only or c in args.only)
        print(f"{len(lines)} difference(s) in {len(both)} chapter(s), {n} glued values before "
              f"({', '.join(both)})", file=sys.stderr)
        return 1 if lines else 0
    parser = argparse.ArgumentParser(prog="glue_values.py")
    parser.add_argument("paths", nargs="*", type=Path, default=[Path("out/notebooks")])
    parser.add_argument("--out", type=Path, help="write the JSON here (default: print it)")
    args = parser.parse_args(argv)
    text = json.dumps(collect(args.paths), indent=1, sort_keys=True, ensure_ascii=False)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
