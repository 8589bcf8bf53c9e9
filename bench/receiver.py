"""A tiny, fast CloudEvents receiver for the payload-logging figure, run as its own process.

    python bench/receiver.py --port 9000        # prints "ready <port>" once listening

Every POST is acknowledged at once with 200 and an empty body (HTTP/1.1,
keep-alive, Content-Length or chunked bodies), and counted by its `ce-type`
header (binary-mode CloudEvents: the event's attributes are headers, the
body is the raw payload, thrown away). `GET /stats` answers the counts as
JSON: {"events": n, "bytes": n, "by_type": {ce-type: n}, "without_ce_id": n}.

An asyncio Protocol on uvloop when present, no framework: a slow receiver
is exactly what a payload logger must not meet.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import urllib.request
from collections import Counter
from typing import Any

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"


class Stats:
    """What the receiver has seen."""

    def __init__(self) -> None:
        self.events = 0
        self.bytes = 0
        self.by_type: Counter[str] = Counter()
        self.without_ce_id = 0

    def as_json(self) -> bytes:
        return json.dumps(
            {
                "events": self.events,
                "bytes": self.bytes,
                "by_type": dict(self.by_type),
                "without_ce_id": self.without_ce_id,
            }
        ).encode()


class Receiver(asyncio.Protocol):
    """One connection: parse pipelined HTTP/1.1 requests, answer each at once."""

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self.buf = bytearray()
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while self._one():
            pass

    def _one(self) -> bool:
        """Handle one complete request from the buffer; False when more bytes are needed."""
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
        method, target = (head[0].split(" ") + ["", ""])[:2]
        headers = {}
        for line in head[1:]:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        start = end + 4
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body_len, consumed = self._chunked(start)
            if consumed < 0:
                return False
        else:
            body_len = int(headers.get("content-length") or 0)
            consumed = start + body_len
            if len(self.buf) < consumed:
                return False
        del self.buf[:consumed]
        if method == "GET" and target.startswith("/stats"):
            body = self.stats.as_json()
            self.transport.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                + f"content-length: {len(body)}\r\n\r\n".encode()
                + body
            )
            return True
        self.stats.events += 1
        self.stats.bytes += body_len
        self.stats.by_type[headers.get("ce-type", "")] += 1
        if not headers.get("ce-id"):
            self.stats.without_ce_id += 1
        self.transport.write(OK)
        return True

    def _chunked(self, pos: int) -> tuple[int, int]:
        """(body length, end offset) of a complete chunked body at `pos`, else (0, -1)."""
        size_total = 0
        while True:
            eol = self.buf.find(b"\r\n", pos)
            if eol < 0:
                return 0, -1
            size = int(bytes(self.buf[pos:eol]).split(b";")[0] or b"0", 16)
            pos = eol + 2
            if size == 0:
                trailer_end = self.buf.find(b"\r\n", pos)  # no trailers expected: one CRLF
                if trailer_end < 0:
                    return 0, -1
                return size_total, trailer_end + 2
            if len(self.buf) < pos + size + 2:
                return 0, -1
            size_total += size
            pos += size + 2


def events(url: str) -> int:
    """How many events the receiver at `url` has counted."""
    with urllib.request.urlopen(f"{url}/stats", timeout=5) as resp:
        return int(json.loads(resp.read())["events"])


def wait_drained(url: str, quiet: float = 0.3, timeout: float = 30.0) -> int:
    """The event count once it has stopped rising for `quiet` seconds (the logger caught up)."""
    deadline = time.monotonic() + timeout
    last, since = events(url), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = events(url)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return last


async def serve(host: str, port: int) -> None:
    stats = Stats()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Receiver(stats), host, port, backlog=1024)
    print(f"ready {port}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    try:
        asyncio.run(serve(args.host, args.port))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
