"""``mur92``: 16 people's similarity judgements of 92 object photographs as rankings (``data/README.md``).

Every image is a target once; its ``k`` candidates, drawn from the other 91 with
``default_rng([seed, target])`` (``"random"``, or ``"stratified"``: one from each of ``k`` strata of the
raters' mean dissimilarity) and shared by the 16 raters so that their agreement can be measured, are
ranked by each rater's own dissimilarity matrix (smaller = more similar = lower rank). The images are
exported once as lossless PNG, each with its sha256 beside it, checked on every load.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.io
from PIL import Image
from scipy.stats import rankdata

import clpips.atomic as atomic
from clpips.choices import CANDIDATE_RULES
from clpips.defaults import DEFAULTS
from clpips.paths import sha256_file

import clpips.datasets.download as download
from clpips.datasets.download import data_dir
from clpips.datasets.schema import RankingDataError, RankingDataset
from clpips.datasets.validate import check_ties, validate

COMMIT = "f1f83cadb7243492a1aae7460466e0f0140b20ac"
BASE_URL = f"https://raw.githubusercontent.com/rsagroup/rsatoolbox/{COMMIT}/demos/92imageData"
RDM_FILE = "92_behavRDMs.mat"
STIMULI_FILE = "Kriegeskorte_Neuron2008_supplementalData.mat"
SHA256 = {
    RDM_FILE: "7a8e118c144c3840adeeeef6ea0706a0be2b3e80df719af15fbb56fc62562f5f",
    STIMULI_FILE: "06f21214399a5d43dc264eed19a7f4b8daf11c8622a59eec3e106064ce5e3504",
}
N_IMAGES = 92
#: how candidates are drawn (the module docstring): the one list, in :mod:`clpips.choices`
CANDIDATES = CANDIDATE_RULES
CITATION = (
    "Kriegeskorte N, Mur M, Ruff DA, Kiani R, Bodurka J, Esteky H, Tanaka K, Bandettini PA (2008). "
    "Matching categorical object representations in inferior temporal cortex of man and monkey. "
    "Neuron 60(6):1126-1141. doi:10.1016/j.neuron.2008.10.043\n"
    "Mur M, Meys M, Bodurka J, Goebel R, Bandettini PA, Kriegeskorte N (2013). Human object-similarity "
    "judgments reflect and transcend the primate-IT object representation. Front. Psychol. 4:128. "
    "doi:10.3389/fpsyg.2013.00128"
)
LICENCE = f"MIT: files as distributed in rsagroup/rsatoolbox (commit {COMMIT}, demos/92imageData)"


def image_ref(index: int) -> str:
    """Image reference of stimulus ``index`` (0-based)."""
    return f"images/{index:03d}.png"


def _image_index(ref: str) -> int:
    match = re.fullmatch(r"images/(\d{3})\.png", str(ref))
    if match is None or int(match.group(1)) >= N_IMAGES:
        raise ValueError(f"mur92: {ref!r} is not one of its image references (images/000.png ... images/091.png)")
    return int(match.group(1))


def fetch_files(base_url: str | None = None, mirror: str | os.PathLike | None = None) -> dict[str, Path]:
    """Verified local copies of the two files (:func:`clpips.datasets.download.fetch_files`)."""
    return download.fetch_files("mur92", SHA256, BASE_URL, "CLPIPS_MUR92_URL", base_url=base_url, mirror=mirror)


def read_rdms(path: str | os.PathLike) -> tuple[np.ndarray, list[str]]:
    """The 16 dissimilarity matrices (16 x 92 x 92) and rater ids ``subject01``..."""
    entries = scipy.io.loadmat(path)["rdms_behav_92"][0]
    rdms = np.stack([np.asarray(e["RDM"], dtype=float) for e in entries])
    numbers = [int(re.search(r"(\d+)\s*$", str(e["name"][0])).group(1)) for e in entries]
    raters = [f"subject{n:02d}" for n in numbers]
    return rdms, raters


def read_stimuli(path: str | os.PathLike) -> tuple[np.ndarray, pd.DataFrame]:
    """The 92 images (92 x 175 x 175 x 3 uint8) and their metadata table."""
    entries = scipy.io.loadmat(path)["stimuli_92objs"][0]
    pixels = np.stack([e["image"] for e in entries]).astype(np.uint8)
    info = pd.DataFrame({
        "image": [image_ref(i) for i in range(len(entries))],
        "index": np.arange(len(entries)),
        "category": [str(e["category"][0]) for e in entries],
        **{flag: [bool(e[flag].item()) for e in entries] for flag in ("human", "face", "animal", "natural")},
    })
    return pixels, info


def export_images(pixels: np.ndarray, root: Path) -> None:
    """Each image as lossless PNG under ``root/images/``, written once, atomically, its sha256 beside it."""
    for index, array in enumerate(pixels):
        dest = root / image_ref(index)
        problem = _export_problem(dest, array)
        if problem is None:
            continue
        if problem:
            warnings.warn(f"{dest}: {problem}; exporting it again from {STIMULI_FILE}", UserWarning, stacklevel=3)
        png = io.BytesIO()
        Image.fromarray(array).save(png, format="PNG")
        atomic.write_checked(dest, png.getvalue())


def _export_problem(dest: Path, array: np.ndarray) -> str | None:
    """None when the exported image ``dest`` is good; else what is wrong with it ("" when it is just missing)."""
    if not dest.is_file():
        return ""
    if atomic.checksum_path(dest).is_file():
        try:
            atomic.read_checked(dest)
            return None
        except atomic.CacheEntryError:
            return f"its bytes no longer match the sha256 recorded in {atomic.checksum_path(dest).name}"
    try:
        with Image.open(dest) as img:
            same = np.array_equal(np.asarray(img.convert("RGB")), array)
    except (OSError, SyntaxError, ValueError) as err:
        return f"unreadable ({type(err).__name__})"
    if not same:
        return "its pixels differ from the published image"
    with contextlib.suppress(OSError):  # an older clpips's export: record its sha256 (a read-only cache cannot)
        atomic.write_text(atomic.checksum_path(dest), sha256_file(dest) + "\n")
    return None


def draw_candidates(mean_rdm: np.ndarray, k: int, how: str, seed: int, pool: np.ndarray | None = None) -> np.ndarray:
    """Candidate indices per target of ``pool`` (default: all), ``len(pool) x k``, rows sorted."""
    n = len(mean_rdm)
    pool = np.arange(n) if pool is None else np.sort(np.asarray(pool, dtype=int))
    if how not in CANDIDATES:
        raise ValueError(f"candidates must be one of {CANDIDATES}, got {how!r}")
    if not 2 <= k <= len(pool) - 1:
        raise ValueError(f"k must lie between 2 and {len(pool) - 1}, got {k}")
    rows = []
    for target in pool:
        rng = np.random.default_rng([seed, target])
        others = pool[pool != target]
        if how == "random":
            # the first k in-pool images of one seeded order of *all* other images: a uniform draw from
            # the pool, and a smaller pool's candidates overlap a larger one's as far as the pools allow
            # (the split by image's many pools then share image pairs: fewer features, faster fits)
            order = rng.permutation(np.delete(np.arange(n), target))
            chosen = order[np.isin(order, others)][:k]
        else:
            near_to_far = others[np.argsort(mean_rdm[target, others], kind="stable")]
            chosen = np.array([rng.choice(stratum) for stratum in np.array_split(near_to_far, k)])
        rows.append(np.sort(chosen))
    return np.array(rows)


def rank_table(rdms: np.ndarray, raters: list[str], candidates: np.ndarray, ties: str,
               targets: np.ndarray | None = None) -> pd.DataFrame:
    """Long-format rankings: per target (row of ``candidates``), rater and candidate, the rater's rank."""
    n_raters, n_targets, k = len(raters), *candidates.shape
    targets = np.arange(n_targets) if targets is None else np.asarray(targets, dtype=int)
    dissimilarity = rdms[:, targets[:, None], candidates].transpose(1, 0, 2)  # target x rater x candidate
    ordered = np.sort(dissimilarity, axis=-1)
    tied = (np.diff(ordered, axis=-1) == 0).any(axis=-1)
    if ties == "reject" and tied.any():
        t, r = np.argwhere(tied)[0]
        raise RankingDataError(f"mur92: rater {raters[r]} judged two candidates of target {t} equally "
                               "dissimilar; pass ties='average' to give them their average rank")
    ranks = rankdata(dissimilarity, axis=-1, method="average" if ties == "average" else "ordinal")
    return pd.DataFrame({
        "set_id": np.repeat([f"t{t:03d}" for t in targets], n_raters * k),
        "target": np.repeat([image_ref(t) for t in targets], n_raters * k),
        "candidate": [image_ref(c) for c in np.repeat(candidates, n_raters, axis=0).ravel()],
        "rater": np.tile(np.repeat(raters, k), n_targets),
        "rank": ranks.ravel() if ties == "average" else ranks.ravel().astype(np.int64),
    })


def load(k: int = DEFAULTS.k, candidates: str = DEFAULTS.candidates, seed: int = DEFAULTS.seed, ties: str = "reject",
         base_url: str | None = None, mirror: str | os.PathLike | None = None) -> RankingDataset:
    """The mur92 rankings: 92 targets x 16 raters, ``k`` shared candidates per target (the module)."""
    check_ties(ties)
    files = fetch_files(base_url=base_url, mirror=mirror)
    rdms, raters = read_rdms(files[RDM_FILE])
    pixels, info = read_stimuli(files[STIMULI_FILE])
    root = data_dir("mur92")
    export_images(pixels, root)
    table = rank_table(rdms, raters, draw_candidates(rdms.mean(axis=0), k, candidates, seed), ties)
    source = f"mur92 rankings (k={k}, candidates={candidates!r}, seed={seed})"

    def within(images, within_seed: int) -> pd.DataFrame:
        """Rankings of the given images only: each a target with min(k, n - 1) candidates among the others,
        drawn as ``load`` draws them (with ``within_seed``); an image named twice counts once."""
        pool = np.array(sorted({_image_index(ref) for ref in images}), dtype=int)
        if len(pool) < 3:
            raise ValueError(f"mur92: a split side needs at least 3 images to rank, got {len(pool)}")
        drawn = draw_candidates(rdms.mean(axis=0), min(k, len(pool) - 1), candidates, within_seed, pool=pool)
        return rank_table(rdms, raters, drawn, ties, targets=pool)

    return RankingDataset(
        table=validate(table, root, source=source, ties=ties, k=k), root=root, name="mur92",
        citation=CITATION, licence=LICENCE, image_info=info, within=within,
        description=("92 object photographs (Kriegeskorte et al. 2008) ranked by similarity to each other by "
                     f"16 people (Mur et al. 2013): each image a target with {k} {candidates} candidates, "
                     "ranked by each person's own dissimilarity judgements."),
    )
