"""A TCP proxy on loopback that counts the bytes passing each way: what a client sends to a
server (requests: headers and bodies, as on the wire) and what it gets back.

Used to measure what a split sends to S3 (tests and bench/bench_s3_assembly.py); point the
client's endpoint at ``http://127.0.0.1:{proxy.port}``.
"""

from tests.support.relay import Relay


class CountingProxy(Relay):
    def __init__(self, upstream_port: int) -> None:
        super().__init__(upstream_port)
        self.sent = 0  # client -> server
        self.received = 0  # server -> client

    def reset(self) -> tuple[int, int]:
        """Start counting again; the counts so far, (sent, received)."""
        with self._lock:
            counts = self.sent, self.received
            self.sent = self.received = 0
        return counts

    def passing(self, size: int, downstream: bool) -> None:
        with self._lock:  # counted before it is passed on: a reply never precedes it
            if downstream:
                self.received += size
            else:
                self.sent += size
