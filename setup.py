"""Build step: the wheel carries what `s3split run` needs from outside src/.

statemachine/pipeline.asl.json and functions/*/app.py stay where SAM reads them; a built
wheel gets copies as package data under s3split/_bundled/ (importable, so the local engine
runs the handlers as ``s3split._bundled.functions.<name>.app``). Nothing is copied into the
source tree, and an editable install keeps using the checkout's own files.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.errors import FileError

ROOT = Path(__file__).resolve().parent
BUNDLED = "_bundled"
DEFINITION = Path("statemachine") / "pipeline.asl.json"


def bundled_files(root: Path) -> list[Path]:
    """Paths (relative to ``root``) that go into s3split/_bundled/: the definition, each
    function's app.py and the package markers that make them importable."""
    handlers = sorted(path.relative_to(root) for path in root.glob("functions/*/app.py"))
    if not (root / DEFINITION).is_file() or not handlers:
        raise FileError(f"{root}: no {DEFINITION} or functions/*/app.py to bundle: build "
                        "the wheel from the repository (or an sdist made from it)")
    markers = [Path("functions") / "__init__.py", *(h.parent / "__init__.py" for h in handlers)]
    return [DEFINITION, *markers, *handlers]


class BuildWithBundle(build_py):
    """build_py, then copy the engine's files into the build's s3split/_bundled/."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:  # the checkout's own files are used
            return
        target = Path(self.build_lib) / "s3split" / BUNDLED
        shutil.rmtree(target, ignore_errors=True)  # no stale file from an earlier build
        for relative in bundled_files(ROOT):
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ROOT / relative, destination)
        (target / "__init__.py").write_text(
            '"""Copies of statemachine/ and functions/ made by the build (setup.py)."""\n')


setup(cmdclass={"build_py": BuildWithBundle})
