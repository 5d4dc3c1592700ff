"""The package's shape: stages in order, no import cycles, no private names across modules.

Design: every ``colorlib`` module belongs to one layer; a module may import (at the top or
inside a function) only from its own layer or from layers above it in this list:

0. base: ``color``, ``runtime`` (import nothing of colorlib), ``ab_bins`` (imports ``color``)
1. ``data``: photos -> (L, ab) pairs
2. ``models``: the networks and their registry
3. ``checkpoint``: the file format (weights + architecture on disk)
4. ``evaluation``: metrics, FID, validation, COCO regions
5. ``training``: objectives, steps, ``fit``, run state, recipes (it validates with evaluation)
6. ``inference``: ``colorize``, ``load_colorizer`` (and ``inference_memory``, its strips)
7. the user-facing layer: ``cli``, ``widgets``, ``gallery``, ``viz``, ``profiling``, ``tables``

The graph is read from the source with :mod:`ast`, so imports inside functions count too.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "colorlib"
LAYERS = {
    "colorlib.color": 0,
    "colorlib.runtime": 0,
    "colorlib.ab_bins": 0,  # the quantised ab plane: colour maths on top of colorlib.color
    "colorlib.data": 1,
    "colorlib.models": 2,
    "colorlib.checkpoint": 3,
    "colorlib.evaluation": 4,
    "colorlib.training": 5,
    "colorlib.inference": 6,
    "colorlib.inference_memory": 6,  # its full-resolution half, in strips
    "colorlib.inference_hints": 6,  # colorization guided by colour hints
}
USER_FACING = 7
MAX_LINES = 400


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> int:
    for prefix, rank in LAYERS.items():
        if module == prefix or module.startswith(prefix + "."):
            return rank
    return USER_FACING


def _resolve(name: str) -> str | None:
    """The colorlib module an import names (``colorlib.training.loop.fit`` -> the module)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> list[tuple[str, list[str]]]:
    """``[(imported module, [names taken from it]), ...]`` for every colorlib import."""
    tree = ast.parse(MODULES[module].read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names if a.name.startswith("colorlib")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if not node.module.startswith("colorlib"):
                continue
            for alias in node.names:  # `from colorlib.training import loop` names a module
                sub = f"{node.module}.{alias.name}"
                found.append((sub, []) if sub in MODULES else (node.module, [alias.name]))
    resolved = []
    for name, names in found:
        target = _resolve(name)
        if target is not None and target != module and target != "colorlib":
            resolved.append((target, names))
    return resolved


GRAPH = {module: imports_of(module) for module in MODULES}


def test_the_layers_cover_the_stages():
    assert {layer(m) for m in MODULES} == set(range(USER_FACING + 1))
    assert all(not GRAPH[m] for m in ("colorlib.color", "colorlib.runtime"))


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_up_the_layers_only(module):
    wrong = [t for t, _ in GRAPH[module] if layer(t) > layer(module)]
    assert not wrong, f"{module} (layer {layer(module)}) imports from a later stage: {wrong}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_private_name_crosses_a_module(module):
    private = [f"{t}.{n}" for t, names in GRAPH[module] for n in names if n.startswith("_")]
    assert not private, f"{module} imports private names {private}"


def test_no_import_cycle():
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target, _ in GRAPH[module]:
            if state.get(target) == 1:
                cycle = path[path.index(target) :] + [target]
                pytest.fail(f"import cycle: {' -> '.join(cycle)}")
            if target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in MODULES:
        if module not in state:
            visit(module, [module])


def test_the_checker_sees_function_level_imports_and_cycles():
    # the real graph must not be the only evidence that the checker works
    tree = ast.parse("def f():\n    from colorlib.training.loop import fit\n")
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom))
    assert node.module == "colorlib.training.loop" and _resolve(node.module) in MODULES
    assert layer("colorlib.training.loop") > layer("colorlib.inference") - 2
    assert layer("colorlib.cli") == USER_FACING and layer("colorlib.data.images") == 1


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_stay_small(module):
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"{module} has {lines} lines (at most {MAX_LINES})"


BLOCKED_IMPORT = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "colorlib.training" or name.startswith("colorlib.training."):
            raise ImportError(f"blocked: {name}")
sys.meta_path.insert(0, Block())
import colorlib.inference as inference
from colorlib.models import build_model
model = build_model("unet", base_channels=4, num_downs=5)
print(inference.colorize(model, __import__("numpy").zeros((32, 32)), size=32).size)
print(sorted(m for m in sys.modules if m.startswith("colorlib.training")))
"""


def test_inference_runs_with_training_blocked():
    done = subprocess.run(
        [sys.executable, "-c", BLOCKED_IMPORT], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[:2] == ["(32, 32)", "[]"]


@pytest.mark.parametrize(
    "module", sorted(m for m, path in MODULES.items() if path.name != "__init__.py")
)
def test_a_module_exports_only_what_it_defines(module):
    # no re-export shims: a name has one home, and callers import it from there (a package's
    # __init__ may offer short cuts: colorlib.setup, colorlib.models.UNetGenerator)
    imported = importlib.import_module(module)
    foreign = [
        name
        for name in getattr(imported, "__all__", [])
        if (inspect.isfunction(obj := getattr(imported, name)) or inspect.isclass(obj))
        and obj.__module__ != module
    ]
    assert not foreign, f"{module} re-exports {foreign}"
