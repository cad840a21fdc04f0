"""The layout's rules, checked on the source: data flows one way (docs/architecture.md).

- no import cycles among mosa's modules, counting imports inside functions too;
- no argparse outside ``mosa.cli``, and no library module imports ``mosa.cli``;
- nothing imports the deprecated ``mosa.generate`` shim;
- a module of a lower layer never imports one of a higher layer.
"""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "mosa"

# lowest first; a module may import from its own layer and the layers below it
LAYERS = (
    ("mosa", "mosa.errors", "mosa.limits", "mosa.io", "mosa.nlp", "mosa.checkpoint"),
    ("mosa.motion",),
    ("mosa.data",),
    ("mosa.models",),
    ("mosa.sampling", "mosa.requests", "mosa.vocabulary"),
    ("mosa.pipeline",),
    ("mosa.loading",),
    ("mosa.edit",),
    ("mosa.eval", "mosa.train", "mosa.bench"),
    ("mosa.serve", "mosa.blender_addon"),
    ("mosa.cli", "mosa.__main__"),
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path, known: set[str], top_level_only: bool = False) -> set[str]:
    """Every mosa module ``path`` imports, at module level or inside functions."""
    found: set[str] = set()
    tree = ast.parse(path.read_text())
    for node in tree.body if top_level_only else ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # "from mosa.data import cmu" imports the submodule mosa.data.cmu
            subs = [f"{node.module}.{a.name}" for a in node.names]
            names = [n if n in known else node.module for n in subs]
        else:
            continue
        for name in names:
            # "from mosa.edit import edit_span" names mosa.edit; "from mosa import edit" mosa.edit
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name.startswith("mosa"):
                found.add(name)
    found.discard(module_name(path))
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    # the root package's ``mosa.load`` is a lazy front door to the top of the stack (modules
    # read ``mosa.__version__``): only its import-time imports count
    return {name: imports_of(path, known, name == "mosa") for name, path in mods.items()}


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(g.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m) :] + [m]
            if m not in state and (cycle := visit(m)):
                return cycle
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(g):
        if n not in state and (cycle := visit(n)):
            return cycle
    return None


def layer(name: str) -> int:
    best, rank = -1, -1
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (name == p or name.startswith(p + ".")) and len(p) > best:
                best, rank = len(p), i
    return rank


def test_find_cycle_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    assert find_cycle(graph()) is None


def test_layers_point_down():
    wrong = [
        f"{a} imports {b}"
        for a, deps in graph().items()
        for b in deps
        if layer(b) > layer(a) and a != "mosa"  # mosa.load is the lazy front door
    ]
    assert not wrong, wrong


def test_every_module_has_a_layer():
    assert [m for m in modules() if layer(m) < 0] == []


def test_no_argparse_or_cli_in_the_library():
    bad = []
    for name, path in modules().items():
        if name.startswith("mosa.cli") or name == "mosa.__main__":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            mods = []
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                mods = [node.module]
            bad += [f"{name}: {m}" for m in mods if m == "argparse" or m.startswith("mosa.cli")]
    assert not bad, bad


def test_nothing_imports_the_deprecated_generate_module():
    users = [a for a, deps in graph().items() if "mosa.generate" in deps]
    assert users == []


@pytest.mark.parametrize(
    ("old", "new_module"),
    [("load", "mosa.loading"), ("Pipeline", "mosa.pipeline"),
     ("generate_tokens", "mosa.sampling"), ("EDIT_DEFAULTS", "mosa.requests")],
)  # fmt: skip
def test_generate_shim_warns_and_returns_the_moved_name(old, new_module):
    import importlib

    import mosa.generate as G

    with pytest.warns(DeprecationWarning, match=new_module):
        value = getattr(G, old)
    assert value is getattr(importlib.import_module(new_module), old)
    with warnings.catch_warnings(), pytest.raises(AttributeError):
        warnings.simplefilter("ignore")
        G.no_such_name  # noqa: B018
