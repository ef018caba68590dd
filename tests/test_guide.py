"""docs/writing-a-connector.md runs as written and agrees with the code.

Every Python block of the guide starts with ``# file: NAME``; the blocks are
put together per file and run: the example program, and the conformance
suite against the guide's connector (which passes, skipping what it declares
it lacks). The capability table and the ArrayMeta fields it names are
checked against `h5pyvol.connector`.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from h5pyvol import connector as api

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "writing-a-connector.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _files() -> dict[str, str]:
    files: dict[str, list[str]] = {}
    for block in BLOCK.findall(GUIDE.read_text()):
        first, _, body = block.partition("\n")
        m = re.fullmatch(r"# file: (\S+\.py)", first.strip())
        assert m, f"a Python block of the guide does not start with '# file: NAME.py':\n{block[:200]}"
        files.setdefault(m.group(1), []).append(body)
    return {name: "\n\n".join(parts) for name, parts in files.items()}


@pytest.fixture(scope="module")
def guide_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("guide")
    for name, text in _files().items():
        (out / name).write_text(text)
    return out


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(cwd))
    env.pop("HDF5_VOL_CONNECTOR", None)
    return subprocess.run([sys.executable, "-P", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


def test_the_blocks_make_a_connector_an_example_and_a_test():
    assert set(_files()) == {"tinystore.py", "use_tinystore.py", "test_tinystore.py"}


def test_the_example_runs(guide_dir):
    proc = _run(["use_tinystore.py"], guide_dir)
    assert proc.returncode == 0 and "tinystore works" in proc.stdout, proc.stdout + proc.stderr


def test_the_guides_connector_passes_the_conformance_suite(guide_dir):
    proc = _run(["-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "test_tinystore.py"], guide_dir)
    out = proc.stdout
    assert proc.returncode == 0, out[-4000:] + proc.stderr[-2000:]
    summary = out.strip().splitlines()[-1]
    assert re.search(r"\d+ passed", summary) and "failed" not in summary, summary
    skipped = set(re.findall(r"does not offer (supports_\w+)", out))
    assert skipped == {"supports_resize", "supports_committed_datatypes", "supports_creation_order",
                       "supports_link_count_changes"}, out[-3000:]


def test_the_capability_table_matches_the_code():
    text = GUIDE.read_text()
    flags = {name: getattr(api.Connector, name) for name in dir(api.Connector) if name.startswith("supports_")}
    rows = re.findall(r"^\| (`supports_.*?) \| (on|off) \|", text, re.M)
    listed = {}
    for names, default in rows:
        for name in re.findall(r"`(supports_\w+)`", names):
            listed[name] = default == "on"
    assert listed == flags


def test_the_arraymeta_fields_are_all_named():
    section = GUIDE.read_text().split("### Attributes", 1)[1].split("```", 1)[0]
    fields = {f.name for f in dataclasses.fields(api.ArrayMeta) if not f.name.startswith("_")}
    assert fields <= set(re.findall(r"`(\w+)`", section)), fields
