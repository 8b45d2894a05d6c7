"""A TCP proxy on loopback that drops a connection once it has passed N response bytes:
a response cut off mid-body, as S3 sometimes does, at the HTTP layer."""

from tests.support.relay import Relay


class FaultyProxy(Relay):
    def __init__(self, upstream_port: int, cut_after: int, cuts: int = 1) -> None:
        super().__init__(upstream_port)
        self.cut_after, self.cuts = cut_after, cuts
        self.cut_done = 0

    def keep_open(self, passed: int, downstream: bool) -> bool:
        return not (downstream and passed > self.cut_after and self._take_cut())

    def _take_cut(self) -> bool:
        with self._lock:
            if self.cut_done >= self.cuts:
                return False
            self.cut_done += 1
            return True
