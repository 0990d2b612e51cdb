"""The one source of parameter defaults.

Every notebook's ``parameters`` cell and every CLI option reads its default
from :data:`DEFAULTS`, so changing a value here changes it everywhere.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from typing import Any


def _env_int(name: str, default: int) -> int:
    """A whole number >= 1 from the environment variable ``name``, else ``default``."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class Defaults:
    # data
    dataset: str = "mur92"          #: dataset name (see clpips.datasets) or a CSV path
    k: int = 10                     #: candidates per ranking set
    candidates: str = "random"      #: how mur92 candidates are drawn: "random" or "stratified"
    test_size: float = 0.3          #: held-out share of target images (the paper: 70/30)
    seed: int = 0                   #: one seed for splits, sampling, initialisation, bootstrap
    # metric
    net: str = "alex"               #: LPIPS backbone: "alex" or "vgg"
    device: str = "cpu"             #: torch device for feature extraction and training
    # training
    loss: str = "margin"            #: "margin" (the paper) or "logistic" (Bradley-Terry)
    margin: float = 0.05            #: margin of the ranking loss, in LPIPS distance units
    lr: float = 1e-3                #: Adam learning rate
    batch_size: int = 256           #: pairs per step (the paper: 256)
    epochs: int = 30                #: maximum epochs
    patience: int = 5               #: early stopping: epochs without held-out improvement
    init: str = "lpips"             #: starting linear weights: "lpips", "uniform" or "random"
    layers: str = "all"             #: layers to train: "all" or e.g. "0,1,4"
    project: bool = True            #: project weights onto w >= 0 after every step
    # the nested protocol (clpips.protocol, clpips crossval)
    split_mode: str = "target"      #: "target" (the paper's split) or "image" (no image on both sides)
    protocol_folds: int = 5         #: outer folds by target (or image)
    protocol_repeats: int = 3       #: repeats of the outer split with new fold assignments
    protocol_inner_folds: int = 3   #: inner folds on each outer training side, to choose the setting
    protocol_margins: str = "0.01,0.02,0.05,0.1"  #: margins the inner folds choose among (0.1 added: mur92 by image chose 0.05, the old top, in 14 of 15 folds)
    protocol_lrs: str = "0.003,0.01,0.03"  #: learning rates the inner folds choose among (0.03 added: a crowd study chose 0.01, the old top, in 15 of 15)
    protocol_epochs: str = "2,5,10,20"  #: epoch counts the inner folds choose among (2 added: mur92 by image chose 5 in 10 of 15; not 30: a run's time grows with the most epochs, 1.9x, where margins and lrs cost 1.3x)
    protocol_select: str = "icc_A_k"  #: inner criterion: icc_A_k, spearman_raw, spearman or pair_accuracy
    protocol_min_candidates: int = 3  #: split by image of a study with fixed candidates: a held-out ranking left with fewer candidates is not scored
    workers: int = _env_int("CLPIPS_WORKERS", 2)  #: processes the protocol's fits are spread over (results do not depend on it; make book sets it per lane)
    # beyond the linear weights (chapter 09, clpips.book.families): the metric the protocol fits, and its options
    protocol_metric: str = "clpips"  #: clpips, global (pooled channel re-weighting), transform (low-rank, pooled), teacher
    beyond_repeats: int = 1         #: chapter 09: repeats of the outer split for the metrics beyond CLPIPS (their budgets as large as CLPIPS's cost as much as its runs: 1 repeat keeps the chapter's time; CLPIPS's run is cut to the same repeats)
    transform_lambdas: str = "0.001,0.1"  #: pulls of the transform towards the identity the inner folds choose among
    transform_lrs: str = "0.01,0.03"  #: full-batch Adam learning rates of the transform to choose among
    transform_steps: str = "25,50,100,200"  #: full-batch steps of the transform the inner folds choose among (free: recorded along one fit)
    transform_rank: int = 8         #: rank of the transform's departure from the identity (I + U V^T)
    transform_margins: str = "0.1,0.2,0.4"  #: transform loss margins to choose among (LPIPS units; each costs a fit): 3 x 2 x 2 x 4 = 48 settings, CLPIPS's grid 49 (offered 0.02,0.05,0.1, then 0.05,0.1,0.2, every dataset chose the highest in 4 or 5 of 5 folds: widened)
    teacher_sets: int = 2           #: new candidate sets the teacher ranks per training target
    teacher_weight: float = 0.5     #: weight of the teacher's pairs against the human pairs (by repetition)
    # statistics
    n_boot: int = 10_000            #: bootstrap resamples
    ci: float = 0.95                #: confidence level
    # evaluation
    baselines: str = "l2,psnr,ssim,lpips_vgg,lpips_ones"  #: comparison metrics (clpips.book.baselines), comma-separated
    # the worked example (chapter 02): the rank each ranking gives images A, B, C, D (1 = most similar)
    example_reference: str = "1,2,3,4"  #: the reference ranking
    example_r1: str = "1,3,4,2"     #: ranking R1; ICC(A,k) with the reference 0.64, "moderate" (Koo & Li)
    example_r2: str = "3,2,1,4"     #: ranking R2; ICC(A,k) with the reference 0.40, "poor" (Koo & Li)
    # personal metrics (chapter 07, clpips.book.personal, clpips.apps.widget)
    personal_l2: float = 0.01       #: L2 pull of a personal model towards its starting (pooled) weights
    personal_sizes: str = "1,2,5,10,20,40"  #: learning curve: training rankings per person (plus "all")
    personal_repeats: int = 3       #: learning curve: random subsamples per size and person
    # ablations (chapter 06, clpips.book.ablations): the levels of each factor
    ablation_margins: str = "0.005,0.01,0.02,0.05,0.1"  #: margins, comma-separated
    ablation_lrs: str = "0.0003,0.001,0.003,0.01"  #: learning rates, comma-separated
    ablation_layers: str = "0;1;2;3;4;all"  #: trained layer sets, ";"-separated (each "all" or "0,1,4")
    ablation_inits: str = "lpips,uniform,ones,random"  #: starting weights, comma-separated
    ablation_losses: str = "margin,logistic"  #: losses, comma-separated
    ablation_nets: str = "alex,vgg"  #: backbones, comma-separated
    ablation_train_sizes: str = "25,50,100,200,400,800,all"  #: learning curve: training rankings
    ablation_folds: int = 5         #: k-fold re-splits by target for the ablations chapter (at least 2)
    ablation_seeds: str = "0,1,2,3,4"  #: training seeds on the standard split (the training-noise check)
    # zappos (clpips.datasets.zappos)
    zappos_sets_per_target: int = 2  #: disjoint ranking sets of k candidates per zappos target (85 x 2 x 45 pairs)
    # alien_eggs (clpips.datasets.alien_eggs)
    alien_eggs_sets_per_target: int = 2  #: disjoint ranking sets of k candidates per alien_eggs target (30 x 2 x 45 pairs)
    # classroom (clpips classroom, clpips.apps.classroom, chapter 10)
    classroom_sets: int = 10        #: sets every student ranks (about 10 minutes of a lesson)
    classroom_k: int = 6            #: candidates per set (built-in datasets and image folders)
    classroom_host: str = "127.0.0.1"  #: address the class page binds to (0.0.0.0: the whole network)
    classroom_port: int = 8866      #: port of the class page (0: any free port)
    classroom_out: str = "class.csv"  #: the class's rankings (its study is recorded in class.json)
    classroom_students: int = 12    #: size of the simulated class (chapter 10 without a class file)
    class_csv: str = ""             #: chapter 10: the class CSV to read ("": a simulated class)


DEFAULTS = Defaults()

#: the most pixels (width x height) an image may have unless ``$CLPIPS_MAX_PIXELS`` or ``--max-pixels``
#: says otherwise (:func:`clpips.images.max_pixels`). Here, not in clpips.images: the CLI's help names it,
#: and importing clpips.images (torch) cost every ``clpips run`` about 1 s before any notebook started
MAX_PIXELS = 4096 * 4096


def as_dict() -> dict[str, Any]:
    """The defaults as a plain dict (for papermill and JSON)."""
    return asdict(DEFAULTS)


def names() -> list[str]:
    return [f.name for f in fields(Defaults)]
