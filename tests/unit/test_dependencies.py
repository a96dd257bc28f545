"""The runtime dependencies declared in pyproject.toml are exactly what otel_health imports.

Every import in the package (at the top of a module or inside a function) is mapped to the
installed distribution that provides it; the set must equal the declared dependencies: a
library only tests or benchmarks use belongs in an extra, and a library the runtime
imports must be declared, not arrive by chance with another.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "otel_health"


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# Extras the runtime imports from, for a kind not every install needs: the kind says at config
# time which extra to install
RUNTIME_EXTRAS = ("browser",)


def _declared() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + [spec for extra in RUNTIME_EXTRAS
                                       for spec in project["optional-dependencies"][extra]]
    return {_normal(re.split(r"[\s<>=!~;\[]", spec, maxsplit=1)[0]) for spec in specs}


def _imported_modules() -> dict[str, str]:
    """Absolute module names imported anywhere in the package, with a place that imports each."""
    found: dict[str, str] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        where = str(path.relative_to(REPO))
        for node in ast.walk(ast.parse(path.read_text(), where)):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    found.setdefault(alias.name, where)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.setdefault(node.module, where)
                for alias in node.names:  # `from pkg import submodule`
                    found.setdefault(f"{node.module}.{alias.name}", where)
    return found


def _module_owners() -> dict[str, set[str]]:
    """Installed module name -> distributions whose files hold it (namespace packages have many)."""
    owners: dict[str, set[str]] = {}
    for dist in md.distributions():
        name = _normal(dist.metadata["Name"])
        for file in dist.files or ():
            parts = file.parts
            if not parts or parts[0].endswith((".dist-info", ".egg-info", ".data")) or ".." in parts:
                continue
            if file.suffix not in (".py", ".so", ".pyd"):
                continue
            stem = parts[-1].split(".", 1)[0]
            dotted = [*parts[:-1]] if stem == "__init__" else [*parts[:-1], stem]
            for i in range(1, len(dotted) + 1):
                owners.setdefault(".".join(dotted[:i]), set()).add(name)
    return owners


def _owner(module: str, owners: dict[str, set[str]]) -> set[str]:
    """The distributions providing ``module``: its most specific known name with one owner."""
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        found = owners.get(".".join(parts[:i]))
        if found and len(found) == 1:
            return found
    return set()


def test_declared_runtime_dependencies_are_exactly_what_the_package_imports() -> None:
    owners = _module_owners()
    imported: dict[str, str] = {}
    unmapped = []
    for module, where in _imported_modules().items():
        top = module.split(".", 1)[0]
        if top in sys.stdlib_module_names or top in ("otel_health", "__future__"):
            continue
        dists = _owner(module, owners)
        if not dists and module in owners:
            continue  # a namespace package (`from opentelemetry import trace`): its submodules decide
        if not dists:
            unmapped.append(f"{module} (in {where})")
        for dist in dists:
            imported.setdefault(dist, f"{module} (in {where})")
    assert not unmapped, f"imports no installed distribution provides: {unmapped}"
    declared = _declared()
    undeclared = {d: imported[d] for d in set(imported) - declared}
    unused = declared - set(imported)
    assert not undeclared, f"imported but not declared in [project].dependencies (or a runtime extra): {undeclared}"
    assert not unused, f"declared in [project].dependencies but never imported by otel_health: {sorted(unused)}"
    assert {"aiohttp", "opentelemetry-sdk", "opentelemetry-proto"} <= declared  # the mapping found real ones


def test_the_import_mapping_tells_namespace_distributions_apart() -> None:
    owners = _module_owners()
    assert _owner("opentelemetry.sdk.metrics.export", owners) == {"opentelemetry-sdk"}
    assert _owner("opentelemetry.trace", owners) == {"opentelemetry-api"}
    assert _owner("opentelemetry.exporter.otlp.proto.http.trace_exporter", owners) == {
        "opentelemetry-exporter-otlp-proto-http"}
    assert _owner("yaml", owners) == {"pyyaml"}


def test_the_libraries_of_the_newer_kinds_load_only_when_a_check_needs_them() -> None:
    """grpcio (22 MB), dnspython and h2 are imported by the first check that uses them: the
    10,000-target memory budget is measured without them (docs/performance.md)."""
    code = ("import sys, otel_health.cli, otel_health.collector, otel_health.probes, otel_health.server\n"
            "print(sorted(m for m in ('grpc', 'grpc_health', 'dns', 'h2', 'hpack') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60,
                         cwd=REPO)
    assert out.stdout.strip() == "[]"


def _locked(name: str) -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements" / f"{name}.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            dist, _, version = line.partition("==")
            assert version, f"requirements/{name}.txt: {line!r} is not pinned with =="
            pins[_normal(dist)] = version
    return pins


def test_the_lock_files_pin_versions_the_declared_ranges_allow() -> None:
    """pyproject.toml says which versions work (ranges: installable next to other packages);
    requirements/*.txt say which ones were tested, every distribution of each install."""
    from packaging.requirements import Requirement

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    locks = {name: _locked(name) for name in ("runtime", "dev", "bench")}
    extras = project["optional-dependencies"]
    groups = {"runtime": project["dependencies"],
              "dev": project["dependencies"] + extras["dev"] + extras["browser"],
              "bench": project["dependencies"] + extras["dev"] + extras["browser"] + extras["bench"]}
    for name, specs in groups.items():
        for spec in specs:
            requirement = Requirement(spec)
            if requirement.marker is not None and not requirement.marker.evaluate():
                continue
            locked = locks[name].get(_normal(requirement.name))
            assert locked is not None, f"requirements/{name}.txt lacks {requirement.name}: run make lock"
            assert requirement.specifier.contains(locked, prereleases=True), (
                f"requirements/{name}.txt pins {requirement.name}=={locked}, outside {spec!r}: run make lock")
        if name != "runtime":
            assert locks["runtime"].items() <= locks[name].items(), f"{name}.txt disagrees with runtime.txt"
    runtime = [Requirement(spec) for spec in project["dependencies"]]
    assert all(r.specifier and not any(s.operator == "==" for s in r.specifier) for r in runtime), (
        "runtime dependencies are ranges; exact versions belong in requirements/runtime.txt")


def test_this_environment_was_installed_from_the_lock() -> None:
    installed = {_normal(d.metadata["Name"]): d.version for d in md.distributions()}
    locked = _locked("dev")
    differs = {name: (version, installed.get(name)) for name, version in locked.items()
               if installed.get(name) != version}
    assert not differs, f"installed versions differ from requirements/dev.txt (locked, installed): {differs}"


def test_every_file_the_package_reads_is_in_its_package_data() -> None:
    """A wheel (the image's install) holds only the .py files and package-data's globs."""
    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["otel_health"]
    files = [p.relative_to(PACKAGE) for p in PACKAGE.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")
             and "__pycache__" not in p.parts]
    left_out = [str(f) for f in files if not any(f.match(g) for g in globs)]
    assert files and not left_out, f"files of otel_health/ no package-data glob takes: {left_out}"
