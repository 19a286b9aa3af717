"""The package's shape, checked on its source: the rules the task seam depends on.

- no task dispatch by string comparison outside the registry and the task modules;
- no module over 400 lines;
- no import of another module's `_private` names;
- no import cycles between the package's modules (module-level imports).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "kerascv_tl"
MAX_LINES = 400
TASK_MODULES = {"tasks/registry.py", "tasks/base.py"} | {
    f"tasks/{name}.py" for name in ("classification", "detection", "segmentation", "multi_label")
}


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def test_no_task_string_dispatch_outside_the_registry_and_the_task_modules():
    pattern = re.compile(r"task ?== ?['\"]|config\.task ?==")
    offenders = [
        f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}"
        for path in PACKAGE.rglob("*.py")
        if path.relative_to(PACKAGE).as_posix() not in TASK_MODULES
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if pattern.search(line)
    ]
    assert not offenders, "\n".join(offenders)


def test_no_module_over_400_lines():
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, long


def test_no_import_of_another_modules_private_names():
    offenders = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kerascv_tl"):
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                if private and node.module != name:
                    offenders.append(f"{name}: from {node.module} import {', '.join(private)}")
    assert not offenders, "\n".join(offenders)


def _module_level_imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Package modules `name` imports when it is imported (not inside functions or TYPE_CHECKING blocks)."""
    tree = ast.parse(path.read_text())
    imported = set()

    def visit(statements):
        for node in statements:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, (ast.If, ast.Try)):
                visit(node.body + getattr(node, "orelse", []) + getattr(node, "finalbody", []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)
            elif isinstance(node, ast.Import):
                imported.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module)
                imported.update(f"{node.module}.{a.name}" for a in node.names)

    visit(tree.body)
    return {m for m in imported if m in known and m != name}


def test_no_import_cycles():
    modules = _modules()
    known = set(modules)
    graph = {name: _module_level_imports(name, path, known) for name, path in modules.items()}
    # A package's __init__ is imported before any of its submodules: count that edge too.
    for name in known:
        parent = name.rpartition(".")[0]
        if parent in known and parent != name:
            graph[name].add(parent)
    state: dict[str, int] = {}
    cycles = []

    def walk(node, stack):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt) :] + [nxt] if nxt in stack else [node, nxt])
            elif nxt not in state:
                walk(nxt, stack + [nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            walk(name, [name])
    # A package __init__ that re-exports its submodules is the usual Python shape, not a cycle that bites:
    # the submodule is imported by the __init__ first, so only cycles between two plain modules count.
    real = [c for c in cycles if not any(modules[m].name == "__init__.py" for m in c)]
    assert not real, "\n".join(" -> ".join(c) for c in real)


def test_functions_over_60_lines_say_why_in_their_docstring():
    """A function longer than 60 lines carries a one-line reason in its docstring, marked "Long:"."""
    offenders = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > 60 and "Long:" not in (ast.get_docstring(node) or ""):
                    offenders.append(f"{name}.{node.name}: {length} lines")
    assert not offenders, "\n".join(offenders)
