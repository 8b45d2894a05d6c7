"""The seam between moto's Step Functions interpreter and s3split's handlers: :func:`install`.

Typical use::

    with ProcessDispatcher({"Split": "pkg.app:lambda_handler"}, max_workers=2) as dispatcher:
        with mock_aws(config=moto_config()), install(dispatcher):
            ...  # create and start state machines with boto3

Each concern is a module of its own, and every moto internal they use is a row of
:mod:`.moto_internals`, checked before anything is patched:

* :mod:`.routing`: Lambda tasks to ``dispatch`` (the real handlers);
* :mod:`.moto_fixes`: moto bugs the pipeline runs into;
* :mod:`.speedups`: less CPU, same behaviour (switchable);
* :mod:`.aws_limits`: AWS's quotas and error rules, where moto is lenient;
* :mod:`.faults`: AWS service errors injected by tests.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING

from s3split.engine import aws_limits, moto_fixes, moto_internals, routing, speedups
from s3split.engine import faults as fault_injection
from s3split.engine.quotas import AWS_QUOTAS

if TYPE_CHECKING:
    from s3split.engine.faults import FaultPlan
    from s3split.engine.quotas import Quotas

__all__ = ["install"]

_install_lock = threading.Lock()
_installed = False


@contextmanager
def install(
    dispatch: routing.Dispatch,
    *,
    quotas: Quotas | None = None,
    faults: FaultPlan | None = None,
    retry_interval_scale: float = 1.0,
) -> Iterator[None]:
    """Patch moto (process-wide) so Lambda invocations go to ``dispatch``.

    Use together with ``mock_aws(config=routing.moto_config())`` (or a moto server in this
    process with the same config). Not re-entrant: the patches are class-level. Refuses a moto
    that :func:`.moto_internals.check` refuses. Installs, all undone on exit: the routing, the
    moto fixes, the speed-ups (unless switched off), AWS's quotas (``quotas``, default
    :data:`~s3split.engine.quotas.AWS_QUOTAS`), the injected service errors of ``faults`` and
    Retry intervals scaled by ``retry_interval_scale`` (0: no wait; for tests).
    """
    global _installed
    with _install_lock:  # (first: an active install's patches are not moto's signatures)
        if _installed:
            raise RuntimeError("moto_seam.install() is already active in this process")
        _installed = True
    try:
        moto_internals.check_version()
        speedups.without_aws_batch_tasks()  # (before moto's parser is imported)
        moto_internals.check()
        with ExitStack() as stack:
            routing.patch_invoke(stack, dispatch)
            moto_fixes.patch(stack)
            speedups.patch(stack)
            aws_limits.patch(stack, quotas or AWS_QUOTAS)
            fault_injection.patch(stack, faults, retry_interval_scale)
            yield
    finally:
        with _install_lock:
            _installed = False
