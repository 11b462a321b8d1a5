"""``get_host(port)``: a server inside the sandbox, reached from this machine's loopback.

A sandbox has no network by default, and Docker cannot publish a port of a running
container, so this process listens on ``127.0.0.1`` itself and carries each
connection over the agent's channel (``port_open`` / ``port_send``, see
:mod:`e2b_tools.agent.protocol`) to the port on the sandbox's own loopback. Every
local process can connect to the listener, as anyone can reach an E2B host; E2B's
``allow_public_traffic=False`` and ``mask_request_host`` apply to each connection's
first HTTP request (:mod:`e2b_tools._ingress`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import threading
from typing import Any

from ._channel import Channel
from ._config import Ingress
from ._connection import Call
from ._exceptions import InvalidArgumentError, SandboxError, SandboxGoneError
from ._ingress import ClientStream, FirstBytes, outgoing, read_first, refusal, refuse
from ._loopback import LoopbackListener

CHUNK = 1 << 16
"""Bytes per ``port_send`` (each waits for the agent to write it: flow control)."""
SEND_TIMEOUT = 60.0
"""Seconds one ``port_send`` may wait for the sandbox's server to take its bytes."""


class PortForwards:
    """One loopback listener per sandbox port, and the connections through them."""

    def __init__(
        self, channel: Channel, loop: asyncio.AbstractEventLoop, ingress: Ingress | None = None
    ) -> None:
        self._channel = channel
        self._loop = loop
        self._ingress = ingress or Ingress()
        self._listeners: dict[int, LoopbackListener] = {}
        self._lock = threading.Lock()
        self._closed = False

    def host(self, port: int) -> str:
        """``127.0.0.1:<n>``, where connections reach ``port`` inside the sandbox
        (listening from now on; callable from any thread)."""
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise InvalidArgumentError(f"port must be an int from 1 to 65535, not {port!r}")
        with self._lock:
            if self._closed:
                raise SandboxGoneError(
                    "the sandbox was killed; create a new one", sandbox_id=self._channel.sandbox_id
                )
            listener = self._listeners.get(port)
            if listener is None:
                handler = functools.partial(self._connection, port)
                listener = self._listeners[port] = LoopbackListener(self._loop, handler)
            return f"127.0.0.1:{listener.port}"

    async def _connection(
        self, port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        call: Call | None = None
        pump: asyncio.Task[None] | None = None
        refusing = asyncio.Event()
        ended = False
        stream = ClientStream(reader)
        try:
            first: FirstBytes | None = None
            if not self._ingress.allow_public_traffic:
                # Judged before the port opens: a refused client learns nothing of it.
                first = await read_first(stream)
                answer = refusal(first, self._ingress)
                if answer is not None:
                    await refuse(stream.reader, writer, answer)
                    return
            call = await self._channel.send("port_open", {"port": port})
            async for event in self._channel.events(call, None):
                if event["type"] == "started":
                    pump = asyncio.ensure_future(
                        self._pump(call.id, port, stream, writer, first, refusing)
                    )
                elif event["type"] == "data" and not refusing.is_set():
                    writer.write(base64.b64decode(event.get("data", ""), validate=True))
                    await writer.drain()
                ended = event["type"] == "done"
        except (SandboxError, OSError, binascii.Error):
            pass  # the sandbox or the local client went away: close the other side
        finally:
            if pump is not None:
                if refusing.is_set() and not self._closed:
                    await asyncio.wait([pump])  # it answers the client, then closes
                pump.cancel()
            if call is not None and not ended:
                with contextlib.suppress(SandboxError):
                    await self._channel.send("cancel", {"target": call.id})
            writer.close()

    async def _pump(
        self,
        target: str,
        port: int,
        stream: ClientStream,
        writer: asyncio.StreamWriter,
        first: FirstBytes | None,
        refusing: asyncio.Event,
    ) -> None:
        """The local client's bytes to the sandbox's server, then the end of them
        (``first``: what the token check read; Host headers masked if asked)."""
        try:
            if first is None and self._ingress.mask_request_host is not None:
                # Read only now, the port open: a server that speaks first is heard.
                first = await read_first(stream)
                answer = refusal(first, self._ingress)
                if answer is not None:
                    refusing.set()
                    with contextlib.suppress(SandboxError):
                        await self._channel.send("cancel", {"target": target})
                    await refuse(stream.reader, writer, answer)
                    return
            async for data in outgoing(stream, first, self._ingress, port):
                for at in range(0, len(data), CHUNK):
                    await self._send(target, data[at : at + CHUNK], eof=False)
            await self._send(target, b"", eof=True)
        except (SandboxError, OSError):
            with contextlib.suppress(SandboxError):
                await self._channel.send("cancel", {"target": target})

    async def _send(self, target: str, chunk: bytes, eof: bool) -> None:
        fields: dict[str, Any] = {"target": target, "data": base64.b64encode(chunk).decode()}
        if eof:
            fields["eof"] = True
        await self._channel.request("port_send", fields, SEND_TIMEOUT)

    async def close(self) -> None:
        """Stop listening and drop the connections (the sandbox is gone)."""
        with self._lock:
            self._closed = True
            listeners = list(self._listeners.values())
            self._listeners.clear()
        await asyncio.gather(*(listener.close() for listener in listeners))
