"""E2B's code interpreter (port 49999): ``POST /execute`` and the ``/contexts`` calls,
served by the sandbox's ``run_code`` and its code contexts.

``/execute`` answers 200 and one JSON object per line as the run goes: ``stdout`` /
``stderr`` (with an RFC 3339 ``timestamp``), ``result`` (the MIME bundle under E2B's
field names), ``error``, ``number_of_executions``, ``end_of_execution``, plus E2B's
``keepalive`` lines every few seconds of silence (the SDKs skip them). What fails
before the stream starts is a plain status: both ``context_id`` and ``language`` 400,
an unknown context 404 (the SDK's ``NotFoundException``), an unknown language 400.

**Memory stays bounded: backpressure, no cap.** The run's callbacks feed a queue of at
most :data:`LINE_BUDGET` bytes of encoded lines (one larger line at a time still
passes); a full queue blocks the callback, so e2b-tools stops reading the sandbox's
stream (its own per-call backlog, 32 MiB) and the code in the sandbox blocks on its
next write, as on a pipe. Nothing is dropped. A client that stops reading therefore
stalls its run until it reads again or disconnects (and, as e2b-tools holds the
sandbox's whole stream once a call's backlog is full, that sandbox's other calls).

**Timeouts are the client's.** The run has no server-side limit (E2B's ``timeout`` is
the SDK's read timeout); when the client goes away (a disconnect, the SDK's timeout),
the run is cancelled, which interrupts the code in the sandbox (KeyboardInterrupt,
then a context restart if it does not stop), so the next call on the context runs.

**A sandbox that dies mid-run** (killed, expired) aborts the response: the body has no
end, so the SDK asks whether the sandbox runs, gets E2B's 502 "was not found" and
raises its ``TimeoutException`` "The sandbox was killed while the request was in
progress", as on E2B. When the server stops, runs are cancelled and their responses cut the same
way. Other e2b-tools errors mid-run become an ``error`` line named after the error
class, then ``end_of_execution``.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import json
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from e2b_tools import (
    AsyncSandbox,
    Context,
    Execution,
    ExecutionError,
    InvalidArgumentError,
    OutputMessage,
    Result,
    SandboxError,
    SandboxGoneError,
    SandboxNotFoundError,
)
from e2b_tools.agent import languages as _languages

from ._errors import api_error
from ._http import json_body
from ._keepalive import with_keepalive
from ._session import Session

log = logging.getLogger("e2b_tools.serve")

LINE_BUDGET = 4 << 20
"""Bytes of encoded lines an ``/execute`` stream holds for a slow client before the
run waits (one larger line, a big image, still passes alone)."""
MAX_EXECUTE_BODY = 8 << 20
"""Largest ``/execute`` body (413 beyond): the code travels to the agent as one line
of at most 16 MiB, JSON-escaped."""
MAX_CONTEXT_BODY = 64 << 10
"""Largest ``POST /contexts`` body."""
KEEPALIVE_SECONDS = 5.0
"""Seconds of silence before a ``{"type": "keepalive"}`` line (E2B's interval)."""

_KEEPALIVE = b'{"type": "keepalive"}\n'
_END = b'{"type": "end_of_execution"}\n'
_FIELDS = ("html", "markdown", "svg", "png", "jpeg", "pdf", "latex")


class StreamAborted(Exception):
    """An ``/execute`` response cut short (the sandbox died, the server closes): the
    client sees the connection drop, as when an E2B sandbox is killed mid-run."""


# -- the wire form of e2b-tools' values ----------------------------------------------


def line(value: dict[str, Any]) -> bytes:
    """One JSON line of the ``/execute`` stream."""
    return json.dumps(value, ensure_ascii=False).encode() + b"\n"


def rfc3339(ns: int) -> str:
    """A Unix time in nanoseconds as RFC 3339 UTC with microseconds (Jupyter's form)."""
    moment = dt.datetime.fromtimestamp(ns / 1e9, dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def output_line(message: OutputMessage) -> bytes:
    """A ``stdout`` / ``stderr`` line."""
    kind = "stderr" if message.error else "stdout"
    return line({"type": kind, "text": str(message), "timestamp": rfc3339(message.timestamp)})


def result_text(text: str | None) -> str | None:
    """``text/plain`` as E2B's server gives it: one pair of surrounding single or
    double quotes stripped. e2b-tools already strips single quotes, so a string whose
    repr is ``'"x"'`` loses both pairs here (E2B keeps ``"x"``)."""
    if text is not None and len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    return text


def result_line(result: Result) -> bytes:
    """A ``result`` line: E2B's field per known MIME type, the rest in ``extra``."""
    value: dict[str, Any] = {"type": "result"}
    if result.text is not None:
        value["text"] = result_text(result.text)
    for name in _FIELDS:
        field = getattr(result, name)
        if field is not None:
            value[name] = field
    if result.json is not None:
        value["json"] = result.json
    if result.javascript is not None:
        value["javascript"] = result.javascript
    if result.data is not None:
        value["data"] = result.data
    if result.chart is not None:
        value["chart"] = result.chart.to_dict()
    value["extra"] = result.extra
    value["is_main_result"] = result.is_main_result
    return line(value)


def error_line(name: str, value: str, traceback: str = "") -> bytes:
    """An ``error`` line."""
    return line({"type": "error", "name": name, "value": value, "traceback": traceback})


# -- the stream ----------------------------------------------------------------------


class LineQueue:
    """Encoded lines from one run's callbacks (the only writer) to its response (the
    only reader): ``put`` waits while more than ``budget`` bytes wait for the client
    (backpressure; a line larger than the budget passes when the queue is empty).
    ``None`` ends the stream; :meth:`abort` cuts it at once."""

    def __init__(self, budget: int = LINE_BUDGET) -> None:
        self.budget = budget
        self.size = 0
        self._items: collections.deque[bytes | StreamAborted | None] = collections.deque()
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()

    async def put(self, item: bytes | None) -> None:
        """Queue ``item``, waiting for room."""
        n = len(item) if item is not None else 0
        while self._items and self.size + n > self.budget:
            self._writable.clear()
            await self._writable.wait()
        self._items.append(item)
        self.size += n
        self._readable.set()

    def abort(self, reason: str) -> None:
        """Cut the stream after what is queued (never waits)."""
        self._items.append(StreamAborted(reason))
        self._readable.set()

    async def drain(self) -> AsyncIterator[bytes]:
        """The lines, up to the end (raises :class:`StreamAborted` for a cut stream)."""
        while True:
            while not self._items:
                self._readable.clear()
                await self._readable.wait()
            item = self._items.popleft()
            if isinstance(item, StreamAborted):
                raise item
            if item is None:
                return
            self.size -= len(item)
            self._writable.set()
            yield item


class Runs:
    """The sandbox's ``/execute`` runs in flight (a session service): each runs as its
    own task, so a client's disconnect cancels it without waiting, and closing the
    session cancels what is left."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.tasks: set[asyncio.Task[None]] = set()

    def start(self, run: Callable[[], Coroutine[Any, Any, None]]) -> asyncio.Task[None]:
        """Run ``run()`` as a tracked task."""
        task: asyncio.Task[None] = asyncio.ensure_future(run())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def aclose(self) -> None:
        """Cancel the runs still going."""
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def _run(
    session: Session,
    lines: LineQueue,
    code: str,
    language: str | None,
    context: Context | None,
    envs: dict[str, str] | None,
) -> None:
    """Run the code, feeding ``lines`` until its end (or its cut)."""
    errored = False

    async def on_output(message: OutputMessage) -> None:
        await lines.put(output_line(message))

    async def on_result(result: Result) -> None:
        await lines.put(result_line(result))

    async def on_error(error: ExecutionError) -> None:
        nonlocal errored
        errored = True
        await lines.put(error_line(error.name, error.value, error.traceback))

    execution: Execution | None = None
    try:
        execution = await session.sandbox.run_code(
            code,
            language=language,
            context=context,
            envs=envs,
            timeout=0,  # E2B's timeout is the client's: a disconnect cancels the run
            on_stdout=on_output,
            on_stderr=on_output,
            on_result=on_result,
            on_error=on_error,
        )
    except (SandboxGoneError, SandboxNotFoundError) as exc:
        api_error(exc, session)  # marks the session gone: the SDK's check then sees 502
        log.info("sandbox %s died during /execute: %s", session.sandbox_id, exc)
        lines.abort(str(exc))
        return
    except asyncio.CancelledError:  # the client left, or the session closed (killed)
        lines.abort("the run was cancelled: the sandbox was killed or expired, or the server stops")
        raise
    except InvalidArgumentError as exc:  # the context went away meanwhile
        if not errored:
            await lines.put(error_line("ContextNotFound", exc.message))
    except SandboxError as exc:
        await lines.put(error_line(type(exc).__name__, exc.message))
    except Exception as exc:
        log.exception("/execute in sandbox %s failed", session.sandbox_id)
        await lines.put(error_line("InternalError", f"{type(exc).__name__}: {exc}"))
    if execution is not None and execution.execution_count is not None:
        count = {"type": "number_of_executions", "execution_count": execution.execution_count}
        await lines.put(line(count))
    await lines.put(_END)
    await lines.put(None)


async def _stream(lines: LineQueue) -> AsyncIterator[bytes]:
    """The response body: the run's lines, with keepalives in silences."""
    async for item in with_keepalive(lines.drain(), KEEPALIVE_SECONDS, lambda: _KEEPALIVE):
        yield item


class ExecuteResponse(StreamingResponse):
    """The ``/execute`` stream of one run. However the response ends (the run's end,
    the client gone, even before the first line), the run is cancelled if it still
    goes, which interrupts the code in the sandbox. Nothing awaits that: the run's task
    stops the code on its own, so a cancelled response does not wait."""

    def __init__(self, session: Session, lines: LineQueue, task: asyncio.Task[None]) -> None:
        super().__init__(_stream(lines), media_type="application/x-ndjson")
        self.session = session
        self.task = task

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except StreamAborted as exc:
            # Returning with the body unfinished makes the server drop the connection
            # (it logs one line about it), which is what the client must see: the SDK
            # then asks whether the sandbox runs, and the registry answers 502 from
            # the moment a kill begins, so it reports E2B's "killed".
            log.warning("/execute response cut short: %s", exc)
        finally:
            if not self.task.done():
                self.task.cancel()


# -- the routes ----------------------------------------------------------------------


def _optional_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _BadRequest(f"{key} must be a string or null")
    return value


class _BadRequest(Exception):
    pass


def _envs(body: dict[str, Any]) -> dict[str, str] | None:
    value = body.get("env_vars")
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise _BadRequest("env_vars must be an object of strings or null")
    return value or None


def _language(sandbox: AsyncSandbox, asked: str) -> str:
    """E2B's language name (``js``, ``ts`` and e2b-tools' aliases too) as the
    sandbox's table name, or a 400 naming the languages its image has."""
    lang = _languages.resolve(asked.strip())
    if lang not in sandbox.languages:
        raise _BadRequest(_languages.unavailable(asked.strip(), sandbox.languages))
    return lang


def _not_found(context_id: str) -> Response:
    return PlainTextResponse(f"Context {context_id} not found", status_code=404)


async def _find_context(session: Session, context_id: str) -> Context | None:
    try:
        contexts = await session.sandbox.list_code_contexts()
    except SandboxError as exc:
        raise api_error(exc, session) from None
    return next((c for c in contexts if c.id == context_id), None)


async def execute(request: Request) -> Response:
    """``POST /execute`` ``{code, context_id, language, env_vars}`` → the streamed
    lines (see the module docstring)."""
    session: Session = request.state.session
    body = await json_body(request, MAX_EXECUTE_BODY)
    try:
        code = body.get("code")
        if not isinstance(code, str):
            raise _BadRequest("code must be a string")
        context_id = _optional_str(body, "context_id")
        asked = _optional_str(body, "language")
        envs = _envs(body)
        if context_id and asked:
            raise _BadRequest("Only one of context_id or language can be provided")
        language = _language(session.sandbox, asked) if asked else None
    except _BadRequest as exc:
        return PlainTextResponse(str(exc), status_code=400)
    context = None
    if context_id:
        context = await _find_context(session, context_id)
        if context is None:
            return _not_found(context_id)
    lines = LineQueue()
    runs = session.service("interpreter", Runs)
    task = runs.start(lambda: _run(session, lines, code, language, context, envs))
    return ExecuteResponse(session, lines, task)


def _context_json(context: Context) -> dict[str, str]:
    return {"id": context.id, "language": context.language, "cwd": context.cwd}


async def create_context(request: Request) -> Response:
    """``POST /contexts {language?, cwd?}`` → ``{id, language, cwd}``."""
    session: Session = request.state.session
    body = await json_body(request, MAX_CONTEXT_BODY, required=False)
    try:
        asked = _optional_str(body, "language") or "python"
        cwd = _optional_str(body, "cwd")
        language = _language(session.sandbox, asked)
    except _BadRequest as exc:
        return PlainTextResponse(str(exc), status_code=400)
    try:
        context = await session.sandbox.create_code_context(cwd=cwd, language=language)
    except SandboxError as exc:
        raise api_error(exc, session) from None
    return JSONResponse(_context_json(context))


async def list_contexts(request: Request) -> Response:
    """``GET /contexts`` → ``[{id, language, cwd}]``."""
    session: Session = request.state.session
    try:
        contexts = await session.sandbox.list_code_contexts()
    except SandboxError as exc:
        raise api_error(exc, session) from None
    return JSONResponse([_context_json(c) for c in contexts])


async def _on_context(request: Request, action: str) -> Response:
    """Restart or remove the context in the path: 200 ``null``; 404 unknown."""
    session: Session = request.state.session
    context_id = request.path_params["context_id"]
    sandbox = session.sandbox
    call = sandbox.restart_code_context if action == "restart" else sandbox.remove_code_context
    try:
        await call(context_id)
    except InvalidArgumentError:
        return _not_found(context_id)
    except SandboxError as exc:
        raise api_error(exc, session) from None
    return JSONResponse(None)


async def restart_context(request: Request) -> Response:
    """``POST /contexts/{id}/restart`` → 200 ``null`` (its state is lost); 404 unknown."""
    return await _on_context(request, "restart")


async def remove_context(request: Request) -> Response:
    """``DELETE /contexts/{id}`` → 200 ``null``; 404 unknown."""
    return await _on_context(request, "remove")


def routes() -> list[BaseRoute]:
    """The code interpreter's routes (behind the sandbox guard: ``/execute`` needs the
    access token, the ``/contexts`` calls only the sandbox id)."""
    return [
        Route("/execute", execute, methods=["POST"]),
        Route("/contexts", create_context, methods=["POST"]),
        Route("/contexts", list_contexts, methods=["GET"]),
        Route("/contexts/{context_id}/restart", restart_context, methods=["POST"]),
        Route("/contexts/{context_id}", remove_context, methods=["DELETE"]),
    ]
