"""``python -m clpips`` and the ``clpips`` command (``pyproject.toml``'s script): :func:`main`."""
import sys


def main() -> int:
    """Run the command line. An environment setting the package reads as it loads (``CLPIPS_WORKERS=0``, say)
    is refused in one line, as a bad option is, not with the traceback of a failed import."""
    try:
        from clpips.apps.cli import main as command
    except ValueError as err:   # only the package's settings raise it while it loads (clpips.defaults)
        print(f"clpips: error: {err}", file=sys.stderr)
        return 2
    return command()


if __name__ == "__main__":
    sys.exit(main())
