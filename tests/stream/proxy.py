"""A TCP proxy on 127.0.0.1 that a test can use to break live connections on purpose.

`hold_replies()` stops forwarding what the server sends (acknowledgements pile up unseen),
`cut()` resets every open connection, and `retarget()` sends new connections to another
server process, as a load balancer would after a reconnection.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from urllib.parse import urlparse


class TcpProxy:
    def __init__(self, target_url: str) -> None:
        self._target = _address(target_url)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._replies = threading.Event()
        self._replies.set()
        self.connections = 0
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="test-proxy").start()

    def hold_replies(self) -> None:
        self._replies.clear()

    def retarget(self, target_url: str) -> None:
        self._target = _address(target_url)

    def cut(self) -> None:
        """Resets every open connection (RST, as a crashed peer or a dropped route would)."""
        with self._lock:
            sockets, self._open = self._open, []
            self._replies.set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with contextlib.suppress(OSError):
                sock.close()

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self._target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open += [client, upstream]
                self.connections += 1
            threading.Thread(target=self._pipe, args=(client, upstream, None), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, self._replies), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket, gate: threading.Event | None) -> None:
        try:
            while chunk := source.recv(65536):
                if gate is not None:
                    gate.wait()
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _address(url: str) -> tuple[str, int]:
    parsed = urlparse(url)
    assert parsed.hostname and parsed.port
    return parsed.hostname, parsed.port
