"""The numbers the CLPIPS paper reports, stated once.

Trinh, Rothenberger, Seidenberger, Diochnos & Maiti, "CLPIPS: A Personalized
Metric for AI-Generated Image Similarity", arXiv:2604.01234 (2026). The paper's
data is private; these values are what the reproduction is compared with. The
notebooks glue them from here, so no published number is typed into prose.

Only values read from the paper are stored in :data:`REPORTED`; quantities
*derived* from them (differences, the Spearman–Brown check) are computed by
:func:`derived` and labelled as such wherever they are shown.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from clpips.stats.spearman_brown import spearman_brown

CITATION = ("Trinh, K., Rothenberger, J., Seidenberger, S., Diochnos, D., & Maiti, A. (2026). "
            "CLPIPS: A Personalized Metric for AI-Generated Image Similarity. arXiv:2604.01234.")


@dataclass(frozen=True)
class Reported:
    """One published number and where the paper gives it."""

    value: float
    printed: str   #: as the paper prints it (its number of decimals)
    where: str
    what: str


#: key -> published value (held-out evaluation of the pooled model)
REPORTED: dict[str, Reported] = {
    "lpips_spearman": Reported(0.432, "0.432", "Table 3", "Spearman's rho, baseline LPIPS (AlexNet) vs human ranks"),
    "clpips_spearman": Reported(0.524, "0.524", "Table 3", "Spearman's rho, CLPIPS vs human ranks"),
    "lpips_icc_A_k": Reported(0.60, "0.60", "Table 3", "ICC(2,k) = ICC(A,k), baseline LPIPS vs human ranks"),
    "clpips_icc_A_k": Reported(0.68, "0.68", "Table 3", "ICC(2,k) = ICC(A,k), CLPIPS vs human ranks"),
    "delta_icc": Reported(0.084, "0.084", "Table 4", "ΔICC(A,k) (CLPIPS − LPIPS), the paired bootstrap's estimate; "
                          "Table 4 reports ΔICC only, no Δrho"),
    "delta_icc_ci_low": Reported(0.071, "0.071", "Table 4", "ΔICC(A,k) (CLPIPS − LPIPS), lower end of the 95% bootstrap CI"),
    "delta_icc_ci_high": Reported(0.10, "0.10", "Table 4", "ΔICC(A,k) (CLPIPS − LPIPS), upper end of the 95% bootstrap CI"),
}


def value(key: str) -> float:
    """The published value for ``key`` (a KeyError lists the keys)."""
    try:
        return REPORTED[key].value
    except KeyError:
        raise KeyError(f"no reported value {key!r}; known: {sorted(REPORTED)}") from None


def printed(key: str) -> str:
    """The published value for ``key`` as the paper prints it (e.g. ``"0.60"``)."""
    value(key)  # the KeyError with the list of keys
    return REPORTED[key].printed


def derived() -> dict[str, float]:
    """Quantities computed from the published values (not printed in the paper as such).

    ``delta_spearman``, ``delta_icc_A_k``: CLPIPS − LPIPS; ``*_icc_from_rho``:
    ``2 rho / (1 + rho)`` (Spearman–Brown), what ICC(A,k) equals, up to a term of
    order 1/n, when both raters give untied ranks.
    """
    out = {"delta_spearman": value("clpips_spearman") - value("lpips_spearman"),
           "delta_icc_A_k": value("clpips_icc_A_k") - value("lpips_icc_A_k")}
    for metric in ("lpips", "clpips"):
        out[f"{metric}_icc_from_rho"] = spearman_brown(value(f"{metric}_spearman"), 2)
    return out


def table() -> pd.DataFrame:
    """The reported values as a table: ``key, value, printed, where, what``."""
    return pd.DataFrame([{"key": k, "value": r.value, "printed": r.printed, "where": r.where, "what": r.what}
                         for k, r in REPORTED.items()])
