"""Shared test fixtures.

``../shared`` (read-only reference material) is found through ``$CLPIPS_SHARED``,
defaulting to the folder beside the checkout. A missing fixture is a skip on a
developer's machine and a failure when ``CI=true``.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_path(*parts: str) -> Path:
    """A path under the shared folder; skip (or fail under CI) when it is missing."""
    root = Path(os.environ.get("CLPIPS_SHARED", REPO.parent / "shared"))
    path = root.joinpath(*parts)
    if not path.exists():
        message = f"shared fixture {path} is missing (set CLPIPS_SHARED)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def lpips_reference() -> Path:
    return shared_path("fixtures", "lpips-reference")


@pytest.fixture(scope="session")
def mur92_mirror() -> Path:
    """The folder to use as ``CLPIPS_DATA_MIRROR`` (it holds ``mur92/``)."""
    return shared_path("datasets", "mur92").parent


@pytest.fixture(scope="session")
def alex():
    import clpips
    return clpips.CLPIPS(net="alex")
