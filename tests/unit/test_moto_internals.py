"""The engine names no moto internal that its table lacks, and refuses a moto it cannot run on
in one line: every moto module, name and private attribute in ``src/s3split/engine/*.py`` is a
row of ``moto_internals.INTERNALS``, which the check walks before the engine starts."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from s3split.engine import moto_internals
from s3split.engine.moto_internals import INTERNALS, SUPPORTED, check, version_supported
from s3split.errors import UnsupportedDependency

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src" / "s3split"
ENGINE = SRC / "engine"
TABLE = ENGINE / "moto_internals.py"
MOTO_PATH = re.compile(r"moto(\.[A-Za-z_]\w*)*")


def _constants(tree: ast.Module, known: dict[str, str]) -> dict[str, str]:
    """Module-level string constants (``X = "moto.a"``, ``Y = f"{X}.b"``), as their values."""
    values = dict(known)
    for node in tree.body:
        target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
        value = getattr(node, "value", None)
        if isinstance(target, ast.Name) and value is not None:
            folded = _fold(value, values)
            if folded is not None:
                values[target.id] = folded
    return values


def _fold(node: ast.AST, values: dict[str, str]) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return values.get(node.id)
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and (
            node.value.id in ("internals", "moto_internals")):
        return values.get(node.attr)
    if isinstance(node, ast.JoinedStr):
        parts = [_fold(v.value if isinstance(v, ast.FormattedValue) else v, values)
                 for v in node.values]
        return None if None in parts else "".join(p for p in parts if p is not None)
    return None


def _own_names() -> set[str]:
    """Every name s3split defines itself: functions, classes, parameters, attributes it sets."""
    names: set[str] = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
    return names


def uses(source: str, constants: dict[str, str], own: set[str]) -> set[tuple[str, str]]:
    """What ``source`` names of moto: (module, name) for imports ("" for a whole module, or a
    module path in a string), ("", attr) for a private attribute s3split does not define and
    for each name given to ``mock.patch.object``."""
    tree = ast.parse(source)
    values = _constants(tree, constants)
    found: set[tuple[str, str]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "moto":
            found |= {(node.module or "", alias.name) for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {(alias.name, "") for alias in node.names
                      if alias.name.split(".")[0] == "moto"}
        elif isinstance(node, (ast.Constant, ast.JoinedStr, ast.Name, ast.Attribute)):
            value = _fold(node, values)
            if value and MOTO_PATH.fullmatch(value) and "." in value:
                found.add((value, ""))
        if isinstance(node, ast.Attribute) and _private(node.attr) and node.attr not in own:
            found.add(("", node.attr))
        if isinstance(node, ast.Call) and len(node.args) > 1:
            call, name = ast.unparse(node.func), _fold(node.args[1], values) or ""
            if call == "mock.patch.object" or (
                    call == "getattr" and _private(name) and name not in own):
                found.add(("", name))
    return found


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def missing_rows(found: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """The uses no row of the table covers."""
    modules = {row.module for row in INTERNALS}
    names = {(row.module, part) for row in INTERNALS for part in row.name.split(".")[:1]}
    leaves = {row.name.split(".")[-1] for row in INTERNALS if row.name}
    missing = set()
    for module, name in found:
        if not module:
            ok = name in leaves
        elif not name:
            ok = module in modules or any(m.startswith(module + ".") for m in modules)
        else:
            ok = (module, name) in names
        if not ok:
            missing.add((module, name))
    return missing


def _engine_uses() -> dict[str, set[tuple[str, str]]]:
    constants = _constants(ast.parse(TABLE.read_text(encoding="utf-8")), {})
    own = _own_names() - {row.name.split(".")[-1] for row in INTERNALS if row.name}
    return {path.name: uses(path.read_text(encoding="utf-8"), constants, own)
            for path in sorted(ENGINE.glob("*.py")) if path != TABLE}


def test_every_moto_internal_the_engine_names_has_a_row_in_the_table() -> None:
    unlisted = {name: sorted(missing) for name, found in _engine_uses().items()
                if (missing := missing_rows(found))}
    assert not unlisted, f"moto internals with no row in moto_internals.INTERNALS: {unlisted}"
    assert sum(len(found) for found in _engine_uses().values()) > 60  # (the scan sees them)


@pytest.mark.parametrize("added", [
    "from moto.stepfunctions.parser.asl.eval.program_state import ProgramRunning",
    "import moto.stepfunctions.parser.backend.store",
    "MODULE = 'moto.stepfunctions.parser.asl.component.state.exec.state_wait'",
    "MODULE = f'{internals.PARSER}.asl.component.state.exec.state_wait'",
    "def f(env):\n    return env._program_state",
    "def f(stack, cls):\n    stack.enter_context(mock.patch.object(cls, 'run', None))",
])
def test_a_new_moto_name_without_a_row_is_found(added: str) -> None:
    engine_code = (ENGINE / "aws_limits.py").read_text(encoding="utf-8") + "\n\n" + added + "\n"
    constants = _constants(ast.parse(TABLE.read_text(encoding="utf-8")), {})
    own = _own_names() - {row.name.split(".")[-1] for row in INTERNALS if row.name}
    assert missing_rows(uses(engine_code, constants, own)), added


def test_the_table_holds_for_the_installed_moto() -> None:
    assert moto_internals.problems() == []
    check()


def test_a_changed_signature_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.awslambda_simple.models import LambdaSimpleBackend

    def invoke(self: Any, function_name: str, body: Any) -> bytes:
        return b""

    monkeypatch.setattr(LambdaSimpleBackend, "invoke", invoke)
    with pytest.raises(UnsupportedDependency,
                       match=r"LambdaSimpleBackend\.invoke: signature .*pip install 'moto\[") as e:
        check()
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("target, value", [
    ("moto.stepfunctions.parser.asl.parse.asl_parser.AmazonStateLanguageParser", "parse"),
    ("moto.stepfunctions.parser.asl.eval.event.event_manager.EventManager", "add_event"),
])
def test_a_changed_method_is_named(monkeypatch: pytest.MonkeyPatch, target: str,
                                   value: str) -> None:
    monkeypatch.setattr(f"{target}.{value}", staticmethod(lambda text, strict: 0))
    with pytest.raises(UnsupportedDependency, match=rf"{target.rsplit('.', 1)[1]}\.{value}: sig"):
        check()


def test_a_removed_class_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    import moto.core.exceptions

    monkeypatch.delattr(moto.core.exceptions, "ServiceException")
    with pytest.raises(UnsupportedDependency, match=r"moto\.core\.exceptions\.ServiceException"
                                                    r": missing"):
        check()


@pytest.mark.parametrize("version, supported", [
    ("5.2.5", True), ("5.2.6", True), ("5.2.4", False), ("5.2.7", False), ("5.3.0", False),
    ("6.0.0", False), ("5.2.6.dev1", False), ("5.2.6rc1", False)])
def test_the_supported_releases(version: str, supported: bool) -> None:
    assert version_supported(version) is supported


def test_the_extras_declare_the_supported_releases() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    for extra in ("local", "dev"):
        [moto] = [r for r in project["optional-dependencies"][extra] if r.startswith("moto[")]
        assert moto.endswith(f"]>={SUPPORTED[0]},<={SUPPORTED[1]}"), (extra, moto)


def test_run_on_an_unsupported_moto_fails_in_one_line(tmp_path: Path) -> None:
    """The real CLI, with a moto 5.3.0 found first on the path (its metadata only)."""
    shadow = tmp_path / "site"
    dist = shadow / "moto-5.3.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: moto\nVersion: 5.3.0\n")
    (tmp_path / "in.csv").write_text("a,b\n1,2\n")
    env = os.environ | {"PYTHONPATH": str(shadow)}
    done = subprocess.run([sys.executable, "-m", "s3split", "run", "in.csv"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "s3split: error: moto 5.3.0 is installed; this s3split's local engine supports moto "
        f"{SUPPORTED[0]} to {SUPPORTED[1]}: pip install 'moto[s3,stepfunctions,awslambda]"
        f">={SUPPORTED[0]},<={SUPPORTED[1]}'"]
    assert not (tmp_path / "s3split-out").exists()


CHECK_THEN_SAY_IF_A_FORK_SERVER_RAN = """
import multiprocessing.forkserver as forkserver
from s3split.engine.pipeline_files import check_local_engine
from s3split.errors import UnsupportedDependency
try:
    check_local_engine()
except UnsupportedDependency as exc:
    print(f"refused: {exc}")
print(f"fork server: {forkserver._forkserver._forkserver_pid}")
print(f"moto imported: {'moto.core' in __import__('sys').modules}")
"""


@pytest.mark.parametrize("version", ["5.3.0", SUPPORTED[1]])
def test_the_engine_starts_its_fork_server_only_on_a_moto_it_supports(
        tmp_path: Path, version: str) -> None:
    """The engine's fork server starts beside moto's imports, once moto's release is known to
    be supported: an unsupported moto is refused before anything starts or is imported."""
    shadow = tmp_path / "site"
    dist = shadow / f"moto-{version}.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: moto\nVersion: {version}\n")
    done = subprocess.run([sys.executable, "-c", CHECK_THEN_SAY_IF_A_FORK_SERVER_RAN],
                          cwd=tmp_path, env=os.environ | {"PYTHONPATH": str(shadow)},
                          capture_output=True, text=True, timeout=120, check=True)
    said = done.stdout.splitlines()
    if version == SUPPORTED[1]:
        assert said[0].startswith("fork server: ") and said[0] != "fork server: None", said
        assert said[1] == "moto imported: True"
    else:
        assert said == [f"refused: moto {version} is installed; this s3split's local engine "
                        f"supports moto {SUPPORTED[0]} to {SUPPORTED[1]}: "
                        f"{moto_internals.INSTALL_SUPPORTED}",
                        "fork server: None", "moto imported: False"]
