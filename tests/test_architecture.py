"""The package's shape: no import cycle between modules or wings, imports point one way,
no module over 400 lines, and benchmarks that use only the public API.

Why a test: the layout (docs/design.md) only helps a reader while it holds,
and an import cycle is easy to add and hard to see in review. Every `import` statement of
every module is read with `ast`, including those inside functions (a lazy import still
ties two modules together).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import artistsim

PACKAGE = Path(artistsim.__file__).resolve().parent
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
MAX_LINES = 400
# Each wing may import only the wings listed (and itself). The order is the direction of
# the data's journey: nothing below imports anything above it.
ALLOWED = {
    "atomic": set(),
    "config_check": set(),
    "config": {"config_check"},
    "runtime": set(),
    "data": {"config_check", "atomic", "config"},
    "synth": {"atomic"},
    "audio": {"config_check", "atomic", "config", "data"},
    "models": {"config_check", "config"},
    "runs": {"config_check", "atomic", "config", "data"},
    "scoring": {"config_check", "atomic", "config", "data"},
    "embed": {"config_check", "atomic", "config", "data", "models", "runs", "scoring"},
    "search": {"config_check", "atomic", "config", "data", "models", "runs", "scoring", "embed"},
    "evaluation": {"config_check", "atomic", "config", "data", "models", "runs", "scoring", "search", "embed"},
    "training": {"config_check", "atomic", "config", "data", "models", "runs", "scoring", "search", "embed", "evaluation"},
    "catalogue": {"config_check", "atomic", "config", "data", "audio", "models", "runs", "scoring", "search", "embed", "evaluation"},
    "demo": {"config_check", "atomic", "config", "data", "synth", "audio", "models", "runs", "scoring", "search", "embed", "evaluation", "training",
             "catalogue"},
    "cli": {"config_check", "atomic", "config", "runtime", "data", "synth", "audio", "models", "runs", "scoring", "search", "embed", "evaluation",
            "training", "catalogue", "demo"},
    "__main__": {"cli"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """artistsim modules that `name` imports (resolving `from pkg import module`)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports_of(name, path, known) for name, path in mods.items()}


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules, or None (iterative DFS, colours)."""
    colour = {n: 0 for n in g}
    for root in g:
        if colour[root]:
            continue
        stack = [(root, iter(sorted(g[root])))]
        path = [root]
        colour[root] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                colour[node] = 2
                stack.pop()
                path.pop()
            elif colour.get(child, 2) == 1:
                return path[path.index(child):] + [child]
            elif colour.get(child, 2) == 0:
                colour[child] = 1
                stack.append((child, iter(sorted(g[child]))))
                path.append(child)
    return None


def wing(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_no_import_cycle_between_modules():
    g = graph()
    # a package's __init__ importing its own modules is not a cycle a reader trips on;
    # a module importing its package's __init__ that imports it back is.
    assert find_cycle(g) is None, f"import cycle: {' -> '.join(find_cycle(g) or [])}"


def test_no_import_cycle_between_wings():
    g = graph()
    wings: dict[str, set[str]] = {}
    for mod, deps in g.items():
        wings.setdefault(wing(mod), set()).update(wing(d) for d in deps if wing(d) != wing(mod))
    assert find_cycle(wings) is None, f"wing cycle: {' -> '.join(find_cycle(wings) or [])}"


def test_imports_point_one_way():
    bad = []
    for mod, deps in graph().items():
        w = wing(mod)
        if w == "__init__":
            continue
        assert w in ALLOWED, f"new wing or top-level module {w!r}: add it to ALLOWED with its direction"
        bad += [f"{mod} imports {d}" for d in sorted(deps) if wing(d) != w and wing(d) not in ALLOWED[w]]
    assert not bad, "imports against the layout's direction:\n" + "\n".join(bad)


@pytest.mark.parametrize("name,path", sorted(modules().items()))
def test_module_size(name, path):
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES, f"{name} has {n} lines (at most {MAX_LINES}); split it along a seam (docs/design.md)"


def benchmark_imports() -> list[tuple[str, int, str]]:
    """(file, line, dotted name) of every name each benchmark module imports, lazy ones included."""
    out = []
    for path in sorted(BENCHMARKS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                out += [(path.name, node.lineno, a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
                assert node.level == 0, f"{path.name}:{node.lineno}: relative import; use benchmarks.NAME"
                out += [(path.name, node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return out


def test_benchmarks_import_no_private_name():
    """Benchmarks measure what users get: the public API, no `_module` and no `_name`."""
    bad = [f"{f}:{line}: {name}" for f, line, name in benchmark_imports()
           if any(part.startswith("_") for part in name.split("."))]
    assert not bad, "benchmarks importing private names (export them from the wing's __init__):\n" + "\n".join(bad)


def test_benchmarks_run_as_modules_without_path_hacks():
    """`python -m benchmarks.NAME` from the root; no script edits sys.path, none imports another benchmark."""
    hacks = [p.name for p in BENCHMARKS.glob("*.py") if "sys.path.insert" in p.read_text()
             or "sys.path.append" in p.read_text()]
    assert not hacks, f"sys.path edited in {hacks}"
    crossed = [f"{f}:{line}: {name}" for f, line, name in benchmark_imports()
               if f.startswith("bench_") and name.startswith("benchmarks.bench_")]
    assert not crossed, "a benchmark importing another (move the helper to a shared module):\n" + "\n".join(crossed)


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
