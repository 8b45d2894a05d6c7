"""The ``s3split`` command's entry point: one line naming the extra when the command line's
own dependencies are not installed (``pip install s3split`` holds only what Lambda needs)."""

import sys
from importlib.util import find_spec

from s3split.cli import signals

CLI_MODULES = ("click", "rich")
# s3split is not on the package index: the commands that work install from a checkout.
CLI_EXTRA_MISSING = ("the command line needs the 'cli' extra: in s3split's checkout, "
                     "pipx install --force '.[cli]' (or pip install '.[cli]')")


def main() -> None:
    signals.install()
    try:
        if any(find_spec(module) is None for module in CLI_MODULES):
            print(f"s3split: error: {CLI_EXTRA_MISSING}", file=sys.stderr)
            sys.exit(1)
        from s3split.cli.commands import main as cli_main
    except KeyboardInterrupt as exc:  # (while the command line itself was being imported)
        signals.ignore_further()
        print(f"s3split: {signals.stopped_by(exc)} before it started", file=sys.stderr)
        sys.exit(signals.exit_status(exc))
    cli_main()
