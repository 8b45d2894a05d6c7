"""The ``s3split`` command line: split, run on the local engine, start and follow on AWS.
Runs on the user's machine only; nothing in Lambda imports it."""
