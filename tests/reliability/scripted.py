"""A raw asyncio HTTP/1.1 server on 127.0.0.1 that misbehaves exactly as scripted, one step per request.

The mocks cover most faults; this covers the ones they do not script (headers then silence, ``Retry-After`` on
any status, a reset in the middle of the body) and lets a test count requests and connections precisely.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from dataclasses import dataclass, field
from typing import Literal

import orjson

Action = Literal["ok", "status", "reset_before", "reset_mid_body", "hang_no_headers", "hang_after_headers",
                 "truncate", "invalid_json"]  # fmt: skip

OK_BODY = orjson.dumps(
    {
        "request_id": "scripted-1",
        "choices": [
            {
                "index": 0,
                "token_ids": [7, 8],
                "finish_reason": "length",
                "logprobs": {"content": [{"token_id": 7, "logprob": -0.5}, {"token_id": 8, "logprob": -0.25}]},
            }
        ],
    }
)


@dataclass(frozen=True)
class Step:
    action: Action = "ok"
    status: int = 200
    retry_after: str | None = None
    body: bytes | None = None


@dataclass
class ScriptedServer:
    """Serve ``steps`` in order (the last step repeats). ``requests`` counts complete requests read."""

    steps: list[Step]
    hang_max_s: float = 30.0
    requests: int = 0
    connections: int = 0
    paths: list[str] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> ScriptedServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for w in list(self._writers):
            w.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    def _next(self) -> Step:
        i = min(self.requests - 1, len(self.steps) - 1)
        return self.steps[i]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                self.paths.append(lines[0].split(" ")[1])
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value.strip())
                if length:
                    await reader.readexactly(length)
                self.requests += 1
                if not await self._act(self._next(), reader, writer):
                    return
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    @staticmethod
    def _rst(writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    async def _act(self, step: Step, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Do one step; ``False`` when the connection is gone."""
        if step.action == "reset_before":
            self._rst(writer)
            return False
        if step.action == "hang_no_headers":
            await self._idle(reader, writer)
            return False
        body = step.body
        status = step.status
        if body is None:
            if step.action == "status":
                body = orjson.dumps({"error": {"message": f"scripted {status}", "type": "Scripted", "code": status}})
            elif step.action == "invalid_json":
                body = b'{"request_id": "x", "choices": [{'
            else:
                body = OK_BODY
        extra = f"Retry-After: {step.retry_after}\r\n" if step.retry_after is not None else ""
        head = (
            f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
        ).encode()
        if step.action == "hang_after_headers":
            writer.write(head)
            await writer.drain()
            await self._idle(reader, writer)
            return False
        if step.action in ("truncate", "reset_mid_body"):
            writer.write(head + body[: len(body) // 2])
            await writer.drain()
            await asyncio.sleep(0.01)
            if step.action == "reset_mid_body":
                self._rst(writer)
            else:
                writer.close()
            return False
        writer.write(head + body)
        await writer.drain()
        return True

    async def _idle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Say nothing until the peer goes away (EOF) or ``hang_max_s`` passes."""
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(self.hang_max_s):
                while await reader.read(65536):
                    pass
        self._rst(writer)


def refused_url() -> str:
    """A loopback URL where nothing listens (the port was just bound and released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"
