"""Make moto's Step Functions interpreter fail where AWS fails: AWS's quotas and error rules.

Installed by ``moto_seam.install`` after the routing and the fixes (so the Lambda and
StartExecution wrappers here see theirs). Patches, all undone on exit:

* ``EventManager.add_event``: counts each execution's history events. The one that would be
  event :attr:`Quotas.history_events` is replaced by ``ExecutionFailed`` (``States.Runtime``)
  unless it is ``ExecutionSucceeded``; the execution stops there and later events are
  dropped. A state entered or a task scheduled after the cut is unwound
  (:class:`HistoryLimitReached`), so no Lambda runs after it. ``Environment.__init__``
  ties each history to its execution's environment and ``Environment.set_error`` keeps
  that failure as the execution's result.
* ``DistributedItemProcessorWorker._eval_job``: each child of a Distributed Map gets a history
  of its own, as each is an execution of its own on AWS (moto gives one Map run's children a
  single history, so its limit would drop children once they add up to 25,000 events).
* ``ErrorEqualsDecl._eval_body``: ``States.ALL`` does not match ``States.DataLimitExceeded``
  (a terminal error that only its name catches) and nothing matches ``States.Runtime``, named or
  not, in a Retry or a Catch: AWS fails the execution (Step Functions developer guide, "Error
  handling in Step Functions"; moto lets both be caught).
* ``StateTaskLambda._from_error``, ``StateTaskService._from_error``: a JSONPath in a task's
  Parameters that matches nothing is ``States.Runtime``, as on AWS (moto reports the Lambda
  task failing with ``Exception``, which a ``States.ALL`` catch took).
* ``ComparisonVariable._eval_body``: a Choice rule whose ``Variable`` matches nothing fails the
  execution with ``States.Runtime``, unless the rule is ``IsPresent`` (Step Functions developer
  guide, "Choice workflow state": the ``IsPresent`` rule guards a comparison of a key that might
  not exist; moto compares the missing value, false, and takes the ``Default``).
* ``DistributedIterationComponent._map_run``: a Distributed Map fails with
  ``States.ExceedToleratedFailureThreshold`` once more children failed (or timed out) than
  its ``ToleratedFailureCount``/``ToleratedFailurePercentage`` allow (none given: any one;
  both given: either exceeded); moto counts failed children and goes on.
* ``ResourceEvalS3._handle_put_object`` (a Distributed Map's ResultWriter): the children's
  results as AWS writes them next to the manifest, ``SUCCEEDED_0.json`` and ``FAILED_0.json``
  (each an array of the child executions, with ``Output`` or ``Error``/``Cause``), listed in
  the manifest's ``ResultFiles``; moto writes the manifest with no result files.
  ``_eval_job`` (above) keeps each child's outcome for it.
* ``is_within_size_quota`` (where the state, Lambda task and service task modules use it):
  :attr:`Quotas.payload_bytes`, inclusive, as AWS documents it (moto refuses exactly 256 KiB).
* ``StepFunctionsParserBackend.start_execution``: ``InvalidName`` and ``InvalidExecutionInput``
  as AWS answers them (moto checks neither the name nor the size).
* ``LambdaSimpleBackend.invoke``: ``TooManyRequestsException`` (429; Step Functions'
  ``Lambda.TooManyRequestsException``) for an invocation beyond
  :attr:`Quotas.lambda_concurrency` running at once (the account's concurrency; one queued for
  a worker counts as running, as on AWS); ``RequestTooLargeException`` past
  :attr:`Quotas.lambda_request_bytes`, and ``Function.ResponseSizeTooLarge`` past
  :attr:`Quotas.lambda_response_bytes`.
* ``StepFunctionResponse.get_execution_history``: a page at a time as AWS answers
  (``maxResults`` 100 by default, at most 1,000; ``nextToken``; ``reverseOrder``); moto
  returns the whole history, through a serializer that takes ~0.2 ms an event.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import re
import threading
from contextlib import ExitStack
from datetime import UTC, date, datetime
from typing import Any, Final
from unittest import mock

from s3split.engine import moto_internals as internals
from s3split.engine.quotas import (
    DATA_LIMIT_ERROR,
    HISTORY_LIMIT_ERROR,
    RESPONSE_TOO_LARGE_ERROR,
    Quotas,
)
from s3split.engine.routing import service_error

_WORK_STARTS: Final = ("StateEntered", "Scheduled")
"""Events that come before a state or task does anything: past the history limit, adding one
unwinds the state, so nothing runs after the cut; any other event is dropped."""
_CATCH_ALL_EXCLUDES: Final = frozenset({DATA_LIMIT_ERROR})
_UNCATCHABLE: Final = "States.Runtime"  # (also the history limit's error)


class HistoryLimitReached(Exception):
    """Unwinds a state that tried to add an event after its execution hit the history limit."""


def patch(stack: ExitStack, quotas: Quotas) -> None:
    """Install every patch above on ``stack``."""
    _patch_history_limit(stack, quotas)
    _patch_distributed_children(stack)
    _patch_catch_all(stack)
    _patch_path_errors(stack)
    _patch_choice_paths(stack)
    _patch_tolerated_failures(stack)
    _patch_result_files(stack)
    _patch_payload_quota(stack, quotas)
    _patch_start_execution(stack, quotas)
    _patch_lambda_sizes(stack, quotas)
    _patch_execution_history(stack)


_history_lock = threading.Lock()


def _patch_history_limit(stack: ExitStack, quotas: Quotas) -> None:
    from moto.stepfunctions.parser.api import ExecutionFailedEventDetails, HistoryEventType
    from moto.stepfunctions.parser.asl.eval.environment import Environment
    from moto.stepfunctions.parser.asl.eval.event.event_manager import EventManager

    original_add, original_init = EventManager.add_event, Environment.__init__
    original_set_error = Environment.set_error
    limit, cause = quotas.history_events, quotas.history_cause()

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        # A frame (Map iteration, Parallel branch) gets its parent's manager after this.
        self.event_manager._s3split_env = self

    def set_error(self: Any, error: Any) -> None:
        with self._state_mutex:
            if not getattr(self, "_s3split_final", False):
                original_set_error(self, error)

    def add_event(self: Any, context: Any, event_type: Any, event_details: Any = None,
                  timestamp: Any = None, update_source_event_id: bool = True) -> int:
        with _history_lock:
            kind = getattr(event_type, "value", event_type)
            closed = getattr(self, "_s3split_closed", False)
            count = last = len(self._history_event_list)
            fits = count < limit - 1 or (count == limit - 1
                                         and kind == "ExecutionSucceeded")
            if not closed and fits:
                return original_add(self, context, event_type, event_details, timestamp,
                                    update_source_event_id)
            details = ExecutionFailedEventDetails(error=HISTORY_LIMIT_ERROR, cause=cause)
            if not closed:
                self._s3split_closed = True
                last = original_add(self, context, HistoryEventType.ExecutionFailed,
                                    internals.event_details(executionFailedEventDetails=details))
        env = getattr(self, "_s3split_env", None)
        if not closed and env is not None:
            with env._state_mutex:
                original_set_error(env, details)
                env._s3split_final = True
        if str(kind).endswith(_WORK_STARTS):
            raise HistoryLimitReached(cause)
        return last  # bookkeeping after the cut: dropped (raising would kill moto's threads)

    stack.enter_context(mock.patch.object(Environment, "__init__", init))
    stack.enter_context(mock.patch.object(Environment, "set_error", set_error))
    stack.enter_context(mock.patch.object(EventManager, "add_event", add_event))


def _patch_distributed_children(stack: ExitStack) -> None:
    from moto.stepfunctions.parser.asl.eval.event.event_manager import EventManager

    worker = importlib.import_module(internals.DISTRIBUTED_WORKER).DistributedItemProcessorWorker
    original = worker._eval_job

    def eval_job(self: Any, env: Any, job: Any) -> None:
        env.event_manager = EventManager()  # the job's own frame: its child execution
        env.event_manager._s3split_env = env  # past its limit, the child fails (not the Map)
        started = datetime.now(UTC).isoformat()
        original(self, env, job)
        record = self._map_run_record
        ended = env.program_state()
        error = getattr(ended, "error", None) if job.job_output is None else None
        child = {"Index": job.job_index, "Input": json.dumps(job.job_input),
                 "StartDate": started, "StopDate": datetime.now(UTC).isoformat(),
                 "ExecutionArn": record.map_run_arn.replace(":mapRun:", ":execution:")
                 + f":{job.job_index:05d}"}
        if job.job_output is not None:
            child |= {"Status": "SUCCEEDED", "Output": json.dumps(job.job_output)}
        else:
            child |= {"Status": "FAILED", "Error": (error or {}).get("error", "States.Runtime"),
                      "Cause": (error or {}).get("cause", "")}
        with _history_lock:
            record.__dict__.setdefault("_s3split_children", []).append(child)

    stack.enter_context(mock.patch.object(worker, "_eval_job", eval_job))


def _patch_catch_all(stack: ExitStack) -> None:
    module = importlib.import_module(internals.ERROR_EQUALS)
    decl = module.ErrorEqualsDecl
    original = decl._eval_body

    def eval_body(self: Any, env: Any) -> None:
        error_name = env.stack[-1]
        name = getattr(error_name, "error_name", None)
        if name == _UNCATCHABLE:  # no Retry or Catch takes it
            env.stack.pop()
            env.stack.append(False)
            return
        if name in _CATCH_ALL_EXCLUDES and decl._STATE_ALL_ERROR in self.error_names:
            env.stack.pop()
            env.stack.append(error_name in self.error_names)
            return
        original(self, env)

    stack.enter_context(mock.patch.object(decl, "_eval_body", eval_body))


def _patch_path_errors(stack: ExitStack) -> None:
    missing = importlib.import_module(internals.JSON_PATH).NoSuchJsonPathError
    execution_state = importlib.import_module(internals.EXECUTE_STATE).ExecutionState
    from moto.stepfunctions.parser.asl.utils.encoding import to_json_str

    def runtime_error(original: Any) -> Any:
        def from_error(self: Any, env: Any, ex: Exception) -> Any:
            if not isinstance(ex, missing):
                return original(self, env, ex)
            cause = (f"The JSONPath '{ex.json_path}' specified for the field "
                     f"'{getattr(env, 'next_field_name', '')}' could not be found in the input "
                     f"'{to_json_str(ex.data)}'")
            return execution_state._from_error(self, env, RuntimeError(cause))  # States.Runtime
        return from_error

    for module, name in ((internals.TASK_LAMBDA, "StateTaskLambda"),
                         (internals.TASK_SERVICE, "StateTaskService")):
        task = getattr(importlib.import_module(module), name)
        stack.enter_context(mock.patch.object(task, "_from_error",
                                              runtime_error(task._from_error)))


def _patch_choice_paths(stack: ExitStack) -> None:
    from moto.stepfunctions.parser.api import ExecutionFailedEventDetails, HistoryEventType

    comparison = importlib.import_module(f"{internals.CHOICE_COMPARISON}.comparison_variable")
    missing = importlib.import_module(f"{internals.CHOICE_COMPARISON}.variable").NoSuchVariable
    operators = importlib.import_module(f"{internals.CHOICE_COMPARISON}.comparison_operator_type")
    names = importlib.import_module(f"{internals.ERROR_NAMES}.states_error_name")
    types = importlib.import_module(f"{internals.ERROR_NAMES}.states_error_name_type")
    failure = importlib.import_module(internals.FAILURE_EVENT)
    details = importlib.import_module(internals.EVENT_DETAIL)
    variable_class = comparison.ComparisonVariable
    original = variable_class._eval_body
    is_present = operators.ComparisonOperatorType.IsPresent

    def eval_body(self: Any, env: Any) -> None:
        if self.comparison_function.operator_type != is_present:
            self.variable.eval(env)
            value = env.stack[-1]
            if isinstance(value, missing):
                path = self.variable.string_sampler.literal_value
                runtime = types.StatesErrorNameType.StatesRuntime
                raise failure.FailureEventException(failure_event=failure.FailureEvent(
                    env=env, error_name=names.StatesErrorName(typ=runtime),
                    event_type=HistoryEventType.ExecutionFailed,
                    event_details=details.EventDetails(
                        executionFailedEventDetails=ExecutionFailedEventDetails(
                            error=runtime.to_name(),
                            cause=f"Invalid path '{path}': The choice state's condition path "
                                  "references an invalid value."))))
            self.comparison_function.eval(env)
            return
        original(self, env)

    stack.enter_context(mock.patch.object(variable_class, "_eval_body", eval_body))


TOLERATED_FAILURES_CAUSE: Final = "The specified tolerated failure threshold was exceeded"


def tolerance_exceeded(failed: int, total: int, count: int, percentage: float) -> bool:
    """AWS's rule for a Map Run's failed children (0 and 0: nothing given, none tolerated)."""
    if not count and not percentage:
        return failed > 0
    return bool((count and failed > count)
                or (percentage and total and failed * 100.0 / total > percentage))


def _patch_tolerated_failures(stack: ExitStack) -> None:
    from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails

    component = importlib.import_module(internals.DISTRIBUTED_ITERATION)
    iteration = component.DistributedIterationComponent
    names = importlib.import_module(f"{internals.ERROR_NAMES}.states_error_name")
    types = importlib.import_module(f"{internals.ERROR_NAMES}.states_error_name_type")
    failure = importlib.import_module(internals.FAILURE_EVENT)
    details = importlib.import_module(internals.EVENT_DETAIL)
    original = iteration._map_run

    def map_run(self: Any, env: Any, eval_input: Any) -> None:
        original(self, env, eval_input)
        items = eval_input.map_run_record.item_counter
        failed = items.failed.get() + items.timed_out.get()
        if tolerance_exceeded(failed, items.total.get(), eval_input.tolerated_failure_count,
                              eval_input.tolerated_failure_percentage):
            env.stack.pop()  # the children's outputs
            name = types.StatesErrorNameType.StatesExceedToleratedFailureThreshold
            raise failure.FailureEventException(failure_event=failure.FailureEvent(
                env=env, error_name=names.StatesErrorName(typ=name),
                event_type=HistoryEventType.TaskFailed,
                event_details=details.EventDetails(taskFailedEventDetails=TaskFailedEventDetails(
                    error=name.to_name(), cause=TOLERATED_FAILURES_CAUSE))))

    stack.enter_context(mock.patch.object(iteration, "_map_run", map_run))


def _patch_result_files(stack: ExitStack) -> None:
    writer = importlib.import_module(internals.RESULT_WRITER_S3).ResourceEvalS3
    original = writer._handle_put_object

    def handle_put_object(env: Any, resource_runtime_part: Any, state_credentials: Any) -> None:
        record = env.map_run_record_pool_manager.get_all()[-1]
        original(env, resource_runtime_part, state_credentials)
        details = env.stack[-1]["ResultWriterDetails"]
        bucket, manifest_key = details["Bucket"], details["Key"]
        s3 = writer._get_s3_client(resource_runtime_part=resource_runtime_part,
                                   state_credentials=state_credentials)
        children = sorted(record.__dict__.get("_s3split_children", []),
                          key=lambda c: c["Index"])
        files: dict[str, list[dict[str, Any]]] = {"FAILED": [], "PENDING": [], "SUCCEEDED": []}
        folder = manifest_key.rsplit("/", 1)[0]
        for status in ("SUCCEEDED", "FAILED"):
            chosen = [{k: v for k, v in c.items() if k != "Index"} for c in children
                      if c["Status"] == status]
            if chosen:
                body = json.dumps(chosen).encode("utf-8")
                key = f"{folder}/{status}_0.json"
                s3.put_object(Bucket=bucket, Key=key, Body=body)
                files[status].append({"Key": key, "Size": len(body)})
        manifest = {"DestinationBucket": bucket, "MapRunArn": record.map_run_arn,
                    "ResultFiles": files}
        s3.put_object(Bucket=bucket, Key=manifest_key, Body=json.dumps(manifest).encode())

    stack.enter_context(mock.patch.object(writer, "_handle_put_object",
                                          staticmethod(handle_put_object)))


def _utf8_size(value: Any) -> int:
    # moto measures a str as it is; AWS measures the JSON text (a string's quotes count), as
    # UTF-8 and compact: no \\u escapes (6 bytes for an "é"), no space after "," and ":".
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":"),
                          default=_json_default).encode("utf-8", "surrogatepass"))


def _json_default(value: Any) -> str:
    """What moto's encoder writes for a value JSON has no type for (a date: ISO 8601)."""
    return value.isoformat() if isinstance(value, date) else str(value)


def _patch_payload_quota(stack: ExitStack, quotas: Quotas) -> None:
    limit = quotas.payload_bytes

    def is_within_size_quota(value: Any) -> bool:
        return _utf8_size(value) <= limit

    for name in (internals.STATE, internals.TASK_LAMBDA, internals.TASK_SERVICE):
        stack.enter_context(mock.patch.object(importlib.import_module(name),
                                              "is_within_size_quota", is_within_size_quota))


HISTORY_PAGE_DEFAULT, HISTORY_PAGE_MAX = 100, 1000


def _patch_execution_history(stack: ExitStack) -> None:
    from moto.stepfunctions.exceptions import InvalidToken, ValidationException
    from moto.stepfunctions.responses import StepFunctionResponse

    def get_execution_history(self: Any) -> str:
        arn = self._get_param("executionArn")
        size = self._get_param("maxResults") or HISTORY_PAGE_DEFAULT
        if not 0 < size <= HISTORY_PAGE_MAX:
            raise ValidationException(f"1 validation error detected: Value '{size}' at "
                                      "'maxResults' failed to satisfy constraint: Member must "
                                      f"have value less than or equal to {HISTORY_PAGE_MAX}")
        token = self._get_param("nextToken")
        execution = self.stepfunction_backend.describe_execution(execution_arn=arn)
        valid = token is None or (isinstance(token, str) and _TOKEN.fullmatch(token))
        page = _history_page(execution, None if token is None else int(token), size,
                             bool(self._get_param("reverseOrder"))) if valid else None
        if page is None:
            raise InvalidToken(f"'{token}'")  # (moto's InvalidToken adds "Invalid Token: ")
        events, following = page
        return json.dumps({"events": events}
                          | ({} if following is None else {"nextToken": str(following)}))

    stack.enter_context(mock.patch.object(StepFunctionResponse, "get_execution_history",
                                          get_execution_history))


_TOKEN: Final = re.compile(r"[0-9]{1,9}")  # (ASCII digits: str.isdigit takes "²", int() not)


def _history_page(execution: Any, position: int | None, size: int,
                  reverse: bool) -> tuple[list[dict[str, Any]], int | None] | None:
    """One page of an execution's events and where the next one starts (None: no next page);
    None if no page starts at ``position`` (None: the first page). A position counts from the
    oldest event in either order, so the events a running execution adds between two pages
    make no page in reverse repeat an event. (moto's own answer deep-copies the whole
    history on every call: quadratic in pages.)"""
    env = execution.exec_worker.env if execution.exec_worker is not None else None
    manager = env.event_manager if env is not None else None
    with manager._mutex if manager is not None else contextlib.nullcontext():
        events: list[dict[str, Any]] = manager._history_event_list if manager else []
        total = len(events)
        if position is not None and not (0 < position <= total if reverse
                                         else 0 <= position < total):
            return None
        if reverse:
            end = total if position is None else position
            start = max(0, end - size)
            return [_wire_event(event) for event in events[start:end][::-1]], start or None
        start = position or 0
        end = min(total, start + size)
        return ([_wire_event(event) for event in events[start:end]],
                end if end < total else None)


def _wire_event(event: dict[str, Any]) -> dict[str, Any]:
    """A history event as the JSON protocol carries it: the timestamp in epoch seconds."""
    stamp = event["timestamp"]
    if isinstance(stamp, str):
        stamp = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return event | {"timestamp": stamp.timestamp()}


def _patch_start_execution(stack: ExitStack, quotas: Quotas) -> None:
    from moto.stepfunctions.exceptions import InvalidExecutionInput, InvalidName
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    original = StepFunctionsParserBackend.start_execution

    def start_execution(self: Any, state_machine_arn: str, name: Any = None,
                        execution_input: Any = None, trace_header: Any = None) -> Any:
        if name is not None:
            problem = quotas.name_problem(str(name))
            if problem:
                raise InvalidName(f"Invalid Name: '{name}': {problem}")
        if execution_input is not None:
            size = len(str(execution_input).encode("utf-8"))
            if size > quotas.payload_bytes:
                raise InvalidExecutionInput(
                    f"Invalid State Machine Execution Input: input is {size} bytes, more than "
                    f"the maximum of {quotas.payload_bytes}")
            try:  # (moto 5.2.5 raises an error of another API, which reaches boto3 unnamed)
                json.loads(execution_input)
            except ValueError as exc:
                raise InvalidExecutionInput(
                    f"Invalid State Machine Execution Input: '{exc}'") from None
        return original(self, state_machine_arn, name, execution_input, trace_header)

    stack.enter_context(
        mock.patch.object(StepFunctionsParserBackend, "start_execution", start_execution))


def _patch_lambda_sizes(stack: ExitStack, quotas: Quotas) -> None:
    from moto.awslambda_simple.models import LambdaSimpleBackend

    original = LambdaSimpleBackend.invoke
    running = [0]
    guard = threading.Lock()

    def invoke(self: Any, function_name: str, qualifier: str | None, body: Any, headers: Any,
               response_headers: dict[str, str]) -> bytes:
        raw: bytes = body.encode("utf-8") if isinstance(body, str) else bytes(body or b"")
        if len(raw) > quotas.lambda_request_bytes:
            raise service_error(f"Request must be smaller than {quotas.lambda_request_bytes} "
                                "bytes for the InvokeFunction operation",
                                "RequestTooLargeException", 413)
        with guard:
            if running[0] >= quotas.lambda_concurrency:
                raise service_error(f"Rate Exceeded. (the account's concurrency, "
                                    f"{quotas.lambda_concurrency}, is in use)",
                                    "TooManyRequestsException", 429)
            running[0] += 1
        try:
            result: Any = original(self, function_name, qualifier, body, headers,
                                   response_headers)
        finally:
            with guard:
                running[0] -= 1
        if len(result or b"") > quotas.lambda_response_bytes:
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps({
                "errorMessage": "Response payload size exceeded maximum allowed payload size "
                                f"({quotas.lambda_response_bytes} bytes).",
                "errorType": RESPONSE_TOO_LARGE_ERROR}).encode("utf-8")
        return bytes(result)

    stack.enter_context(mock.patch.object(LambdaSimpleBackend, "invoke", invoke))
