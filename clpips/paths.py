"""Where clpips keeps things on disk.

* :func:`cache_dir`: ``$CLPIPS_CACHE`` or ``$XDG_CACHE_HOME/clpips`` (default
  ``~/.cache/clpips``): converted backbone weights (``weights/``), datasets
  (``data/``) and pair-feature caches (``features/``).
"""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The clpips cache folder (not created here)."""
    env = os.environ.get("CLPIPS_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "clpips"
