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

import os
from collections.abc import Mapping

from s3split.errors import InvalidInput, InvalidOption
from s3split.processors.registry import ProcessorConfig, check_known


def check_processor(name: str, env: Mapping[str, str] = os.environ) -> ProcessorConfig:
    """The deployment's processor configuration in ``env``; ``InvalidInput`` naming what is
    wrong when processor ``name`` cannot run with it."""
    try:
        config = ProcessorConfig.from_env(env)
    except InvalidOption as exc:
        raise InvalidInput(f"invalid processor configuration: {exc}") from None
    try:
        check_known(name, config)
    except InvalidOption as exc:
        raise InvalidInput(f"invalid execution input: processor: {exc}") from None
    return config
