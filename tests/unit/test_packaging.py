"""What an installed s3split needs: where the engine finds the definition and the handlers
(checkout or installed package), the extras, and the one-line errors when an extra is
missing. tests/e2e/test_install.py builds and installs the real wheel."""

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from s3split.deployment import Deployment
from s3split.engine.local import FUNCTIONS
from s3split.engine.pipeline_files import (
    BUNDLED_PACKAGE,
    LOCAL_EXTRA_MISSING,
    engine_code,
    locate,
)
from s3split.errors import EngineFilesMissing
from s3split.pipeline.inputs import default_location

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
DEFINITION = Path("statemachine", "pipeline.asl.json")


def make_tree(root: Path, files: list[str]) -> None:
    for name in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(f"# {name}\n")


# -- which definition and handlers the engine runs -----------------------------------------


def test_this_checkout_runs_its_own_definition_and_handlers() -> None:
    code = locate()
    assert code.origin == "checkout"
    assert Path(str(code.definition)) == REPO / DEFINITION
    assert code.definition_text() == (REPO / DEFINITION).read_text()
    assert code.sys_path == (str(REPO),)
    assert code.handler("functions.worker.app:lambda_handler") == \
        "functions.worker.app:lambda_handler"
    for function in FUNCTIONS.values():  # each handler names a file of the checkout
        module = function.handler.partition(":")[0]
        assert (REPO / (module.replace(".", "/") + ".py")).is_file(), function.handler


def test_an_installed_package_runs_the_copies_it_carries(tmp_path: Path) -> None:
    package = tmp_path / "lib" / "python3.11" / "site-packages" / "s3split"
    make_tree(package, ["__init__.py", f"_bundled/{DEFINITION}",
                        "_bundled/functions/__init__.py", "_bundled/functions/worker/app.py"])
    code = engine_code(package, package)
    assert code.origin == "installed"
    assert code.definition_text() == f"# _bundled/{DEFINITION}\n"
    assert code.sys_path == ()  # imported as part of s3split, nothing added to sys.path
    assert code.handler("functions.worker.app:lambda_handler") == \
        f"{BUNDLED_PACKAGE}.functions.worker.app:lambda_handler" == \
        "s3split._bundled.functions.worker.app:lambda_handler"


def test_files_beside_an_installed_package_are_not_taken_for_a_checkout(tmp_path: Path) -> None:
    """Whoever can write next to site-packages must not swap the state machine or the
    handlers an installed s3split runs: only a src/s3split package is a checkout."""
    lib = tmp_path / "lib"
    package = lib / "site-packages" / "s3split"
    make_tree(package, ["__init__.py", f"_bundled/{DEFINITION}",
                        "_bundled/functions/worker/app.py"])
    make_tree(lib, [str(DEFINITION), "functions/worker/app.py", "pyproject.toml"])
    code = engine_code(package, package)
    assert code.origin == "installed"
    assert code.definition_text() == f"# _bundled/{DEFINITION}\n"


def test_a_checkout_prefers_its_files_to_a_stale_bundled_copy(tmp_path: Path) -> None:
    package = tmp_path / "src" / "s3split"
    make_tree(package, ["__init__.py", f"_bundled/{DEFINITION}",
                        "_bundled/functions/worker/app.py"])
    make_tree(tmp_path, [str(DEFINITION), "functions/worker/app.py"])
    code = engine_code(package, package)
    assert code.origin == "checkout"
    assert code.definition_text() == f"# {DEFINITION}\n"
    assert code.sys_path == (str(tmp_path),)


@pytest.mark.parametrize("layout", ["src/s3split", "site-packages/s3split"])
def test_no_definition_anywhere_is_a_named_error_saying_where(tmp_path: Path,
                                                              layout: str) -> None:
    package = tmp_path / layout
    make_tree(package, ["__init__.py", "_bundled/functions/worker/app.py"])
    with pytest.raises(EngineFilesMissing, match="_bundled/") as raised:
        engine_code(package, package)
    assert str(package) in str(raised.value)
    assert "\n" not in str(raised.value)


# -- the command without its extras: one line naming what to install ---------------------------


def run_without(modules: list[str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The real entry point in a fresh interpreter in which ``modules`` cannot be imported,
    as in an environment that lacks them."""
    script = ("import sys\n"
              f"for name in {modules!r}: sys.modules[name] = None\n"
              "sys.argv = ['s3split', *sys.argv[1:]]\n"
              "from s3split.command import main\n"
              "main()\n")
    env = os.environ | {"PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}"}
    return subprocess.run([sys.executable, "-c", script, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_run_without_the_local_extra_names_it_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("id\n1\n")
    done = run_without(["moto"], "run", "data.csv", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr == f"s3split: error: {LOCAL_EXTRA_MISSING}\n"
    assert done.stderr == ("s3split: error: the local engine needs the 'local' extra: in "
                           "s3split's checkout, pipx install --force '.[local]' (or pip "
                           "install '.[local]')\n")
    assert done.stdout == ""
    assert not (tmp_path / "s3split-out").exists()  # nothing started


def test_split_does_not_need_the_local_extra(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("id\n1\n2\n")
    done = run_without(["moto"], "split", "data.csv", "parts", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "parts" / "part-00000.csv").read_text() == "id\n1\n2\n"


@pytest.mark.parametrize("missing", ["click", "rich"])
def test_the_command_without_the_cli_extra_names_it_in_one_line(tmp_path: Path,
                                                                missing: str) -> None:
    done = run_without([missing], "split", "data.csv", "parts", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr == ("s3split: error: the command line needs the 'cli' extra: in "
                           "s3split's checkout, pipx install --force '.[cli]' (or pip install "
                           "'.[cli]')\n")


# -- the extras ------------------------------------------------------------------------------


def names(requirements: list[str]) -> set[str]:
    return {req.split("[")[0].split(">")[0].split("<")[0].split("=")[0].strip().lower()
            for req in requirements}


def test_the_core_dependencies_are_the_lambda_runtime_only() -> None:
    core = names(PYPROJECT["project"]["dependencies"])
    assert core.isdisjoint({"click", "rich", "moto"})
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert names(extras["cli"]) == {"click", "rich"}
    assert names(extras["local"]) == {"click", "rich", "moto"}


def test_dev_includes_everything_local_installs() -> None:
    """`make test` installs '.[dev]': it must run what `pip install 's3split[local]'` runs."""
    extras = PYPROJECT["project"]["optional-dependencies"]
    dev = {req.split("[")[0].split(">")[0].lower(): req for req in extras["dev"]}
    for req in extras["local"]:
        name = req.split("[")[0].split(">")[0].lower()
        assert name in dev, req
        if "[" in req:  # moto: dev's extras hold local's, same versions
            wanted = set(req.split("[")[1].split("]")[0].split(","))
            have = set(dev[name].split("[")[1].split("]")[0].split(","))
            assert wanted <= have, (req, dev[name])
            assert req.split("]")[1] == dev[name].split("]")[1], (req, dev[name])
        else:
            assert req == dev[name]
    assert PYPROJECT["project"]["scripts"]["s3split"] == "s3split.command:main"


# -- the README's quick start -------------------------------------------------------------------


def quick_start() -> tuple[int, str]:
    """The line the quick start begins on, and its text up to the next heading."""
    text = (REPO / "README.md").read_text()
    start = text.index("## Quick start")
    end = text.index("\n## ", start + 1)
    return text[:start].count("\n") + 1, text[start:end]


def test_the_quick_start_installs_only_what_exists_and_is_on_the_first_screen() -> None:
    """s3split is not on the package index: every install the quick start shows names the
    checkout or a wheel built from it, with an extra pyproject.toml defines; the first run
    and where its output goes come before the fortieth line of the quick start."""
    line, text = quick_start()
    assert line < 25
    installs = re.findall(r"(?:pipx|pip) install (?:--force )?'([^']+)'", text)
    assert installs and "'.[local]'" in text
    extras = PYPROJECT["project"]["optional-dependencies"]
    for target in installs:
        path, _, extra = target.partition("[")
        assert path == "." or path.startswith("dist/s3split-"), target  # never the index
        assert extra.rstrip("]") in extras, target
    lines = text.splitlines()[:40]
    run = next(i for i, entry in enumerate(lines) if entry.startswith("s3split run "))
    source = lines[run].split()[2]
    where = default_location(source, Deployment("s3split-out"))
    assert any(f"./{where}/" in entry for entry in lines[run:]), (where, lines)
