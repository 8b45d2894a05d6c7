"""Unit tests: one module at a time, local files and in-process moto."""
