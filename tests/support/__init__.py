"""Helpers shared by the tests (the fixtures are in tests/conftest.py):

- ``csvdata``: CSV building and reference parsing; ``splits``: a split read back and checked;
- ``jobs``: a processor's job on a local chunk; ``aws``: fake credentials and in-process moto;
- ``pipeline``: a moto S3 server, runs on the engine and their accounting; ``seam``: the seam
  tests' definitions; ``faulty_proxy``: a TCP proxy that cuts responses;
- modules the engine's worker processes import by name: ``pipeline_processors``,
  ``fault_processors``, ``seam_handlers``.
"""
