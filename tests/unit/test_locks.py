"""Installs come from the locks, and the locks agree with what pyproject.toml declares: a
dependency changed without `make lock` fails here, not on the next fresh machine."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
UV = Path(sys.executable).parent / "uv"


def _uv(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(UV), *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120, check=False)


def test_uv_lock_holds_every_dependency_pyproject_declares() -> None:
    done = _uv("lock", "--check")
    assert done.returncode == 0, done.stderr


def test_the_layer_installs_what_uv_lock_pins() -> None:
    done = _uv("export", "--locked", "--no-emit-project", "--no-header",
               "--format", "requirements-txt")
    assert done.returncode == 0, done.stderr
    assert (REPO / "requirements" / "layer.txt").read_text() == done.stdout, \
        "requirements/layer.txt is not uv.lock's export: run make lock"


def test_every_locked_requirement_is_pinned_with_hashes() -> None:
    for name in ("layer.txt", "sam.txt"):
        text = (REPO / "requirements" / name).read_text()
        pins = re.findall(r"^([A-Za-z0-9_.\-\[\]]+)==[^\s;]+", text, re.MULTILINE)
        requirements = [line for line in text.splitlines()
                        if line and not line.startswith((" ", "#"))]
        assert pins and len(pins) == len(requirements), name
        assert text.count("--hash=sha256:") >= len(pins), name


def test_make_installs_from_the_locks() -> None:
    makefile = (REPO / "Makefile").read_text()
    assert "sync --quiet --locked" in makefile
    assert "--require-hashes --python $(SAM_VENV)/bin/python requirements/sam.txt" in makefile
    assert "--require-hashes -r requirements/layer.txt" in makefile
    assert re.search(r"^UV_VERSION := \d+\.\d+\.\d+$", makefile, re.MULTILINE)
