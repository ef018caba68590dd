"""Finding a component's class where h5flow looks, without running unrelated code.

h5flow imports and executes every module in the working directory tree until
one has the class. Here each candidate file's syntax tree is read for a
top-level ``class NAME`` and only the module that defines it is imported.

Search order (h5flow's): an explicit ``path`` (a dotted module name) only;
otherwise the working directory, ``h5flow_modules/``, their subdirectories
(walked in sorted order), then the built-in modules.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import logging
import os
import sys
from pathlib import Path

from .errors import FlowError

log = logging.getLogger("h5pyvol.flow")

# Directories never searched: tools' caches and virtualenvs are not workflow modules.
SKIP_DIRS = {"__pycache__", "node_modules", "site-packages", "build", "dist"}
SKIP_MODULES = {"setup", "h5flow"}

_tree_cache: dict[tuple[str, int, int], frozenset[str]] = {}


def defined_classes(path: Path) -> frozenset[str]:
    """Names of the classes a Python file defines at top level (also inside
    top-level ``if``/``try`` blocks); empty for files that do not parse."""
    try:
        st = path.stat()
    except OSError:
        return frozenset()
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _tree_cache:
        try:
            tree = ast.parse(path.read_bytes(), filename=str(path))
        except (SyntaxError, ValueError, OSError) as exc:
            log.debug("not searching %s: %s", path, exc)
            _tree_cache[key] = frozenset()
            return _tree_cache[key]
        names: set[str] = set()
        todo = list(tree.body)
        while todo:
            node = todo.pop()
            if isinstance(node, ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.If | ast.Try):
                todo += node.body + node.orelse + getattr(node, "finalbody", []) + [
                    n for h in getattr(node, "handlers", []) for n in h.body]
        _tree_cache[key] = frozenset(names)
    return _tree_cache[key]


def _candidates(directory: Path) -> list[Path]:
    """The module files directly in `directory`, as pkgutil.iter_modules lists them."""
    out = []
    try:
        entries = sorted(directory.iterdir())
    except OSError:
        return out
    for entry in entries:
        if entry.is_file() and entry.suffix == ".py" and entry.stem not in SKIP_MODULES:
            out.append(entry)
        elif entry.is_dir() and entry.name not in SKIP_MODULES and (entry / "__init__.py").is_file():
            out.append(entry / "__init__.py")
    return out


def _subdirectories(root: Path) -> list[Path]:
    out = []
    for parent, dirs, _ in os.walk(root, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIP_DIRS
                         and not (Path(parent, d) / "pyvenv.cfg").exists())
        out += [Path(parent, d) for d in dirs]
    return out


def search_dirs(cwd: Path) -> list[Path]:
    modules = cwd / "h5flow_modules"
    return [cwd, modules] + _subdirectories(modules) + _subdirectories(cwd)


def _import_file(path: Path, classname: str) -> type:
    name = path.parent.name if path.name == "__init__.py" else path.stem
    existing = sys.modules.get(name)
    if existing is not None and getattr(existing, "__file__", None) != str(path):
        name = f"h5pyvol_flow_module_{hashlib.sha1(str(path).encode()).hexdigest()[:10]}_{name}"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        # The module's own folder is importable while it loads, so it can import its siblings.
        sys.path.insert(0, str(path.parent))
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
        finally:
            sys.path.remove(str(path.parent))
    cls = getattr(module, classname, None)
    if not isinstance(cls, type):
        raise ImportError(f"{path} defines no class {classname} once imported")
    log.info("using %s from %s", classname, path)
    return cls


def find_class(classname: str, path: str | None = None, component: str = "?", cwd: str | None = None) -> type:
    """The class named `classname` for config section `component`."""
    if path:
        try:
            module = importlib.import_module(path)
        except Exception as exc:
            raise FlowError(f"{component!r}: cannot import module {path!r} for class {classname}: "
                            f"{type(exc).__name__}: {exc}") from exc
        cls = getattr(module, classname, None)
        if not isinstance(cls, type):
            raise FlowError(f"{component!r}: module {path!r} has no class {classname}")
        return cls
    base = Path(cwd or os.getcwd())
    seen: set[Path] = set()
    for directory in search_dirs(base):
        for file in _candidates(directory):
            real = file.resolve()
            if real in seen:
                continue
            seen.add(real)
            if classname in defined_classes(file):
                try:
                    return _import_file(file, classname)
                except Exception as exc:
                    raise FlowError(f"{component!r}: importing {classname} from {file} failed: "
                                    f"{type(exc).__name__}: {exc}") from exc
    from . import builtins

    cls = builtins.BUILTINS.get(classname)
    if cls is None:
        raise FlowError(f"{component!r}: no class {classname} in {base}, {base / 'h5flow_modules'}, their "
                        f"subdirectories or the built-ins ({', '.join(sorted(builtins.BUILTINS))})")
    return cls
