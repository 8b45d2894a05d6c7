"""Plan's check of the processor a run names and of the configuration that processor needs.

A configuration mistake (an unknown processor, ``validate`` without a usable schema,
``dynamodb`` without a table, an unreadable ``S3SPLIT_*`` variable) would otherwise surface
only in the workers, once per chunk, after the whole source was split. Plan reads the same
deployment variables the worker does (the template gives the splitter function the
processor configuration too, read-only: it grants no access) and fails ``InvalidInput``
before anything is locked, split or written.

A processor is checked by name only: a custom one (an entry point or ``S3SPLIT_PROCESSORS``)
is not imported here, so no user code runs in the splitter; whether it loads is the worker's
to find out.
"""

import importlib.metadata
import os
from collections.abc import Mapping

from s3split.errors import InvalidInput, InvalidOption
from s3split.processors import BUILTINS, ENTRY_POINT_GROUP, ProcessorConfig


def check_processor(name: str, env: Mapping[str, str] = os.environ) -> None:
    """``InvalidInput`` naming what is wrong when processor ``name`` cannot run with the
    deployment's configuration in ``env``."""
    try:
        config = ProcessorConfig.from_env(env)
    except InvalidOption as exc:
        raise InvalidInput(f"invalid processor configuration: {exc}") from None
    known = {*BUILTINS, *config.custom, *_entry_point_names()}
    if name not in known:
        raise InvalidInput(f"invalid execution input: processor: unknown processor {name!r}; "
                           f"known: {', '.join(sorted(known))}")
    if name == "validate" and config.schema is None:
        raise InvalidInput("invalid execution input: processor: validate needs a schema: set "
                           "S3SPLIT_SCHEMA to the schema's JSON or the path of a JSON file")
    if name == "dynamodb" and config.dynamodb_table is None:
        raise InvalidInput("invalid execution input: processor: dynamodb needs a table: set "
                           "S3SPLIT_DYNAMODB_TABLE")


def _entry_point_names() -> set[str]:
    return {ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
