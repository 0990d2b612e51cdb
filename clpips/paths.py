"""Where clpips keeps things on disk, the one lookup of a file the user named, and content digests."""
from __future__ import annotations

import hashlib
import os
import unicodedata
from pathlib import Path
from typing import Any, Mapping


def cache_dir() -> Path:
    """The cache folder (not created here): ``$CLPIPS_CACHE`` or ``$XDG_CACHE_HOME/clpips`` (``~/.cache/clpips``),
    holding ``weights/``, ``data/``, ``features/``, ``embeddings/``, ``crossval/`` and ``fits/``.
    """
    env = os.environ.get("CLPIPS_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "clpips"


def existing_path(path: str | os.PathLike, root: str | os.PathLike | None = None) -> Path:
    """``root / path`` as typed when it exists, else its first existing Unicode form (NFC, NFD), else as typed:
    the same name typed on one system and saved on another can differ in bytes (``é`` in NFC and NFD).
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
