"""The splitter function's handler: one table of actions, each wrapped once for errors."""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError

from s3split.errors import TransientError
from s3split.storage import Storage

ROOT = Path(__file__).resolve().parents[2]


def _tasks(states: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for state in states.values():
        if state.get("Type") == "Task":
            yield state
        for branch in state.get("Branches", []):
            yield from _tasks(branch["States"])
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            yield from _tasks(processor["States"])


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ModuleType:
    monkeypatch.setenv("S3SPLIT_WORK_LOCATION", str(tmp_path))
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.syspath_prepend(str(ROOT))
    return importlib.import_module("functions.splitter.app")


def test_every_action_the_state_machine_sends_has_one_entry(app: ModuleType) -> None:
    definition = json.loads((ROOT / "statemachine" / "pipeline.asl.json").read_text())
    sent = {task["Parameters"]["action"] for task in _tasks(definition["States"])
            if task.get("Resource") == "${SplitterFunctionArn}"}
    assert sent == set(app.ACTIONS)
    accepted = app.SplitterEvent.model_fields["action"].annotation.__args__
    assert set(accepted) == set(app.ACTIONS)


class _Context:
    function_name = "s3split-splitter"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:s3split-splitter"
    aws_request_id = "r"

    def get_remaining_time_in_millis(self) -> int:
        return 600_000


@pytest.mark.parametrize("action", ["summarize", "release", "split", "plan_ranges",
                                    "scan_range", "record_range_failure", "combine",
                                    "assemble", "finish_split"])
def test_a_dropped_connection_in_any_action_is_a_transient_error(
        app: ModuleType, action: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every action's Retry lists TransientError, so every action must raise it for a
    connection that drops (Summarize once let the raw botocore error through)."""
    def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise EndpointConnectionError(endpoint_url="https://s3.us-east-1.amazonaws.com")

    for method in ("read_json", "read_json_version", "exists", "list", "stat", "open_read"):
        if hasattr(Storage, method):
            monkeypatch.setattr(Storage, method, unreachable)
    location = str(tmp_path / "run")
    run = {"source": str(tmp_path / "in.csv"), "location": location, "run_id": "r1",
           "chunk_size": 1024, "lanes": 2, "wait_seconds": 0, "processor": "jsonl",
           "tolerate": "0"}
    event = {"action": action, "execution": "arn:aws:states:us-east-1:1:execution:m:e",
             "run": run, "lease": "arn:aws:states:us-east-1:1:execution:m:e", "lanes": []}
    with pytest.raises(TransientError, match=f"{action} step"):
        app.lambda_handler(event, _Context())
