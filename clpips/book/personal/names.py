"""The models and comparisons of a personal study, by name (see :mod:`clpips.book.personal`)."""
from __future__ import annotations

#: model columns of :attr:`PersonalStudy.per_person`, in display order
MODELS = ("lpips", "pooled", "personal", "lopo", "personal_lopo")
#: the comparisons reported: name -> (reference model a, challenger model b); Δ = b − a
COMPARISONS = {
    "personal_vs_pooled": ("pooled", "personal"),
    "new_user": ("lopo", "personal_lopo"),
    "pooled_vs_lpips": ("lpips", "pooled"),
    "personal_vs_lpips": ("lpips", "personal"),
    "new_user_vs_lpips": ("lpips", "personal_lopo"),
    "lopo_vs_lpips": ("lpips", "lopo"),
}
#: what each comparison means, for tables and captions
COMPARISON_LABELS = {
    "personal_vs_pooled": "personal − pooled",
    "new_user": "new user: personal − LOPO",
    "pooled_vs_lpips": "pooled − LPIPS",
    "personal_vs_lpips": "personal − LPIPS",
    "new_user_vs_lpips": "new user: personal − LPIPS",
    "lopo_vs_lpips": "LOPO − LPIPS",
}
STATISTICS = ("icc", "rho")
