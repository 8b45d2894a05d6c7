"""The functions' code and layer as SAM packages them: each Handler names a module of its code,
the layer is built once for the runtime and architecture, each Handler imports in a clean
interpreter that sees only the code and the layer (built by the Makefile's build-SharedLayer),
and the layer holds nothing of the command line or the engine.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.template import FUNCTIONS, REGION, REPO, TEMPLATE_DOC, Stack


def test_each_handler_names_a_module_in_its_code(stack: Stack) -> None:
    for name in FUNCTIONS:
        props = stack.props(name)
        module, _, function = props["Handler"].rpartition(".")
        code = REPO / props["CodeUri"]
        assert (code / f"{module.replace('.', '/')}.py").is_file(), props
        assert f"def {function}(" in (code / f"{module}.py").read_text()


def test_the_layer_is_built_once_for_the_runtime_and_architecture(stack: Stack) -> None:
    function_globals = TEMPLATE_DOC["Globals"]["Function"]
    assert function_globals["Layers"] == [{"Ref": "SharedLayer"}]
    layer = TEMPLATE_DOC["Resources"]["SharedLayer"]
    assert layer["Properties"]["CompatibleRuntimes"] == [function_globals["Runtime"]]
    assert layer["Properties"]["CompatibleArchitectures"] == function_globals["Architectures"]
    assert layer["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": "arm64"}
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^build-SharedLayer:", makefile, re.MULTILINE)
    flags = re.search(r"^LAYER_PIP_FLAGS \?=((?:.*\\\n)*.*)$", makefile, re.MULTILINE)
    assert flags, "Makefile: LAYER_PIP_FLAGS"
    assert "--platform manylinux2014_aarch64" in flags.group(1)
    assert f"--python-version {function_globals['Runtime'].removeprefix('python')}" in \
        flags.group(1)


# -- each Handler resolves with only what SAM packages (the layer fixture) ---------------------


CHECK_IMPORT = """
import importlib, json, sys
task, layer, handler = sys.argv[1:4]
sys.path[:0] = [task, layer]          # /var/task, then /opt/python, as in Lambda
module, _, name = handler.rpartition(".")
function = getattr(importlib.import_module(module), name)
assert callable(function), handler
outside = sorted({m.__name__ for m in list(sys.modules.values())
                  if (getattr(m, "__file__", None) or "").find("site-packages") >= 0})
print(json.dumps({"outside": outside, "version": sys.version}))
"""


@pytest.mark.timeout(900)
@pytest.mark.parametrize("function", FUNCTIONS)
def test_the_handler_imports_with_only_the_packaged_code(
        layer: tuple[str, Path], function: str, tmp_path: Path) -> None:
    python, layer_python = layer
    stack = Stack(TEMPLATE_DOC)
    props = stack.props(function)
    task = tmp_path / "task"  # what SAM copies from CodeUri
    shutil.copytree(REPO / props["CodeUri"], task,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    env = {
        "PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8", "TZ": ":UTC",
        "AWS_LAMBDA_FUNCTION_NAME": function, "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(props["MemorySize"]),
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{TEMPLATE_DOC['Globals']['Function']['Runtime']}",
        "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION, "LAMBDA_TASK_ROOT": str(task),
        "_HANDLER": props["Handler"], "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",  # an import must not call AWS; if it does,
    } | stack.function_env(function)               # it fails here, not somewhere real
    # -I: no user site, no PYTHON* variables, no script directory; -S: no site-packages.
    done = subprocess.run([python, "-I", "-S", "-c", CHECK_IMPORT, str(task), str(layer_python),
                           props["Handler"]],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, (
        f"{function} ({props['Handler']}) does not import from its code and the layer "
        f"(python {python}):\n{done.stderr[-3000:]}")
    report = json.loads(done.stdout)
    assert report["outside"] == [], report


def test_the_layer_holds_no_command_line_or_engine_dependencies(
        layer: tuple[str, Path]) -> None:
    """The layer is s3split and what the functions need: the `cli` and `local` extras (click,
    rich, moto and what they pull in) and the engine's bundled copies stay out."""
    _, layer_python = layer
    distributions = {dist.metadata["Name"].lower().replace("_", "-")
                     for dist in importlib.metadata.distributions(path=[str(layer_python)])}
    assert "s3split" in distributions and "boto3" in distributions
    assert distributions.isdisjoint({"click", "rich", "moto", "pygments", "markdown-it-py",
                                     "antlr4-python3-runtime", "jsonpath-ng", "werkzeug",
                                     "responses"}), sorted(distributions)
    assert not (layer_python / "s3split" / "_bundled").exists()


def test_the_layer_is_compiled_for_the_runtime(layer: tuple[str, Path]) -> None:
    """/opt is read-only on Lambda: without .pyc files every cold start compiles every module
    of the layer again (s3split, pydantic, boto3: seconds of the Iterator's 10)."""
    python, layer_python = layer
    tag = subprocess.run([python, "-c", "import sys; print(sys.implementation.cache_tag)"],
                         capture_output=True, text=True, check=True).stdout.strip()
    sources = [p for p in (layer_python / "s3split").rglob("*.py")]
    compiled = {p.name.split(".")[0] for p in (layer_python / "s3split").rglob(f"*.{tag}.pyc")}
    assert sources and {p.stem for p in sources} <= compiled
