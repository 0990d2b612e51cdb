"""The data cache, and fetching a file into it with a sha256 check.

Cache folder: ``$CLPIPS_CACHE`` if set, else ``~/.cache/clpips``; dataset files
live under ``<cache>/data/<dataset>/``. A file is written to a temporary name
beside its destination and renamed only once its sha256 matches, so a failed
or corrupt download leaves nothing behind.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path

from clpips.atomic import atomic_path
from clpips.paths import cache_dir, sha256_file


class DownloadError(OSError):
    """A data file could not be fetched, or its content is not the published one."""


def data_dir(dataset: str) -> Path:
    """Where dataset ``dataset`` keeps its files: ``<cache>/data/<dataset>``."""
    return cache_dir() / "data" / dataset


def fetch(source: str, dest: Path, sha256: str, *, hint: str = "") -> Path:
    """Make ``dest`` a verified copy of ``source`` (an http(s) URL or a local file), unless it already is one.

    ``hint``: what the user can do if the fetch fails. A :class:`DownloadError` names source, destination
    and the expected and received sha256.
    """
    if dest.is_file():
        if sha256_file(dest) == sha256:
            return dest
        dest.unlink()  # a corrupt copy is worse than none
    is_url = source.startswith(("http://", "https://"))
    try:
        with atomic_path(dest) as tmp:
            with (urllib.request.urlopen(source, timeout=60) if is_url else open(source, "rb")) as stream:
                with open(tmp, "wb") as out:
                    shutil.copyfileobj(stream, out)
            got = sha256_file(tmp)
            if got != sha256:
                raise DownloadError(f"{source}: content differs from the published file "
                                    f"(expected sha256 {sha256}, got {got}); nothing was written to {dest}. {hint}")
    except DownloadError:
        raise
    except OSError as err:  # urllib's URLError and HTTPError are OSErrors too
        raise DownloadError(f"could not fetch {source} ({err}); nothing was written to {dest}. {hint}") from err
    return dest


def fetch_files(dataset: str, sha256: dict[str, str], canonical: str, url_variable: str,
                base_url: str | None = None, mirror: str | os.PathLike | None = None) -> dict[str, Path]:
    """Verified copies of a dataset's files (name -> sha256) in ``<cache>/data/<dataset>/``.

    An explicit ``mirror`` or ``base_url`` wins; otherwise ``$CLPIPS_DATA_MIRROR`` (files under
    ``<mirror>/<dataset>/``), then ``$<url_variable>``, then the ``canonical`` address.
    """
    if mirror is None and base_url is None:
        mirror = os.environ.get("CLPIPS_DATA_MIRROR") or None
    base = (base_url or os.environ.get(url_variable) or canonical).rstrip("/")
    paths = {}
    for name, sha in sha256.items():
        source = str(Path(mirror, dataset, name)) if mirror is not None else f"{base}/{name}"
        dest = data_dir(dataset) / name
        hint = (f"To fix: check the network or the mirror, set CLPIPS_DATA_MIRROR to a folder holding "
                f"{dataset}/{name}, or save {canonical}/{name} as {dest} yourself.")
        paths[name] = fetch(source, dest, sha, hint=hint)
    return paths


def fresh_dir(dest: Path, build: Callable[[Path], None]) -> Path:
    """Fill a folder atomically: ``build`` writes into a temporary folder that is
    then renamed to ``dest``. If ``dest`` exists already it is used as it is."""
    if dest.is_dir():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    try:
        build(tmp)
        os.rename(tmp, dest)
    except OSError:
        if not dest.is_dir():  # not a lost race with another process
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest
