"""Fault injection for the local engine: AWS *service* errors, which no handler can raise.

A handler's own exception is a function error (``TransientError``, ``Runtime.ExitError``);
these are what the Lambda and Step Functions services answer before or instead of running
the code, so the ASL's Retry on them is exercised, not just read::

    plan = FaultPlan(lambda_faults=[LambdaFault(LAMBDA_SERVICE_EXCEPTION, function="s3split-worker",
                                                action="process", index=3, calls=(1,))])
    with local_engine(work, faults=plan) as engine: ...
    plan.injected  # what was injected, in order

A Lambda fault fails the matching invocation before the handler runs: the Lambda API answers
with the error (``Lambda.TooManyRequestsException`` is HTTP 429, the rest 500) and Step
Functions names it ``Lambda.<code>`` for both ``arn:aws:lambda:...`` and ``lambda:invoke``
resources. ``Lambda.AWSLambdaException`` and ``Lambda.SdkClientException`` are names Step
Functions' own client gives to errors without a code of their own (AWS lists them in its
Lambda retry advice); here they are answered as codes so the same names arrive.
A StartExecution fault fails an ``arn:aws:states:::states:startExecution`` task (not the
``StartExecution`` API call a client makes) with the given ``StepFunctions.*`` error.
"""

import importlib
import json
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, Final
from unittest import mock

from s3split.engine import moto_internals as internals
from s3split.engine.routing import function_name_from_ref, service_error

LAMBDA_SERVICE_EXCEPTION: Final = "Lambda.ServiceException"
LAMBDA_TOO_MANY_REQUESTS: Final = "Lambda.TooManyRequestsException"
LAMBDA_AWS_LAMBDA_EXCEPTION: Final = "Lambda.AWSLambdaException"
LAMBDA_SDK_CLIENT_EXCEPTION: Final = "Lambda.SdkClientException"

LAMBDA_SERVICE_ERRORS: Final = {
    LAMBDA_SERVICE_EXCEPTION: 500,
    LAMBDA_TOO_MANY_REQUESTS: 429,
    LAMBDA_AWS_LAMBDA_EXCEPTION: 500,
    LAMBDA_SDK_CLIENT_EXCEPTION: 500,
}
"""Step Functions' name for each Lambda service error -> the HTTP status Lambda answers with."""

SFN_EXECUTION_LIMIT_EXCEEDED: Final = "StepFunctions.ExecutionLimitExceededException"
"""A startExecution task refused at the open-executions quota (moto/LocalStack's naming of
``StepFunctions.<code>Exception``, which LocalStack records against AWS)."""

SFN_THROTTLED: Final = "StepFunctions.AWSStepFunctionsException"
"""A throttled startExecution task: ``ThrottlingException`` has no exception class of its own
in the SDK Step Functions runs on, so it surfaces as the service's base exception (inferred,
as ``Lambda.AWSLambdaException`` is for Lambda; not documented by AWS)."""


@dataclass(frozen=True)
class LambdaFault:
    """Fail matching Lambda invocations with ``error`` (a key of :data:`LAMBDA_SERVICE_ERRORS`).

    An invocation matches when each given field equals the call's: the function name, and the
    event's ``action`` and ``index`` (s3split's handler events carry both). ``calls`` picks
    which matching invocations fail, counted from 1 per fault; None fails every one.
    """

    error: str
    function: str | None = None
    action: str | None = None
    index: int | None = None
    calls: Sequence[int] | None = (1,)

    def __post_init__(self) -> None:
        if self.error not in LAMBDA_SERVICE_ERRORS:
            raise ValueError(f"LambdaFault: {self.error!r} is not a Lambda service error "
                             f"({', '.join(LAMBDA_SERVICE_ERRORS)})")
        _check_calls(self.calls)

    def matches(self, function: str, event: Any) -> bool:
        fields = event if isinstance(event, dict) else {}
        return ((self.function is None or self.function == function)
                and (self.action is None or self.action == fields.get("action"))
                and (self.index is None or self.index == fields.get("index")))


@dataclass(frozen=True)
class StartExecutionFault:
    """Fail ``startExecution`` tasks with ``error`` (a ``StepFunctions.*`` name); ``calls``
    counts those tasks from 1 (None: every one)."""

    error: str = SFN_THROTTLED
    calls: Sequence[int] | None = (1,)

    def __post_init__(self) -> None:
        if not self.error.startswith("StepFunctions."):
            raise ValueError(f"StartExecutionFault: {self.error!r} is not a StepFunctions.* error")
        _check_calls(self.calls)


@dataclass(frozen=True)
class Injected:
    """One fault the engine injected."""

    error: str
    function: str
    call: int
    action: str | None = None
    index: int | None = None


@dataclass
class FaultPlan:
    """The faults an engine injects; thread-safe (Map lanes call it concurrently)."""

    lambda_faults: Sequence[LambdaFault] = ()
    start_execution_faults: Sequence[StartExecutionFault] = ()
    injected: list[Injected] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lambda_faults = tuple(self.lambda_faults)
        self.start_execution_faults = tuple(self.start_execution_faults)
        self._lock = threading.Lock()
        self._counts: dict[int, int] = {}

    def lambda_error(self, function: str, event: Any) -> str | None:
        """The error to fail this invocation with, or None to run it."""
        fields = event if isinstance(event, dict) else {}
        for n, fault in enumerate(self.lambda_faults):
            if fault.matches(function, event):
                call = self._count(n)
                if fault.calls is None or call in fault.calls:
                    self._record(Injected(fault.error, function, call, fields.get("action"),
                                          fields.get("index")))
                    return fault.error
        return None

    def start_execution_error(self) -> str | None:
        """The error to fail this startExecution task with, or None to start it."""
        for n, fault in enumerate(self.start_execution_faults, start=len(self.lambda_faults)):
            call = self._count(n)
            if fault.calls is None or call in fault.calls:
                self._record(Injected(fault.error, "states:startExecution", call))
                return fault.error
        return None

    def _count(self, key: int) -> int:
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1
            return self._counts[key]

    def _record(self, injected: Injected) -> None:
        with self._lock:
            self.injected.append(injected)


def _check_calls(calls: Sequence[int] | None) -> None:
    if calls is not None and (not calls or any(not isinstance(c, int) or c < 1 for c in calls)):
        raise ValueError(f"calls must be None or call numbers >= 1, not {calls!r}")


def patch(stack: ExitStack, faults: FaultPlan | None, retry_interval_scale: float = 1.0) -> None:
    """Make moto's interpreter answer with ``faults`` (none: no fault) and wait Retry intervals
    times ``retry_interval_scale`` (0: no wait; for tests). Undone with ``stack``."""
    if retry_interval_scale < 0:
        raise ValueError(f"retry_interval_scale must be >= 0, not {retry_interval_scale}")
    if faults is not None:
        _patch_lambda_faults(stack, faults)
        _patch_start_execution_task(stack, faults)
    if retry_interval_scale != 1.0:
        stack.enter_context(mock.patch.object(importlib.import_module(internals.RETRIER), "time",
                                              _ScaledTime(retry_interval_scale)))


def _patch_lambda_faults(stack: ExitStack, faults: FaultPlan) -> None:
    from moto.awslambda_simple.models import LambdaSimpleBackend

    original = LambdaSimpleBackend.invoke

    def invoke(self: Any, function_name: str, qualifier: str | None, body: Any, headers: Any,
               response_headers: dict[str, str]) -> bytes:
        raw: bytes = body.encode("utf-8") if isinstance(body, str) else bytes(body or b"")
        error = faults.lambda_error(function_name_from_ref(function_name), _json_or_none(raw))
        if error is not None:
            code = error.removeprefix("Lambda.")
            raise service_error(f"Injected by the local engine's FaultPlan: {code}", code,
                                LAMBDA_SERVICE_ERRORS[error])
        result: Any = original(self, function_name, qualifier, body, headers, response_headers)
        return bytes(result)

    stack.enter_context(mock.patch.object(LambdaSimpleBackend, "invoke", invoke))


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def _patch_start_execution_task(stack: ExitStack, faults: FaultPlan) -> None:
    module = importlib.import_module(internals.TASK_SFN)
    task = module.StateTaskServiceSfn
    original = task._eval_service_task

    def eval_service_task(self: Any, env: Any, resource_runtime_part: Any,
                          normalised_parameters: Any, state_credentials: Any) -> Any:
        if self._get_boto_service_action() == "start_execution":
            error = faults.start_execution_error()
            if error is not None:
                raise _task_failure(self, env, error,
                                    f"Injected by the local engine's FaultPlan: {error}")
        return original(self, env, resource_runtime_part, normalised_parameters,
                        state_credentials)

    stack.enter_context(mock.patch.object(task, "_eval_service_task", eval_service_task))


def _task_failure(task: Any, env: Any, error: str, cause: str) -> Exception:
    from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import (
        CustomErrorName,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
        FailureEventException,
    )

    details = TaskFailedEventDetails(error=error, cause=cause,
                                     resource=task._get_sfn_resource(),
                                     resourceType=task._get_sfn_resource_type())
    return FailureEventException(FailureEvent(
        env=env, error_name=CustomErrorName(error), event_type=HistoryEventType.TaskFailed,
        event_details=internals.event_details(taskFailedEventDetails=details)))


class _ScaledTime:
    """Stands in for the ``time`` module in moto's retrier: ``sleep`` is scaled."""

    def __init__(self, scale: float) -> None:
        self._scale = scale

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds * self._scale)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)
