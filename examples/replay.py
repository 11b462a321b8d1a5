"""Replaying a chat model's HTTP replies with vcrpy, for the examples' offline runs.

The cassettes in ``examples/cassettes/`` were written by hand (see the README there):
each interaction is one ``POST /v1/chat/completions`` reply in OpenAI's format. They
are played in order, and the matcher checks what matters instead of exact bytes: the
model name, the roles of the messages, the tool names offered, and that every tool
result sent back is exactly the one in the cassette — so a tool that misbehaves fails
the replay instead of passing silently.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import docker.transport.unixconn
import vcr
import vcr.request

# vcrpy swaps urllib3's connection class for its recorder and then loops until a pool
# hands out an instance of it; the Docker SDK's unix-socket pool never does, so under a
# cassette every Docker call would hang. Declaring the class that pool really makes
# lets vcrpy leave the Docker Engine traffic alone.
_pool = docker.transport.unixconn.UnixHTTPConnectionPool
_pool.ConnectionCls = docker.transport.unixconn.UnixHTTPConnection  # type: ignore[assignment]

CASSETTES = Path(__file__).resolve().parent / "cassettes"


def _body(request: vcr.request.Request) -> dict[str, Any]:
    raw = request.body or b"{}"
    data = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    return data if isinstance(data, dict) else {}


def _tool_results(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (str(m.get("tool_call_id")), str(m.get("content")))
        for m in body.get("messages", [])
        if m.get("role") == "tool"
    ]


def chat_shape(live: vcr.request.Request, recorded: vcr.request.Request) -> None:
    """vcrpy matcher: raise AssertionError when ``live`` differs in what matters."""
    a, b = _body(live), _body(recorded)
    assert a.get("model") == b.get("model"), (a.get("model"), b.get("model"))
    roles_a = [m.get("role") for m in a.get("messages", [])]
    roles_b = [m.get("role") for m in b.get("messages", [])]
    assert roles_a == roles_b, (roles_a, roles_b)
    names_a = sorted(t["function"]["name"] for t in a.get("tools", []))
    names_b = sorted(t["function"]["name"] for t in b.get("tools", []))
    assert names_a == names_b, (names_a, names_b)
    assert _tool_results(a) == _tool_results(b), (_tool_results(a), _tool_results(b))


def replayer() -> vcr.VCR:
    """A VCR that only plays back (never records, never touches the network)."""
    recorder = vcr.VCR(
        record_mode="none",
        match_on=["method", "scheme", "host", "port", "path", "chat_shape"],
        filter_headers=["authorization"],
    )
    recorder.register_matcher("chat_shape", chat_shape)
    return recorder


def live_model() -> bool:
    """True when a real model should be used (``OPENAI_API_KEY`` is set)."""
    return bool(os.environ.get("OPENAI_API_KEY"))
