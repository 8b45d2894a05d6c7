import pytest
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
)

from s3split.errors import ChunkInvalid, TransientError
from s3split.transient import TRANSIENT_CODES, is_transient, transient_errors


def client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject")


@pytest.mark.parametrize("exc", [
    client_error("SlowDown", 503), client_error("InternalError", 500),
    client_error("ProvisionedThroughputExceededException", 400),
    EndpointConnectionError(endpoint_url="http://x"), ReadTimeoutError(endpoint_url="http://x"),
    client_error("ThrottlingException", 400), client_error("SlowDown", 503),
    IncompleteReadError(actual_bytes=1, expected_bytes=2), ResponseStreamingError(error="reset"),
])
def test_retryable_failures(exc: Exception) -> None:
    assert is_transient(exc)
    with pytest.raises(TransientError, match="reading x"), transient_errors("reading x"):
        raise exc


@pytest.mark.parametrize("exc", [client_error("AccessDenied", 403),
                                 client_error("NoSuchKey", 404), ChunkInvalid("bad")])
def test_permanent_failures_pass_through(exc: Exception) -> None:
    assert not is_transient(exc)
    with pytest.raises(type(exc)), transient_errors("reading x"):
        raise exc


@pytest.mark.parametrize("code", sorted(TRANSIENT_CODES))
def test_the_dynamodb_processor_retries_what_everything_else_retries(code: str) -> None:
    """One retry policy: DynamoDB's errors go through the same list (it once kept its own,
    shorter one, so an InternalError of DynamoDB failed the chunk for good)."""
    from s3split.processors.dynamodb import _dynamodb_error

    assert isinstance(_dynamodb_error(client_error(code, 400), "t"), TransientError)
