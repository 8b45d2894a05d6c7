"""A processor's settings: each is an environment variable its module declares as a
``Setting`` and its class lists in ``settings``; the registry reads them for the processor a
run uses, never from an event.

A declaration says everything about its variable, so that adding one is one edit in the
processor's module (and the template's line that sets it on the functions):

- ``parse``: the variable's text (stripped; an empty variable is not set) to its value. It
  raises ``ValueError`` or ``InvalidOption`` saying what is wrong; the error names the
  variable. Plan's check reads the settings as the worker does (processors/check.py).
- ``recorded_as``: ``str`` or ``dict``: a run records the value (as that JSON type) so that
  its resume runs with it (processors/recorded_settings.py); None: never recorded.
- ``destination``: the value chooses where data goes (a DynamoDB table): recorded to say
  what to set, never taken from a record.
- ``from_ssm``: ``ssm:NAME`` reads SSM parameter NAME (a Lambda function's environment holds
  4 KB in all: the template keeps large settings there).
- ``file_variable``: another variable that names a file holding the text (set one of both).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from s3split.errors import InvalidOption
from s3split.storage import json_document as parse_json

T = TypeVar("T")

SSM_PREFIX = "ssm:"
SSM_MAX_AGE_S = 60.0  # a changed parameter reaches warm functions within this long
_ssm_cache: dict[str, tuple[float, str]] = {}


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One environment variable a processor reads (see the module's docstring)."""

    variable: str
    parse: Callable[[str], T]
    recorded_as: type[str] | type[dict[str, Any]] | None = None
    destination: bool = False
    from_ssm: bool = False
    file_variable: str | None = None

    def __post_init__(self) -> None:
        if self.destination and self.recorded_as is None:
            raise ValueError(f"{self.variable}: a destination is recorded, to be named on resume")

    def read(self, env: Mapping[str, str]) -> T | None:
        """The value in ``env`` (None: not set); InvalidOption naming the variable."""
        text = self._text(env)
        return None if text is None else self.parsed(text)

    def parsed(self, text: str) -> T:
        """``text`` as this setting's value; InvalidOption naming the variable."""
        try:
            return self.parse(variable_text(text))
        except (ValueError, InvalidOption) as exc:
            raise InvalidOption(f"{self.variable}: {exc}") from None

    def is_set(self, env: Mapping[str, str]) -> bool:
        """Whether ``env`` gives this setting (its variable or its file's)."""
        names = (self.variable, self.file_variable) if self.file_variable else (self.variable,)
        return any(env.get(name, "").strip() for name in names)

    def _text(self, env: Mapping[str, str]) -> str | None:
        value = env.get(self.variable, "").strip()
        path = env.get(self.file_variable, "").strip() if self.file_variable else ""
        if value and path:
            raise InvalidOption(f"{self.variable} and {self.file_variable} are both set: set one")
        if path:
            try:
                with open(path, encoding="utf-8") as f:
                    value = f.read().strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise InvalidOption(f"{self.file_variable}: cannot read {path}: {exc}") from None
        elif self.from_ssm and value.startswith(SSM_PREFIX):
            value = _ssm_parameter(self.variable, value.removeprefix(SSM_PREFIX))
        return value or None


class Settings:
    """The values a processor's declared settings have in one environment."""

    def __init__(self, declared: Iterable[Setting[Any]], env: Mapping[str, str]) -> None:
        self.declared = tuple(declared)
        self._values = {setting.variable: setting.read(env) for setting in self.declared}

    def get(self, setting: Setting[T]) -> T | None:
        """The value of ``setting`` (None: not set); KeyError if the processor does not
        declare it."""
        value: T | None = self._values[setting.variable]
        return value

    def required(self, setting: Setting[T], needed: str) -> T:
        """The value of ``setting``; InvalidOption ``needed`` (what to set) when it is not set."""
        value = self.get(setting)
        if value is None:
            raise InvalidOption(needed)
        return value


def variable_text(text: str) -> str:
    """``text`` when an environment variable can hold it (a resume passes a recorded value
    on as one; a worker's environment cannot be set with a NUL) and it is UTF-8 text (an
    environment's invalid UTF-8 reaches Python as lone surrogates); InvalidOption if not."""
    if "\x00" in text:
        raise InvalidOption(f"a NUL byte at character {text.index(chr(0))}")
    _check_utf8(text)
    return text


def _check_utf8(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidOption(f"not UTF-8 text at character {exc.start}") from None


def json_document(value: str, where: str = "not valid JSON") -> Any:
    """A JSON value whose strings are UTF-8 text; InvalidOption says what is wrong with it
    (``where`` first)."""
    try:
        document = parse_json(value)
    except ValueError as exc:
        raise InvalidOption(f"{where}: {exc}") from None
    try:
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # (no UTF-8 text can hold it: a run could not record it)
        raise InvalidOption(f"{where}: a string escapes a lone surrogate (\\ud800 ..), "
                            "not UTF-8 text") from None
    return document


def json_object_or_file(value: str) -> dict[str, Any]:
    """A JSON object given inline (it starts with ``{``) or as the path of a file holding one."""
    if value.startswith("{"):
        document = json_document(value)
    else:
        try:
            with open(value, encoding="utf-8") as f:
                content = f.read()
        except OSError as exc:
            raise InvalidOption(f"cannot read {value}: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise InvalidOption(f"cannot read {value}: {exc}") from None
        document = json_document(content, f"file {value} is not valid JSON")
    if not isinstance(document, dict):
        raise InvalidOption("expected a JSON object")
    return document


def _ssm_parameter(variable: str, parameter: str) -> str:
    now = time.monotonic()
    cached = _ssm_cache.get(parameter)
    if cached is None or now - cached[0] > SSM_MAX_AGE_S:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            found = boto3.client("ssm").get_parameter(Name=parameter)["Parameter"]["Value"]
        except (ClientError, BotoCoreError) as exc:
            raise InvalidOption(f"{variable}: cannot read SSM parameter {parameter}: "
                                f"{exc}") from None
        cached = _ssm_cache[parameter] = (now, found.strip())
    return cached[1]
