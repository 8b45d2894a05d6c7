"""A TCP proxy on loopback that counts the bytes passing each way: what a client sends to a
server (requests: headers and bodies, as on the wire) and what it gets back.

Used to measure what a split sends to S3 (tests and bench/bench_s3_assembly.py); point the
client's endpoint at ``http://127.0.0.1:{proxy.port}``.
"""

import socket
import threading
from contextlib import suppress
from types import TracebackType


class CountingProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.sent = 0  # client -> server
        self.received = 0  # server -> client
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self._closed = False

    def __enter__(self) -> "CountingProxy":
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._closed = True
        self._server.close()

    def reset(self) -> tuple[int, int]:
        """Start counting again; the counts so far, (sent, received)."""
        with self._lock:
            counts = self.sent, self.received
            self.sent = self.received = 0
        return counts

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, request: bool) -> None:
        with suppress(OSError):
            while data := source.recv(1 << 20):
                with self._lock:  # counted before it is passed on: a reply never precedes it
                    if request:
                        self.sent += len(data)
                    else:
                        self.received += len(data)
                sink.sendall(data)
        for sock in (source, sink):
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the other direction's blocked recv
            sock.close()
