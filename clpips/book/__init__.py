"""The book's helpers: code that serves the chapters, built on the core (:mod:`clpips`).

Figures (:mod:`~clpips.book.plots`), tables and sentences (:mod:`~clpips.book.report`), and the
analyses one chapter makes: the worked example (02), layer weights and training histories (03),
baselines and per-set scores (04), power and verdicts (:mod:`~clpips.book.power`: 04, 05, 08),
ablations (06), personal metrics (07), dataset summaries and split-half agreement (01, 08), the
metrics beyond linear weights (09), the class's analysis (10); and alien_eggs against its known
smoothness (:mod:`~clpips.book.egg_truth`). The core never imports this package.
"""
