"""Loading workflow configs: h5flow's YAML (with ``!include``), checked and
normalized into one `Workflow` per config file.

The YAML keys are h5flow's: ``flow: {source, stages, drop}``, one top-level
section per generator, stage or resource (``classname``, ``path``,
``dset_name``, ``params``, ``requires``), and ``resources: [...]``.
``!include FILE`` inserts another YAML file, resolved against the directory of
the file that includes it, then against the working directory (where h5flow's
``yamlinclude`` looks).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import FlowError

DEFAULT_GENERATOR = "H5FlowDatasetLoopGenerator"


def _loader_for(path: Path) -> type[yaml.SafeLoader]:
    """A SafeLoader subclass whose ``!include`` resolves next to `path`."""

    class Loader(yaml.SafeLoader):
        pass

    def include(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode):
            names = [loader.construct_scalar(node)]
        elif isinstance(node, yaml.SequenceNode):
            names = loader.construct_sequence(node)
        else:
            raise FlowError(f"{path}: !include takes a file name or a list of file names")
        loaded = []
        for name in names:
            candidates = [path.parent / str(name), Path(os.getcwd()) / str(name)]
            target = next((c for c in candidates if c.is_file()), None)
            if target is None:
                raise FlowError(f"{path}: !include {name}: no such file (looked in {path.parent} and {os.getcwd()})")
            loaded.append(load_yaml(target))
        return loaded[0] if isinstance(node, yaml.ScalarNode) else loaded

    Loader.add_constructor("!include", include)
    return Loader


def load_yaml(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise FlowError(f"cannot read config {path}: {exc.strerror or exc}") from exc
    try:
        return yaml.load(text, Loader=_loader_for(path))  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise FlowError(f"config {path} is not valid YAML: {exc}") from exc


@dataclass
class Requirement:
    """One entry of a stage's ``requires``: load `name` into the cache by
    following references along `path` (``[name]`` by default)."""

    name: str
    path: list[str]
    index_only: bool = False

    @classmethod
    def parse(cls, entry: Any, stage: str) -> Requirement:
        if isinstance(entry, str):
            return cls(entry, [entry])
        if isinstance(entry, dict) and "name" in entry:
            unknown = set(entry) - {"name", "path", "index_only"}
            if unknown:
                raise FlowError(f"stage {stage!r}: requirement {entry} has unknown keys {sorted(unknown)}")
            path = entry.get("path", entry["name"])
            if isinstance(path, str):
                path = [path]
            if not isinstance(path, list) or not path or not all(isinstance(p, str) for p in path):
                raise FlowError(f"stage {stage!r}: requirement {entry['name']!r} has path {path!r}; "
                                "give a dataset name or a list of them")
            return cls(str(entry["name"]), list(path), bool(entry.get("index_only", False)))
        raise FlowError(f"stage {stage!r}: requirement {entry!r} is neither a name nor {{name, path, index_only}}")

    def as_dict(self) -> dict:
        return {"name": self.name, "path": list(self.path), "index_only": self.index_only}


@dataclass
class Component:
    """A generator, stage or resource section of a config."""

    name: str
    classname: str
    path: str | None = None
    params: dict = field(default_factory=dict)
    dset_name: str | None = None
    requires: list[Requirement] = field(default_factory=list)


@dataclass
class Workflow:
    """One config file, checked: the source generator, the stages in order,
    the resources and the drop list."""

    file: str
    text: str
    source: Component
    stages: list[Component]
    resources: list[Component]
    drop: list[str]


def _component(raw: Any, name: str, where: str) -> Component:
    if not isinstance(raw, dict):
        raise FlowError(f"{where}: section {name!r} must be a mapping with a 'classname'")
    if "classname" not in raw:
        raise FlowError(f"{where}: section {name!r} has no 'classname'")
    params = raw.get("params") or {}
    if not isinstance(params, dict):
        raise FlowError(f"{where}: section {name!r}: 'params' must be a mapping")
    requires = raw.get("requires") or []
    if not isinstance(requires, list):
        requires = [requires]
    return Component(name=name, classname=str(raw["classname"]), path=raw.get("path"), params=dict(params),
                     dset_name=raw.get("dset_name"), requires=[Requirement.parse(r, name) for r in requires])


def load_workflow(path: str | os.PathLike, extra_drop: list[str] | None = None) -> Workflow:
    """Read and check one workflow config."""
    raw = load_yaml(path)
    where = str(path)
    if not isinstance(raw, dict) or not isinstance(raw.get("flow"), dict):
        raise FlowError(f"{where}: no 'flow' section (flow: {{source: ..., stages: [...]}})")
    flow = raw["flow"]
    if "source" not in flow:
        raise FlowError(f"{where}: 'flow' has no 'source' (a generator section or a dataset to loop over)")
    source_name = str(flow["source"])
    if source_name in raw:
        source = _component(raw[source_name], source_name, where)
        if not source.dset_name:
            raise FlowError(f"{where}: generator {source_name!r} has no 'dset_name'")
    else:  # h5flow: a dataset name loops over that dataset
        source = Component(name=source_name, classname=DEFAULT_GENERATOR, path=None, dset_name=source_name)
    stage_names = flow.get("stages") or []
    if not isinstance(stage_names, list):
        raise FlowError(f"{where}: 'flow: stages' must be a list of section names")
    missing = [s for s in stage_names if s not in raw]
    if missing:
        raise FlowError(f"{where}: stages {missing} have no section in the config")
    if len(set(stage_names)) != len(stage_names):
        raise FlowError(f"{where}: a stage name appears twice in 'flow: stages'")
    stages = [_component(raw[s], str(s), where) for s in stage_names]
    resources = []
    for i, r in enumerate(raw.get("resources") or []):
        comp = _component(r, f"resources[{i}]", where)
        comp.name = comp.classname
        resources.append(comp)
    drop = [str(d) for d in (flow.get("drop") or [])] + list(extra_drop or [])
    return Workflow(file=str(path), text=Path(path).read_text(), source=source, stages=stages,
                    resources=resources, drop=drop)
