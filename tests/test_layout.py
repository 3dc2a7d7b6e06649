"""The folder tree is the architecture: no import cycle inside ``ldm``, and sampling and evaluation (and the
shared modules below them) never import training or the book. Read from the source (every import, at module
level or inside a function), so a lazy import cannot hide a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ldm"


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, modules: set[str], root: Path = PACKAGE) -> set[str]:
    """The ``ldm`` modules that ``path`` imports (``from .x import y`` resolves to ``ldm...x.y`` when that is
    a module, else to ``ldm...x``)."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                full = f"{target}.{alias.name}"
                out.add(full if full in modules else target)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m in modules and m != name}


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    files = sorted(root.rglob("*.py"))
    modules = {module_name(f, root) for f in files}
    return {module_name(f, root): imported_modules(f, modules, root) for f in files}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (found := visit(n)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


# layer -> the packages it must never import
FORBIDDEN = {
    "ldm.sampling": ("ldm.training", "ldm.book"),
    "ldm.evaluation": ("ldm.training", "ldm.book"),
    "ldm.models": ("ldm.training", "ldm.sampling", "ldm.evaluation", "ldm.book"),
    "ldm.data": ("ldm.training", "ldm.sampling", "ldm.evaluation", "ldm.models", "ldm.book"),
    **{f"ldm.{m}": ("ldm.training", "ldm.sampling", "ldm.evaluation", "ldm.models", "ldm.book", "ldm.data")
       for m in ("config", "io", "runtime", "checkpoints", "numbers")},
}


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for module, imports in graph.items():
        for layer, banned in FORBIDDEN.items():
            if module == layer or module.startswith(layer + "."):
                bad += [f"{module} imports {m}" for m in sorted(imports)
                        if any(m == b or m.startswith(b + ".") for b in banned)]
    return bad


def test_ldm_has_no_import_cycle():
    assert find_cycle(import_graph()) is None, " -> ".join(find_cycle(import_graph()))


def test_sampling_and_evaluation_never_import_training():
    assert layer_violations(import_graph()) == []


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root / "ldm"


@pytest.mark.parametrize("files, cycle", [
    ({"ldm/__init__.py": "", "ldm/a.py": "from .b import x\n", "ldm/b.py": "def f():\n    from .a import y\n"},
     ["ldm.a", "ldm.b", "ldm.a"]),
    ({"ldm/__init__.py": "", "ldm/p/__init__.py": "", "ldm/p/a.py": "from ..q import b\n",
      "ldm/q/__init__.py": "", "ldm/q/b.py": "from ldm.p.a import z\n"}, ["ldm.p.a", "ldm.q.b", "ldm.p.a"]),
])
def test_the_cycle_check_finds_a_cycle_a_lazy_import_hides(tmp_path, files, cycle):
    assert find_cycle(import_graph(_write(tmp_path, files))) == cycle


def test_the_layer_check_finds_sampling_importing_training(tmp_path):
    root = _write(tmp_path, {"ldm/__init__.py": "", "ldm/training/__init__.py": "", "ldm/training/steps.py": "",
                             "ldm/sampling/__init__.py": "", "ldm/sampling/x.py": "from ..training import steps\n"})
    assert layer_violations(import_graph(root)) == ["ldm.sampling.x imports ldm.training.steps"]


def test_each_public_name_is_defined_once():
    """A name means one thing in the package (``add_noise`` was once the forward process and white noise):
    every public top-level function or class is defined in one module; ``main`` is each command's entry."""
    where: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef) and not node.name.startswith("_"):
                where.setdefault(node.name, []).append(module_name(path))
    assert {name: mods for name, mods in where.items() if len(mods) > 1 and name != "main"} == {}


def test_the_ldm_command_lists_its_commands_and_each_help_has_examples():
    import shutil
    import subprocess
    import sys

    from ldm.cli import COMMANDS

    script = shutil.which("ldm", path=str(Path(sys.executable).parent))
    assert script, "the console entry point `ldm` is installed beside the interpreter"
    top = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=120)
    assert top.returncode == 0 and all(f"  {name} " in top.stdout for name in COMMANDS), top.stdout
    for name in COMMANDS:
        out = subprocess.run([sys.executable, "-m", "ldm", name, "--help"], capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stderr[-1000:]
        assert out.stdout.startswith(f"usage: ldm {name}"), out.stdout[:200]
        examples = [ln for ln in out.stdout.splitlines() if ln.strip().startswith(("ldm ", "torchrun "))]
        assert examples, f"ldm {name} --help shows no runnable example"
    bad = subprocess.run([script, "nonsense"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "unknown command 'nonsense'" in bad.stderr
