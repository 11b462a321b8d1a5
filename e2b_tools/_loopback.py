"""A listener on this machine's loopback, opened from any thread and served on a
sandbox's event loop: what ``get_host`` (:mod:`e2b_tools._ports`) and the signed file
URLs (:mod:`e2b_tools._file_urls`) listen with."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class LoopbackListener:
    """A socket on ``127.0.0.1``, bound and listening as soon as it is made (so its
    :attr:`port` is known at once, from any thread); ``loop`` serves it with
    ``handler``. :meth:`close` (on ``loop``) stops it and the connections under way."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, handler: Handler, limit: int = 1 << 16
    ) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        sock.setblocking(False)
        self.port: int = sock.getsockname()[1]
        self._sock = sock
        self._loop = loop
        self._handler = handler
        self._limit = limit
        self._server: asyncio.Server | None = None
        self._starting: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        # Connections that come before the server runs wait in the backlog.
        loop.call_soon_threadsafe(self._serve)

    def _serve(self) -> None:
        if not self._closed:  # else close() came first and closed the socket
            self._starting = self._loop.create_task(self._start())

    async def _start(self) -> None:
        server = await asyncio.start_server(self._connection, sock=self._sock, limit=self._limit)
        if self._closed:
            server.close()
        else:
            self._server = server

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._handler(reader, writer)
        except asyncio.CancelledError:
            # Cancelled by close(): end quietly. Raised out of this task, the stream
            # protocol's done-callback would report the cancellation as an error.
            writer.close()
        finally:
            if task is not None:
                self._tasks.discard(task)

    async def close(self) -> None:
        """Stop listening and cancel the connections under way. Idempotent."""
        self._closed = True
        if self._starting is not None:
            # Never cancelled half-way: a server cancelled inside start_server keeps its
            # socket registered with the selector after the socket is closed, and the
            # next socket to get that descriptor number is then never watched.
            await asyncio.gather(self._starting, return_exceptions=True)
        if self._server is not None:
            self._server.close()  # unregisters the socket, then closes it
            self._server = None
        else:
            self._sock.close()  # never served
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
