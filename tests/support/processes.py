"""Stopping a command in a subprocess at the moment a test needs: every wait has a deadline,
and the process is killed whatever happens."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

# A terminal starts its foreground job with SIGINT handled by default and not blocked; a child
# of this test process inherits the process's own SIGINT disposition and signal mask through
# exec, and in full `make test` runs (not alone) the CLI came up deaf to SIGINT three times
# (which earlier test leaves the pytest worker so is not found yet). So: as a terminal would.
AS_A_TERMINAL_STARTS_IT = [
    sys.executable, "-c",
    "import os, signal, sys; signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT]); "
    "signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])",
]


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
