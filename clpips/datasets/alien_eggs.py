"""``alien_eggs``: 30 drawn shapes, 20,086 crowd answers from 424 people, one known parameter (``data/README.md``).

The shapes differ only in *smoothness* (image ``iNNNN.png`` has ``NNNN``; :mod:`clpips.book.egg_truth`
uses it as ground truth). The answers (NEXT, Jamieson et al. 2015; queries chosen by five samplers,
:data:`SAMPLERS`) are triplets ``(head, winner, loser)``, ranked exactly as zappos's, with its
functions (:mod:`.zappos`). Files from ``stsievert/salmon`` at a fixed commit, checked against the
packaged sha256 sums, as is the packaged image index.
"""
from __future__ import annotations

import io
import json
import os
import zipfile
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from clpips.atomic import sha256_mismatch
from clpips.defaults import DEFAULTS
from clpips.moved import moved_name

import clpips.datasets.download as download
import clpips.datasets.zappos as zappos
from clpips.datasets.download import data_dir
from clpips.datasets.schema import RankingDataError, RankingDataset
from clpips.datasets.validate import check_ties

NAME = "alien_eggs"
COMMIT = "3e92c9c6c364c0a15a6f344607324b8f83d914eb"
BASE_URL = f"https://raw.githubusercontent.com/stsievert/salmon/{COMMIT}/examples/alien-eggs"
IMAGES_FILE = "alienegg30.zip"
ANSWERS_FILE = "next-fig3.json.zip"
INDEX_FILE = "index.csv"
#: the folder of each published file under :data:`BASE_URL` (the ``=`` is part of the path); a mirror
#: or ``base_url`` holds both files side by side
FOLDERS = {IMAGES_FILE: "", ANSWERS_FILE: "response-model-n=30"}
N_IMAGES = 30
RATER = zappos.RATER
ALPHA = zappos.ALPHA
#: the samplers that chose the queries (``alg_label`` in the export)
SAMPLERS = ("RandomSampling", "UncertaintySampling", "STE", "CrowdKernel", "Test")
#: the columns of :func:`read_queries`
QUERY_COLUMNS = ("participant", "sampler", "head", "left", "right", "winner")
CITATION = (
    "Jamieson KG, Jain L, Fernandez C, Glattard NJ, Nowak R (2015). NEXT: A system for real-world development, "
    "evaluation, and application of active learning. Advances in Neural Information Processing Systems 28 (NeurIPS)\n"
    "Sievert S, Nowak R, Rogers TT (2023). Efficiently learning relative similarity embeddings with "
    "crowdsourcing. Journal of Open Source Software 8(84), 4517. doi:10.21105/joss.04517"
)
LICENCE = f"BSD 3-Clause (stsievert/salmon, commit {COMMIT}, examples/alien-eggs)"

#: file name -> sha256: the two published files and the packaged index
SHA256 = zappos.read_sha256_table(
    resources.files("clpips.datasets").joinpath("alien_eggs_sha256.txt").read_text(encoding="utf-8"))


def index() -> pd.DataFrame:
    """The 30 images: ``index`` (as the answers name them), ``file``, ``smoothness`` and ``image``
    (the reference in the rankings, ``images/<file>``), in index order; the packaged file checked against its sha256."""
    raw = resources.files("clpips.datasets").joinpath("alien_eggs_index.csv").read_bytes()
    if sha256_mismatch(raw, SHA256[INDEX_FILE]):
        raise RankingDataError("clpips/datasets/alien_eggs_index.csv: differs from the published index "
                               f"(expected sha256 {SHA256[INDEX_FILE]}); reinstall clpips")
    table = pd.read_csv(io.BytesIO(raw))
    table["image"] = "images/" + table["file"]
    return table


def image_refs() -> list[str]:
    """The image reference of each index 0..29."""
    return index()["image"].tolist()


def head_triplets(triplets: np.ndarray) -> zappos.HeadTriplets:
    """The triplets grouped by head, with this dataset's image references (for :func:`zappos.rankings`,
    :func:`zappos.within` and the split-half reliability)."""
    return zappos.HeadTriplets(triplets, refs=image_refs(), name=NAME)


def fetch_files(base_url: str | None = None, mirror: str | os.PathLike | None = None) -> dict[str, Path]:
    """Verified local copies of the two published files (:func:`clpips.datasets.download.fetch_files`, with
    ``$CLPIPS_ALIEN_EGGS_URL``; the canonical addresses: :data:`FOLDERS`)."""
    paths = {}
    for name, folder in FOLDERS.items():
        canonical = f"{BASE_URL}/{folder}".rstrip("/")
        paths.update(download.fetch_files(NAME, {name: SHA256[name]}, canonical, "CLPIPS_ALIEN_EGGS_URL",
                                          base_url=base_url, mirror=mirror))
    return paths


def unpack_images(archive_path: str | os.PathLike, root: Path) -> Path:
    """The 30 images of the (verified) zip in ``root/images/``, unpacked once, atomically;
    macOS metadata (``__MACOSX/``) is ignored. A folder that lacks an image is named, with the fix."""
    wanted = set(index()["file"])

    def build(tmp: Path) -> None:
        with zipfile.ZipFile(archive_path) as archive:
            for name in archive.namelist():
                if name in wanted:                         # top-level iNNNN.png only: no path leaves tmp
                    (tmp / name).write_bytes(archive.read(name))

    folder = download.fresh_dir(root / "images", build)
    missing = sorted(wanted - {p.name for p in folder.iterdir()})
    if missing:
        raise RankingDataError(f"{folder}: lacks {len(missing)} of the 30 images ({missing[0]} ...); "
                               "delete the folder to unpack them again")
    return folder


def _query_row(query: dict, where: str) -> tuple:
    """One query of the export as a :data:`QUERY_COLUMNS` row (winner -1: not answered)."""
    try:
        roles = {t["label"]: int(t["index"]) for t in query["target_indices"]}
        sampler, winner = str(query["alg_label"]), query.get("index_winner")
    except (KeyError, TypeError, ValueError) as err:
        raise RankingDataError(f"{where}: not a NEXT query with target_indices and alg_label ({err!r})") from None
    if sorted(roles) != ["center", "left", "right"]:
        raise RankingDataError(f"{where}: its target_indices are labelled {sorted(roles)}, not center, left, right")
    if winner is not None and winner not in (roles["left"], roles["right"]):
        raise RankingDataError(f"{where}: index_winner {winner!r} is neither candidate "
                               f"({roles['left']}, {roles['right']})")
    return roles["center"], roles["left"], roles["right"], -1 if winner is None else int(winner), sampler


def read_queries(path: str | os.PathLike) -> pd.DataFrame:
    """Every query of the NEXT export (``next-fig3.json`` inside the zip), answered or not, in the file's order.

    Returns :data:`QUERY_COLUMNS`: ``participant``, ``sampler`` (``alg_label``), ``head`` (the
    ``center`` image), ``left``, ``right`` (the candidates) and ``winner`` (the candidate judged
    more similar to the head; -1 where the query was not answered). Image indices as in :func:`index`.
    """
    source = str(path)
    raw = zappos.zip_member(path, ".json")
    try:
        responses = json.loads(raw)["participant_responses"]
    except (ValueError, KeyError, TypeError) as err:
        raise RankingDataError(f"{source}: not a NEXT export with participant_responses ({err!r})") from None
    rows = [(person, *_query_row(query, f"{source}, participant {person}, query {n + 1}"))
            for person, queries in responses.items() for n, query in enumerate(queries)]
    frame = pd.DataFrame(rows, columns=["participant", "head", "left", "right", "winner", "sampler"])
    images = frame[["head", "left", "right"]].to_numpy()
    bad = zappos.invalid_triplets(images, N_IMAGES)
    if bad.any():
        row = frame.iloc[int(np.flatnonzero(bad)[0])]
        raise RankingDataError(f"{source}, participant {row['participant']}: query {images[bad][0].tolist()} "
                               f"is not three different image indices in 0..{N_IMAGES - 1}")
    return frame[list(QUERY_COLUMNS)]


def answered_triplets(queries: pd.DataFrame) -> np.ndarray:
    """The answered queries as triplets (``n x 3`` int64: head, winner, loser), in the file's order."""
    done = queries[queries["winner"] >= 0]
    loser = np.where(done["winner"] == done["left"], done["right"], done["left"])
    return np.column_stack([done["head"], done["winner"], loser]).astype(np.int64)


def triplets(base_url: str | None = None, mirror: str | os.PathLike | None = None) -> np.ndarray:
    """The verified answers as triplets (``n x 3``: head, winner, loser), fetched like :func:`load`'s files."""
    return answered_triplets(read_queries(fetch_files(base_url=base_url, mirror=mirror)[ANSWERS_FILE]))


def load(k: int = DEFAULTS.k, sets_per_target: int = DEFAULTS.alien_eggs_sets_per_target,
         seed: int = DEFAULTS.seed, alpha: float = ALPHA, ties: str = "average", base_url: str | None = None,
         mirror: str | os.PathLike | None = None) -> RankingDataset:
    """The alien_eggs rankings: 30 targets x ``sets_per_target`` sets of ``k`` candidates, rater ``"crowd"``.

    Parameters as :func:`clpips.datasets.zappos.load`'s (``k`` 2..29, ``k * sets_per_target <= 29``).
    ``image_info`` has ``image``, ``index``, ``smoothness`` and ``answers_as_head``.
    """
    check_ties(ties)
    files = fetch_files(base_url=base_url, mirror=mirror)
    root = data_dir(NAME)
    unpack_images(files[IMAGES_FILE], root)          # before the table is validated: it checks the images
    answers = answered_triplets(read_queries(files[ANSWERS_FILE]))
    info = index()[["image", "index", "smoothness"]].assign(
        answers_as_head=np.bincount(answers[:, 0], minlength=N_IMAGES))
    return zappos.crowd_dataset(
        head_triplets(answers), root, k=k, sets_per_target=sets_per_target, seed=seed, alpha=alpha, ties=ties,
        citation=CITATION, licence=LICENCE, image_info=info,
        description=(f"30 computer-drawn shapes varying in smoothness only, and {len(answers):,} crowd answers "
                     "(NEXT, Jamieson et al. 2015; queries chosen by five active and random samplers): each "
                     f"image a target with {sets_per_target} disjoint sets of {k} random candidates, ranked by "
                     "Bradley-Terry strengths fitted to that target's answers."))


def __getattr__(name: str):
    found = moved_name(__name__, name)   # names now in the book (clpips.moved)
    if name not in ("split_half", "split_half_ranks"):
        return found
    # the old ones took the triplets array; the new ones take head_triplets(triplets)
    return lambda table, triplets, seed=DEFAULTS.seed, alpha=ALPHA: found(
        table, head_triplets(triplets), seed=seed, alpha=alpha)
