"""The CLPIPS metric: LPIPS with (possibly fine-tuned) per-layer linear weights.

LPIPS (Zhang et al. 2018) compares two images through a frozen backbone: at each of five layers the
channel-normalised activations of both images are subtracted, squared, weighted per channel by
``w >= 0`` and averaged over space::

    d(x, y) = sum_l sum_c w^l_c * mean_hw (f^l_chw(x) - f^l_chw(y))^2

so the distance is exactly linear in the weights, ``d = phi(x, y) . w``, with ``phi`` the pair's
*feature vector* (1,152 numbers for AlexNet). CLPIPS fine-tunes only ``w`` on human rankings; with the
defaults a :class:`CLPIPS` *is* LPIPS v0.1. Images NCHW RGB in [-1, 1]; lower = more similar.
"""
from __future__ import annotations

import datetime as _dt
import functools
import importlib.util
import itertools
import json
import os
import pickle
import re
import warnings
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from torch import nn

import clpips.atomic as atomic
import clpips.weights as _weights
from clpips.version import __version__
from clpips.choices import LINEAR_INITS  # what ``linear=`` accepts besides a file path
from clpips.conventions import check_images, check_size
from clpips.paths import existing_path

#: channels of the five LPIPS layers for each backbone (one entry per :data:`clpips.choices.NETS`)
CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}


def layer_slices(net: str = "alex") -> list[slice]:
    """Where each of the five layers sits in a weight (or pair-feature) vector."""
    if net not in CHANNELS:
        raise ValueError(f"net must be one of {tuple(CHANNELS)}, got {net!r}")
    ends = list(itertools.accumulate(CHANNELS[net]))
    return [slice(end - c, end) for end, c in zip(ends, CHANNELS[net])]


class LinearWeightsError(KeyError, ValueError):
    """Linear weights whose keys do not match the backbone's layers (a KeyError and a ValueError)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def weight_vector_from_state(state, net: str = "alex", source: str = "state dict") -> torch.Tensor:
    """Linear weights in the ``lpips`` format (``lin{l}.model.1.weight``, ``1 x C x 1 x 1``) as one vector,
    checked strictly: every key and no other (:class:`LinearWeightsError`), shapes, finite values.
    """
    expected = {f"lin{i}.model.1.weight": (1, c, 1, 1) for i, c in enumerate(CHANNELS[net])}
    if not isinstance(state, dict):
        raise ValueError(f"{source}: expected a dict of tensors, got {type(state).__name__}")
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise LinearWeightsError(f"{source}: linear weights for net={net!r} do not match; "
                                 f"missing keys: {missing or 'none'}; unexpected keys: {unexpected or 'none'}")
    for key, shape in expected.items():
        value = state[key]
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != shape:
            got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ValueError(f"{source}: {key} should have shape {shape}, got {got}")
        if not bool(torch.isfinite(value).all()):
            raise ValueError(f"{source}: {key} contains NaN or infinite weights")
    return torch.cat([state[key].detach().flatten().float().cpu() for key in expected])


def official_linear_weights(net: str = "alex") -> dict[str, torch.Tensor]:
    """The v0.1 linear weights shipped with the ``lpips`` package."""
    return {key: value.clone() for key, value in _official_linear_weights(net).items()}


@functools.lru_cache(maxsize=None)
def _official_linear_weights(net: str) -> dict[str, torch.Tensor]:
    # the package's folder without importing it: importing lpips imports torchvision, 1.8 s that most
    # chapters, which only need these weights, paid (measured; a chapter's feature vectors are cached)
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the lpips package is not installed (pip install lpips)")
    path = Path(list(spec.submodule_search_locations)[0]) / "weights" / "v0.1" / f"{net}.pth"
    return torch.load(path, map_location="cpu", weights_only=True)


def initial_weight_vector(net: str = "alex", how: str = "lpips", seed: int = 0) -> torch.Tensor:
    """A starting weight vector: ``"lpips"`` (v0.1), ``"uniform"`` (each layer's mean: same layer sums),
    ``"ones"`` (LPIPS with ``lpips=False``) or ``"random"`` (uniform on ``[0, 2 * layer mean]``, seeded).
    """
    gen = torch.Generator().manual_seed(int(seed))
    rules = {"lpips": lambda w: w, "uniform": lambda w: torch.full_like(w, float(w.mean())), "ones": torch.ones_like,
             "random": lambda w: torch.rand(w.shape, generator=gen) * 2 * float(w.mean())}
    if how not in rules:
        raise ValueError(f"linear init must be one of {LINEAR_INITS}, got {how!r}")
    official = official_linear_weights(net)
    return torch.cat([rules[how](official[f"lin{i}.model.1.weight"].flatten().float())
                      for i in range(len(CHANNELS[net]))])


def sidecar_path(path: str | os.PathLike) -> Path:
    """The JSON provenance beside a weights file: ``weights.pth`` -> ``weights.json``."""
    return Path(path).with_suffix(".json")


def read_weights_file(path: str | os.PathLike) -> Any:
    """What a weights file holds, read safely (tensors only, never arbitrary objects); a bad file is a
    one-line ValueError naming it.
    """
    path = existing_path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a folder, not a weights file")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such weights file")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: is empty (0 bytes), not a weights file")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols in words meant for its developers
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many kinds for a bad file; each becomes one line
        raise ValueError(f"{path}: {_unreadable_weights(path, err)}") from None


def _unreadable_weights(path: Path, err: Exception) -> str:
    """Why ``torch.load`` refused ``path``, in words of the file (not torch's advice on unsafe loading)."""
    with open(path, "rb") as stream:
        head = stream.read(4)
    pickled = head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")
    if isinstance(err, pickle.UnpicklingError) and (pickled or head.startswith(b"PK\x03\x04")):
        refused = re.search(r"GLOBAL ([\w.]+)", str(err))
        return ("holds Python objects other than tensors" + (f" ({refused.group(1)})" if refused else "")
                + "; clpips reads only weights saved as tensors (as `clpips fit` and lpips save them)")
    if head.startswith(b"PK\x03\x04") or pickled:
        return f"a damaged torch weights file ({path.stat().st_size:,} bytes; truncated or altered?)"
    return (f"not a readable torch weights file ({path.stat().st_size:,} bytes that are neither a torch archive "
            "nor a pickle of tensors)")


def read_sidecar(path: str | os.PathLike) -> dict[str, Any]:
    """The provenance beside a weights file, ``{"file": path}`` when none; not a JSON object: ValueError."""
    meta_file = sidecar_path(path)
    if not meta_file.is_file():
        return {"file": str(path)}
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{meta_file}: the provenance beside {Path(path).name} is not JSON ({err}); "
                         "restore it or remove it") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{meta_file}: the provenance beside {Path(path).name} is not a JSON object "
                         f"(a {type(meta).__name__}); restore it or remove it")
    return meta


class CLPIPS(nn.Module):
    """LPIPS distance with trainable per-layer linear weights.

    ``linear``: an :func:`initial_weight_vector` rule (default ``"lpips"``: baseline LPIPS) or a weights
    file written by :meth:`save_weights` (or by ``lpips``). ``metric(x, y)`` gives distances ``N x 1 x 1 x 1``.
    """

    def __init__(self, net: str = "alex", linear: str | os.PathLike = "lpips", seed: int = 0):
        super().__init__()
        if net not in CHANNELS:
            raise ValueError(f"net must be one of {tuple(CHANNELS)}, got {net!r}")
        import lpips  # imports torchvision (1.8 s, measured): only when a metric is built
        from lpips import pretrained_networks as pn
        self.net_name = net
        self.chns = CHANNELS[net]
        self.scaling_layer = lpips.ScalingLayer()
        self._normalize = lpips.normalize_tensor  # channel-wise unit length, as lpips
        with warnings.catch_warnings():  # lpips passes torchvision's deprecated `pretrained=`
            warnings.simplefilter("ignore", UserWarning)
            self.net = (pn.alexnet if net == "alex" else pn.vgg16)(pretrained=False, requires_grad=False)
        # torchvision's ``features.{i}`` tensors into lpips' slices (``slice1.{i}``...); strict: every key, no other
        features = _weights.load_backbone(net)["features"]
        self.net.load_state_dict({f"{name}.{kind}": features[f"{name.split('.')[-1]}.{kind}"]
                                  for name, module in self.net.named_modules() if isinstance(module, nn.Conv2d)
                                  for kind in ("weight", "bias")}, strict=True)
        self.lins = nn.ModuleList(lpips.NetLinLayer(c, use_dropout=True) for c in self.chns).requires_grad_(False)
        self.provenance: dict[str, Any] = {}
        if isinstance(linear, str) and linear in LINEAR_INITS:
            self.init_linear(linear, seed=seed)
        else:
            self.load_weights(linear)
        self.eval()

    def init_linear(self, how: str = "lpips", seed: int = 0) -> "CLPIPS":
        """Reset the linear weights (see :func:`initial_weight_vector`)."""
        self.set_weight_vector(initial_weight_vector(self.net_name, how, seed))
        self.provenance = {"init": how, "seed": int(seed) if how == "random" else None}
        return self

    def linear_state(self) -> dict[str, torch.Tensor]:
        """The linear weights in the ``lpips`` package's format: ``{"lin{l}.model.1.weight": 1 x C x 1 x 1}``."""
        return {f"lin{i}.model.1.weight": lin.model[1].weight.detach().clone().cpu()
                for i, lin in enumerate(self.lins)}

    def set_linear_state(self, state: dict[str, torch.Tensor], source: str = "state dict") -> None:
        """Load linear weights strictly (:func:`weight_vector_from_state`)."""
        w = weight_vector_from_state(state, self.net_name, source)
        with torch.no_grad():
            for lin, part in zip(self.lins, layer_slices(self.net_name)):
                lin.model[1].weight.copy_(w[part].reshape(lin.model[1].weight.shape))

    def weight_vector(self) -> torch.Tensor:
        """All linear weights as one vector (layer by layer), the ``w`` in ``d = phi . w``."""
        return torch.cat([lin.model[1].weight.detach().flatten() for lin in self.lins]).cpu()

    def set_weight_vector(self, w: torch.Tensor) -> None:
        """Inverse of :meth:`weight_vector`."""
        w = torch.as_tensor(w, dtype=torch.float32).flatten()
        if w.numel() != sum(self.chns):
            raise ValueError(f"expected {sum(self.chns)} weights for net={self.net_name!r}, got {w.numel()}")
        self.set_linear_state({f"lin{i}.model.1.weight": w[part].reshape(1, -1, 1, 1)
                               for i, part in enumerate(layer_slices(self.net_name))})

    def save_weights(self, path: str | os.PathLike, provenance: Optional[dict[str, Any]] = None) -> Path:
        """Write the linear weights in ``lpips`` format (``lpips.LPIPS(model_path=path)`` loads them) and a JSON
        provenance sidecar, both atomically; the same weights give the same bytes.
        """
        path = Path(path)
        meta = {"format": "lpips state dict of linear layers (lin{l}.model.1.weight)",
                "net": self.net_name, "clpips_version": __version__,
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                **self.provenance, **(provenance or {})}
        # both written in full to temporary names before either is renamed: a failed write (a full disk,
        # a folder gone) leaves neither, never a weights file without its sidecar
        with atomic.atomic_path(path) as weights_tmp, atomic.atomic_path(sidecar_path(path)) as meta_tmp:
            weights_tmp.write_bytes(atomic.torch_bytes(self.linear_state()))
            meta_tmp.write_text(atomic.json_text(meta, sort_keys=True), encoding="utf-8")
        return path

    def load_weights(self, path: str | os.PathLike) -> "CLPIPS":
        """Load linear weights written by :meth:`save_weights` (or ``lpips``), keys checked strictly."""
        path = existing_path(path)
        self.set_linear_state(read_weights_file(path), source=str(path))
        self.provenance = read_sidecar(path)
        return self

    def layer_features(self, x: torch.Tensor, normalize: bool = False) -> list[torch.Tensor]:
        """Channel-normalised activations of the five layers for an image batch."""
        check_images(x, "images", normalize=normalize)
        check_size(x.shape[-2:], self.net_name, "images")
        if normalize:
            x = 2 * x - 1
        device = next(self.net.parameters()).device
        outs = self.net(self.scaling_layer(x.to(device)))
        return [self._normalize(f) for f in outs]

    @staticmethod
    def vector_from_layers(feats0: Sequence[torch.Tensor], feats1: Sequence[torch.Tensor]) -> torch.Tensor:
        """Per-layer, per-channel spatial means of squared differences, concatenated: ``N x sum(C)``."""
        return torch.cat([((a - b) ** 2).mean(dim=(2, 3)) for a, b in zip(feats0, feats1)], dim=1)

    def feature_vector(self, in0: torch.Tensor, in1: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """The pair feature vectors ``phi`` such that ``distance = phi @ weight_vector()``."""
        check_images(in0, "in0")  # range is checked again, with `normalize`, in layer_features
        check_images(in1, "in1")
        if in0.shape != in1.shape:
            raise ValueError(f"in0 and in1 must have the same shape, got {tuple(in0.shape)} and {tuple(in1.shape)}; "
                             "resize with clpips.images.match_sizes")
        return self.vector_from_layers(self.layer_features(in0, normalize), self.layer_features(in1, normalize))

    def forward(self, in0: torch.Tensor, in1: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """Distances of corresponding images, shape ``N x 1 x 1 x 1`` (as ``lpips``)."""
        phi = self.feature_vector(in0, in1, normalize)
        return (phi @ self.weight_vector().to(phi)).reshape(-1, 1, 1, 1)

