"""Which processor a name picks: one table of the built-ins (name -> the module and class
that hold it), then entry points of group ``s3split.processors``, then custom processors named
in ``S3SPLIT_PROCESSORS``.

The registry only collects: a built-in's module is imported when that processor is used (a
run of ``jsonl`` imports neither DuckDB's SQL processor nor boto3's DynamoDB one), and its
class declares what the registry reads for it:

- ``settings``: the ``Setting`` values it reads (processors/settings.py), read from the
  environment only, never from an event; a class that reads none leaves it out.
- ``from_settings(settings)``: the processor made from their values; it raises InvalidOption
  naming a setting it lacks and calls no AWS service. Without it, the class is made with
  ``cls()``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, cast

from s3split.errors import InvalidOption
from s3split.processors.base import ChunkJob, Processor, ProcessResult
from s3split.processors.settings import Setting, Settings
from s3split.storage import Storage

ENTRY_POINT_GROUP = "s3split.processors"

BUILTINS: Mapping[str, str] = MappingProxyType({
    "jsonl": "s3split.processors.jsonl:JsonlProcessor",
    "validate": "s3split.processors.validate:ValidateProcessor",
    "parquet": "s3split.processors.parquet:ParquetProcessor",
    "sql": "s3split.processors.sql:SqlProcessor",
    "dynamodb": "s3split.processors.dynamodb:DynamoDBProcessor",
    "noop": "s3split.processors.jsonl:NoopProcessor",
})


def _parse_custom(value: str) -> dict[str, str]:
    custom: dict[str, str] = {}
    for entry in filter(None, (part.strip() for part in value.split(","))):
        name, _, target = (part.strip() for part in entry.partition("="))
        if not name or ":" not in target:
            raise InvalidOption(f"expected name=module:function, got {entry!r}")
        if name in BUILTINS:  # (the built-in would run, the user's code never)
            raise InvalidOption(f"{name} is a built-in processor: name {target} otherwise")
        custom[name] = target
    return custom


# The registry's own setting: never recorded (a record is data, never code to import).
CUSTOM = Setting("S3SPLIT_PROCESSORS", _parse_custom)


def custom_processors(env: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The custom processors ``env`` names (name -> ``module:function``); none imported."""
    return CUSTOM.read(env) or {}


def is_builtin(name: str) -> bool:
    """Whether ``name`` is a built-in processor's (its module is not imported)."""
    return name in BUILTINS


def _builtin_class(name: str) -> Any | None:
    """The class of built-in processor ``name`` (its module imported now), or None."""
    target = BUILTINS.get(name)
    return None if target is None else _load_target(target)


def declared_settings(name: str) -> tuple[Setting[Any], ...]:
    """The settings processor ``name`` declares: a built-in's, none for any other (no custom
    processor's code is imported for this)."""
    cls = _builtin_class(name)
    return tuple(getattr(cls, "settings", ())) if cls is not None else ()


def processor_settings(name: str, env: Mapping[str, str] = os.environ) -> Settings:
    """The values processor ``name``'s settings have in ``env``; InvalidOption naming the
    variable that cannot be read. Only that processor's settings are read."""
    return Settings(declared_settings(name), env)


def _build(name: str, settings: Settings) -> Processor:
    cls: Any = _builtin_class(name)
    make = getattr(cls, "from_settings", None)
    return cast(Processor, make(settings) if make is not None else cls())


def processor_names(custom: Mapping[str, str]) -> set[str]:
    """Every name a run may pick: built-ins, entry points and ``custom`` (none imported)."""
    return {*BUILTINS, *_entry_points(), *custom}


def check_known(name: str, settings: Settings, custom: Mapping[str, str]) -> None:
    """InvalidOption when processor ``name`` cannot run with ``settings`` (its settings' values)
    and ``custom``: an unknown name, or a built-in without a setting it needs. A custom
    processor is checked by name only: its code is the worker's to load."""
    if name in BUILTINS:
        _build(name, settings)
    elif name not in processor_names(custom):
        raise _unknown(name, custom)
    else:
        _check_one_target(name, _entry_points(), custom)


def _check_one_target(name: str, entry_points: Mapping[str, importlib.metadata.EntryPoint],
                      custom: Mapping[str, str]) -> None:
    if name in entry_points and name in custom:  # (the entry point would run, theirs never)
        raise InvalidOption(f"processor {name} is an installed entry point "
                            f"({entry_points[name].value}): S3SPLIT_PROCESSORS names "
                            f"{custom[name]} as {name}: name it otherwise")


def _unknown(name: str, custom: Mapping[str, str]) -> InvalidOption:
    known = ", ".join(sorted(processor_names(custom)))
    return InvalidOption(f"unknown processor {name!r}; known: {known}")


def get_processor(name: str, env: Mapping[str, str] = os.environ) -> Processor:
    """A built-in processor made from its settings in ``env``, else an entry point of group
    ``s3split.processors``, else a custom one ``env`` names.

    An entry point or custom target is a callable ``(job, storage) -> ProcessResult`` (its
    ``extension`` attribute, default ``jsonl``, names the output's type) or a class of them.
    """
    custom = custom_processors(env)
    if name in BUILTINS:
        return _build(name, processor_settings(name, env))
    entry_points = _entry_points()
    _check_one_target(name, entry_points, custom)
    if name in entry_points:
        try:
            target = entry_points[name].load()
        except (Exception, SystemExit) as exc:  # (its import runs its code: any error)
            raise InvalidOption(f"processor {name} cannot be loaded: "
                                f"{type(exc).__name__}: {exc}") from None
        return _as_processor(target, name)
    if name in custom:
        return _as_processor(_load_target(custom[name]), custom[name])
    raise _unknown(name, custom)


def _as_processor(target: Any, origin: str) -> Processor:
    if isinstance(target, type):
        target = target()
    if not callable(target):
        raise InvalidOption(f"processor {origin} is not callable")
    if not hasattr(target, "extension"):
        return _FunctionProcessor(target)
    return cast(Processor, target)


@dataclass(frozen=True)
class _FunctionProcessor:
    function: Callable[[ChunkJob, Storage], ProcessResult]
    extension: str = "jsonl"

    def __call__(self, job: ChunkJob, storage: Storage) -> ProcessResult:
        return self.function(job, storage)


def _load_target(target: str) -> Any:
    module_name, _, attribute = target.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            found = getattr(found, part)
    except (Exception, SystemExit) as exc:  # (an import runs its code: any error)
        raise InvalidOption(f"processor {target} cannot be loaded: "
                            f"{type(exc).__name__}: {exc}") from None
    return found


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
