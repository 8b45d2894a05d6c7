"""Where the local engine finds the state machine definition and the Lambda handlers.

In a checkout (``src/s3split`` inside the repository, editable installs included) they are
the repository's own ``statemachine/pipeline.asl.json`` and ``functions/*/app.py``. An
installed wheel carries copies of them as package data under ``s3split/_bundled/``, made by
the build (setup.py), read with :mod:`importlib.resources` and imported as
``s3split._bundled.functions.<name>.app``.
"""

from dataclasses import dataclass
from functools import cache
from importlib import import_module, resources
from importlib.resources.abc import Traversable
from pathlib import Path

from s3split.errors import EngineFilesMissing, ExtraNotInstalled

DEFINITION = ("statemachine", "pipeline.asl.json")
BUNDLED = "_bundled"
BUNDLED_PACKAGE = f"s3split.{BUNDLED}"
# s3split is not on the package index: the commands that work install from a checkout.
LOCAL_EXTRA_MISSING = ("the local engine needs the 'local' extra: in s3split's checkout, "
                       "pipx install --force '.[local]' (or pip install '.[local]')")


@dataclass(frozen=True)
class EngineCode:
    """The definition to create the state machine from, and how to import the handlers."""

    definition: Traversable
    handler_package: str  # the package holding functions/, "" for a top-level one
    sys_path: tuple[str, ...]  # for the worker processes, to import that package
    origin: str  # "checkout" or "installed"

    def handler(self, relative: str) -> str:
        """``functions.splitter.app:lambda_handler`` as importable from this code."""
        return f"{self.handler_package}.{relative}" if self.handler_package else relative

    def definition_text(self) -> str:
        return self.definition.read_text(encoding="utf-8")


def engine_code(package_dir: Path, package: Traversable) -> EngineCode:
    """The checkout's files when ``package_dir`` is a repository's ``src/s3split``, else the
    copies ``package`` (the installed s3split) carries."""
    repo = package_dir.parents[1]
    checkout_definition = repo.joinpath(*DEFINITION)
    in_src = package_dir.name == "s3split" and package_dir.parent.name == "src"
    if in_src and checkout_definition.is_file() and (repo / "functions").is_dir():
        return EngineCode(checkout_definition, "", (str(repo),), "checkout")
    bundled = package / BUNDLED
    definition = bundled.joinpath(*DEFINITION)
    if definition.is_file() and (bundled / "functions").is_dir():
        return EngineCode(definition, BUNDLED_PACKAGE, (), "installed")
    raise EngineFilesMissing(
        f"{package_dir}: neither a checkout (no {'/'.join(DEFINITION)} in {repo}) nor an "
        f"installed wheel with its {BUNDLED}/ files: install s3split from a wheel built by "
        "its setup.py, or run from the repository")


@cache
def locate() -> EngineCode:
    """The definition and handlers of this s3split: the checkout's or the installed ones."""
    return engine_code(Path(__file__).resolve().parents[1], resources.files("s3split"))


def check_local_engine() -> EngineCode:
    """Fail with one line before the engine starts: the ``local`` extra missing, a moto this
    s3split does not support, or the definition and handlers missing. Once moto's release is
    known to be supported, the workers' fork server starts: its imports then run beside
    moto's, not after them."""
    from s3split.engine import moto_internals, speedups
    from s3split.engine.lambda_runtime import start_fork_server

    moto_internals.check_version()
    start_fork_server()
    try:
        speedups.without_aws_batch_tasks()
        for module in moto_internals.ENGINE_MODULES:
            import_module(module)
    except ModuleNotFoundError as exc:
        raise ExtraNotInstalled(LOCAL_EXTRA_MISSING) from exc
    except ImportError as exc:
        raise moto_internals.unsupported(str(exc)) from exc
    moto_internals.check()
    return locate()
