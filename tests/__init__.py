"""The s3split tests: a package, so that ``tests.support`` imports the same way everywhere,
worker processes spawned by the engine included (they get the repository on ``sys.path``)."""
