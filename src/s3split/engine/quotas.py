"""AWS quotas the local engine enforces, each with the documentation page it comes from.

moto's interpreter is more lenient than Step Functions and Lambda; ``fidelity`` uses
:class:`Quotas` to fail the way AWS does. The table :data:`SOURCES` is the one place the
numbers are written down:

* history events per Standard execution: 25,000. Event 25,000 is ``ExecutionFailed`` with
  ``States.Runtime``, "The execution reached the maximum number of history events (25000).",
  unless it is ``ExecutionSucceeded``. [1]
* execution input: 262,144 bytes as UTF-8. ``StartExecution`` answers
  ``InvalidExecutionInput``. [2] [3]
* a state's output, a task's result: 262,144 bytes as UTF-8. The state fails
  ``States.DataLimitExceeded``, which ``States.ALL`` does not catch; naming it does.
  ``States.Runtime`` no Retry or Catch takes, named or not. [2] [4]
* execution name: 1-80 characters, none of whitespace, ``? *``, ``< > { } [ ]``,
  ``: ; , \\ | ^ ~ $ # % & ` " /``, control characters (U+0000-001F, U+007F-009F,
  U+FFFE-FFFF), surrogates (U+D800-DFFF) or U+10FFFF. ``StartExecution`` answers
  ``InvalidName``. [2] [3]
* Lambda synchronous request: 6 MB, 6,291,456 bytes. ``RequestTooLargeException`` (413). [5]
* Lambda synchronous response: 6 MB, checked as 6,291,556 bytes. The invocation fails with
  the function error ``Function.ResponseSizeTooLarge``. [5] [6]
* Lambda concurrent executions: 1,000 per account and region by default, as few as 10 on a
  new account; an invocation beyond them is throttled, ``TooManyRequestsException`` (429),
  which Step Functions names ``Lambda.TooManyRequestsException``. [5]

[1] https://docs.aws.amazon.com/step-functions/latest/dg/bp-history-limit.html
    (the error name and cause as AWS writes them, measured on AWS:
    https://github.com/floci-io/floci/issues/2734)
[2] https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html
[3] https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html
[4] https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html
[5] https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html
[6] https://zaccharles.medium.com/deep-dive-lambdas-response-payload-size-limit-8aedba9530ed
"""

import re
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Source:
    """One row of the quota table: what is limited, the number, and where AWS says so."""

    quota: str
    value: int
    url: str


HISTORY_EVENTS: Final = 25_000
PAYLOAD_BYTES: Final = 256 * 1024
NAME_CHARS: Final = 80
LAMBDA_REQUEST_BYTES: Final = 6 * 1024 * 1024
LAMBDA_RESPONSE_BYTES: Final = 6_291_556
LAMBDA_CONCURRENCY: Final = 1000  # the default; new accounts may have as few as 10

_SFN_QUOTAS: Final = "https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html"
_LAMBDA_QUOTAS: Final = "https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html"

SOURCES: Final = (
    Source("history events per Standard execution", HISTORY_EVENTS,
           "https://docs.aws.amazon.com/step-functions/latest/dg/bp-history-limit.html"),
    Source("execution input bytes", PAYLOAD_BYTES, _SFN_QUOTAS),
    Source("state input/output and task result bytes", PAYLOAD_BYTES, _SFN_QUOTAS),
    Source("execution name characters", NAME_CHARS, _SFN_QUOTAS),
    Source("Lambda synchronous request bytes", LAMBDA_REQUEST_BYTES, _LAMBDA_QUOTAS),
    Source("Lambda synchronous response bytes", LAMBDA_RESPONSE_BYTES, _LAMBDA_QUOTAS),
    Source("Lambda concurrent executions per account and region", LAMBDA_CONCURRENCY,
           _LAMBDA_QUOTAS),
)

HISTORY_LIMIT_ERROR: Final = "States.Runtime"
DATA_LIMIT_ERROR: Final = "States.DataLimitExceeded"
RESPONSE_TOO_LARGE_ERROR: Final = "Function.ResponseSizeTooLarge"

_BAD_NAME_CHAR = re.compile(
    r"[\s?*<>{}\[\]:;,\\|^~$#%&`\"/\u0000-\u001f\u007f-\u009f\ud800-\udfff\ufffe\uffff\U0010ffff]")


@dataclass(frozen=True)
class Quotas:
    """The limits an engine enforces. AWS's by default; tests may lower one to reach it fast."""

    history_events: int = HISTORY_EVENTS
    payload_bytes: int = PAYLOAD_BYTES
    name_chars: int = NAME_CHARS
    lambda_request_bytes: int = LAMBDA_REQUEST_BYTES
    lambda_response_bytes: int = LAMBDA_RESPONSE_BYTES
    lambda_concurrency: int = LAMBDA_CONCURRENCY  # invocations at once; more are throttled

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not isinstance(value, int) or value < 2:
                raise ValueError(f"Quotas.{name} must be an int >= 2, not {value!r}")

    def history_cause(self) -> str:
        return ("The execution reached the maximum number of history events "
                f"({self.history_events}).")

    def name_problem(self, name: str) -> str | None:
        """Why AWS would refuse ``name`` for an execution, or None."""
        if not 1 <= len(name) <= self.name_chars:
            return f"must be 1-{self.name_chars} characters, is {len(name)}"
        bad = _BAD_NAME_CHAR.search(name)
        if bad:
            return f"character {bad.group()!r} at index {bad.start()} is not allowed"
        return None


AWS_QUOTAS: Final = Quotas()
