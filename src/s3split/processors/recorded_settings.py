"""The settings a run records so that its resume runs with them.

Plan records, under the run's location (``RunLayout.processor``), the settings the run's
built-in processor declares as recorded (``Setting.recorded_as``, processors/settings.py:
validate and parquet: the schema; dynamodb: the table and the column types; sql: the query,
one given as a file recorded as its text, and the output format), as checked: a schema given
as a file is recorded as its document. ``s3split run --resume`` gives the workers each
recorded setting the user's environment does not set again, so a resume without
``S3SPLIT_SCHEMA`` uses the run's schema, and one with it (a fixed schema) uses the new one,
which Plan then records. On AWS the deployment's settings apply: only the local CLI reads the
record.

Settings that choose where data goes (``Setting.destination``: the DynamoDB table) are never
taken from the record: whoever can write a shared run location could point the user's next
resume at another table. The user's environment sets them again; the record only says which
one to set.

Only data is recorded, never code: a custom processor's ``S3SPLIT_PROCESSORS`` entry is for
the user's environment to give again, so a record in a shared location cannot make the CLI
import anything; a record holds only settings the run's (built-in) processor declares, each of
the JSON type it is recorded as, so a recorded schema is always a document, never a path to
read, and never a reference (``ssm:NAME``) to read one from.
"""

import json
from collections.abc import Mapping
from typing import Any

from s3split.errors import InvalidInput, InvalidOption
from s3split.processors.registry import declared_settings
from s3split.processors.settings import SSM_PREFIX, Setting, Settings


def record(settings: Settings) -> dict[str, Any]:
    """What a run records of its processor's ``settings``: each recorded one that is set."""
    recorded: dict[str, Any] = {}
    for setting in settings.declared:
        value = settings.get(setting)
        if setting.recorded_as is None or not value:
            continue
        if not isinstance(value, setting.recorded_as):
            raise TypeError(f"{setting.variable} is parsed as {type(value).__name__}, "
                            f"declared as recorded as {setting.recorded_as.__name__}")
        recorded[setting.variable] = value
    return recorded


def resume_environment(document: Any, where: str, processor: str,
                       env: Mapping[str, str]) -> dict[str, str]:
    """The settings recorded in ``document`` (read from ``where``) for a run of ``processor``
    that ``env``, the user's environment, does not set again, as environment variables checked
    as the worker will read them; InvalidInput naming ``where`` and what is wrong."""
    if not isinstance(document, dict):
        raise InvalidInput(f"{where}: expected a JSON object of processor settings")
    recorded = {setting.variable: setting for setting in declared_settings(processor)
                if setting.recorded_as is not None}
    resumed: dict[str, str] = {}
    for variable, value in document.items():
        setting = recorded.get(variable)
        if setting is None:
            raise InvalidInput(f"{where}: {variable!r} is not a processor setting a run of "
                               f"{processor} records; expected: {', '.join(recorded) or 'none'}")
        if setting.is_set(env):
            continue  # set again by the user: theirs applies (a fixed schema, say)
        resumed[variable] = _as_variable(setting, value, where)
    return resumed


def _as_variable(setting: Setting[Any], value: Any, where: str) -> str:
    """A recorded ``value`` as its variable's text, checked as the worker will read it."""
    kind = setting.recorded_as
    if kind is None or not isinstance(value, kind) or not value:
        what = "a JSON object" if kind is dict else "a non-empty string"
        raise InvalidInput(f"{where}: {setting.variable}: expected {what}, got {value!r:.80}")
    if setting.destination:
        raise InvalidInput(f"{where} says the run wrote with {setting.variable}={value!r:.80}; "
                           "a resume takes where it writes only from you: set "
                           f"{setting.variable} (to that or another value) and resume again")
    text = value if isinstance(value, str) else json.dumps(value)
    if setting.from_ssm and text.startswith(SSM_PREFIX):
        raise InvalidInput(f"{where}: {setting.variable}: expected the value itself, got a "
                           f"reference to one: {text!r:.80}")
    try:
        setting.parsed(text)
    except InvalidOption as exc:
        raise InvalidInput(f"{where}: {exc}") from None
    return text
