"""The benchmarks' clients: keep-alive HTTP/1.1 over bare sockets, so that the client's own
CPU cost stays low beside the server's."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Iterable


def _body_length(header_lines: Iterable[bytes]) -> int:
    """The answer's Content-Length (these clients read no chunked answers)."""
    length = 0
    for line in header_lines:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            raise NotImplementedError(f"the server answered with Transfer-Encoding: {value.strip().decode()}")
    return length


async def post(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes, body: bytes
) -> tuple[int, bytes]:
    """One POST on an open connection: its status and answer."""
    writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
    status_line = await reader.readline()
    header_lines = []
    while (line := await reader.readline()) not in (b"\r\n", b""):
        header_lines.append(line)
    return int(status_line.split()[1]), await reader.readexactly(_body_length(header_lines))


async def run_clients(
    url: str,
    key: str,
    bodies: Iterable[bytes],
    *,
    clients: int,
    path: str,
    content_type: str,
    stored_when: Callable[[int, bytes], bool],
) -> tuple[int, int, float]:
    """Posts every body once over `clients` connections: (stored, refused, seconds); an answer
    counts as stored when `stored_when(status, answer)` says so."""
    host, port = url.removeprefix("http://").split(":")
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nx-retrace-key: {key}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: "
    ).encode()
    queue = iter(bodies)
    stored = refused = 0

    async def client() -> None:
        nonlocal stored, refused
        reader, writer = await asyncio.open_connection(host, int(port))
        for body in queue:
            if stored_when(*await post(reader, writer, head, body)):
                stored += 1
            else:
                refused += 1
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return stored, refused, time.perf_counter() - started


class BareConnection:
    """One blocking keep-alive HTTP/1.1 connection over a bare socket, for latency figures:
    the client adds tens of microseconds to each request rather than an HTTP library's
    milliseconds, so the figure is the server's and the network's."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        host, port = url.removeprefix("http://").split(":")
        self._socket = socket.create_connection((host, int(port)))
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._host = host
        self._headers = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self._buffer = b""

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        head = f"{method} {path} HTTP/1.1\r\nHost: {self._host}\r\n{self._headers}"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self._socket.sendall(head.encode() + b"\r\n" + (body or b""))
        while b"\r\n\r\n" not in self._buffer:
            self._receive()
        head_bytes, _, self._buffer = self._buffer.partition(b"\r\n\r\n")
        lines = head_bytes.split(b"\r\n")
        length = _body_length(lines[1:])
        while len(self._buffer) < length:
            self._receive()
        answer, self._buffer = self._buffer[:length], self._buffer[length:]
        return int(lines[0].split()[1]), answer

    def _receive(self) -> None:
        chunk = self._socket.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self._buffer += chunk

    def close(self) -> None:
        self._socket.close()
