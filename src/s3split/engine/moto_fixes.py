"""Fixes for moto bugs that the pipeline runs into (each says the releases it is seen in).

* ``StateTaskServiceSfn._normalise_parameters``/``_normalise_response``: ASL's PascalCase
  parameters of ``states:startExecution`` mapped to boto3's casing and back (moto 5.2.5, 5.2.6);
  see :func:`_patch_sfn_casing`.
* ``StepFunctionsParserBackend.start_execution``: an unnamed execution gets a UUID name, as on
  AWS, and concurrent starts of one name make one execution (moto 5.2.5, 5.2.6); see
  :func:`_patch_execution_name`.
* ``StateTaskLambda._from_error``: a Lambda API error on an ``arn:aws:lambda`` resource is
  ``Lambda.<code>``, as AWS names it (moto 5.2.5, 5.2.6 name every one ``Exception``).
"""

from __future__ import annotations

import datetime
import functools
import importlib
import threading
import uuid
from collections.abc import Iterable
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any
from unittest import mock

from s3split.engine import moto_internals as internals

if TYPE_CHECKING:
    from botocore.model import OperationModel


def patch(stack: ExitStack) -> None:
    """Install every fix above on ``stack``."""
    _patch_sfn_casing(stack)
    _patch_execution_name(stack)
    _patch_lambda_error_names(stack)


@functools.cache
def _boto_operation(service: str, snake_action: str) -> OperationModel | None:
    import botocore.session
    from botocore import xform_name

    model = botocore.session.get_session().get_service_model(service)
    for operation in model.operation_names:
        if xform_name(operation) == snake_action:
            return model.operation_model(operation)
    return None


def _patch_sfn_casing(stack: ExitStack) -> None:
    """Fix ``arn:aws:states:::states:startExecution`` (and its ``.sync`` forms).

    moto 5.2.5 dropped LocalStack's shape-based parameter normalisation
    (``StateTaskService._normalise_parameters`` is a no-op), so
    ``StateTaskServiceSfn._eval_service_task`` calls
    ``sfn_client.start_execution(StateMachineArn=..., Input=...)``; the client has
    ``parameter_validation=False``, and botocore's serializer then fails with
    ``KeyError: 'StateMachineArn'`` (reported as ``States.Runtime``). We rename
    the keys with the class's own ``_to_boto_request`` against the botocore input
    shape (``stateMachineArn``/``input``/``name``); the original method already
    serialises a JSON-object ``Input`` to a string. Symmetrically the response
    (``executionArn``/``startDate``) is renamed to AWS's ``ExecutionArn``/
    ``StartDate`` (epoch millis), which ``.sync``'s resolver reads and ASL paths expect.
    Only this class (service ``states``/``sfn``) is patched.
    """
    sfn_task = importlib.import_module(internals.TASK_SFN).StateTaskServiceSfn
    original_parameters = sfn_task._normalise_parameters
    original_response = sfn_task._normalise_response

    def operation(
        task: Any, boto_service_name: str | None, service_action_name: str | None
    ) -> OperationModel | None:
        return _boto_operation(
            task._get_boto_service_name(boto_service_name),
            task._get_boto_service_action(service_action_name),
        )

    def normalise_parameters(
        self: Any,
        parameters: dict[str, Any],
        boto_service_name: str | None = None,
        service_action_name: str | None = None,
    ) -> None:
        original_parameters(
            self,
            parameters,
            boto_service_name=boto_service_name,
            service_action_name=service_action_name,
        )
        op = operation(self, boto_service_name, service_action_name)
        if op is not None and op.input_shape is not None:
            self._to_boto_request(parameters, op.input_shape)

    def normalise_response(
        self: Any,
        response: Any,
        boto_service_name: str | None = None,
        service_action_name: str | None = None,
    ) -> None:
        original_response(
            self,
            response,
            boto_service_name=boto_service_name,
            service_action_name=service_action_name,
        )
        op = operation(self, boto_service_name, service_action_name)
        if op is not None and op.output_shape is not None:
            self._from_boto_response(response, op.output_shape)
            _epoch_millis_in_place(response)

    stack.enter_context(mock.patch.object(sfn_task, "_normalise_parameters", normalise_parameters))
    stack.enter_context(mock.patch.object(sfn_task, "_normalise_response", normalise_response))


def _epoch_millis_in_place(value: Any) -> None:
    """Replace ``datetime`` values (boto3 timestamps) with epoch milliseconds.

    A ``datetime`` left in state data crashes moto's ``describe_execution``
    (plain ``json.dumps`` of the output); AWS renders these as epoch millis.
    """
    items: Iterable[tuple[Any, Any]]
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    else:
        return
    for key, item in items:
        if isinstance(item, datetime.datetime):
            value[key] = int(item.timestamp() * 1000)
        else:
            _epoch_millis_in_place(item)


def _patch_execution_name(stack: ExitStack) -> None:
    """Give unnamed executions a UUID name, as AWS does, and start one execution at a time.

    moto 5.2.5's ``StepFunctionsParserBackend.start_execution`` uses ``name``
    verbatim: an unnamed execution gets the ARN ``...:execution:<sm>:None``, and a
    second unnamed start on the same state machine hits the name-idempotency
    check (``ExecutionAlreadyExists``, or silently returns the running one).
    Continue-as-new starts without ``Name`` would fail from the second hop on.
    It also looks for an execution of the same name and then appends the new one without
    a lock: two concurrent starts of one name (a retried StartOne beside the first) could
    both miss the other and make two executions, where AWS makes one.
    """
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    original = StepFunctionsParserBackend.start_execution
    one_at_a_time = threading.Lock()

    def start_execution(
        self: Any,
        state_machine_arn: str,
        name: Any = None,
        execution_input: Any = None,
        trace_header: Any = None,
    ) -> Any:
        with one_at_a_time:  # (the check and the append; the execution runs in its thread)
            return original(
                self, state_machine_arn, name or str(uuid.uuid4()), execution_input,
                trace_header)

    stack.enter_context(
        mock.patch.object(StepFunctionsParserBackend, "start_execution", start_execution)
    )


def _patch_lambda_error_names(stack: ExitStack) -> None:
    from botocore.exceptions import ClientError
    from moto.stepfunctions.parser.api import HistoryEventType, LambdaFunctionFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import (
        CustomErrorName,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
    )

    task = importlib.import_module(internals.TASK_LAMBDA).StateTaskLambda
    original = task._from_error

    def from_error(self: Any, env: Any, ex: Exception) -> Any:
        if not isinstance(ex, ClientError):
            return original(self, env, ex)
        code = ex.response.get("Error", {}).get("Code", "Unknown")
        status = ex.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        request = ex.response.get("ResponseMetadata", {}).get("RequestId", str(uuid.uuid4()))
        error = f"Lambda.{code}"
        cause = (f"{ex.response.get('Error', {}).get('Message', '')} (Service: AWSLambda; "
                 f"Status Code: {status}; Error Code: {code}; Request ID: {request}; Proxy: null)")
        return FailureEvent(
            env=env, error_name=CustomErrorName(error),
            event_type=HistoryEventType.LambdaFunctionFailed,
            event_details=internals.event_details(lambdaFunctionFailedEventDetails=(
                LambdaFunctionFailedEventDetails(error=error, cause=cause))))

    stack.enter_context(mock.patch.object(task, "_from_error", from_error))
