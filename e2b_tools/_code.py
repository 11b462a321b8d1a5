"""Running code in a sandbox: its code contexts and ``run_code``. :class:`CodeMethods` is
a base of :class:`~e2b_tools._sandbox.AsyncSandbox`, which supplies the channel."""

from __future__ import annotations

import builtins
import time
from typing import Any

from ._channel import Channel, ErrorHandler, MessageHandler, ResultHandler, execution_error
from ._commands import HOST_GRACE
from ._config import DEFAULT_CODE_TIMEOUT, SandboxConfig
from ._exceptions import (
    InvalidArgumentError,
    ProtocolError,
    SandboxError,
    SandboxGoneError,
    SandboxTimeoutError,
)
from ._models import Context, Execution, SaveOutput
from .agent import languages as _languages


class CodeMethods:
    """Code contexts and ``run_code`` (of :class:`~e2b_tools._sandbox.AsyncSandbox`)."""

    _channel: Channel
    _sandbox_id: str
    _config: SandboxConfig

    @property
    def languages(self) -> builtins.list[str]:
        """Languages this sandbox's image runs (table names; see ``docs/languages.md``)."""
        return list(self._channel.conn.hello.get("languages") or ["python"])

    # -- code --------------------------------------------------------------------
    async def create_code_context(
        self,
        cwd: str | None = None,
        language: str | None = None,
        request_timeout: float | None = None,
    ) -> Context:
        """Start a new code context: its own process, variables and working directory.

        Two contexts never see each other's variables. Pass the result as
        ``run_code(..., context=ctx)``. The arguments are E2B's, in E2B's order.

        Args:
            cwd: Working directory of the context (relative to the workspace);
                default: the workspace, ``/home/user``. A language name given here,
                with no ``language`` (``create_code_context("js")``, this package's
                earlier order), is taken as the language.
            language: A stateful language or alias (``"python"``, ``"js"``, ``"ts"``,
                ``"bash"``); default: Python.
            request_timeout: Seconds to wait for the context to start (default 60).

        Example:
            >>> ctx = await sbx.create_code_context(language="js")  # doctest: +SKIP
            >>> (await sbx.run_code("1 + 1", context=ctx)).text  # doctest: +SKIP
            '2'
        """
        if language is None and cwd is not None and _languages.known(cwd):
            cwd, language = None, cwd
        lang = _languages.resolve(language or "python")
        fields: dict[str, Any] = {"language": lang}
        if cwd is not None:
            fields["cwd"] = cwd
        try:
            value = await self._channel.request(
                "create_context", fields, request_timeout or 60.0, cwd
            )
        except (SandboxTimeoutError, SandboxGoneError, ProtocolError):
            raise
        except SandboxError as exc:  # the agent refused: a bad language or cwd
            raise InvalidArgumentError(exc.message, sandbox_id=self._sandbox_id) from None
        return Context(**value)

    async def list_code_contexts(self) -> builtins.list[Context]:
        """The sandbox's code contexts: the default ``python`` and ``javascript`` ones
        (as in E2B; JavaScript's process starts on its first use), the default ones of
        other languages once used, and those :meth:`create_code_context` made, in that
        order of creation."""
        value = await self._channel.request("list_contexts", {}, 30.0)
        return [Context(**c) for c in value.get("contexts", [])]

    async def restart_code_context(self, context: Context | str) -> Context:
        """Kill and restart a context (a :class:`Context` or its id): its state is lost;
        running calls on it fail. Returns the context (E2B returns None)."""
        fields = {"context_id": _context_id(context)}
        try:
            value = await self._channel.request("restart_context", fields, 60.0)
        except SandboxError as exc:
            raise _context_error(exc, self._sandbox_id) from None
        return Context(**value)

    async def remove_code_context(self, context: Context | str) -> None:
        """Kill a context (a :class:`Context` or its id) and forget it."""
        fields = {"context_id": _context_id(context)}
        try:
            await self._channel.request("remove_context", fields, 60.0)
        except SandboxError as exc:
            raise _context_error(exc, self._sandbox_id) from None

    async def run_code(
        self,
        code: str,
        language: str | None = None,
        context: Context | None = None,
        on_stdout: MessageHandler | None = None,
        on_stderr: MessageHandler | None = None,
        on_result: ResultHandler | None = None,
        on_error: ErrorHandler | None = None,
        envs: dict[str, str] | None = None,
        timeout: float | None = DEFAULT_CODE_TIMEOUT,
        request_timeout: float | None = None,
        *,
        save_output: SaveOutput | None = None,
    ) -> Execution:
        """Run code in the sandbox's context for ``language``, or in ``context``.

        The arguments are E2B's, in E2B's order (``save_output`` is this package's).
        For stateful languages (Python, JavaScript, TypeScript, bash) variables,
        imports and the working directory persist across calls, and a trailing
        expression's value comes back as the main result (``execution.text``; a
        JavaScript string is its own text). JavaScript and TypeScript cells take
        top-level ``await`` and ``import`` statements (ESM and CommonJS packages,
        resolved as ``require`` resolves them from the context's directory).
        Python cells are read as IPython reads them: a cell indented as a whole is
        dedented, ``!cmd`` lines run in a shell, and common magics work (``%pip``,
        ``%cd``, ``%env``, ``%%bash``, ``%%writefile``, ...; the list is in
        ``e2b_tools/agent/kernel_python.py``, class ``Shell``).
        Stateless languages (C, C++; Java, Go, Rust, Ruby, R in the full image) write,
        build and run a fresh program per call. An exception in the code, a failed
        compile or a non-zero exit does not raise here: it is in ``execution.error``.
        Cancelling the call (a cancelled task) interrupts the code in the sandbox too.

        Args:
            code: Source to run.
            language: A language or alias from ``docs/languages.md`` (``"python"``,
                ``"js"``, ``"ts"``, ``"bash"``, ``"c"``, ``"go"``, ...); default:
                Python. One the image lacks raises an error listing the ones it has.
            context: A context from :meth:`create_code_context` or
                :meth:`list_code_contexts`; default: the sandbox's default context for
                ``language``. Give ``language`` or ``context``, not both (as in E2B).
            on_stdout / on_stderr: Called with each chunk of output as it arrives, an
                :class:`OutputMessage` (a ``str`` with E2B's ``line``, ``timestamp``
                and ``error``); pass one function to both for the output interleaved
                as printed.
            on_result / on_error: Called with each :class:`Result` / the
                :class:`ExecutionError` as it arrives.
            envs: Environment variables for this call only.
            timeout: Seconds before the code is interrupted (KeyboardInterrupt, then a
                context restart if it does not stop); default 300. As in E2B, ``0``
                means no limit and ``None`` the default.
            request_timeout: Accepted for E2B (which bounds its HTTP connect with it);
                the agent's connection is already open, so it bounds nothing here.
            save_output: Save the whole output (stdout and stderr interleaved) to a
                file in the sandbox once it passes a threshold;
                ``execution.saved_output`` then says where.

        Raises:
            InvalidArgumentError: Both ``language`` and ``context``, an unknown
                language, a removed context, a negative timeout.
            SandboxTimeoutError: The code ran past ``timeout``; ``.execution`` holds the
                output so far and ``.state_kept`` whether the context's state survived.
            SandboxGoneError: The sandbox died.
        """
        if not isinstance(code, str):
            raise InvalidArgumentError("code must be a string")
        if context is not None and language:
            raise InvalidArgumentError(
                "give language= or context=, not both: a context has its language "
                f"({context.language!r})",
                sandbox_id=self._sandbox_id,
            )
        asked = language or "python"
        lang = context.language if context is not None else _languages.resolve(asked)
        if lang not in self.languages:
            raise InvalidArgumentError(
                _languages.unavailable(asked, self.languages), sandbox_id=self._sandbox_id
            )
        # As in E2B: None is the default timeout, 0 no limit.
        timeout = None if timeout == 0 else (timeout or DEFAULT_CODE_TIMEOUT)
        if timeout is not None and timeout < 0:
            raise InvalidArgumentError("timeout must be >= 0 seconds (0: no limit)")
        fields: dict[str, Any] = {"code": code, "language": lang, "timeout": timeout}
        if context is not None:
            fields["context_id"] = context.id
        if envs:
            fields["envs"] = {str(k): str(v) for k, v in envs.items()}
        if save_output is not None:
            fields["spill"] = save_output.model_dump()
        started = time.monotonic()
        host_timeout = (
            None if timeout is None else timeout + self._config.interrupt_grace + HOST_GRACE
        )
        outcome = await self._channel.fold(
            "run_code",
            fields,
            host_timeout,
            on_stdout=on_stdout,
            on_stderr=on_stderr,
            on_result=on_result,
            on_error=on_error,
        )
        done = outcome.done
        execution = Execution(
            results=outcome.results,
            error=execution_error(outcome.error),
            execution_count=done.get("execution_count"),
            execution_time=time.monotonic() - started,
            context_restarted=bool(done.get("context_restarted")),
            saved_output=outcome.saved_output,
        )
        execution.logs.stdout = outcome.stdout.chunks()
        execution.logs.stderr = outcome.stderr.chunks()
        if execution.error is not None and execution.error.name == "ContextNotFound":
            raise InvalidArgumentError(execution.error.value, sandbox_id=self._sandbox_id)
        timed_out = done.get("timed_out")
        if timed_out:
            raise SandboxTimeoutError(
                _TIMEOUT_MESSAGES.get(str(timed_out), _TIMEOUT_MESSAGES["killed"]).format(
                    timeout=timeout, language=lang
                ),
                sandbox_id=self._sandbox_id,
                execution=execution,
                state_kept={"interrupted": True, "restarted": False}.get(str(timed_out)),
            )
        return execution


def _context_id(context: Context | str) -> str:
    if isinstance(context, Context):
        return context.id
    if isinstance(context, str) and context:
        return context
    raise InvalidArgumentError(f"context must be a Context or its id, not {context!r}")


def _context_error(exc: SandboxError, sandbox_id: str) -> SandboxError:
    """A context the agent does not know is a bad argument, as in ``run_code``."""
    if exc.message.startswith("ContextNotFound:"):
        message = exc.message.split(":", 1)[1].strip()
        return InvalidArgumentError(message, sandbox_id=sandbox_id)
    return exc


_TIMEOUT_MESSAGES = {
    "interrupted": (
        "run_code exceeded timeout={timeout:g}s and was interrupted with KeyboardInterrupt "
        "(SIGINT); the context's variables were kept. Pass a larger timeout= to run_code() "
        "if the code needs more time"
    ),
    "restarted": (
        "run_code exceeded timeout={timeout:g}s and did not stop on KeyboardInterrupt, so "
        "its context was killed and restarted: variables and imports were lost. Pass a "
        "larger timeout= to run_code() if the code needs more time"
    ),
    "killed": (
        "run_code exceeded timeout={timeout:g}s and the {language} program was killed. "
        "Pass a larger timeout= to run_code() if it needs more time"
    ),
}
