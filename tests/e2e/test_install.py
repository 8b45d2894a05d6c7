"""s3split as a user installs it: the wheel built from this checkout, installed into fresh
virtual environments (no site-packages of ours), run from a directory outside the checkout.

The wheel is built with pip (build isolation fetches setuptools from the package index) from
a clean copy of the checkout's files, so no leftover of an earlier in-tree build gets in. It
is installed with uv's pip interface (the same wheel, metadata and extras as `pip install`
reads them, at a tenth of pip's CPU: pip took ~17 s of CPU for the three installs below).
"""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUNDLED = "s3split/_bundled/"
DATA = "id,city,note\r\n" + "".join(
    f'{i},"Kraków, PL","line one\r\nline ""two"" {i}"\r\n' for i in range(300))


def checkout_files() -> list[str]:
    """The files git would check out here, with uncommitted changes (not ignored ones)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
        capture_output=True, text=True, timeout=60, check=True).stdout
    return [name for name in listed.split("\0") if name and (REPO / name).is_file()]


def run(*args: str | Path, cwd: Path, timeout: float = 300,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, check=False, env=env)


def clean_env() -> dict[str, str]:
    """No PYTHONPATH or virtualenv of the test run: the venv's own packages only."""
    drop = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP", "PYTHONUSERBASE"}
    return {k: v for k, v in os.environ.items() if k not in drop}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("project")
    for name in checkout_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    done = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", out,
               source, cwd=out, env=clean_env())
    assert done.returncode == 0, done.stderr
    (built,) = out.glob("s3split-*.whl")
    return built


def venv(path: Path, wheel: Path, extra: str = "") -> Path:
    """A fresh virtual environment with the wheel installed (and ``extra``); its bin/."""
    done = run(sys.executable, "-m", "venv", "--clear", "--without-pip", path, cwd=path.parent,
               env=clean_env())
    assert done.returncode == 0, done.stderr
    assert "include-system-site-packages = false" in (path / "pyvenv.cfg").read_text()
    install(path, wheel, extra)
    return path / "bin"


def install(path: Path, wheel: Path, extra: str) -> None:
    uv = Path(sys.executable).parent / "uv"
    done = run(uv, "pip", "install", "--quiet", "--python", path / "bin" / "python",
               f"{wheel}[{extra}]" if extra else str(wheel),
               cwd=path.parent, timeout=600, env=clean_env())
    assert done.returncode == 0, done.stderr


def test_the_wheel_ships_the_top_level_definition_and_handlers_byte_for_byte(
        wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        shipped = {name.removeprefix(BUNDLED): archive.read(name)
                   for name in archive.namelist() if name.startswith(BUNDLED)}
    handlers = sorted(REPO.glob("functions/*/app.py"))
    assert len(handlers) == 3
    expected = [Path("statemachine/pipeline.asl.json"), Path("functions/__init__.py"),
                *(h.relative_to(REPO) for h in handlers),
                *(h.parent.relative_to(REPO) / "__init__.py" for h in handlers)]
    for relative in expected:
        assert shipped.pop(str(relative)) == (REPO / relative).read_bytes(), relative
    assert set(shipped) == {"__init__.py"}  # the marker the build writes, nothing else
    assert not (REPO / "src" / "s3split" / "_bundled").exists()  # never a copy in the tree


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_an_installed_wheel_runs_outside_the_checkout_once_it_has_its_extras(
        wheel: Path, tmp_path: Path) -> None:
    """One fresh venv, extra by extra: the core alone (what the Lambda layer holds) names the
    'cli' extra, the command line names the 'local' one, and with it `run` works anywhere."""
    bin_dir = venv(tmp_path / "venv", wheel)
    work = tmp_path / "elsewhere"
    work.mkdir()
    (work / "data.csv").write_bytes(DATA.encode())
    done = run(bin_dir / "s3split", "run", "data.csv", cwd=work, env=clean_env())
    assert (done.returncode, done.stdout, done.stderr) == (
        1, "", "s3split: error: the command line needs the 'cli' extra: in s3split's "
               "checkout, pipx install --force '.[cli]' (or pip install '.[cli]')\n")

    install(tmp_path / "venv", wheel, "cli")
    done = run(bin_dir / "s3split", "run", "data.csv", cwd=work, env=clean_env())
    assert (done.returncode, done.stdout, done.stderr) == (
        1, "", "s3split: error: the local engine needs the 'local' extra: in s3split's "
               "checkout, pipx install --force '.[local]' (or pip install '.[local]')\n")
    assert not (work / "s3split-out").exists()
    done = run(bin_dir / "s3split", "split", "data.csv", "parts", cwd=work, env=clean_env())
    assert done.returncode == 0, done.stderr  # split needs no engine
    assert len(list((work / "parts").glob("part-*.csv"))) == 1

    install(tmp_path / "venv", wheel, "local")
    located = run(bin_dir / "python", "-c",
                  "from s3split.engine.pipeline_files import locate; c = locate(); "
                  "print(c.origin, c.definition)", cwd=work, env=clean_env())
    assert located.returncode == 0, located.stderr
    origin, definition = located.stdout.split()
    assert origin == "installed"
    assert Path(definition).is_relative_to(tmp_path / "venv")
    assert Path(definition).read_bytes() == (REPO / "statemachine/pipeline.asl.json").read_bytes()

    done = run(bin_dir / "s3split", "run", "data.csv", "--chunk-size", "4KiB", cwd=work,
               env=clean_env())
    assert done.returncode == 0, done.stderr
    report = json.loads((work / "s3split-out" / "data.csv" / "report.json").read_text())
    assert report["succeeded"] and report["chunks"] == report["chunks_ok"] > 2
    assert report["source_rows"] == report["rows_ok"] == 300 and report["accounted"]
    assert "succeeded" in done.stdout and "300" in done.stdout
    results = sorted((work / "s3split-out" / "data.csv" / "results").glob("*.jsonl"))
    rows = [json.loads(line) for path in results for line in path.read_text().splitlines()]
    assert sorted(int(row["id"]) for row in rows) == list(range(300))
