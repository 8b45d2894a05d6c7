"""A run: its settings, small enough to travel in the state machine's state, and where its
files are (``spec.layout``, see :mod:`s3split.pipeline.layout`)."""

from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from s3split.deployment import MAX_LANES, parse_tolerance
from s3split.errors import InvalidInput, InvalidOption
from s3split.pipeline.layout import RunLayout
from s3split.split.manifest import SplitSettings

# A processor is picked by one of these names, never by a module path such as ``module:function``.
PROCESSOR_NAME = r"^[A-Za-z0-9_.-]{1,64}$"
RUN_ID = r"^[A-Za-z0-9_-]{1,128}$"
# A codec name as Python spells one (looked up among the standard library's encodings only).
ENCODING_NAME = r"^[A-Za-z0-9_-]{1,40}$"
MAX_SKIP_LINES = 1_000_000
MAX_WAIT_SECONDS = 86_400


class RunSettings(BaseModel):
    """The shape a RunSpec must have when it comes from outside (run.json, a continuation,
    the state): strict types (``true`` is not a number), no unknown fields, numbers in range."""

    model_config = ConfigDict(extra="forbid", strict=True)

    run_id: str = Field(pattern=RUN_ID)
    source: str = Field(min_length=1)
    location: str = Field(min_length=1)
    chunk_size: int = Field(ge=1)
    lanes: int = Field(ge=1, le=MAX_LANES)
    wait_seconds: int = Field(ge=0, le=MAX_WAIT_SECONDS)
    processor: str = Field(pattern=PROCESSOR_NAME)
    tolerate: str
    chunk_rows: int | None = Field(default=None, ge=1)
    header: bool = True
    delimiter: str | None = Field(default=None, min_length=1, max_length=1)
    quotechar: str = Field(default='"', min_length=1, max_length=1)
    strict: bool = False
    encoding: str | None = Field(default=None, pattern=ENCODING_NAME)
    skip_lines: int = Field(default=0, ge=0, le=MAX_SKIP_LINES)

    @field_validator("tolerate")
    @classmethod
    def _tolerance(cls, value: str) -> str:
        try:
            parse_tolerance(value)
        except InvalidOption as exc:
            raise ValueError(str(exc)) from None
        return value


def validation_problems(exc: ValidationError, prefix: str = "") -> str:
    """``field: what is wrong`` for each problem pydantic found, ``; ``-separated."""
    def name(loc: tuple[int | str, ...]) -> str:
        return ".".join(map(str, (prefix, *loc) if prefix else loc)) or "the document"

    return "; ".join(f"{name(e['loc'])}: {e['msg']}" for e in exc.errors())


M = TypeVar("M", bound=BaseModel)


def parse_event(event: Any, model: type[M]) -> M:
    """Validate a task's event; problems become one InvalidInput message. (pydantic itself,
    not Powertools' parser: the functions' cold starts need not import it.)"""
    try:
        return model.model_validate(event)
    except ValidationError as exc:
        raise InvalidInput(f"invalid execution input: {validation_problems(exc)}") from None


@dataclass(frozen=True)
class RunSpec:
    run_id: str
    source: str
    location: str
    chunk_size: int
    lanes: int
    wait_seconds: int
    processor: str
    tolerate: str
    # How to read the source (as `s3split split` takes them); chunk_rows replaces chunk_size.
    chunk_rows: int | None = None
    header: bool = True
    delimiter: str | None = None  # None: a sep= line, else detected (split.sniff)
    quotechar: str = '"'
    strict: bool = False
    encoding: str | None = None  # None: UTF-8 (or UTF-16/32 by a byte order mark)
    skip_lines: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str = "run settings", field: str = "") -> "RunSpec":
        """Validated (see ``RunSettings``): InvalidInput naming ``where`` and each bad field."""
        try:
            settings = RunSettings.model_validate(data)
        except ValidationError as exc:
            raise InvalidInput(f"invalid {where}: {validation_problems(exc, field)}") from None
        return cls(**settings.model_dump())

    @property
    def split_settings(self) -> SplitSettings:
        return SplitSettings(chunk_size=None if self.chunk_rows else self.chunk_size,
                             chunk_rows=self.chunk_rows, header=self.header,
                             delimiter=self.delimiter, quotechar=self.quotechar,
                             strict=self.strict, encoding=self.encoding,
                             skip_lines=self.skip_lines)

    @property
    def layout(self) -> RunLayout:
        return RunLayout(self.location)
