"""Seam between moto's Step Functions interpreter and locally run Lambda handlers.

moto (>=5.2.5,<5.3) can execute real ASL definitions
(``mock_aws(config=moto_config())``), but every Lambda Task ends in
``LambdaSimpleBackend.invoke``, which only returns canned bytes. This module
re-routes that call to a ``dispatch(function_name, event)`` callable -- usually a
:class:`~s3split.engine.lambda_runtime.ProcessDispatcher`, which runs the real handler in a
worker process so
parallel Map lanes really run in parallel -- and fixes two moto bugs that break
the ``states:startExecution`` integration (continue-as-new).

Typical use::

    with ProcessDispatcher({"Split": "pkg.app:lambda_handler"}, max_workers=2) as dispatcher:
        with mock_aws(config=moto_config()), install(dispatcher):
            ...  # create and start state machines with boto3

Everything that touches moto is imported lazily.
"""

from __future__ import annotations

import datetime
import functools
import importlib
import inspect
import io
import json
import logging
import sys
import threading
import traceback
import types
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any, Final
from unittest import mock

from s3split.engine.lambda_runtime import (
    FunctionError,
    UnknownFunction,
)
from s3split.engine.quotas import AWS_QUOTAS

if TYPE_CHECKING:
    from botocore.model import OperationModel
    from moto.awslambda.exceptions import UnknownFunctionException
    from moto.core.config import DefaultConfig

    from s3split.engine.faults import FaultPlan
    from s3split.engine.quotas import Quotas

__all__ = [
    "Dispatch",
    "check_compatible",
    "ends_of",
    "function_name_from_ref",
    "install",
    "moto_config",
    "wait_for_end",
    "without_aws_batch_tasks",
]

LOG = logging.getLogger(__name__)

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


# --------------------------------------------------------------------------
# moto internals we patch, and the guard that notices when they change
# --------------------------------------------------------------------------

_LAMBDA_INVOKE_PARAMS: Final = (
    "self",
    "function_name",
    "qualifier",
    "body",
    "headers",
    "response_headers",
)
_NORMALISE_PARAMS: Final = ("self", "parameters", "boto_service_name", "service_action_name")
_NORMALISE_RESPONSE_PARAMS: Final = ("self", "response", "boto_service_name", "service_action_name")
_START_EXECUTION_PARAMS: Final = (
    "self",
    "state_machine_arn",
    "name",
    "execution_input",
    "trace_header",
)
_STATE_MAP: Final = "moto.stepfunctions.parser.asl.component.state.exec.state_map"
_ITEM_READER_S3: Final = f"{_STATE_MAP}.item_reader.eval.resource_eval_s3"
_RESULT_WRITER_S3: Final = f"{_STATE_MAP}.result_writer.resource_eval.resource_eval_s3"
_SFN_TASK_MODULE: Final = (
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn"
)
_JSON_PATH_MODULE: Final = "moto.stepfunctions.parser.asl.utils.json_path"
_RESULT_PATH_MODULE: Final = "moto.stepfunctions.parser.asl.component.common.path.result_path"
_ASL_PARSER_MODULE: Final = "moto.stepfunctions.parser.asl.parse.asl_parser"
_EXECUTION_MODULE: Final = "moto.stepfunctions.parser.backend.execution"


def _params(func: Any) -> tuple[str, ...]:
    return tuple(inspect.signature(func).parameters)


def check_compatible() -> None:
    """Assert the moto internals the seam patches still look as expected.

    Raises :class:`RuntimeError` naming every mismatch, so a moto upgrade fails
    loudly instead of silently running the canned "happy path" Lambda.
    """
    problems: list[str] = []

    def expect(where: str, getter: Callable[[], Any], params: tuple[str, ...] | None) -> None:
        try:
            obj = getter()
        except (ImportError, AttributeError) as exc:
            problems.append(f"{where}: missing ({exc})")
            return
        if params is not None and _params(obj) != params:
            problems.append(f"{where}: signature is {_params(obj)}, expected {params}")

    def simple_backend() -> Any:
        from moto.awslambda_simple.models import LambdaSimpleBackend

        return LambdaSimpleBackend

    def sfn_task() -> Any:
        return importlib.import_module(_SFN_TASK_MODULE).StateTaskServiceSfn

    def parser_backend() -> Any:
        from moto.stepfunctions.parser.models import StepFunctionsParserBackend

        return StepFunctionsParserBackend

    def lambda_utils() -> Any:
        from moto.awslambda import utils

        return utils

    expect("LambdaSimpleBackend.invoke", lambda: simple_backend().invoke, _LAMBDA_INVOKE_PARAMS)
    expect("moto.awslambda.utils.get_backend", lambda: lambda_utils().get_backend, None)
    expect("moto.awslambda.exceptions.UnknownFunctionException", _unknown_function_error, None)
    for attr, params in (
        ("_normalise_parameters", _NORMALISE_PARAMS),
        ("_normalise_response", _NORMALISE_RESPONSE_PARAMS),
        ("_to_boto_request", ("self", "parameters", "structure_shape")),
        ("_from_boto_response", ("self", "response", "structure_shape")),
        ("_get_boto_service_name", ("self", "boto_service_name")),
        ("_get_boto_service_action", ("self", "service_action_name")),
    ):
        expect(
            f"StateTaskServiceSfn.{attr}",
            functools.partial(lambda a: getattr(sfn_task(), a), attr),
            params,
        )
    for where, module in (("lambda_eval_utils", _LAMBDA_EVAL_MODULE),
                          ("state_task_service_sfn", _SFN_TASK_MODULE)):
        expect(f"{where}.boto_client_for",
               functools.partial(lambda m: importlib.import_module(m).boto_client_for, module),
               ("region", "service", "state_credentials"))
    expect("StateMachine._handle_name_input_idempotency",
           lambda: importlib.import_module("moto.stepfunctions.models")
           .StateMachine._handle_name_input_idempotency, ("self", "name", "execution_input"))
    expect("BaseExecutionWorkerCommunication.terminated",
           lambda: importlib.import_module(_EXECUTION_MODULE)
           .BaseExecutionWorkerCommunication.terminated, ("self",))
    expect("AmazonStateLanguageParser.parse",
           lambda: importlib.import_module(_ASL_PARSER_MODULE).AmazonStateLanguageParser.parse,
           ("definition",))
    for where, module in (("json_path", _JSON_PATH_MODULE), ("result_path", _RESULT_PATH_MODULE)):
        expect(f"{where}.parse",
               functools.partial(lambda m: importlib.import_module(m).parse, module), None)
    expect(
        "StepFunctionsParserBackend.start_execution",
        lambda: parser_backend().start_execution,
        _START_EXECUTION_PARAMS,
    )
    # A batch's StartEach: a DISTRIBUTED Map whose ItemReader reads a JSON list with
    # s3:getObject and whose ResultWriter (static Bucket/Prefix: moto evaluates its paths
    # against the Map's results) writes with s3:putObject.
    for where, module, handler in (
        ("ItemReader s3:getObject", _ITEM_READER_S3, "_handle_get_object"),
        ("ResultWriter s3:putObject", _RESULT_WRITER_S3, "_handle_put_object"),
    ):
        expect(where, functools.partial(
            lambda m, h: getattr(importlib.import_module(m).ResourceEvalS3, h), module, handler),
            ("env", "resource_runtime_part", "state_credentials"))
    from s3split.engine import fidelity

    problems += fidelity.compat_problems()
    if problems:
        import moto

        raise RuntimeError(
            f"s3split.engine.moto_seam is not compatible with moto {moto.__version__} "
            "(written against 5.2.5): " + "; ".join(problems)
        )


def _unknown_function_error() -> type[UnknownFunctionException]:
    from moto.awslambda.exceptions import UnknownFunctionException

    return UnknownFunctionException


# --------------------------------------------------------------------------
# the patches
# --------------------------------------------------------------------------

_install_lock = threading.Lock()
_installed = False


@contextmanager
def install(
    dispatch: Dispatch,
    *,
    quotas: Quotas | None = None,
    faults: FaultPlan | None = None,
    retry_interval_scale: float = 1.0,
) -> Iterator[None]:
    """Patch moto (process-wide) so Lambda invocations go to ``dispatch``.

    Use together with ``mock_aws(config=moto_config())`` (or a moto server in this
    process with the same config). Not re-entrant: the patches are class-level.
    Patches, all undone on exit:

    * ``LambdaSimpleBackend.invoke`` -> :func:`dispatch`; see ``_make_invoke``.
    * ``StateTaskServiceSfn._normalise_parameters/_normalise_response`` -> map
      ASL PascalCase to boto3's casing and back; see ``_patch_sfn_casing``.
    * ``StepFunctionsParserBackend.start_execution`` -> default a missing
      execution name to a UUID, one start at a time; see ``_patch_execution_name``.
    * ``boto_client_for`` of Lambda and ``states`` tasks -> one cached client per region
      and service; see ``_patch_client_cache``.
    * moto's AWS Batch task -> its forwarding of unmodelled integrations, so moto.ec2 is
      never imported; see ``without_aws_batch_tasks`` (process-wide, not undone).
    * ``parse`` of moto's JSONPath helpers -> parsed once per path; see
      ``_patch_json_path_cache``.
    * ``AmazonStateLanguageParser.parse`` -> parsed once per definition; see
      ``_patch_definition_cache``.
    * ``StateMachine._handle_name_input_idempotency`` -> looks the name up in an index; see
      ``_patch_name_lookup``.
    * ``BaseExecutionWorkerCommunication.terminated`` -> also records the execution's end
      and wakes :func:`wait_for_end`; see ``_patch_execution_ends``.
    * AWS's quotas (``quotas``, default :data:`~s3split.engine.quotas.AWS_QUOTAS`), the
      injected service errors of ``faults``, and Retry intervals scaled by
      ``retry_interval_scale`` (0: no wait; for tests); see :mod:`s3split.engine.fidelity`.
    """
    global _installed
    without_aws_batch_tasks()
    check_compatible()
    with _install_lock:
        if _installed:
            raise RuntimeError("moto_seam.install() is already active in this process")
        _installed = True
    try:
        with ExitStack() as stack:
            from moto.awslambda_simple.models import LambdaSimpleBackend

            stack.enter_context(
                mock.patch.object(LambdaSimpleBackend, "invoke", _make_invoke(dispatch))
            )
            _patch_sfn_casing(stack)
            _patch_execution_name(stack)
            _patch_client_cache(stack)
            _patch_json_path_cache(stack)
            _patch_definition_cache(stack)
            _patch_execution_ends(stack)
            _patch_name_lookup(stack)
            from s3split.engine import fidelity

            fidelity.patch(stack, quotas or AWS_QUOTAS, faults, retry_interval_scale)
            yield
    finally:
        with _install_lock:
            _installed = False


_BATCH_TASK_MODULE: Final = (
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service."
    "state_task_service_batch"
)
_UNSUPPORTED_TASK_MODULE: Final = (
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service."
    "state_task_service_unsupported"
)


def without_aws_batch_tasks() -> None:
    """moto's parser imports its AWS Batch task, which imports ``moto.batch`` and with it
    ``moto.ec2`` (0.7 s of every ``s3split run``: EC2's instance types and every region's
    zones). The pipeline has no Batch task: a Batch task here is forwarded to the service as
    moto forwards the integrations it does not model. Process-wide, before the parser loads."""
    if _BATCH_TASK_MODULE in sys.modules:
        return
    stand_in = types.ModuleType(_BATCH_TASK_MODULE)
    stand_in.StateTaskServiceBatch = (  # type: ignore[attr-defined]
        importlib.import_module(_UNSUPPORTED_TASK_MODULE).StateTaskServiceUnsupported)
    sys.modules[_BATCH_TASK_MODULE] = stand_in


_LAMBDA_EVAL_MODULE: Final = (
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.lambda_eval_utils"
)


def _patch_client_cache(stack: ExitStack) -> None:
    """moto builds a new boto3 client for every Lambda task and every ``states:startExecution``
    (~15 ms, serialized on boto3's default session). Its ``boto_client_for`` ignores
    ``state_credentials`` and the clients carry no per-call state, so one client per region
    and service serves every task; in process (``mock_aws``), a Lambda task's is a
    :class:`DirectLambda` and a ``states`` task's a :class:`DirectStates`. (Not the S3
    ItemReader/ResultWriter's: once per Map, and their endpoint comes from the environment.)"""
    from moto.core.models import botocore_stubber

    for name in (_LAMBDA_EVAL_MODULE, _SFN_TASK_MODULE):
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


class DirectLambda:
    """The Lambda client a Lambda task gets: ``invoke`` calls moto's Lambda backend (the
    patched ``LambdaSimpleBackend.invoke``) as moto's Lambda API does, without botocore
    serialising the request and moto parsing it back (~1.4 ms of CPU an invocation, a fifth
    of the engine's CPU in a 2,000-chunk run). It answers as that round trip does (checked
    against it by tests/integration/test_moto_seam.py): ``StatusCode``, ``FunctionError``,
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
    does (checked against it by tests/integration/test_moto_seam.py)."""

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


def _patch_json_path_cache(stack: ExitStack) -> None:
    """moto parses a JSONPath (``$.run``) each time a state reads one, and jsonpath-ng builds
    a new PLY parser for every parse (~1 ms): the same few paths, parsed once each. A parsed
    path holds no state of its own (``find``/``update`` work on the data they are given)."""
    for name in (_JSON_PATH_MODULE, _RESULT_PATH_MODULE):
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
    parser = importlib.import_module(_ASL_PARSER_MODULE).AmazonStateLanguageParser
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
    worker_comm = importlib.import_module(_EXECUTION_MODULE).BaseExecutionWorkerCommunication
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
    sfn_task = importlib.import_module(_SFN_TASK_MODULE).StateTaskServiceSfn
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


# --------------------------------------------------------------------------
# process-pool dispatcher
