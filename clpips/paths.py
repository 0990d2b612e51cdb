"""Where clpips keeps things on disk, and how a file's content is identified.

* :func:`cache_dir`: ``$CLPIPS_CACHE`` or ``$XDG_CACHE_HOME/clpips`` (default
  ``~/.cache/clpips``): converted backbone weights (``weights/``), datasets
  (``data/``), pair features (``features/``), image embeddings (``embeddings/``),
  cross-validation results (``crossval/``) and :func:`clpips.experiment.run`'s fits
  (``fits/``).
* :func:`existing_path`: a path as typed, or the Unicode form (NFC or NFD) of it that exists:
  the one lookup of a file the user named (a CSV, its images, a weights file, an image).
"""
from __future__ import annotations

import hashlib
import os
import unicodedata
from pathlib import Path
from typing import Any, Mapping


def cache_dir() -> Path:
    """The clpips cache folder (not created here)."""
    env = os.environ.get("CLPIPS_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "clpips"


def existing_path(path: str | os.PathLike, root: str | os.PathLike | None = None) -> Path:
    """``root / path`` (or ``path``) as typed when it exists, else its first Unicode form (NFC, then NFD)
    that exists, else as typed.

    The same name typed on one system and saved on another can differ in bytes (``é`` is one code point
    in NFC, ``e`` and a combining accent in NFD); only ``path`` is varied, never ``root``.
    """
    base = Path(root) if root is not None else None
    typed = str(path)
    forms = dict.fromkeys([typed, unicodedata.normalize("NFC", typed), unicodedata.normalize("NFD", typed)])
    for form in forms:
        candidate = Path(form) if base is None else base / form
        if os.path.lexists(candidate):
            return candidate
    return Path(typed) if base is None else base / typed


def tensor_digest(tensors: Mapping[str, Any]) -> str:
    """Hex sha256 of a name -> tensor mapping's content (names, dtypes, shapes, values), whatever its file format."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        value = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{value.dtype}|{tuple(value.shape)}|".encode())
        digest.update(value.numpy().tobytes())
    return digest.hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
