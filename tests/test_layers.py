"""The three layers (README's layout table): the core imports neither the apps nor the book, core modules
import no private name of another module, and the core's imports form no cycle. Read from the source with
ast (every import, at the top of a module or inside a function), not from what one run happens to import."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "clpips"
OUTSIDE_CORE = ("clpips.apps", "clpips.book")


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")


def core_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))
            if not module_name(p).startswith(OUTSIDE_CORE) and module_name(p) != "clpips.__main__"}


def imports(path: Path, name: str | None = None) -> list[tuple[str, str | None]]:
    """``(module, name)`` of every import in the file (name None for ``import module``), relative ones resolved
    against the module's name (``name``, default: the file's place in the package)."""
    here = (name or module_name(path)).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else [])) \
                if node.level else node.module
            out += [(base, alias.name) for alias in node.names]
    return out


def test_the_core_imports_neither_apps_nor_book():
    wrong = [f"{name} imports {module}{'.' + item if item else ''}" for name, path in core_modules().items()
             for module, item in imports(path)
             if module.startswith(OUTSIDE_CORE) or (module == "clpips" and item in ("apps", "book"))]
    assert not wrong, wrong


def test_no_core_module_imports_a_private_name_of_another():
    wrong = [f"{name} imports {module}.{item}" for name, path in core_modules().items()
             for module, item in imports(path)
             if module.startswith("clpips") and item and item.startswith("_") and not item.startswith("__")]
    assert not wrong, wrong


def test_the_core_has_no_import_cycle():
    modules = core_modules()
    # "from clpips import evaluate" depends on clpips.evaluate (a module), "from clpips.stats import icc" on clpips.stats
    edges = {name: {f"{m}.{item}" if f"{m}.{item}" in modules else m for m, item in imports(path)
                    if m.startswith("clpips")} & set(modules) - {name} for name, path in modules.items()}
    state: dict[str, str] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(edges[node]):
            assert state.get(nxt) != "open", " -> ".join(trail[trail.index(nxt):] + [node, nxt]) \
                if nxt in trail else f"{node} -> {nxt}"
            if nxt not in state:
                visit(nxt, trail + [node])
        state[node] = "done"

    for name in sorted(modules):
        if name not in state:
            visit(name, [])


def test_the_reader_resolves_relative_imports_and_imports_inside_functions(tmp_path):
    """What the first two tests read: a relative import into the book, one inside a function, a private name."""
    source = tmp_path / "zappos.py"
    source.write_text("from ..book import report\nfrom . import schema\n\ndef f():\n    from clpips.apps import cli\n"
                      "    from clpips.features import _pair_chunks\n")
    assert imports(source, "clpips.datasets.zappos") == [
        ("clpips.book", "report"), ("clpips.datasets", "schema"), ("clpips.apps", "cli"),
        ("clpips.features", "_pair_chunks")]
