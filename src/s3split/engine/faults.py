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

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

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
