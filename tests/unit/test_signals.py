"""A stop (Ctrl-C, SIGTERM, SIGHUP) is found behind the error that stopping itself raised, so
the command says it was stopped instead of naming that error."""

import signal

import pytest

from s3split.cli.signals import Stopped, stop_behind


def _raised_while_handling(stop: KeyboardInterrupt) -> OSError:
    try:
        try:
            raise stop
        except KeyboardInterrupt:
            raise OSError(9, "Bad file descriptor") from None  # (as a pipe closed under a read)
    except OSError as error:
        return error


@pytest.mark.parametrize("stop", [KeyboardInterrupt(), Stopped(signal.SIGTERM)])
def test_an_error_raised_while_stopping_is_the_stop(stop: KeyboardInterrupt) -> None:
    assert stop_behind(stop) is stop
    assert stop_behind(_raised_while_handling(stop)) is stop


def test_an_error_of_its_own_is_no_stop() -> None:
    try:
        raise ValueError("bad")
    except ValueError as error:
        assert stop_behind(error) is None
