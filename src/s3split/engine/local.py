"""The pipeline on one machine: the real ASL file on moto's interpreter, the real handlers
in worker processes, storage on local files (or S3 at ``AWS_ENDPOINT_URL``)."""

import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import boto3

from s3split import executions
from s3split.aws_calls import ENV as AWS_CALL_LOG
from s3split.engine.faults import FaultPlan
from s3split.engine.lambda_runtime import ProcessDispatcher
from s3split.engine.moto_seam import install
from s3split.engine.pipeline_files import DEFINITION, locate
from s3split.engine.quotas import AWS_QUOTAS, Quotas
from s3split.engine.routing import moto_config
from s3split.engine.speedups import ends_of, wait_for_end
from s3split.pipeline.batch import result_writer_substitutions

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

REGION, ACCOUNT = "us-east-1", "123456789012"


@dataclass(frozen=True)
class Function:
    """One Lambda function as the template defines it: ASL placeholder, handler (relative to
    the code :func:`~s3split.engine.pipeline_files.locate` finds), timeout."""

    placeholder: str
    handler: str
    timeout_s: float


FUNCTIONS = {
    "s3split-splitter": Function("SplitterFunctionArn", "functions.splitter.app:lambda_handler",
                                 900),
    "s3split-iterator": Function("IteratorFunctionArn", "functions.iterator.app:lambda_handler",
                                 10),
    "s3split-worker": Function("WorkerFunctionArn", "functions.worker.app:lambda_handler", 900),
}
_CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")
_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


def placeholders(text: str) -> set[str]:
    return set(_PLACEHOLDER.findall(text))


def render_definition(substitutions: Mapping[str, str], text: str | None = None) -> str:
    """Fill ``${Name}`` placeholders as SAM's DefinitionSubstitutions would; all must be given."""
    text = locate().definition_text() if text is None else text
    missing = placeholders(text) - set(substitutions)
    if missing:
        raise KeyError(f"no substitution for {sorted(missing)} in {DEFINITION[-1]}")
    return _PLACEHOLDER.sub(lambda m: substitutions[m.group(1)], text)


def function_arn(name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"


@dataclass
class Outcome:
    """How a run's chain of executions (one per continue-as-new) ended."""

    status: str
    executions: list[str] = field(default_factory=list)
    output: Any = None
    error: str | None = None
    cause: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status == "SUCCEEDED"


class LocalEngine:
    """Create the state machine once, then start and follow runs."""

    def __init__(self, sfn: "SFNClient", state_machine_arn: str,
                 dispatcher: ProcessDispatcher) -> None:
        self.sfn = sfn
        self.state_machine_arn = state_machine_arn
        self.dispatcher = dispatcher

    @property
    def busy(self) -> int:
        """Handler invocations running right now."""
        return self.dispatcher.busy

    def start(self, run_input: dict[str, Any]) -> str:
        started = self.sfn.start_execution(stateMachineArn=self.state_machine_arn,
                                           input=json.dumps(run_input))
        return started["executionArn"]

    def wait(self, execution_arn: str, timeout_s: float = 24 * 3600,
             on_poll: Callable[[], None] = lambda: None, poll_s: float = 1.0) -> Outcome:
        """Follow ``execution_arn`` and the executions it continues as, until the last ends.

        Looks again as soon as the one it follows ends, and at least every ``poll_s`` (then
        calls ``on_poll``)."""
        deadline = time.monotonic() + timeout_s
        outcome = Outcome("RUNNING", [execution_arn])
        while (left := deadline - time.monotonic()) > 0:
            newest = outcome.executions[-1]
            seen = ends_of(newest)
            *_, described = executions.follow(self.sfn, outcome.executions)
            if described["status"] == "RUNNING":
                on_poll()
                if outcome.executions[-1] == newest:
                    wait_for_end(newest, seen, min(poll_s, left))
                continue
            outcome.status = described["status"]
            outcome.output = executions.json_or_none(described.get("output"))
            outcome.error, outcome.cause = described.get("error"), described.get("cause")
            return outcome
        raise TimeoutError(f"execution {outcome.executions[-1]} still running after {timeout_s} s")

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        return list(executions.history(self.sfn, execution_arn))


def handler_env(work_location: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """What the functions see: like the SAM template's environment, for local storage."""
    # Captured before moto swaps in fake credentials, so a respawned worker still has them.
    env = {name: os.environ[name] for name in _CREDENTIALS if name in os.environ}
    if os.environ.get(AWS_CALL_LOG):  # the functions' AWS calls, for the IAM proof (tests)
        env[AWS_CALL_LOG] = os.environ[AWS_CALL_LOG]
    env |= {
        "S3SPLIT_WORK_LOCATION": work_location,
        "S3SPLIT_ALLOW_LOCAL": "1",
        "S3SPLIT_RUN_FROM_INPUT": "1",  # `s3split run --out`: the user's own machine
        "S3SPLIT_ENGINE_PID": str(os.getpid()),  # run locks live as long as this process
        "POWERTOOLS_SERVICE_NAME": "s3split",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_TRACE_DISABLED": "true",
        # Quiet by default: the CLI reports failures itself.
        "POWERTOOLS_LOG_LEVEL": os.environ.get("POWERTOOLS_LOG_LEVEL", "CRITICAL"),
    }
    env.update(extra or {})
    return env


@contextmanager
def local_engine(work_location: str, *, workers: int = 2, env: Mapping[str, str] | None = None,
                 timeouts: Mapping[str, float] | None = None, quotas: Quotas = AWS_QUOTAS,
                 faults: FaultPlan | None = None,
                 retry_interval_scale: float = 1.0) -> Iterator[LocalEngine]:
    """Start worker processes and moto's interpreter; yield an engine to run pipelines on.

    The engine fails where AWS fails (``quotas``: 25,000 history events per execution, 256 KiB
    payloads, execution names, Lambda's 6 MB; see :mod:`s3split.engine.quotas`). Tests may pass
    ``faults`` (AWS service errors to inject, :mod:`s3split.engine.faults`) and
    ``retry_interval_scale`` (Retry ``IntervalSeconds`` multiplied by it; 0 retries at once).
    """
    with ExitStack() as stack:
        stack.enter_context(_s3_endpoint_for_children())
        stack.enter_context(_quiet_interpreter())
        code = locate()
        functions = {name: code.handler(f.handler) for name, f in FUNCTIONS.items()}
        limits = {name: f.timeout_s for name, f in FUNCTIONS.items()} | dict(timeouts or {})
        dispatcher = stack.enter_context(ProcessDispatcher(
            functions, max_workers=workers, timeouts=limits,
            # (a range split's Maps: as many tasks at a time as there are workers to run them)
            env=handler_env(work_location,
                            {"S3SPLIT_RANGE_CONCURRENCY": str(workers)} | dict(env or {})),
            extra_sys_path=code.sys_path, region=REGION, account_id=ACCOUNT,
            # (a small run, one task at a time, runs on one worker, warm before Plan)
            on_demand=True, warm=True))
        from moto import mock_aws

        config = moto_config()
        config["core"] = {"passthrough": {"services": ["s3"]}}
        stack.enter_context(mock_aws(config=config))
        stack.enter_context(install(dispatcher, quotas=quotas, faults=faults,
                                    retry_interval_scale=retry_interval_scale))
        sfn = boto3.client("stepfunctions", region_name=REGION,
                           endpoint_url=f"https://states.{REGION}.amazonaws.com")
        definition = render_definition(
            {f.placeholder: function_arn(name) for name, f in FUNCTIONS.items()}
            | result_writer_substitutions(work_location))
        created = sfn.create_state_machine(
            name="s3split-pipeline", definition=definition, type="STANDARD",
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/s3split-local")
        yield LocalEngine(sfn, created["stateMachineArn"], dispatcher)


@contextmanager
def _quiet_interpreter() -> Iterator[None]:
    """moto logs every failed state with its whole parse tree; the outcome is what matters."""
    moto_logger = logging.getLogger("moto")
    level = moto_logger.level
    moto_logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        moto_logger.setLevel(level)


@contextmanager
def _s3_endpoint_for_children() -> Iterator[None]:
    """``AWS_ENDPOINT_URL`` would also redirect the interpreter's own (mocked) clients;
    narrow it to S3 while the engine runs."""
    endpoint = os.environ.pop("AWS_ENDPOINT_URL", None)
    if endpoint:
        os.environ.setdefault("AWS_ENDPOINT_URL_S3", endpoint)
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    try:
        yield
    finally:
        if endpoint:
            os.environ["AWS_ENDPOINT_URL"] = endpoint
