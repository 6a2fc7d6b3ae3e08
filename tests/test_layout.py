"""The package's architecture, as a newcomer is told it: the product never imports the lab, and no
module imports another that imports it back (counting imports inside functions too)."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "melanoma"
COMPOSITION_ROOT = "melanoma.__main__"  # the CLI entry: puts the product's commands and the lab's together


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
            elif isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
        graph[name] = {other for other in imported if other in modules and other not in (name, "melanoma")}
    return graph


def is_lab(name: str) -> bool:
    return name == "melanoma.lab" or name.startswith("melanoma.lab.")


def test_the_product_never_imports_the_lab():
    graph = import_graph()
    assert "melanoma.lab.cli" in graph and "melanoma.train" in graph  # the walk found the package
    product_to_lab = {name: sorted(filter(is_lab, imports)) for name, imports in graph.items()
                      if not is_lab(name) and name != COMPOSITION_ROOT and any(map(is_lab, imports))}
    assert product_to_lab == {}


def test_no_import_circles():
    graph = import_graph()
    circles = set()

    def walk(start, node, path):
        for other in graph[node]:
            if other == start:
                circles.add(" -> ".join(path + [start]))
            elif other not in path and other > start:  # each circle once, from its smallest module
                walk(start, other, path + [other])

    for name in graph:
        walk(name, name, [name])
    assert circles == set()
