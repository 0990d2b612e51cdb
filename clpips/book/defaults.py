"""The book's parameter defaults: the method's (:mod:`clpips.defaults`) and the chapters' and the lesson's.

:data:`DEFAULTS` is the one source of defaults that every notebook's ``parameters`` cell, the book runner
(``clpips run CH -p NAME VALUE`` converts a value to its default's type) and the CLI's options read. A
field serves one chapter or the classroom; the method's own options stay in :class:`clpips.defaults.Defaults`,
which this class extends, so each default is written once, in one of the two files.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

from clpips.defaults import Defaults


@dataclass(frozen=True)
class BookDefaults(Defaults):
    # evaluation (chapter 04)
    baselines: str = "l2,psnr,ssim,lpips_vgg,lpips_ones"  #: comparison metrics (clpips.book.baselines), comma-separated
    # the worked example (chapter 02): the rank each ranking gives images A, B, C, D (1 = most similar)
    example_reference: str = "1,2,3,4"  #: the reference ranking
    example_r1: str = "1,3,4,2"     #: ranking R1; ICC(A,k) with the reference 0.64, "moderate" (Koo & Li)
    example_r2: str = "3,2,1,4"     #: ranking R2; ICC(A,k) with the reference 0.40, "poor" (Koo & Li)
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
    # personal metrics (chapter 07, clpips.book.personal, clpips.apps.widget)
    personal_l2: float = 0.01       #: L2 pull of a personal model towards its starting (pooled) weights
    personal_sizes: str = "1,2,5,10,20,40"  #: learning curve: training rankings per person (plus "all")
    personal_repeats: int = 3       #: learning curve: random subsamples per size and person
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
    # classroom (clpips classroom, clpips.apps.classroom, chapter 10)
    classroom_sets: int = 10        #: sets every student ranks (about 10 minutes of a lesson)
    classroom_k: int = 6            #: candidates per set (built-in datasets and image folders)
    classroom_host: str = "127.0.0.1"  #: address the class page binds to (0.0.0.0: the whole network)
    classroom_port: int = 8866      #: port of the class page (0: any free port)
    classroom_out: str = "class.csv"  #: the class's rankings (its study is recorded in class.json)
    classroom_students: int = 12    #: size of the simulated class (chapter 10 without a class file)
    class_csv: str = ""             #: chapter 10: the class CSV to read ("": a simulated class)


DEFAULTS = BookDefaults()


def names() -> list[str]:
    """The names of every default, the method's and the book's (what ``clpips run -p NAME`` converts)."""
    return [f.name for f in fields(BookDefaults)]
