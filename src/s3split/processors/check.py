"""Plan's check of the processor a run names and of the configuration that processor needs.

A configuration mistake (an unknown processor, ``validate`` without a usable schema,
``dynamodb`` without a table, an unreadable setting of the processor or ``S3SPLIT_PROCESSORS``)
would otherwise surface only in the workers, once per chunk, after the whole source was split.
Plan reads the settings the worker reads, as the worker reads them: those the run's processor
declares (processors/settings.py) and ``S3SPLIT_PROCESSORS`` (the template gives the splitter
function every processor setting too, read-only: it grants no access), and fails
``InvalidInput`` before anything is locked, split or written.

A processor is checked by name only: a custom one (an entry point or ``S3SPLIT_PROCESSORS``)
is not imported here, so no user code runs in the splitter; whether it loads is the worker's
to find out.
"""

import os
from collections.abc import Mapping

from s3split.errors import InvalidInput, InvalidOption
from s3split.processors.registry import check_known, custom_processors, processor_settings
from s3split.processors.settings import Settings


def check_processor(name: str, env: Mapping[str, str] = os.environ) -> Settings:
    """The values of processor ``name``'s settings in ``env``, the deployment's; InvalidInput
    naming what is wrong when the processor cannot run with them."""
    try:
        custom = custom_processors(env)
        settings = processor_settings(name, env)
    except InvalidOption as exc:
        raise InvalidInput(f"invalid processor configuration: {exc}") from None
    try:
        check_known(name, settings, custom)
    except InvalidOption as exc:
        raise InvalidInput(f"invalid execution input: processor: {exc}") from None
    return settings
