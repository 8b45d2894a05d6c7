"""A run's processor settings, recorded so that its resume runs with them.

Plan records, under the run's location (``RunLayout.processor``), the settings the run's
built-in processor reads (validate and parquet: the schema; dynamodb: the table and the column
types; sql: the query, one given as a file recorded as its text, and the output format),
as checked: a schema given as a file is recorded as its document. ``s3split run --resume``
gives the workers each recorded setting the user's environment does not set again, so a
resume without ``S3SPLIT_SCHEMA`` uses the run's schema, and one with it (a fixed schema)
uses the new one, which Plan then records. On AWS the deployment's settings apply: only the
local CLI reads the record.

Settings that choose where data goes (the DynamoDB table) are never taken from the record:
whoever can write a shared run location could point the user's next resume at another
table. The user's environment sets them again; the record only says which one to set.

Only data is recorded, never code: a custom processor's ``S3SPLIT_PROCESSORS`` entry is for
the user's environment to give again, so a record in a shared location cannot make the CLI
import anything, and a recorded schema is always a document, never a path to read.
"""

import json
from collections.abc import Mapping
from typing import Any

from s3split.errors import InvalidInput, InvalidOption
from s3split.processors.registry import BUILTINS, ProcessorConfig

# The settings a record may hold, and the JSON type each is recorded as.
RECORDED: dict[str, type] = {
    "S3SPLIT_SCHEMA": dict,
    "S3SPLIT_DYNAMODB_TABLE": str,
    "S3SPLIT_DYNAMODB_TYPES": dict,
    "S3SPLIT_SQL": str,
    "S3SPLIT_SQL_FORMAT": str,
}
DESTINATIONS = ("S3SPLIT_DYNAMODB_TABLE",)  # set by the user again, never from a record


def record(name: str, config: ProcessorConfig) -> dict[str, Any]:
    """The settings processor ``name`` reads from ``config`` (those that are set)."""
    builtin = BUILTINS.get(name)
    values: dict[str, Any] = {
        "S3SPLIT_SCHEMA": config.schema,
        "S3SPLIT_DYNAMODB_TABLE": config.dynamodb_table,
        "S3SPLIT_DYNAMODB_TYPES": config.dynamodb_types or None,
        "S3SPLIT_SQL": config.sql,
        "S3SPLIT_SQL_FORMAT": config.sql_format,
    }
    names = builtin.settings if builtin is not None else ()
    return {variable: values[variable] for variable in names if values[variable] is not None}


def resume_environment(document: Any, where: str, env: Mapping[str, str]) -> dict[str, str]:
    """The settings recorded in ``document`` (read from ``where``) that ``env``, the user's
    environment, does not set again, as environment variables checked as the worker will
    read them; InvalidInput naming ``where`` and what is wrong."""
    if not isinstance(document, dict):
        raise InvalidInput(f"{where}: expected a JSON object of processor settings")
    resumed: dict[str, str] = {}
    for variable, value in document.items():
        kind = RECORDED.get(variable)
        if kind is None:
            raise InvalidInput(f"{where}: {variable!r} is not a processor setting a run "
                               f"records; expected: {', '.join(RECORDED)}")
        if env.get(variable, "").strip() or (
                variable == "S3SPLIT_SQL" and env.get("S3SPLIT_SQL_FILE", "").strip()):
            continue  # set again by the user: theirs applies (a fixed schema, say)
        if not isinstance(value, kind) or not value:
            what = "a JSON object" if kind is dict else "a non-empty string"
            raise InvalidInput(f"{where}: {variable}: expected {what}, got {value!r:.80}")
        if variable in DESTINATIONS:
            raise InvalidInput(f"{where} says the run wrote with {variable}={value!r:.80}; a "
                               "resume takes where it writes only from you: set "
                               f"{variable} (to that or another value) and resume again")
        resumed[variable] = value if isinstance(value, str) else json.dumps(value)
    try:
        ProcessorConfig.from_env(resumed)
    except InvalidOption as exc:
        raise InvalidInput(f"{where}: {exc}") from None
    return resumed
