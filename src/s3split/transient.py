"""Which failures of a dependency are worth retrying, decided in one place.

Botocore already retries throttling and 5xx responses with backoff inside each call; what
still escapes it becomes a ``TransientError``, which the state machine retries. A response cut
off mid-body (``IncompleteReadError``; ``ResponseStreamingError`` is an ``HTTPClientError``) is
a dropped connection too.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import ClientError, HTTPClientError, IncompleteReadError
from botocore.exceptions import ConnectionError as BotoConnectionError

from s3split.errors import TransientError

TRANSIENT_CODES = frozenset({
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "Throttling",
    "RequestLimitExceeded",
    "SlowDown",
    "RequestTimeout",
    "InternalError",
    "InternalServerError",
    "ServiceUnavailable",
})


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return exc.response.get("Error", {}).get("Code", "") in TRANSIENT_CODES or status >= 500
    return isinstance(exc, BotoConnectionError | HTTPClientError | IncompleteReadError
                      | TimeoutError | ConnectionError)


@contextmanager
def transient_errors(what: str) -> Iterator[None]:
    """Re-raise a retryable failure inside the block as ``TransientError`` naming ``what``."""
    try:
        yield
    except TransientError:
        raise
    except Exception as exc:
        if is_transient(exc):
            raise TransientError(f"{what}: {type(exc).__name__}: {exc}") from exc
        raise
