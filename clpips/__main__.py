"""``python -m clpips`` is the ``clpips`` command."""
import sys

from .cli import main

sys.exit(main())
