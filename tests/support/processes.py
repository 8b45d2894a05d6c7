"""Stopping a command in a subprocess at the moment a test needs: every wait has a deadline,
and the process is killed whatever happens."""

import os
import signal
import subprocess
import time
from collections.abc import Callable


def signal_when(process: "subprocess.Popen[str]", ready: Callable[[], bool], signum: int, *,
                group: bool = True, within: float = 120.0, every: float = 0.01,
                ) -> tuple[str, str]:
    """Once ``ready()`` (asked every ``every`` seconds, for at most ``within``), send
    ``signum`` to the process's group (``group``: what Ctrl-C sends; else to the process
    alone, as ``kill`` does); its stdout and stderr. The process (started in a session of its
    own) is killed with its group if it is still running when this returns or fails."""
    try:
        deadline = time.monotonic() + within
        while not ready():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, f"not ready within {within} s"
            time.sleep(every)
        (os.killpg if group else os.kill)(process.pid, signum)
        return process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
