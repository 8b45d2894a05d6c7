"""Injected faults: killed processes, cut connections, throttling, bad input."""
