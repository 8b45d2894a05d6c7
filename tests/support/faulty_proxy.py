"""A TCP proxy on loopback that drops a connection once it has passed N response bytes:
a response cut off mid-body, as S3 sometimes does, at the HTTP layer."""

import socket
import threading
from contextlib import suppress
from types import TracebackType


class FaultyProxy:
    def __init__(self, upstream_port: int, cut_after: int, cuts: int = 1) -> None:
        self.upstream_port, self.cut_after, self.cuts = upstream_port, cut_after, cuts
        self.cut_done = 0
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._closed = False

    def __enter__(self) -> "FaultyProxy":
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._closed = True
        self._server.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, downstream: bool) -> None:
        passed = 0
        with suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
                passed += len(data)
                if downstream and passed > self.cut_after and self._take_cut():
                    break
        for sock in (source, sink):
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the other direction's blocked recv
            sock.close()

    def _take_cut(self) -> bool:
        with self._lock:
            if self.cut_done >= self.cuts:
                return False
            self.cut_done += 1
            return True
