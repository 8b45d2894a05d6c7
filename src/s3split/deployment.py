"""A deployment's settings (``Deployment``): where runs may read and write and the defaults of
a run, read from the environment only, never from an event; and the bounds a run's own
settings keep (lanes, tolerance). A processor's settings are its own module's
(processors/settings.py)."""

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from s3split.errors import InvalidOption
from s3split.sizes import parse_size

MAX_LANES = 40  # an inline Map's practical concurrency ceiling
# (int() refuses over 4,300 digits with a ValueError; no run has 10**18 chunks or rows)
_TOLERANCE = re.compile(r"([0-9]{1,18})|([0-9]{1,3}(?:\.[0-9]*)?|\.[0-9]+)%")


@dataclass(frozen=True)
class Deployment:
    """Where runs may read and write, and the defaults for a run."""

    work_location: str = "s3split-out"
    allowed_buckets: frozenset[str] = field(default_factory=frozenset)
    allow_local: bool = False
    chunk_size: int = 64 * 1024 * 1024
    lanes: int = 2
    wait_seconds: int = 0
    processor: str = "jsonl"
    tolerate: str = "0"
    # History events one execution may spend on lanes before it continues as new (limit 25,000).
    event_budget: int = 20_000
    # Set by the local engine: the process whose life a run's lock is tied to.
    engine_pid: int | None = None
    # Set by the local engine only (``s3split run --out``): a start input may name its run
    # location. A deployment on AWS never sets it: there a run's location is derived from its
    # source under ``work_location``, and an input naming one is refused.
    run_from_input: bool = False
    # The range split on the state machine (pipeline.ranges): sources of at least this many
    # bytes (uncompressed, split by size) are scanned in ranges of ``range_size`` by a Map of
    # ``range_concurrency`` tasks at a time, and their chunks written ``assemble_chunks`` a task.
    range_split_from: int = 1024 ** 3
    range_size: int = 256 * 1024 ** 2
    range_concurrency: int = 8  # with 2 lanes, within a new account's concurrency of 10
    assemble_chunks: int = 16

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "Deployment":
        defaults = cls()
        buckets = env.get("S3SPLIT_ALLOWED_BUCKETS", "")
        return cls(
            work_location=env.get("S3SPLIT_WORK_LOCATION", defaults.work_location),
            allowed_buckets=frozenset(b.strip() for b in buckets.split(",") if b.strip()),
            allow_local=env.get("S3SPLIT_ALLOW_LOCAL", "") == "1",
            chunk_size=parse_size(env.get("S3SPLIT_CHUNK_SIZE", str(defaults.chunk_size))),
            lanes=int(env.get("S3SPLIT_LANES", defaults.lanes)),
            wait_seconds=int(env.get("S3SPLIT_WAIT_SECONDS", defaults.wait_seconds)),
            processor=env.get("S3SPLIT_PROCESSOR", defaults.processor),
            tolerate=env.get("S3SPLIT_TOLERATE", defaults.tolerate),
            event_budget=int(env.get("S3SPLIT_EVENT_BUDGET", defaults.event_budget)),
            engine_pid=int(env["S3SPLIT_ENGINE_PID"]) if env.get("S3SPLIT_ENGINE_PID") else None,
            run_from_input=env.get("S3SPLIT_RUN_FROM_INPUT", "") == "1",
            range_split_from=parse_size(env.get("S3SPLIT_RANGE_SPLIT_FROM",
                                                str(defaults.range_split_from))),
            range_size=parse_size(env.get("S3SPLIT_RANGE_SIZE", str(defaults.range_size))),
            range_concurrency=_at_least_1("S3SPLIT_RANGE_CONCURRENCY", int(
                env.get("S3SPLIT_RANGE_CONCURRENCY", defaults.range_concurrency))),
            assemble_chunks=_at_least_1("S3SPLIT_ASSEMBLE_CHUNKS", int(
                env.get("S3SPLIT_ASSEMBLE_CHUNKS", defaults.assemble_chunks))),
        )


def _at_least_1(name: str, value: int) -> int:
    if value < 1:
        raise InvalidOption(f"invalid {name} {value}: must be at least 1")
    return value


def parse_tolerance(text: str) -> tuple[int | None, float | None]:
    """``"3"`` -> (3, None): three failed chunks; ``"5%"`` -> (None, 5.0). ASCII digits only:
    int() and float() would also take ``1_000``, `` 3``, ``-0``, ``1e2`` and other scripts'
    digits."""
    if match := _TOLERANCE.fullmatch(text):
        count, percent = match.groups()
        if count is not None:
            return int(count), None
        if float(percent) <= 100:
            return None, float(percent)
    raise InvalidOption(f"invalid tolerance {text!r}: expected a count such as 3 or a "
                        "percentage such as 5%")
