"""A TCP relay on loopback in front of a server, for proxies that watch or break the traffic:
point the client's endpoint at ``http://127.0.0.1:{relay.port}``."""

import socket
import threading
from contextlib import suppress
from types import TracebackType
from typing import Self


class Relay:
    """Passes every connection through to ``upstream_port``; subclasses see each piece."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self._closed = False

    def __enter__(self) -> Self:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._closed = True
        self._server.close()

    def passing(self, size: int, downstream: bool) -> None:
        """``size`` bytes are about to pass (downstream: server -> client)."""

    def keep_open(self, passed: int, downstream: bool) -> bool:
        """Whether the connection goes on after ``passed`` bytes one way."""
        return True

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
            while data := source.recv(1 << 16):
                self.passing(len(data), downstream)
                sink.sendall(data)
                passed += len(data)
                if not self.keep_open(passed, downstream):
                    break
        for sock in (source, sink):
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the other direction's blocked recv
            sock.close()
