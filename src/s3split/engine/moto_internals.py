"""Every part of moto the local engine uses, in one table, and the check that walks it.

moto's public API runs state machines but hands every Lambda task canned bytes, so the engine
patches moto's interpreter (``routing``, ``moto_fixes``, ``speedups``, ``aws_limits``,
``faults``). Those patches stand on moto's private modules, names, signatures and instance
attributes, which any release may change. Each one the engine names is a row of
:data:`INTERNALS` (tests/unit/test_moto_internals.py reads the engine's code and fails on a
moto module or private name that has no row), and :func:`check` walks the table before the
engine starts: a moto release that removed or reshaped any of them is refused in one line,
never a traceback halfway through a run. :data:`SUPPORTED` names the releases the suite has
passed on (``make test-moto V=...``); pyproject.toml's ``local`` extra declares the same range.

Nothing here imports moto until :func:`check` runs.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Final

from s3split.errors import ExtraNotInstalled, UnsupportedDependency

SUPPORTED: Final = ("5.2.5", "5.2.6")
"""The first and the last moto release the engine is tested on (both included)."""

MOTO_EXTRAS: Final = "s3,stepfunctions,awslambda"
INSTALL_SUPPORTED: Final = (
    f"pip install 'moto[{MOTO_EXTRAS}]>={SUPPORTED[0]},<={SUPPORTED[1]}'")

# moto's modules, by what they hold
PARSER: Final = "moto.stepfunctions.parser"
ASL_PARSER: Final = f"{PARSER}.asl.parse.asl_parser"
COMPONENT: Final = f"{PARSER}.asl.component.component"
EVAL_COMPONENT: Final = f"{PARSER}.asl.component.eval_component"
ERROR_EQUALS: Final = f"{PARSER}.asl.component.common.error_name.error_equals_decl"
CUSTOM_ERROR: Final = f"{PARSER}.asl.component.common.error_name.custom_error_name"
FAILURE_EVENT: Final = f"{PARSER}.asl.component.common.error_name.failure_event"
RESULT_PATH: Final = f"{PARSER}.asl.component.common.path.result_path"
RETRIER: Final = f"{PARSER}.asl.component.common.retry.retrier_decl"
STATE: Final = f"{PARSER}.asl.component.state.state"
CHOICE_COMPARISON: Final = f"{PARSER}.asl.component.state.choice.comparison"
STATE_MAP: Final = f"{PARSER}.asl.component.state.exec.state_map"
ITEM_READER_S3: Final = f"{STATE_MAP}.item_reader.eval.resource_eval_s3"
RESULT_WRITER_S3: Final = f"{STATE_MAP}.result_writer.resource_eval.resource_eval_s3"
DISTRIBUTED_WORKER: Final = (f"{STATE_MAP}.iteration.itemprocessor."
                             "distributed_item_processor_worker")
TASK: Final = f"{PARSER}.asl.component.state.exec.state_task"
TASK_LAMBDA: Final = f"{TASK}.state_task_lambda"
LAMBDA_EVAL: Final = f"{TASK}.lambda_eval_utils"
TASK_SERVICE: Final = f"{TASK}.service.state_task_service"
TASK_SFN: Final = f"{TASK}.service.state_task_service_sfn"
TASK_BATCH: Final = f"{TASK}.service.state_task_service_batch"
TASK_UNSUPPORTED: Final = f"{TASK}.service.state_task_service_unsupported"
ENVIRONMENT: Final = f"{PARSER}.asl.eval.environment"
EVENT_MANAGER: Final = f"{PARSER}.asl.eval.event.event_manager"
EVENT_DETAIL: Final = f"{PARSER}.asl.eval.event.event_detail"
JSON_PATH: Final = f"{PARSER}.asl.utils.json_path"
EXECUTE_STATE: Final = f"{PARSER}.asl.component.state.exec.execute_state"
DISTRIBUTED_ITERATION: Final = f"{STATE_MAP}.iteration.distributed_iteration_component"
ERROR_NAMES: Final = f"{PARSER}.asl.component.common.error_name"
ENCODING: Final = f"{PARSER}.asl.utils.encoding"
PARSER_API: Final = f"{PARSER}.api"
PARSER_MODELS: Final = f"{PARSER}.models"
EXECUTION: Final = f"{PARSER}.backend.execution"
EXECUTION_WORKER: Final = f"{PARSER}.backend.execution_worker"
SFN_MODELS: Final = "moto.stepfunctions.models"
SFN_RESPONSES: Final = "moto.stepfunctions.responses"
SFN_EXCEPTIONS: Final = "moto.stepfunctions.exceptions"
LAMBDA_SIMPLE: Final = "moto.awslambda_simple.models"
LAMBDA_UTILS: Final = "moto.awslambda.utils"
LAMBDA_EXCEPTIONS: Final = "moto.awslambda.exceptions"
CORE_MODELS: Final = "moto.core.models"
CORE_EXCEPTIONS: Final = "moto.core.exceptions"
CORE_CONFIG: Final = "moto.core.config"

ENGINE_MODULES: Final = (PARSER_MODELS, LAMBDA_SIMPLE)
"""What the engine imports first: moto's ASL interpreter and its Lambda backend (both come
with the ``local`` extra)."""


@dataclass(frozen=True)
class Internal:
    """One thing of moto's the engine uses: ``module``, and in it ``name`` (a dotted path; empty
    for the module itself). ``params``: the signature the engine calls or replaces it with.
    ``attribute``: ``name`` is ``Class.attr``, an attribute its instances get from the class's
    own code (``self.attr = ...``). ``use``: which part of the engine needs it."""

    module: str
    name: str = ""
    params: tuple[str, ...] | None = None
    attribute: bool = False
    use: str = ""


def _rows(use: str, *rows: tuple[Any, ...]) -> tuple[Internal, ...]:
    return tuple(Internal(*row, use=use) for row in rows)  # type: ignore[misc]


_SELF_ENV: Final = ("self", "env")
_RESOURCE_EVAL: Final = ("env", "resource_runtime_part", "state_credentials")
_START_EXECUTION: Final = ("self", "state_machine_arn", "name", "execution_input", "trace_header")
_NORMALISE: Final = ("boto_service_name", "service_action_name")

INTERNALS: Final[tuple[Internal, ...]] = (
    *_rows("engine",  # starting the interpreter (local.py)
           ("moto", "mock_aws"), ("moto", "__version__"), (CORE_CONFIG, "DefaultConfig"),
           (PARSER_MODELS,), (LAMBDA_SIMPLE,)),
    *_rows("routing",  # Lambda and states:startExecution tasks to our handlers (routing.py)
           (LAMBDA_SIMPLE, "LambdaSimpleBackend.invoke",
            ("self", "function_name", "qualifier", "body", "headers", "response_headers")),
           (LAMBDA_UTILS, "get_backend"), (LAMBDA_EXCEPTIONS, "UnknownFunctionException"),
           (CORE_EXCEPTIONS, "JsonRESTError"), (CORE_EXCEPTIONS, "ServiceException"),
           (CORE_MODELS, "DEFAULT_ACCOUNT_ID"), (SFN_RESPONSES, "get_backend"),
           (PARSER_MODELS, "StepFunctionsParserBackend.start_execution", _START_EXECUTION),
           (EXECUTION, "Execution.exec_arn", None, True),
           (EXECUTION, "Execution.start_date", None, True),
           (EXECUTION, "Execution.execution_arn", None, True),
           # a batch's StartEach: its ItemReader reads with s3:getObject, its ResultWriter
           # writes with s3:putObject (moto's own code, which the pipeline relies on)
           (ITEM_READER_S3, "ResourceEvalS3._handle_get_object", _RESOURCE_EVAL),
           (RESULT_WRITER_S3, "ResourceEvalS3._handle_put_object", _RESOURCE_EVAL)),
    *_rows("moto_fixes",  # moto bugs (moto_fixes.py)
           (TASK_SFN, "StateTaskServiceSfn._normalise_parameters",
            ("self", "parameters", *_NORMALISE)),
           (TASK_SFN, "StateTaskServiceSfn._normalise_response",
            ("self", "response", *_NORMALISE)),
           (TASK_SFN, "StateTaskServiceSfn._to_boto_request",
            ("self", "parameters", "structure_shape")),
           (TASK_SFN, "StateTaskServiceSfn._from_boto_response",
            ("self", "response", "structure_shape")),
           (TASK_SFN, "StateTaskServiceSfn._get_boto_service_name", ("self", "boto_service_name")),
           (TASK_SFN, "StateTaskServiceSfn._get_boto_service_action",
            ("self", "service_action_name")),
           (TASK_LAMBDA, "StateTaskLambda._from_error", ("self", "env", "ex")),
           (PARSER_API, "HistoryEventType"), (PARSER_API, "LambdaFunctionFailedEventDetails"),
           (CUSTOM_ERROR, "CustomErrorName"), (FAILURE_EVENT, "FailureEvent"),
           (EVENT_DETAIL, "EventDetails")),
    *_rows("speedups",  # (speedups.py)
           (TASK_BATCH,), (TASK_UNSUPPORTED, "StateTaskServiceUnsupported"),
           (LAMBDA_EVAL, "boto_client_for", ("region", "service", "state_credentials")),
           (TASK_SFN, "boto_client_for", ("region", "service", "state_credentials")),
           (CORE_MODELS, "botocore_stubber"), (CORE_MODELS, "BotocoreStubber.enabled", None, True),
           (JSON_PATH, "parse"), (RESULT_PATH, "parse"),
           (ASL_PARSER, "AmazonStateLanguageParser.parse", ("definition",)),
           (COMPONENT, "Component"), (EVAL_COMPONENT, "EvalComponent"),
           (EVAL_COMPONENT, "EvalComponent.heap_key"),
           (SFN_MODELS, "StateMachine._handle_name_input_idempotency",
            ("self", "name", "execution_input")),
           (SFN_MODELS, "StateMachine.executions", None, True),
           (EXECUTION, "BaseExecutionWorkerCommunication.terminated", ("self",)),
           (EXECUTION, "BaseExecutionWorkerCommunication.execution", None, True)),
    *_rows("aws_limits",  # (aws_limits.py)
           (EVENT_MANAGER, "EventManager"),
           (EVENT_MANAGER, "EventManager.add_event", ("self", "context", "event_type",
                                                      "event_details", "timestamp",
                                                      "update_source_event_id")),
           (EVENT_MANAGER, "EventManager._history_event_list", None, True),
           (EVENT_MANAGER, "EventManager._mutex", None, True),
           (ENVIRONMENT, "Environment.__init__"),
           (ENVIRONMENT, "Environment.set_error", ("self", "error")),
           (ENVIRONMENT, "Environment._state_mutex", None, True),
           (ENVIRONMENT, "Environment.event_manager", None, True),
           (ENVIRONMENT, "Environment.stack", None, True),
           (ERROR_EQUALS, "ErrorEqualsDecl._eval_body", _SELF_ENV),
           (ERROR_EQUALS, "ErrorEqualsDecl._STATE_ALL_ERROR"),
           (ERROR_EQUALS, "ErrorEqualsDecl.error_names", None, True),
           (STATE, "is_within_size_quota", ("value",)),
           (TASK_LAMBDA, "is_within_size_quota", ("value",)),
           (TASK_SERVICE, "is_within_size_quota", ("value",)),
           (ENCODING, "to_json_str"),
           (SFN_EXCEPTIONS, "InvalidExecutionInput"), (SFN_EXCEPTIONS, "InvalidName"),
           (SFN_EXCEPTIONS, "InvalidToken"), (SFN_EXCEPTIONS, "ValidationException"),
           (SFN_RESPONSES, "StepFunctionResponse.get_execution_history", ("self",)),
           (SFN_RESPONSES, "StepFunctionResponse._get_param"),
           (SFN_RESPONSES, "StepFunctionResponse.stepfunction_backend"),
           (PARSER_MODELS, "StepFunctionsParserBackend.describe_execution"),
           (EXECUTION, "Execution.exec_worker", None, True),
           (EXECUTION_WORKER, "ExecutionWorker.env", None, True),
           (PARSER_API, "ExecutionFailedEventDetails"),
           (DISTRIBUTED_WORKER, "DistributedItemProcessorWorker._eval_job",
            ("self", "env", "job")),
           (JSON_PATH, "NoSuchJsonPathError"),
           (JSON_PATH, "NoSuchJsonPathError.json_path", None, True),
           (JSON_PATH, "NoSuchJsonPathError.data", None, True),
           (EXECUTE_STATE, "ExecutionState._from_error", ("self", "env", "ex")),
           (f"{CHOICE_COMPARISON}.comparison_variable", "ComparisonVariable._eval_body",
            _SELF_ENV),
           (f"{CHOICE_COMPARISON}.comparison_variable", "ComparisonVariable.variable", None,
            True),
           (f"{CHOICE_COMPARISON}.comparison_variable",
            "ComparisonVariable.comparison_function", None, True),
           (f"{CHOICE_COMPARISON}.comparison_func", "ComparisonFunc.operator_type", None, True),
           (f"{CHOICE_COMPARISON}.variable", "NoSuchVariable"),
           (f"{CHOICE_COMPARISON}.variable", "Variable.string_sampler", None, True),
           (f"{CHOICE_COMPARISON}.comparison_operator_type", "ComparisonOperatorType.IsPresent"),
           (f"{ERROR_NAMES}.states_error_name_type", "StatesErrorNameType.StatesRuntime"),
           (TASK_LAMBDA, "StateTaskLambda._from_error", ("self", "env", "ex")),
           (TASK_SERVICE, "StateTaskService._from_error", ("self", "env", "ex")),
           (ENVIRONMENT, "Environment.next_field_name", None, True),
           (DISTRIBUTED_ITERATION, "DistributedIterationComponent._map_run",
            ("self", "env", "eval_input")),
           (DISTRIBUTED_ITERATION, "DistributedIterationComponentEvalInput"),
           (DISTRIBUTED_ITERATION, "DistributedIterationComponentEvalInput.map_run_record",
            None, True),
           (DISTRIBUTED_ITERATION,
            "DistributedIterationComponentEvalInput.tolerated_failure_count", None, True),
           (DISTRIBUTED_ITERATION,
            "DistributedIterationComponentEvalInput.tolerated_failure_percentage", None, True),
           (f"{ERROR_NAMES}.states_error_name", "StatesErrorName"),
           (RESULT_WRITER_S3, "ResourceEvalS3._handle_put_object", _RESOURCE_EVAL),
           (RESULT_WRITER_S3, "ResourceEvalS3._get_s3_client",
            ("resource_runtime_part", "state_credentials")),
           (ENVIRONMENT, "Environment.map_run_record_pool_manager", None, True),
           (ENVIRONMENT, "Environment.program_state", ("self",)),
           (f"{STATE_MAP}.iteration.itemprocessor.map_run_record", "MapRunRecord.map_run_arn",
            None, True),
           (DISTRIBUTED_WORKER, "DistributedItemProcessorWorker._map_run_record", None, True),
           (f"{STATE_MAP}.iteration.job", "Job.job_index", None, True),
           (f"{STATE_MAP}.iteration.job", "Job.job_input", None, True),
           (f"{STATE_MAP}.iteration.job", "Job.job_output", None, True),
           (f"{ERROR_NAMES}.states_error_name_type",
            "StatesErrorNameType.StatesExceedToleratedFailureThreshold"),
           (FAILURE_EVENT, "FailureEvent"), (PARSER_API, "HistoryEventType"),
           (EVENT_DETAIL, "EventDetails")),
    *_rows("faults",  # (faults.py)
           (TASK_SFN, "StateTaskServiceSfn._eval_service_task",
            ("self", "env", "resource_runtime_part", "normalised_parameters",
             "state_credentials")),
           (TASK_SFN, "StateTaskServiceSfn._get_sfn_resource"),
           (TASK_SFN, "StateTaskServiceSfn._get_sfn_resource_type"),
           (PARSER_API, "TaskFailedEventDetails"), (FAILURE_EVENT, "FailureEventException"),
           (RETRIER, "time")),
)


def installed_version(distribution: str = "moto") -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _release(version: str) -> tuple[int, ...] | None:
    """``5.2.6`` -> (5, 2, 6); None for anything but a plain release (``5.3.0.dev1``)."""
    parts = version.split(".")
    return tuple(int(p) for p in parts) if all(p.isdigit() for p in parts) else None


def version_supported(version: str) -> bool:
    release = _release(version)
    low, high = (_release(v) for v in SUPPORTED)
    return release is not None and low is not None and high is not None and (
        low <= release <= high)


def _resolve(module: str, path: str) -> Any:
    obj: Any = importlib.import_module(module)
    for part in filter(None, path.split(".")):
        obj = getattr(obj, part)
    return obj


def _sets_attribute(cls: type, attr: str) -> bool:
    """Whether the class (or a base of moto's) has ``attr``, or one of its methods names
    ``self.attr`` (in the methods' compiled code: reading their source costs ~10 ms each)."""
    for base in cls.__mro__:
        if attr in vars(base):
            return True
        if base.__module__.startswith("moto.") and any(
                attr in member.__code__.co_names
                for member in vars(base).values() if inspect.isfunction(member)):
            return True
    return False


def problem(row: Internal) -> str | None:
    """What about this row no longer holds (None: it holds)."""
    where = f"{row.module}.{row.name}" if row.name else row.module
    try:
        if row.attribute:
            owner, attr = row.name.rsplit(".", 1)
            cls = _resolve(row.module, owner)
            return None if _sets_attribute(cls, attr) else f"{where}: no longer set"
        obj = _resolve(row.module, row.name)
    except (ImportError, AttributeError) as exc:
        return f"{where}: missing ({exc})"
    if row.params is not None:
        try:
            params = tuple(inspect.signature(obj).parameters)
        except (TypeError, ValueError) as exc:
            return f"{where}: no signature ({exc})"
        if params != row.params:
            return f"{where}: signature is {params}, expected {row.params}"
    return None


def problems() -> list[str]:
    """Every row of :data:`INTERNALS` that no longer holds for the installed moto."""
    return [found for row in INTERNALS if (found := problem(row)) is not None]


def check_version() -> None:
    """Refuse, in one line, a moto that is missing or outside :data:`SUPPORTED` (before any of
    it is imported)."""
    version = installed_version()
    if version is None:
        from s3split.engine.pipeline_files import LOCAL_EXTRA_MISSING

        raise ExtraNotInstalled(LOCAL_EXTRA_MISSING)
    if not version_supported(version):
        raise UnsupportedDependency(
            f"moto {version} is installed; this s3split's local engine supports moto "
            f"{SUPPORTED[0]} to {SUPPORTED[1]}: {INSTALL_SUPPORTED}")


def unsupported(what: str) -> UnsupportedDependency:
    return UnsupportedDependency(
        f"moto {installed_version()} lacks what the local engine uses: {what}; "
        f"{INSTALL_SUPPORTED}")


def check() -> None:
    """Refuse, in one line, a moto this engine cannot run on: missing, outside
    :data:`SUPPORTED`, or without what :data:`INTERNALS` lists (a supported release patched
    by hand, say)."""
    check_version()
    found = problems()
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise unsupported(found[0] + more)


def event_details(**fields: Any) -> Any:
    """moto's ``EventDetails`` (a TypedDict with every kind of detail as a required key)."""
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    cls: Any = EventDetails
    return cls(**fields)
