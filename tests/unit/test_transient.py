import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from s3split.errors import ChunkInvalid, TransientError
from s3split.transient import is_transient, transient_errors


def client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject")


@pytest.mark.parametrize("exc", [
    client_error("SlowDown", 503), client_error("InternalError", 500),
    client_error("ProvisionedThroughputExceededException", 400),
    EndpointConnectionError(endpoint_url="http://x"), ReadTimeoutError(endpoint_url="http://x"),
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
