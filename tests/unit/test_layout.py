"""The package layout says what runs where: the code Lambda runs never imports the command
line, the local engine or their dependencies (the layer ships without them); no module
imports another's private names; the split imports nothing of the pipeline above it; and the
code layout in docs/architecture.md names every module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "s3split"
LAMBDA_CODE = [*(PACKAGE / "split").glob("*.py"), *(PACKAGE / "pipeline").glob("*.py"),
               *(PACKAGE / "processors").glob("*.py"),
               *(p for p in PACKAGE.glob("*.py") if p.name not in ("command.py", "__main__.py")),
               *(ROOT / "functions").glob("*/app.py")]
OFF_LAMBDA = ("s3split.cli", "s3split.engine", "click", "rich", "moto")


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("path", LAMBDA_CODE, ids=lambda p: str(p.relative_to(ROOT)))
def test_lambda_code_imports_nothing_of_the_command_line_or_the_engine(path: Path) -> None:
    wrong = {name for name in imported(path)
             if any(name == off or name.startswith(off + ".") for off in OFF_LAMBDA)}
    assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}"


def test_no_module_imports_another_modules_private_names() -> None:
    found = []
    for path in sorted([*PACKAGE.rglob("*.py"), *(ROOT / "functions").glob("*/app.py")]):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("s3split"):
                found += [f"{path.relative_to(ROOT)}: {node.module}.{alias.name}"
                          for alias in node.names
                          if alias.name.startswith("_") and not alias.name.startswith("__")]
    assert not found, found


@pytest.mark.parametrize("path", sorted((PACKAGE / "split").glob("*.py")),
                         ids=lambda p: p.name)
def test_the_split_imports_nothing_of_the_pipeline_above_it(path: Path) -> None:
    wrong = {name for name in imported(path) if name.startswith("s3split.pipeline")}
    assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}"


def test_the_layout_is_what_the_architecture_doc_shows() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    layout = text[text.index("## Code layout"):]
    layout = layout[:layout.index("\n## ", 1)]
    packages = sorted(p.name for p in PACKAGE.iterdir()
                      if (p / "__init__.py").exists() and not p.name.startswith("_"))
    assert packages == ["cli", "engine", "pipeline", "processors", "split"]
    for package in packages:
        for module in (PACKAGE / package).glob("*.py"):
            if module.name != "__init__.py":
                assert f"{package}/{module.name}" in layout or f" {module.name}" in layout, \
                    f"docs/architecture.md's code layout lacks {package}/{module.name}"


def test_no_test_module_imports_another() -> None:
    """What tests share lives in tests/support/ (helpers) or tests/conftest.py (fixtures)."""
    kinds = {p.name for p in (ROOT / "tests").iterdir() if (p / "__init__.py").exists()}
    wrong = [f"{path.relative_to(ROOT)}: {name}"
             for path in sorted((ROOT / "tests").rglob("test_*.py"))
             for name in imported(path)
             if name.startswith("tests.") and name.split(".")[1] in kinds - {"support"}]
    assert not wrong, wrong
