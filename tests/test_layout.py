"""The package layout's rules, checked on the source: imports form a tree.

`eval_sim` depends on `lerobot_world`, never the reverse; no module imports another that (directly or not)
imports it back, counting imports inside functions too (a lazy import is still a dependency); no module
imports a private (underscore) name from another module.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("lerobot_world", "eval_sim", "lerobot_policy_world_vla")


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return mods


def _imports(path: Path, mods: dict[str, Path]) -> list[tuple[str, str | None]]:
    """(imported project module, imported name or None) for every import statement in the file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, None) for a in node.names if a.name.split(".")[0] in PACKAGES]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] in PACKAGES:
                for a in node.names:
                    sub = f"{node.module}.{a.name}"
                    out.append((sub, None) if sub in mods else (node.module, a.name))
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    graph = {}
    for name, path in mods.items():
        deps = set()
        for mod, _ in _imports(path, mods):
            while mod not in mods and "." in mod:
                mod = mod.rsplit(".", 1)[0]
            if mod in mods and mod != name:
                deps.add(mod)
        graph[name] = deps
    return graph


def test_lerobot_world_never_imports_eval_sim():
    bad = sorted(f"{m} -> {d}" for m, deps in _graph().items() if m.startswith("lerobot_world")
                 for d in deps if d.startswith("eval_sim"))
    assert not bad, f"lerobot_world must not depend on eval_sim: {bad}"


def test_imports_have_no_cycles():
    graph, state, cycles = _graph(), {}, []

    def visit(node, stack):
        state[node] = "active"
        for dep in sorted(graph[node]):
            if state.get(dep) == "active":
                cycles.append(" -> ".join(stack[stack.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, f"import cycles: {cycles}"


def test_no_private_names_imported_across_modules():
    mods = _modules()
    bad = []
    for name, path in mods.items():
        for mod, imported in _imports(path, mods):
            if imported and imported.startswith("_") and mod != name:
                bad.append(f"{name} imports {mod}.{imported}")
    assert not bad, bad


def test_the_checker_sees_a_cycle_and_a_reverse_import(tmp_path, monkeypatch):
    """The rules above can fail: a planted cycle and a planted eval_sim import are both found."""
    for pkg in PACKAGES:
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / "lerobot_world" / "a.py").write_text("def f():\n    from lerobot_world.b import g\n")
    (tmp_path / "lerobot_world" / "b.py").write_text("from lerobot_world import a\nimport eval_sim.x\n")
    (tmp_path / "eval_sim" / "x.py").write_text("from lerobot_world.a import _private\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    graph = _graph()
    assert "lerobot_world.b" in graph["lerobot_world.a"] and "lerobot_world.a" in graph["lerobot_world.b"]
    assert "eval_sim.x" in graph["lerobot_world.b"]
    assert ("lerobot_world.a", "_private") in _imports(tmp_path / "eval_sim" / "x.py", _modules())
