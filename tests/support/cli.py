"""The installed ``s3split`` console script, run as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

S3SPLIT = str(Path(sys.executable).parent / "s3split")


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``s3split ARGS`` in ``cwd``, its output captured."""
    return subprocess.run([S3SPLIT, *args], cwd=cwd, capture_output=True, text=True, timeout=300)
