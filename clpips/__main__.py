"""``python -m clpips`` is the ``clpips`` command."""
import sys

from clpips.apps.cli import main

sys.exit(main())
