"""Ctrl-C, SIGTERM and SIGHUP stop a command the same way.

Python turns SIGINT into ``KeyboardInterrupt`` where the main thread is; SIGTERM (``kill``, a
service manager) and SIGHUP (the terminal closed) become ``Stopped``, a KeyboardInterrupt of
their own, so every place that cleans up after Ctrl-C (kill the engine's workers, release the
run's lock) does so for them too, and the command exits ``128 + N`` as a shell reports a
process that signal N ended. This module imports nothing heavy: the entry point installs it
before anything else is imported.
"""

import signal
from types import FrameType

STOPPING = (signal.SIGTERM, signal.SIGHUP)
HANDLED = (signal.SIGINT, *STOPPING)


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _stop(signum: int, frame: FrameType | None) -> None:
    raise Stopped(signum)


def install() -> None:
    for signum in STOPPING:
        signal.signal(signum, _stop)


def ignore_further() -> None:
    """While a stop is cleaned up: a second Ctrl-C (or kill) must not cut the clean-up short
    with a traceback."""
    for signum in HANDLED:
        signal.signal(signum, signal.SIG_IGN)


def exit_status(exc: KeyboardInterrupt) -> int:
    return 128 + getattr(exc, "signum", signal.SIGINT)


def stopped_by(exc: KeyboardInterrupt) -> str:
    signum = getattr(exc, "signum", None)
    return "interrupted" if signum is None else f"stopped by {signal.Signals(signum).name}"


def stop_behind(exc: BaseException) -> KeyboardInterrupt | None:
    """The stop ``exc`` is, or was raised while handling (a pipe closed under a read as the
    workers were killed, say): an error of stopping is the stop; None when there was none."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt):
            return seen
        seen = seen.__context__
    return None
