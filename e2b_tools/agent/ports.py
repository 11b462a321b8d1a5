"""TCP connections to ports inside the sandbox, for the host's ``get_host`` (standard
library only).

``port_open`` connects to ``127.0.0.1:port`` in the sandbox (the loopback exists even
with the network off) and streams what the server sends as ``data`` events (base64);
``port_send`` writes the host's bytes and finishes once they are in the socket, which
is the host's flow control; ``eof`` closes the writing half. The call ends with
``done`` when either side closes, or on ``cancel``.
"""

from __future__ import annotations

import base64
import errno
import os
import selectors
import socket
from typing import TYPE_CHECKING, List, Optional, Tuple

from .protocol import Message

if TYPE_CHECKING:
    from .main import Agent

MAX_CONNECTIONS = 64
"""Open forwarded connections per sandbox."""
CHUNK = 1 << 16
"""Bytes per read from the sandbox's server (one ``data`` event)."""
MAX_PENDING = 4 << 20
"""Bytes from the host waiting for the socket; a host that does not wait for its sends
to finish is cut off past this."""


class PortConnection:
    """One forwarded connection: the socket, and the host's sends waiting on it."""

    def __init__(self, agent: Agent, req: Message) -> None:
        port = int(req["port"])
        if not 0 < port < 65536:
            raise ValueError(f"port must be 1-65535, not {port}")
        if len(agent.ports) >= MAX_CONNECTIONS:
            raise OSError(errno.EMFILE, f"at most {MAX_CONNECTIONS} forwarded connections")
        self.agent = agent
        self.rid: str = req["id"]
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        self.connected = False
        self.closed = False
        self.pending = bytearray()
        self.sent = 0  # bytes written so far
        self.queued = 0  # bytes handed over by the host so far
        self.waiting: List[Tuple[str, int]] = []  # (port_send id, ``queued`` at its end)
        self.eof = False
        code = self.sock.connect_ex(("127.0.0.1", port))
        if code not in (0, errno.EINPROGRESS):
            self.sock.close()
            raise ConnectionRefusedError(
                code, f"nothing listens on port {port}: {os.strerror(code)}"
            )
        self.events = selectors.EVENT_WRITE
        agent.sel.register(self.sock, self.events, self.on_ready)

    def _watch(self, events: int) -> None:
        if events != self.events and not self.closed:
            self.events = events
            self.agent.sel.modify(self.sock, events, self.on_ready)

    def on_ready(self) -> None:
        if not self.connected:
            code = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code == errno.EINPROGRESS:
                return
            if code:
                self.agent.fail(
                    self.rid,
                    "ConnectionRefusedError",
                    f"nothing listens on port {self.port} in the sandbox ({os.strerror(code)})",
                    errno=code,
                )
                self.close("refused", answered=True)
                return
            self.connected = True
            self.agent.send({"id": self.rid, "type": "started", "port": self.port})
        self.flush()
        if not self.closed:
            self.receive()
        if not self.closed:
            self._watch(selectors.EVENT_READ | (selectors.EVENT_WRITE if self.pending else 0))

    def receive(self) -> None:
        try:
            data = self.sock.recv(CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.close(f"reset ({exc.strerror or exc})")
            return
        if not data:
            self.close("closed by the server")
            return
        self.agent.send({"id": self.rid, "type": "data", "data": base64.b64encode(data).decode()})

    def write(self, req: Message) -> None:
        """A ``port_send`` for this connection: finished once its bytes are written."""
        data = base64.b64decode(req.get("data") or "", validate=True)
        if len(self.pending) + len(data) > MAX_PENDING:
            self.agent.fail(req["id"], "ProtocolError", "too much unsent data; wait for each send")
            self.close("the host sent too much at once")
            return
        self.pending += data
        self.queued += len(data)
        self.waiting.append((req["id"], self.queued))
        self.eof = self.eof or bool(req.get("eof"))
        if self.connected:
            self.flush()
            if not self.closed:
                self._watch(selectors.EVENT_READ | (selectors.EVENT_WRITE if self.pending else 0))

    def flush(self) -> None:
        while self.pending:
            try:
                n = self.sock.send(self.pending)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                self.close(f"reset ({exc.strerror or exc})")
                return
            del self.pending[:n]
            self.sent += n
        while self.waiting and self.waiting[0][1] <= self.sent:
            self.agent.finish(self.waiting.pop(0)[0])
        if not self.pending and self.eof:
            self.eof = False
            try:
                self.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def close(self, why: str, answered: bool = False) -> None:
        """Close the socket and end the call (unless ``answered``: it failed already)
        and the sends still waiting."""
        if self.closed:
            return
        self.closed = True
        self.agent.sel.unregister(self.sock)
        self.sock.close()
        for rid, _ in self.waiting:
            self.agent.fail(rid, "ConnectionResetError", f"the connection was {why}")
        self.waiting.clear()
        self.agent.ports.pop(self.rid, None)
        if not answered:
            self.agent.finish(self.rid, {"closed": why})


def open_port(agent: Agent, req: Message) -> None:
    """``port_open``: the connection lives in ``agent.ports`` until it closes."""
    agent.ports[req["id"]] = PortConnection(agent, req)


def send_port(agent: Agent, req: Message) -> None:
    """``port_send``: bytes (and maybe the end of them) for an open connection."""
    conn: Optional[PortConnection] = agent.ports.get(req["target"])
    if conn is None:
        agent.fail(req["id"], "ConnectionResetError", "the connection is closed")
        return
    conn.write(req)


def cancel_port(agent: Agent, target: str) -> bool:
    """Close the connection of call ``target``; False if there is none."""
    conn: Optional[PortConnection] = agent.ports.get(target)
    if conn is None:
        return False
    conn.close("closed by the host")
    return True
