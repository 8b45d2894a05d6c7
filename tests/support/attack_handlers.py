"""Handlers for tests/integration/test_attack_engine_speedups.py, run in the dispatcher's
worker processes (imported by name, like ``seam_handlers``)."""

from __future__ import annotations

import os
from typing import Any


def xray_settings(event: Any, context: Any) -> dict[str, Any]:
    """What the X-Ray SDK a handler's Tracer uses made of its ``AWS_XRAY_*`` environment."""
    from aws_xray_sdk.core import xray_recorder

    return {
        "environ": {k: v for k, v in os.environ.items() if k.startswith("AWS_XRAY_")},
        "context_missing": xray_recorder.context.context_missing,
        "service": xray_recorder.service,
    }
