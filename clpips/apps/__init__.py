"""The apps: programs built on the core (:mod:`clpips`), which they import and never the reverse.

* :mod:`~clpips.apps.cli`: the ``clpips`` command
* :mod:`~clpips.apps.classroom`: the classroom server (students rank, the teacher watches)
* :mod:`~clpips.apps.widget`: the ranking widget of chapters 07 and 10
* :mod:`~clpips.apps.notebook_runner`: runs the chapters (``clpips run``, ``make book``)
"""
