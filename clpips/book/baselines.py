"""More baselines for the held-out comparison: pixel L2, PSNR, SSIM, LPIPS-VGG, unweighted LPIPS.

Every function takes images in the package convention (``N x 3 x H x W`` RGB
tensors in ``[-1, 1]``, see :mod:`clpips.conventions`) and returns one
*distance* per image pair, oriented like LPIPS: **lower = more similar, 0 for
identical images**. The similarity scores are converted as follows:

=============  =====================================================  ==========================
name           distance                                                identical images
=============  =====================================================  ==========================
``l2``         mean squared error on the [0, 1] scale (MSE)           0
``psnr``       ``1 / PSNR`` in 1/dB, PSNR = 10 log10(1 / MSE)         0 (PSNR = +inf)
``ssim``       ``1 − SSIM`` (Wang et al. 2004 settings, see below)    0
``lpips_vgg``  LPIPS v0.1 with the VGG16 backbone                     0
``lpips_ones`` LPIPS (AlexNet) with all linear weights 1              0
=============  =====================================================  ==========================

``1 / PSNR`` is a strictly increasing function of the MSE (PSNR >= 0 for images
inside the data range), so ``psnr`` and ``l2`` order every candidate set the
same way: any rank statistic (Spearman, Kendall, ICC of ranks) is identical for
the two, and for ``-PSNR``. They are kept as two rows because papers report
both.

SSIM is scikit-image's :func:`skimage.metrics.structural_similarity` on the
[0, 1] scale (``data_range=1``), colour channels averaged (``channel_axis``),
with the settings of Wang et al. (2004): an 11 x 11 Gaussian window of sigma
1.5 and population covariances (``gaussian_weights=True, sigma=1.5,
use_sample_covariance=False``).

``lpips_ones`` is ``lpips.LPIPS(lpips=False)``: every channel of every layer
counts equally (:func:`clpips.model.initial_weight_vector` ``"ones"``), the
"unlearned" LPIPS that the v0.1 linear weights improved on.

For a ranking table, :func:`add_baselines` scores every (target, candidate)
pair once: pixel metrics from the image files (each image read once, the
candidate resized to the target's size as everywhere in the package), the two
LPIPS variants from the cached pair feature vectors (:mod:`clpips.features`).
"""
from __future__ import annotations

import functools
from typing import Iterable, Sequence

import pandas as pd
import torch

from clpips.conventions import check_images

#: baselines computed from pixels
PIXEL_METRICS: tuple[str, ...] = ("l2", "psnr", "ssim")
#: baselines computed from LPIPS pair feature vectors (weight vectors on a backbone)
FEATURE_METRICS: tuple[str, ...] = ("lpips_vgg", "lpips_ones")
#: every baseline, in table order
BASELINES: tuple[str, ...] = PIXEL_METRICS + FEATURE_METRICS

#: display names of metric columns (the two fitted metrics included)
LABELS: dict[str, str] = {
    "lpips": "LPIPS (AlexNet, v0.1)",
    "clpips": "CLPIPS (AlexNet, fine-tuned)",
    "l2": "pixel L2 (MSE)",
    "psnr": "PSNR (as 1/PSNR)",
    "ssim": "SSIM (as 1 − SSIM)",
    "lpips_vgg": "LPIPS (VGG16, v0.1)",
    "lpips_ones": "LPIPS unweighted (AlexNet, all weights 1)",
}

#: (backbone, linear init) of each feature baseline
_FEATURE_SPECS = {"lpips_vgg": ("vgg", "lpips"), "lpips_ones": ("alex", "ones")}

#: skimage.metrics.structural_similarity settings of Wang et al. (2004), on the [0, 1] scale
SSIM_OPTIONS = {"data_range": 1.0, "gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False}


def _pair(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    check_images(x, "x")
    check_images(y, "y")
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}; "
                         "resize with clpips.images.match_sizes")
    return x.double(), y.double()


def l2_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Pixel L2: the mean squared difference per image pair, on the [0, 1] scale.

    Parameters
    ----------
    x, y : N x 3 x H x W tensors in [-1, 1]

    Returns
    -------
    torch.Tensor
        ``N`` float64 values ``mean(((x - y) / 2) ** 2)`` over channels and
        pixels; 0 for identical images.
    """
    x, y = _pair(x, y)
    return (((x - y) / 2) ** 2).mean(dim=(1, 2, 3))


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB (a *similarity*: higher = more similar).

    ``10 log10(1 / MSE)`` with the MSE of :func:`l2_distance` (data range 1 on the
    [0, 1] scale); ``+inf`` for identical images.
    """
    return 10 * torch.log10(1.0 / l2_distance(x, y))  # 1 / 0 = inf in torch: identical -> +inf


def psnr_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """PSNR as a distance: ``1 / PSNR`` (1/dB); 0 for identical images, lower = more similar.

    Strictly increasing in the MSE (PSNR >= 0 for images in range), so it ranks
    candidates exactly as :func:`l2_distance` and as ``-PSNR``.
    """
    return 1.0 / psnr(x, y)


def ssim(x: torch.Tensor, y: torch.Tensor, **options) -> torch.Tensor:
    """Structural similarity (a *similarity*: 1 for identical images) per image pair.

    scikit-image's ``structural_similarity`` on the [0, 1] scale with
    :data:`SSIM_OPTIONS` (``options`` override them), colour channels averaged
    (``channel_axis=-1``). Images must be at least 11 pixels on each side.
    """
    from skimage.metrics import structural_similarity
    x, y = _pair(x, y)
    settings = {**SSIM_OPTIONS, **options}
    a = ((x + 1) / 2).permute(0, 2, 3, 1).numpy()
    b = ((y + 1) / 2).permute(0, 2, 3, 1).numpy()
    values = [structural_similarity(ai, bi, channel_axis=-1, **settings) for ai, bi in zip(a, b)]
    return torch.tensor(values, dtype=torch.float64)


def ssim_distance(x: torch.Tensor, y: torch.Tensor, **options) -> torch.Tensor:
    """SSIM as a distance: ``1 − SSIM``; 0 for identical images, lower = more similar."""
    return 1.0 - ssim(x, y, **options)


@functools.lru_cache(maxsize=4)
def _lpips_model(net: str, linear: str):
    from clpips.model import CLPIPS
    return CLPIPS(net=net, linear=linear)


def lpips_distance(x: torch.Tensor, y: torch.Tensor, net: str = "vgg", linear: str = "lpips") -> torch.Tensor:
    """An LPIPS variant straight from images: ``net`` backbone, ``linear`` weights.

    ``net="vgg", linear="lpips"`` is LPIPS-VGG v0.1; ``net="alex", linear="ones"``
    is the unweighted LPIPS (``lpips=False``). Returns ``N`` distances. The model
    is built once per (net, linear) and kept.
    """
    _pair(x, y)
    with torch.no_grad():
        return _lpips_model(net, linear)(x, y).flatten().double()


#: pixel metric name -> distance function
PIXEL_FUNCTIONS = {"l2": l2_distance, "psnr": psnr_distance, "ssim": ssim_distance}


def _check_names(baselines: Iterable[str]) -> list[str]:
    names = list(dict.fromkeys(baselines))
    unknown = [b for b in names if b not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; choose from {list(BASELINES)}")
    return names


def pixel_distances(dataset, pairs: Sequence[tuple[str, str]], metrics: Sequence[str] = PIXEL_METRICS,
                    size="target") -> pd.DataFrame:
    """Pixel-metric distances of (target, candidate) image references of ``dataset``.

    Each image file is read once (:func:`clpips.images.load_image`); the
    candidate is resized to the target's size (:func:`clpips.images.match_sizes`,
    the rule the LPIPS features use); duplicate pairs are computed once.

    Returns
    -------
    pandas.DataFrame
        Index ``(target, candidate)``, one float column per metric.
    """
    from clpips.images import load_image, match_sizes
    metrics = list(metrics)
    bad = [m for m in metrics if m not in PIXEL_FUNCTIONS]
    if bad:
        raise ValueError(f"not pixel metrics: {bad}; choose from {list(PIXEL_FUNCTIONS)}")
    keys = list(dict.fromkeys((str(t), str(c)) for t, c in pairs))
    images: dict[str, torch.Tensor] = {}

    def image(ref: str) -> torch.Tensor:
        if ref not in images:
            images[ref] = load_image(dataset.image_path(ref))
        return images[ref]

    rows = []
    by_target: dict[str, list[str]] = {}
    for t, c in keys:
        by_target.setdefault(t, []).append(c)
    for t, cands in by_target.items():
        target = image(t)
        batch = torch.cat([match_sizes(target, image(c), size)[1] for c in cands])
        if not isinstance(size, str):
            target = match_sizes(target, target, size)[0]
        targets = target.expand(len(cands), -1, -1, -1)
        values = {m: PIXEL_FUNCTIONS[m](targets, batch).numpy() for m in metrics}
        rows.extend({"target": t, "candidate": c, **{m: float(values[m][i]) for m in metrics}}
                    for i, c in enumerate(cands))
    frame = pd.DataFrame(rows, columns=["target", "candidate", *metrics])
    return frame.set_index(["target", "candidate"])


def add_baselines(scored: pd.DataFrame, dataset, baselines: Sequence[str] = BASELINES, *,
                  alex_features=None, device: str = "cpu", progress: bool = False) -> pd.DataFrame:
    """A copy of a ranking table with one distance column per baseline.

    Parameters
    ----------
    scored : pandas.DataFrame
        Ranking rows (``target``, ``candidate``, ...), e.g. ``Experiment.scored``.
    dataset
        The dataset the images come from (``image_path(ref)``).
    baselines : sequence of str
        Names from :data:`BASELINES`.
    alex_features : PairFeatures, optional
        AlexNet pair features covering the table (``Experiment.features``);
        otherwise read from (or added to) the on-disk cache, for every pair of
        ``dataset.table`` (and of ``scored``): a backbone run over the images once
        fills the cache for the rest of the dataset's pairs too.
    device, progress
        For feature extraction (VGG16 the first time).

    Returns
    -------
    pandas.DataFrame
        ``scored`` with the columns added (overwriting any of the same name).
    """
    from clpips.evaluate import RANKING, ranking_ids, score_rankings
    from clpips.model import initial_weight_vector
    from clpips.train import pair_features_for

    names = _check_names(baselines)
    out = scored.copy()
    if RANKING not in out.columns:
        out[RANKING] = ranking_ids(out)
    pixel = [b for b in names if b in PIXEL_METRICS]
    if pixel:
        pairs = list(out[["target", "candidate"]].drop_duplicates().itertuples(index=False, name=None))
        dist = pixel_distances(dataset, pairs, pixel)
        index = pd.MultiIndex.from_frame(out[["target", "candidate"]].astype(str))
        for m in pixel:
            out[m] = dist[m].reindex(index).to_numpy(float)
    for name in (b for b in names if b in FEATURE_METRICS):
        net, init = _FEATURE_SPECS[name]
        features = alex_features if (net == "alex" and alex_features is not None) else None
        if features is None:
            # every pair of the dataset's table, not only the scored ones: the backbone's pass over each
            # image is the cost, the other pairs of the same images come at a small extra cost, and they
            # are cached for whoever needs them next (chapter 04 scored 280 held-out pairs of mur92 with
            # VGG16; chapter 06 then needed all 920 and ran VGG16 over the same 92 images again: 12 s)
            whole = pd.concat([getattr(dataset, "table", out)[["target", "candidate"]],
                               out[["target", "candidate"]]], ignore_index=True)
            features = pair_features_for(dataset, whole, net=net, device=device, progress=progress)
        out[name] = score_rankings(out, features, {name: initial_weight_vector(net, init)})[name].to_numpy()
    return out


def label(name: str) -> str:
    """The display name of a metric column (the column name itself if unknown)."""
    return LABELS.get(name, name)
