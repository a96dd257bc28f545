"""The package's shape, held: no import cycle between its modules; each module's ``__all__``
is what the others import of it (no private name crosses a module); no module long without
a reason; no file the docs name missing."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "otel_health"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if p.name != "__main__.py"}


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _type_checking_only(tree: ast.Module) -> set[int]:
    """Ids of the import nodes under ``if TYPE_CHECKING:``: they never run."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(inner) for child in node.body for inner in ast.walk(child)}
    return skip


def _imports(name: str) -> Iterator[tuple[str, list[str], int]]:
    """(module imported, names taken from it, line) for every import ``name`` runs, at the
    top or inside a function."""
    tree = ast.parse(MODULES[name].read_text())
    skip = _type_checking_only(tree)
    here = name if _is_package(name) else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "otel_health":
                    yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if target.split(".")[0] == "otel_health":
                yield target, [a.name for a in node.names], node.lineno


def _graph() -> dict[str, set[str]]:
    """Module -> the modules importing it runs: what it names, each package on the way there
    (importing ``a.b.c`` runs ``a.b``'s ``__init__``), and a submodule taken by name."""
    edges: dict[str, set[str]] = {name: set() for name in MODULES}
    for name in MODULES:
        ancestors = {name.rsplit(".", i)[0] for i in range(1, name.count(".") + 1)}
        for target, names, _ in _imports(name):
            run = {target} | {f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES}
            parts = target.split(".")
            run |= {".".join(parts[:i]) for i in range(1, len(parts))}
            edges[name] |= {m for m in run if m in MODULES and m != name and m not in ancestors}
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycle() -> None:
    cycles = _cycles(_graph())
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_the_cycle_check_finds_one() -> None:
    """The walk itself: two modules that import each other, through a package's __init__ too."""
    edges = {"a": {"b.x"}, "b": {"b.y"}, "b.x": set(), "b.y": {"a"}}
    assert _cycles(edges) == []
    edges["b.x"] = {"b"}
    assert _cycles(edges) == [["a", "b", "b.x", "b.y"]]


def _exported(name: str) -> set[str] | None:
    for node in ast.parse(MODULES[name].read_text()).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return set(ast.literal_eval(node.value))
    return None


def test_every_module_says_what_it_exports() -> None:
    missing = sorted(name for name in MODULES if _exported(name) is None and MODULES[name].stat().st_size)
    assert not missing, f"modules without __all__: {missing}"


def test_what_crosses_a_module_is_in_its_all() -> None:
    """A name one module imports from another is in that module's ``__all__``: the public
    surface is what is used, and nothing private is reached into."""
    wrong = []
    for name in MODULES:
        for target, names, line in _imports(name):
            if target not in MODULES:
                continue
            exported = _exported(target) or set()
            for taken in names:
                if f"{target}.{taken}" in MODULES:
                    continue  # a submodule, not a name
                if taken not in exported:
                    wrong.append(f"{MODULES[name].relative_to(ROOT)}:{line}: {taken} from {target}")
    assert not wrong, "imported but not in the module's __all__:\n" + "\n".join(wrong)


def test_all_names_what_exists() -> None:
    """Every name in an ``__all__`` is defined or imported by its module."""
    import importlib

    wrong = []
    for name in MODULES:
        module = importlib.import_module(name)
        wrong += [f"{name}.{n}" for n in getattr(module, "__all__", ()) if not hasattr(module, n)]
    assert not wrong, f"__all__ names what the module does not have: {wrong}"


NAMED_PATH = re.compile(r"`{1,2}((?:otel_health|tests|benchmarks|scripts|monitoring|deploy|docs)/"
                        r"[\w./-]+\.(?:py|ya?ml|md|json|txt))`")


def test_every_file_the_docs_and_docstrings_name_exists() -> None:
    """A moved module or test leaves no pointer behind: every repository path the README, the
    docs and the package's docstrings name in backquotes is there."""
    sources = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *MODULES.values()]
    missing = sorted({f"{source.relative_to(ROOT)}: {found}" for source in sources
                      for found in NAMED_PATH.findall(source.read_text()) if not (ROOT / found).exists()})
    assert not missing, "named but not there:\n" + "\n".join(missing)


def test_no_module_is_long_without_saying_why() -> None:
    """One concern a module: past about 500 lines, a module says at its top why it is one."""
    long = [f"{path.relative_to(ROOT)} ({n} lines)" for path in MODULES.values()
            if (n := len(path.read_text().splitlines())) > 500
            and "one module because" not in path.read_text()[:3000]]
    assert not long, f"split these, or say at the top why each is one module ('one module because ...'): {long}"
