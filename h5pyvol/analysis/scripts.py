"""Map and combine given as source text: compiling them, and introspection.

Owns what the seed calls the introspection phase: reading a map script's
syntax tree (never running it) to find the datasets it references, i.e.
``block["/path"]``, ``block.get("/path")`` and ``block.values("/path")`` on
the map function's parameter. Also turns source text into the function it
defines, in a fresh namespace that has ``np`` (numpy) ready.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Callable

import numpy as np

_compiled: dict[tuple[str, str], Callable] = {}


def _function_defs(tree: ast.Module) -> list[ast.FunctionDef]:
    return [n for n in tree.body if isinstance(n, ast.FunctionDef)]


def _pick(defs: list, want: str, text: str):
    named = [d for d in defs if d.name == want]
    if named:
        return named[-1]
    if len(defs) == 1:
        return defs[0]
    names = ", ".join(d.name for d in defs) or "none"
    raise ValueError(f"the {want} script must define a function named {want!r} (or exactly one function); "
                     f"it defines: {names}")


def compile_function(text: str, want: str) -> Callable:
    """The function `text` defines: the one named `want`, or its only one.
    SyntaxError and ValueError name what is wrong."""
    key = (hashlib.sha1(text.encode()).hexdigest(), want)
    fn = _compiled.get(key)
    if fn is None:
        tree = ast.parse(text, filename=f"<{want} script>")
        chosen = _pick(_function_defs(tree), want, text)
        namespace: dict = {"__name__": f"h5pyvol.analysis.{want}_script", "np": np, "numpy": np}
        exec(compile(tree, f"<{want} script>", "exec"), namespace)  # noqa: S102 - the user's own script
        fn = _compiled[key] = namespace[chosen.name]
    return fn


def dataset_references(text: str) -> list[str]:
    """The dataset paths a map script references through its parameter, in
    order of first appearance, found without running the script."""
    tree = ast.parse(text, filename="<map script>")
    fn = _pick(_function_defs(tree), "map", text)
    params = fn.args.posonlyargs + fn.args.args
    if not params:
        raise ValueError(f"the map function {fn.name!r} takes no parameter (it receives one block)")
    block = params[0].arg
    found: list[tuple[int, int, str]] = []
    for node in ast.walk(fn):
        key = None
        if isinstance(node, ast.Subscript) and _is_name(node.value, block):
            key = node.slice
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in ("get", "values") and _is_name(node.func.value, block) and node.args):
            key = node.args[0]
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            found.append((node.lineno, node.col_offset, key.value))
    out: list[str] = []
    for _, _, path in sorted(found):
        if path not in out:
            out.append(path)
    if not out:
        raise ValueError(f"the map script references no dataset: write {block}['/path/to/dataset'] with a literal "
                         "path, or pass inputs")
    return out


def _is_name(node: ast.AST, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name
