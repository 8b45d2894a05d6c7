"""Speed-ups of moto's interpreter: the same behaviour, less CPU. None is needed for a run to
be right, so all can be switched off (``S3SPLIT_ENGINE_SPEEDUPS=off``) to tell a speed-up's
bug from moto's, and the suite passes either way (the tests of a speed-up itself are skipped).

* moto's AWS Batch task -> its forwarding of unmodelled integrations, so ``moto.ec2`` is
  never imported; see :func:`without_aws_batch_tasks` (process-wide, not undone).
* ``boto_client_for`` of Lambda and ``states`` tasks -> one cached client per region and
  service (:class:`~.routing.DirectLambda`, :class:`~.routing.DirectStates` in process); see
  :func:`_patch_client_cache`.
* ``parse`` of moto's JSONPath helpers -> parsed once per path; see ``_patch_json_path_cache``.
* ``AmazonStateLanguageParser.parse`` -> parsed once per definition; see
  ``_patch_definition_cache``.
* ``StateMachine._handle_name_input_idempotency`` -> looks the name up in an index; see
  ``_patch_name_lookup``.
* ``BaseExecutionWorkerCommunication.terminated`` -> also records the execution's end and
  wakes :func:`wait_for_end` (off: a follower looks every ``poll_s``); see
  ``_patch_execution_ends``.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
import threading
import types
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any
from unittest import mock

from s3split.engine import moto_internals as internals
from s3split.engine.routing import DirectLambda, DirectStates

SWITCH = "S3SPLIT_ENGINE_SPEEDUPS"


def enabled() -> bool:
    """Whether the speed-ups are on (``S3SPLIT_ENGINE_SPEEDUPS=off`` turns them off)."""
    return os.environ.get(SWITCH, "on").lower() not in ("off", "0", "false", "no")


def patch(stack: ExitStack) -> None:
    """Install every speed-up above on ``stack``, unless they are switched off."""
    if not enabled():
        return
    _patch_client_cache(stack)
    _patch_json_path_cache(stack)
    _patch_definition_cache(stack)
    _patch_execution_ends(stack)
    _patch_name_lookup(stack)


def without_aws_batch_tasks() -> None:
    """moto's parser imports its AWS Batch task, which imports ``moto.batch`` and with it
    ``moto.ec2`` (0.7 s of every ``s3split run``: EC2's instance types and every region's
    zones). The pipeline has no Batch task: a Batch task here is forwarded to the service as
    moto forwards the integrations it does not model. Process-wide, before the parser loads."""
    if not enabled() or internals.TASK_BATCH in sys.modules:
        return
    stand_in = types.ModuleType(internals.TASK_BATCH)
    stand_in.StateTaskServiceBatch = (  # type: ignore[attr-defined]
        importlib.import_module(internals.TASK_UNSUPPORTED).StateTaskServiceUnsupported)
    sys.modules[internals.TASK_BATCH] = stand_in


def _patch_client_cache(stack: ExitStack) -> None:
    """moto builds a new boto3 client for every Lambda task and every ``states:startExecution``
    (~15 ms, serialized on boto3's default session). Its ``boto_client_for`` ignores
    ``state_credentials`` and the clients carry no per-call state, so one client per region
    and service serves every task; in process (``mock_aws``), a Lambda task's is a
    :class:`DirectLambda` and a ``states`` task's a :class:`DirectStates`. (Not the S3
    ItemReader/ResultWriter's: once per Map, and their endpoint comes from the environment.)"""
    from moto.core.models import botocore_stubber

    for name in (internals.LAMBDA_EVAL, internals.TASK_SFN):
        module = importlib.import_module(name)

        @functools.cache
        def cached(region: str, service: str, intercepted: bool,
                   original: Callable[..., Any] = module.boto_client_for) -> Any:
            if intercepted and service == "lambda":
                return DirectLambda(region)  # (no boto3 client to build)
            client = original(region, service, None)
            if intercepted and service in ("stepfunctions", "states"):
                return DirectStates(region, client)
            return client

        def boto_client_for(region: str, service: str, state_credentials: Any = None,
                            cached: Callable[..., Any] = cached) -> Any:
            return cached(region, service, botocore_stubber.enabled)

        stack.enter_context(mock.patch.object(module, "boto_client_for", boto_client_for))


def _patch_json_path_cache(stack: ExitStack) -> None:
    """moto parses a JSONPath (``$.run``) each time a state reads one, and jsonpath-ng builds
    a new PLY parser for every parse (~1 ms): the same few paths, parsed once each. A parsed
    path holds no state of its own (``find``/``update`` work on the data they are given)."""
    for name in (internals.JSON_PATH, internals.RESULT_PATH):
        module = importlib.import_module(name)
        stack.enter_context(
            mock.patch.object(module, "parse", functools.lru_cache(maxsize=4096)(module.parse)))


def _patch_definition_cache(stack: ExitStack) -> None:
    """moto parses a definition with ANTLR when the state machine is created (to validate it)
    and again at every execution's start (0.15-0.3 s for the pipeline's): once per text. The
    parsed program is declarations only: each evaluation keeps its state in its own
    ``Environment`` (a Map's lanes already evaluate one program at once), under each
    component's ``heap_key``, which moto draws on first use: drawn here, before the program is
    shared, so two executions can never draw two keys for one component (one would then lose
    its Retry count). A definition that does not parse raises each time (``lru_cache`` keeps
    results, not exceptions). The cache outlives the patch: an engine started again in this
    process (a test file's, a second run) finds the programs parsed by the one before. It is
    keyed by the parser it parsed with too: the ``parse`` found at each install (one a test
    patched then serves that engine, not every engine the process starts after it)."""
    parser = importlib.import_module(internals.ASL_PARSER).AmazonStateLanguageParser
    original: Callable[[str], tuple[Any, Any]] = parser.parse
    if isinstance(original, functools.partial) and original.func is _parse_once:
        original = original.args[0]  # (an engine installed inside another)
    stack.enter_context(mock.patch.object(
        parser, "parse", staticmethod(functools.partial(_parse_once, original))))


@functools.lru_cache(maxsize=64)
def _parse_once(parse: Callable[[str], tuple[Any, Any]], definition: str) -> tuple[Any, Any]:
    program, tree = parse(definition)
    _draw_heap_keys(program)
    return program, tree


def _draw_heap_keys(program: Any) -> None:
    """Draw the ``heap_key`` of every component reachable from ``program`` (through plain
    components too: a program's ``States`` holds its states but evaluates nothing itself)."""
    from moto.stepfunctions.parser.asl.component.component import Component
    from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent

    seen: set[int] = set()
    pending: list[Any] = [program]
    while pending:
        node = pending.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, Component):
            if isinstance(node, EvalComponent):
                node.heap_key  # noqa: B018 (the property draws it)
            pending.extend(getattr(node, "__dict__", {}).values())
        elif isinstance(node, (list, tuple, set, frozenset)):
            pending.extend(node)
        elif isinstance(node, dict):
            pending.extend(node.values())


def _patch_name_lookup(stack: ExitStack) -> None:
    """Each start looks for an execution of the same name (AWS's idempotent start) by walking
    every execution of the state machine: quadratic in a batch's 5,000 starts (~5 s). The
    same check, given the one execution of that name (or none) from an index kept per list
    of executions (moto only appends to it; its snapshots of a state machine get a new one)."""
    from moto.stepfunctions.models import StateMachine

    original: Callable[..., Any] = StateMachine._handle_name_input_idempotency
    indexes: dict[int, tuple[list[Any], dict[str, Any], list[int]]] = {}  # id(list) -> index
    lock = threading.Lock()

    def by_name(executions: list[Any], name: str) -> Any:
        with lock:
            listed, index, counted = indexes.get(id(executions), (None, {}, [0]))
            if listed is not executions:
                listed, index, counted = executions, {}, [0]
                indexes[id(executions)] = (listed, index, counted)
            for execution in executions[counted[0]:]:
                index.setdefault(execution.name, execution)  # (the first, as moto's walk)
            counted[0] = len(executions)
            return index.get(name)

    def handle(self: Any, name: str, execution_input: str) -> Any:
        found = by_name(self.executions, name)
        return original(types.SimpleNamespace(executions=[found] if found else []), name,
                        execution_input)

    stack.enter_context(mock.patch.object(StateMachine, "_handle_name_input_idempotency",
                                          handle))
    stack.callback(indexes.clear)


_ends = threading.Condition()
_ended: dict[str, int] = {}  # execution ARN -> how many executions of that ARN have ended


def ends_of(execution_arn: str) -> int:
    """How many executions with this ARN have ended (an ARN is reused when a state machine is
    deleted and created again): what to give :func:`wait_for_end` before looking at one."""
    with _ends:
        return _ended.get(execution_arn, 0)


def wait_for_end(execution_arn: str, seen: int, timeout_s: float) -> bool:
    """Whether an execution with this ARN has ended since :func:`ends_of` returned ``seen``,
    waiting up to ``timeout_s`` for it: a follower wakes when its execution ends instead of
    asking moto every few milliseconds (each ``DescribeExecution`` costs ~2 ms of CPU through
    botocore and moto). A Ctrl-C interrupts the wait (on the main thread) as it would a sleep."""
    with _ends:
        return _ends.wait_for(lambda: _ended.get(execution_arn, 0) != seen, timeout=timeout_s)


def _patch_execution_ends(stack: ExitStack) -> None:
    worker_comm = importlib.import_module(internals.EXECUTION).BaseExecutionWorkerCommunication
    original = worker_comm.terminated

    def terminated(self: Any) -> None:
        try:
            original(self)  # (the execution's status and output are set by then)
        finally:
            with _ends:
                arn = self.execution.exec_arn
                _ended[arn] = _ended.get(arn, 0) + 1
                _ends.notify_all()

    stack.enter_context(mock.patch.object(worker_comm, "terminated", terminated))
    stack.callback(_ended.clear)
