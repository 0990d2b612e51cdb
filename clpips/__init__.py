"""CLPIPS: LPIPS whose per-layer linear weights are fine-tuned on human similarity rankings.

Conventions (checked at every public entry point, see :mod:`clpips.conventions`):
images are NCHW RGB tensors in [-1, 1]; a lower distance means more similar;
rank 1 means most similar.
"""
__version__ = "0.1.0"

from .model import CLPIPS  # noqa: E402

__all__ = ["CLPIPS", "__version__"]
