"""``python -m s3split``: the same as the ``s3split`` command."""

from s3split.command import main

main()
