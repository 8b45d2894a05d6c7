"""Imported first by the engine's fork server (``lambda_runtime.PRELOAD``): from here on it,
and every worker it forks, ignores SIGINT.

Ctrl-C reaches the whole process group. Multiprocessing's fork server ignores SIGINT only
after it has imported its preload modules, seconds of imports during which a Ctrl-C was a
KeyboardInterrupt traceback from it; the command decides what stops (it kills the workers).
"""

import signal

signal.signal(signal.SIGINT, signal.SIG_IGN)
