"""The rules of docs/architecture.md, checked on the source: no import circle, the probe imports
nothing of rstfleet, the pure stages import nothing that does I/O, modules stay small, no test file
imports another."""

from __future__ import annotations

import ast
from pathlib import Path

from helpers import ROOT

PACKAGE = ROOT / "rstfleet"
PURE = ("rstfleet.analysis", "rstfleet.fleet", "rstfleet.evidence.host", "rstfleet.evidence.causes",
        "rstfleet.evidence.capture_summary", "rstfleet.evidence.capture_hosts", "rstfleet.transport.known_hosts",
        "rstfleet.transport.keyblob", "rstfleet.expected", "rstfleet.sweep.coverage", "rstfleet.netdata_rule",
        "rstfleet.evidence.received", "rstfleet.pairing")
IO_MODULES = {"os", "io", "pathlib", "shutil", "subprocess", "socket", "tempfile", "rstfleet.evidence.captures"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Modules imported at module level (imports inside functions are lazy on purpose)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}


def test_the_product_package_has_no_import_circle():
    graph = _graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if nxt.startswith(node + "."):
                continue   # a package importing its own submodule is not a circle
            if state.get(nxt) == 1 and not node.startswith(nxt + "."):
                cycles.append(stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_the_probe_imports_nothing_of_rstfleet():
    for path in (PACKAGE / "probe" / "host").glob("*.py"):
        imported = {m for m in _imports(path) if m.startswith("rstfleet")}
        assert {m for m in imported if not m.startswith("rstfleet.probe.host")} == set(), path


def test_analysis_and_evidence_building_import_nothing_that_does_io():
    graph = _graph()
    for name in PURE:
        path = PACKAGE.joinpath(*name.split(".")[1:]).with_suffix(".py")
        assert _imports(path) & IO_MODULES == set(), name
        assert not graph[name] & IO_MODULES, name


def test_no_hand_written_module_is_over_400_lines_and_cli_is_under_250():
    sizes = {p: len(p.read_text(encoding="utf-8").splitlines()) for p in PACKAGE.rglob("*.py")}
    assert {str(p): n for p, n in sizes.items() if n > 400} == {}
    assert sizes[PACKAGE / "cli.py"] < 250


def test_the_wheel_takes_rstfleet_only_not_the_lab():
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'include = ["rstfleet", "rstfleet.*"]' in pyproject
    assert not any(p.name.startswith("lab") for p in PACKAGE.rglob("*.py"))


def _test_module_imports(path: Path) -> list[str]:
    """Every module named test_* that a file imports, at any depth (a lazy import inside a test
    counts as much as one at the top)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):      # `from . import test_x` names the module last
            names = [node.module] if node.module else [alias.name for alias in node.names]
        else:
            continue
        found += [f"{node.lineno}: {name}" for name in names if name.rpartition(".")[2].startswith("test_")]
    return found


def test_no_test_file_imports_another_test_file():
    """Shared test code lives in tests/helpers.py, report_parsers.py, pcap_builders.py,
    netdata_docs.py: importing a test module runs (and couples to) another file's tests."""
    offenders = {str(p.relative_to(ROOT)): found for p in (ROOT / "tests").rglob("*.py")
                 if (found := _test_module_imports(p))}
    assert offenders == {}
