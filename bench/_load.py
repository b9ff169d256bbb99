"""The benchmarks' load generator: keep-alive HTTP/1.1 POSTs over bare sockets, so that the
client's own CPU cost stays low beside the server's."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable


async def post(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes, body: bytes
) -> tuple[int, bytes]:
    """One POST on an open connection: its status and answer."""
    writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
    status_line = await reader.readline()
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    return int(status_line.split()[1]), await reader.readexactly(length)


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
