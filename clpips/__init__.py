"""CLPIPS: LPIPS whose per-layer linear weights are fine-tuned on human similarity rankings
(conventions: :mod:`clpips.conventions`).

``clpips.CLPIPS`` is imported on first use, so ``import clpips.datasets`` or
``clpips.stats`` does not pay for importing torch and torchvision.
"""
from clpips import moved
from clpips.version import __version__

moved.install()  # old import paths of modules now in clpips.apps and clpips.book

__all__ = ["CLPIPS", "__version__"]


def __getattr__(name: str):
    if name == "CLPIPS":
        from clpips.model import CLPIPS
        return CLPIPS
    raise AttributeError(f"module 'clpips' has no attribute {name!r}")
