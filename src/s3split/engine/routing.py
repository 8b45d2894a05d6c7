"""Lambda and ``states:startExecution`` tasks of moto's interpreter, routed to s3split.

moto (see :mod:`.moto_internals` for the releases) can execute real ASL definitions
(``mock_aws(config=moto_config())``), but every Lambda Task ends in
``LambdaSimpleBackend.invoke``, which only returns canned bytes. :func:`patch_invoke` routes
that call to a ``dispatch(function_name, event)`` callable -- usually a
:class:`~s3split.engine.lambda_runtime.ProcessDispatcher`, which runs the real handler in a
worker process so parallel Map lanes really run in parallel. :class:`DirectLambda` and
:class:`DirectStates` are the clients a task gets when :mod:`.speedups` is on: the same
backends, without botocore's round trip.
"""

from __future__ import annotations

import datetime
import functools
import io
import json
import traceback
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any, Final
from unittest import mock

from s3split.engine.lambda_runtime import FunctionError, UnknownFunction

if TYPE_CHECKING:
    from moto.awslambda.exceptions import UnknownFunctionException
    from moto.core.config import DefaultConfig

Dispatch = Callable[[str, Any], Any]
"""``dispatch(function_name, event) -> result``: event and result are JSON values."""


def moto_config() -> DefaultConfig:
    """The ``mock_aws`` config the seam needs.

    ``execute_state_machine`` makes moto interpret the ASL; ``use_docker: False``
    makes the Lambda API use ``LambdaSimpleBackend`` -- the class we patch.
    """
    return {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}


def function_name_from_ref(ref: str) -> str:
    """Bare function name from what moto passes to ``invoke``.

    moto passes the URL path segment verbatim: a name, ``name:qualifier``, a
    partial ARN or a full ARN (``arn:aws:lambda:r:acct:function:name[:q]``).
    """
    if ":function:" in ref:
        ref = ref.split(":function:", 1)[1]
    return ref.split(":", 1)[0]


def patch_invoke(stack: ExitStack, dispatch: Dispatch) -> None:
    """``LambdaSimpleBackend.invoke`` -> ``dispatch``; see :func:`_make_invoke`."""
    from moto.awslambda_simple.models import LambdaSimpleBackend

    stack.enter_context(mock.patch.object(LambdaSimpleBackend, "invoke", _make_invoke(dispatch)))


def _make_invoke(dispatch: Dispatch) -> Callable[..., bytes]:
    """Replacement for ``LambdaSimpleBackend.invoke``.

    Why here: both ``"Resource": "<function arn>"`` (``StateTaskLambda``) and
    ``"Resource": "arn:aws:states:::lambda:invoke"`` (``StateTaskServiceLambda``)
    call ``boto3.client("lambda").invoke(FunctionName=..., Payload=...)``; moto's
    ``LambdaResponse.invoke`` hands the URL-decoded function reference and the
    JSON body to the backend. The simple backend does not require the function
    to exist, so no ``create_function`` is needed.

    Errors: setting the ``x-amz-function-error`` response header makes boto3
    report ``FunctionError``; the interpreter then raises
    ``LambdaFunctionErrorException`` and names the failure after the payload's
    ``errorType`` (``lambda_eval_utils`` + ``_from_error`` of both task classes),
    which is what ``ErrorEquals`` is matched against.
    """

    def invoke(
        self: Any,
        function_name: str,
        qualifier: str | None,
        body: Any,
        headers: Any,
        response_headers: dict[str, str],
    ) -> bytes:
        name = function_name_from_ref(function_name)
        if isinstance(body, bytes):
            body = body.decode("utf-8")
        try:
            event = json.loads(body) if body else None
            result = dispatch(name, event)
            return json.dumps(result).encode("utf-8")
        except UnknownFunction as exc:
            raise _unknown_function_error()(function_name) from exc
        except FunctionError as err:
            payload = err.payload()
        except Exception as exc:
            # An in-process dispatcher's handler raised: report it the way the
            # Lambda Python runtime reports an unhandled exception.
            payload = FunctionError(
                type(exc).__name__, str(exc), traceback.format_tb(exc.__traceback__)
            ).payload()
        response_headers["x-amz-function-error"] = "Unhandled"
        return json.dumps(payload).encode("utf-8")

    return invoke


def _unknown_function_error() -> type[UnknownFunctionException]:
    from moto.awslambda.exceptions import UnknownFunctionException

    return UnknownFunctionException


class DirectLambda:
    """The Lambda client a Lambda task gets: ``invoke`` calls moto's Lambda backend (the
    patched ``LambdaSimpleBackend.invoke``) as moto's Lambda API does, without botocore
    serialising the request and moto parsing it back (~1.4 ms of CPU an invocation, a fifth
    of the engine's CPU in a 2,000-chunk run). It answers as that round trip does (checked
    against it by tests/integration/test_engine_routing.py): ``StatusCode``, ``FunctionError``,
    the ``Payload`` as a stream, and a service error as botocore's ``ClientError`` with the
    error's code, message and HTTP status (what ``Retry``/``Catch`` match on). One departure,
    AWS's way: a response of 6,000,001 to 6,291,556 bytes is a result, where moto's HTTP
    layer made it a function error (Lambda's limit, and the engine's quota, is the larger)."""

    _STATUS: Final = {"Event": 202, "DryRun": 204}  # else 200 (RequestResponse)
    _FIELDS: Final = {"x-amz-function-error": "FunctionError",
                      "x-amz-executed-version": "ExecutedVersion"}

    def __init__(self, region: str) -> None:
        self.region = region

    def invoke(self, *, FunctionName: str, Payload: Any = None,
               InvocationType: str = "RequestResponse", Qualifier: str | None = None,
               **_: Any) -> dict[str, Any]:
        from moto.awslambda.utils import get_backend
        from moto.core.models import DEFAULT_ACCOUNT_ID

        body = Payload.encode("utf-8") if isinstance(Payload, str) else bytes(Payload or b"")
        headers = {"X-Amz-Invocation-Type": InvocationType}
        response_headers: dict[str, str] = {}
        request_id = str(uuid.uuid4())
        try:
            payload = get_backend(DEFAULT_ACCOUNT_ID, self.region).invoke(
                FunctionName, Qualifier, body, headers, response_headers)
        except _service_errors() as error:
            raise _client_error(error, "lambda", "Invoke", request_id) from None
        status = self._STATUS.get(InvocationType, 200)
        response: dict[str, Any] = {"ResponseMetadata": _metadata(request_id, status),
                                    "StatusCode": status}
        response |= {field: response_headers[header]
                     for header, field in self._FIELDS.items() if header in response_headers}
        response["Payload"] = io.BytesIO(
            payload.encode("utf-8") if isinstance(payload, str) else bytes(payload or b""))
        return response


class DirectStates:
    """The Step Functions client a ``states`` task gets: ``start_execution`` calls moto's
    Step Functions backend directly, as its StartExecution API does (~1.5 ms of CPU a start
    less: a batch starts one execution per file); anything else (``.sync``'s
    DescribeExecution) goes to ``client``, a boto3 client. Answers as the boto3 round trip
    does (checked against it by tests/integration/test_engine_routing.py)."""

    def __init__(self, region: str, client: Any) -> None:
        self.region, self.client = region, client

    def start_execution(self, *, stateMachineArn: str, name: str | None = None,
                        input: str | None = None, **_: Any) -> dict[str, Any]:
        from moto.core.models import DEFAULT_ACCOUNT_ID
        from moto.stepfunctions.responses import get_backend

        request_id = str(uuid.uuid4())
        backend: Any = get_backend(DEFAULT_ACCOUNT_ID, self.region)  # (name may be None)
        try:
            execution = backend.start_execution(stateMachineArn, name,
                                                "{}" if input is None else input)
        except _service_errors() as error:
            raise _client_error(error, "stepfunctions", "StartExecution", request_id) from None
        started: datetime.datetime = execution.start_date
        return {"ResponseMetadata": _metadata(request_id, 200),
                "executionArn": execution.execution_arn,
                # (what the wire carries: seconds with milliseconds)
                "startDate": started.replace(microsecond=started.microsecond // 1000 * 1000)}

    def __getattr__(self, operation: str) -> Any:
        return getattr(self.client, operation)


def _service_errors() -> tuple[type[Exception], ...]:
    """The two kinds of service error moto raises: ``JsonRESTError`` (its ``code`` the HTTP
    status) and, from moto 5.2.6 on for Step Functions, ``ServiceException`` (its ``code``
    the error's name; the status is the service model's)."""
    from moto.core.exceptions import JsonRESTError, ServiceException

    return JsonRESTError, ServiceException


def service_error(message: str, code: str, status: int) -> Exception:
    """A moto service error with this code, message and HTTP status, as the API answers it."""
    from moto.core.exceptions import JsonRESTError

    error = JsonRESTError(code, message)
    error.code = status
    return error


def _client_error(error: Any, service: str, operation: str, request_id: str) -> Exception:
    """botocore's ``ClientError`` for a moto service error: its code, message and HTTP
    status, as the error reads after the HTTP round trip."""
    from botocore.exceptions import ClientError

    if isinstance(error.code, int):  # JsonRESTError
        code, status = error.error_type or "", error.code
    else:  # ServiceException
        code, status = error.code, _error_status(service, error.code)
    response: Any = {"Error": {"Code": code, "Message": error.message},
                     "ResponseMetadata": _metadata(request_id, status)}
    return ClientError(response, operation)


@functools.cache
def _error_status(service: str, code: str) -> int:
    """The HTTP status the service model gives an error (400 where it gives none)."""
    import botocore.session

    model = botocore.session.get_session().get_service_model(service)
    for shape in model.error_shapes:
        if shape.name == code:
            return int(shape.metadata.get("error", {}).get("httpStatusCode", 400))
    return 400


def _metadata(request_id: str, status: int) -> dict[str, Any]:
    return {"RequestId": request_id, "HTTPStatusCode": status, "HTTPHeaders": {},
            "RetryAttempts": 0}
