"""``E2BToolsExecutor``: smolagents' remote Python executor, on an e2b-tools sandbox."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from smolagents.local_python_executor import CodeOutput  # type: ignore[import-untyped]
from smolagents.monitoring import AgentLogger, LogLevel  # type: ignore[import-untyped]
from smolagents.remote_executors import RemotePythonExecutor  # type: ignore[import-untyped]
from smolagents.serialization import SerializationError  # type: ignore[import-untyped]
from smolagents.tools import Tool  # type: ignore[import-untyped]
from smolagents.utils import AgentError  # type: ignore[import-untyped]

from e2b_tools import (
    Context,
    EngineError,
    Execution,
    InvalidArgumentError,
    NotFoundError,
    ProtocolError,
    Sandbox,
    SandboxConfig,
    SandboxError,
    SandboxGoneError,
    SandboxNotFoundError,
    SandboxTimeoutError,
    SaveOutput,
)

from ._output import Transcript, step_output
from ._packages import install, missing, wanted

log = logging.getLogger("e2b_tools_smolagents")

INFRASTRUCTURE_ERRORS: tuple[type[SandboxError], ...] = (
    EngineError,
    SandboxGoneError,
    SandboxNotFoundError,
    ProtocolError,
)
"""Failures the operator must act on: no engine, the sandbox gone, a broken stream.
The model cannot fix them, so they are never turned into text for it."""

OUTPUT_DIR = "/tmp/smolagents-output"
"""Where the sandbox saves a step's whole output once it passes ``max_output_chars``."""

# Runs after smolagents' tool definitions: its final_answer raises the answer inside an
# exception whose message the sandbox caps (64 Ki characters); keeping the value too
# lets a longer answer be read back whole.
_KEEP_FINAL_ANSWER = """
def _e2b_tools_keep(cls):
    forward = cls.forward
    if getattr(forward, "_e2b_tools_kept", False):
        return
    def kept(self, *args, **kwargs):
        try:
            return forward(self, *args, **kwargs)
        except BaseException as exc:
            if type(exc).__name__ == "FinalAnswerException":
                globals()["_e2b_tools_final_answer"] = exc.value
            raise
    kept._e2b_tools_kept = True
    cls.forward = kept
_e2b_tools_keep(type(final_answer))
del _e2b_tools_keep
"""


class SandboxInfrastructureError(BaseException):
    """The sandbox's infrastructure failed during an agent step; the operator must act.

    smolagents' ``CodeAgent`` turns every ``Exception`` its executor raises into text
    for the model and carries on. An engine that does not answer, or a sandbox that is
    gone, is nothing the model can fix, so :class:`E2BToolsExecutor` raises this
    ``BaseException`` from a step instead: it leaves ``agent.run()`` like
    ``KeyboardInterrupt`` does. The e2b-tools error is :attr:`error` (and
    ``__cause__``); re-raise it with ``raise exc.error``.

    Example:
        >>> try:  # doctest: +SKIP
        ...     agent.run("...")
        ... except SandboxInfrastructureError as exc:
        ...     raise exc.error  # EngineUnavailableError, SandboxGoneError, ...
    """

    def __init__(self, error: SandboxError) -> None:
        super().__init__(f"{type(error).__name__}: {error}")
        self.error = error


class E2BToolsExecutor(RemotePythonExecutor):  # type: ignore[misc]
    """Runs a smolagents ``CodeAgent``'s code in an e2b-tools sandbox.

    Each step runs in one stateful Python context of the sandbox (variables and imports
    persist across steps and ``agent.run()`` calls). Tools and the agent's variables are
    sent in as smolagents does for its E2B executor; ``final_answer(...)`` anywhere in a
    step ends the run with that value. Errors in the code reach the model as
    ``AgentError`` text with the traceback; infrastructure failures reach the operator
    (:class:`SandboxInfrastructureError` from a step, the e2b-tools error elsewhere).

    Args:
        additional_imports: Packages the code may import; missing ones are installed
            with pip when the sandbox's network allows it (see :meth:`install_packages`).
        logger: smolagents logger (default: a silent one; the agent logs steps itself).
        allow_pickle: smolagents' setting for values that JSON cannot carry (unsafe).
        sandbox: Use this sandbox (it is not killed by :meth:`cleanup`).
        config: Create the sandbox from this config (killed by :meth:`cleanup`).
        step_timeout: Seconds one step may run before it is interrupted (``None``: 300).
        max_output_chars: Characters of a step's printed output shown to the model
            (head and tail; all of it is saved in the sandbox).
        install_timeout: Seconds ``pip install`` may take.
        **create_kwargs: Passed to :meth:`Sandbox.create` (``image=``, ``timeout=``,
            ``network=``, ...) when neither ``sandbox`` nor ``config`` is given.

    Example:
        >>> from smolagents import CodeAgent  # doctest: +SKIP
        >>> with E2BToolsExecutor() as executor:
        ...     agent = CodeAgent(tools=[], model=model, executor=executor)
        ...     agent.run("What is 6 * 7?")
        42
    """

    def __init__(
        self,
        additional_imports: list[str] | None = None,
        logger: AgentLogger | None = None,
        allow_pickle: bool = False,
        *,
        sandbox: Sandbox | None = None,
        config: SandboxConfig | None = None,
        step_timeout: float | None = 300.0,
        max_output_chars: int = 50_000,
        install_timeout: float = 600.0,
        **create_kwargs: Any,
    ) -> None:
        if sandbox is not None and (config is not None or create_kwargs):
            raise InvalidArgumentError(
                "pass either sandbox= (an existing sandbox) or settings for a new one "
                "(config= or Sandbox.create keywords), not both"
            )
        if max_output_chars < 100:
            raise InvalidArgumentError("max_output_chars must be at least 100")
        super().__init__(
            list(additional_imports or []),
            logger if logger is not None else AgentLogger(level=LogLevel.OFF),
            allow_pickle,
        )
        self.step_timeout = step_timeout
        self.max_output_chars = max_output_chars
        self.install_timeout = install_timeout
        self.owns_sandbox = sandbox is None
        self.sandbox: Sandbox | None = (
            sandbox if sandbox is not None else Sandbox.create(config=config, **create_kwargs)
        )
        self._setup: dict[str, str] = {}
        self._recording: str | None = None
        self._steps = 0
        self._context: Context | None = None
        try:
            # A context of its own: a shared sandbox's default context stays untouched.
            self._context = self.sandbox.create_code_context(language="python")
            self.installed_packages = self.install_packages(self.additional_imports)
        except BaseException:
            self.cleanup()
            raise
        self.logger.log(
            f"e2b-tools sandbox {self.sandbox.sandbox_id} is ready", level=LogLevel.INFO
        )

    # -- what smolagents calls -------------------------------------------------------
    def __call__(self, code_action: str) -> CodeOutput:
        """Run one step's code (what ``CodeAgent`` calls).

        Raises:
            AgentError: The code raised, timed out or killed its Python process; the
                agent shows the text to the model.
            SandboxInfrastructureError: The engine or the sandbox failed.
        """
        try:
            return self.run_code_raise_errors(code_action)
        except INFRASTRUCTURE_ERRORS as exc:
            raise SandboxInfrastructureError(exc) from exc

    def run_code_raise_errors(self, code: str) -> CodeOutput:
        """Run ``code`` in the sandbox's context and return smolagents' ``CodeOutput``.

        Errors in the code raise ``AgentError`` (logs, then the traceback, as smolagents'
        E2B executor words it); e2b-tools' infrastructure errors propagate as they are.
        """
        sbx = self._live()
        self._steps += 1
        transcript = Transcript(self.max_output_chars)
        save = SaveOutput(path=self._output_path("log"), threshold=self.max_output_chars)
        limit = self.step_timeout if self.step_timeout is not None else 300.0
        try:
            execution = sbx.run_code(
                code,
                context=self._context,
                on_stdout=transcript,
                on_stderr=transcript,
                timeout=limit,
                save_output=save,
            )
        except SandboxTimeoutError as exc:
            partial = exc.execution
            saved = partial.saved_output if partial is not None else None
            if exc.state_kept is False:
                state = "The Python process had to be restarted: " + self._restore()
            else:
                state = "Variables from earlier steps are kept."
            raise AgentError(
                f"{transcript.render(saved)}\nExecuting code yielded an error:\n"
                f"TimeoutError: the code ran longer than the step limit of "
                f"{limit:g}s and was interrupted. {state} Make each step "
                "shorter (less work, or split it over several steps).",
                self.logger,
            ) from None
        logs = transcript.render(execution.saved_output)
        error = execution.error
        if error is not None and error.name == self.FINAL_ANSWER_EXCEPTION:
            return CodeOutput(
                output=self._final_answer(error.value), logs=logs, is_final_answer=True
            )
        if error is not None:
            detail = error.traceback.rstrip() or f"{error.name}: {error.value}"
            if execution.context_restarted:
                detail += "\nThe Python process was restarted: " + self._restore()
            raise AgentError(f"{logs}\nExecuting code yielded an error:\n{detail}", self.logger)
        if self._recording is not None:
            self._setup[self._recording] = self._setup.get(self._recording, "") + code + "\n"
        return CodeOutput(output=step_output(execution), logs=logs, is_final_answer=False)

    def send_tools(self, tools: dict[str, Tool]) -> None:
        """Define ``tools`` in the sandbox, as smolagents' remote executors do (their
        source is sent; ``final_answer`` raises the answer to end the run); the
        packages they import are checked first (see :meth:`install_packages`)."""
        with self._record("tools"):
            super().send_tools(tools)
            if "final_answer" in tools:
                self.run_code_raise_errors(_KEEP_FINAL_ANSWER)

    def send_variables(self, variables: dict[str, Any]) -> None:
        """Define ``variables`` in the sandbox (JSON-safe values, bytes, images, ...;
        others only with ``allow_pickle=True``), as smolagents' remote executors do."""
        with self._record("variables"):
            super().send_variables(variables)

    def install_packages(self, additional_imports: list[str]) -> list[str]:
        """Make sure the sandbox can import ``additional_imports``; returns them.

        Packages the image already has are left alone. Missing ones are installed with
        pip when the sandbox has a network (``"full"``, or a policy that allows your
        package index: pip goes through the egress proxy). A sandbox without network
        (the default) cannot install anything: then, or when pip fails, this raises
        :class:`PackageInstallError` (to the operator: it runs at creation and at the
        start of ``agent.run``) naming the packages and the network policy.
        """
        names = wanted(additional_imports)
        if not names:
            return list(additional_imports)
        sbx = self._live()
        lacking = missing(sbx, names, timeout=60)
        if lacking:
            self.logger.log(f"Installing {', '.join(lacking)} in the sandbox", level=LogLevel.INFO)
            install(sbx, lacking, self.install_timeout)
            sbx.run_code("import importlib; importlib.invalidate_caches()", context=self._context)
        return list(additional_imports)

    def cleanup(self) -> None:
        """Kill the sandbox if this executor created it (else remove its context).

        Called by ``CodeAgent.cleanup()`` and ``with CodeAgent(...)``; safe to repeat.
        """
        sbx, self.sandbox = self.sandbox, None
        if sbx is None:
            return
        try:
            if self.owns_sandbox:
                sbx.kill()
            elif self._context is not None:
                sbx.remove_code_context(self._context)
        except SandboxError as exc:
            # Cleanup never raises (smolagents calls it from __exit__); the sandbox's
            # own lifetime (TTL) still ends it.
            log.warning("cleaning up sandbox %s failed: %s", sbx.sandbox_id, exc)
            self.logger.log_error(f"Error during cleanup: {exc}")

    def delete(self) -> None:
        """Same as :meth:`cleanup` (smolagents' other executors have both)."""
        self.cleanup()

    def __enter__(self) -> E2BToolsExecutor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cleanup()

    # -- internals -------------------------------------------------------------------
    def _live(self) -> Sandbox:
        if self.sandbox is None:
            raise SandboxGoneError("this executor was cleaned up; create a new one")
        return self.sandbox

    def _output_path(self, kind: str) -> str:
        # Named by context too: executors sharing a sandbox never overwrite each other's.
        context = self._context.id if self._context is not None else "default"
        return f"{OUTPUT_DIR}/{context}-step-{self._steps}.{kind}"

    @contextlib.contextmanager
    def _record(self, what: str) -> Iterator[None]:
        # What send_tools/send_variables ran is kept, to run again in a restarted context.
        self._setup.pop(what, None)
        self._recording = what
        try:
            yield
        finally:
            self._recording = None

    def _restore(self) -> str:
        """Define the tools and variables again in a fresh context; say so for the model."""
        sbx = self._live()
        for what in ("variables", "tools"):
            code = self._setup.get(what)
            if code:
                restored = sbx.run_code(code, context=self._context, timeout=120)
                if restored.error is not None:
                    return (
                        f"variables and imports from earlier steps are gone, and defining "
                        f"the {what} again failed ({restored.error.name}: {restored.error.value})."
                    )
        return (
            "variables and imports from earlier steps are gone (the tools and the agent's "
            "variables were defined again)."
        )

    def _final_answer(self, value: str) -> Any:
        try:
            return self._deserialize_final_answer(value, self.allow_pickle)
        except (SerializationError, ValueError):
            full = self._kept_final_answer()
            if full is None:
                raise
            return self._deserialize_final_answer(full, self.allow_pickle)

    def _kept_final_answer(self) -> str | None:
        """The whole serialized final answer, read back from the sandbox through a file
        (the exception's message is capped; a file is not)."""
        sbx = self._live()
        path = self._output_path("answer")
        execution: Execution = sbx.run_code(
            "import os as _os\n"
            f"_os.makedirs({OUTPUT_DIR!r}, exist_ok=True)\n"
            f"with open({path!r}, 'w') as _f:\n"
            "    _f.write(_e2b_tools_final_answer)\n"
            "del _os, _f",
            context=self._context,
        )
        if execution.error is not None:
            return None
        try:
            return str(sbx.files.read(path))
        except NotFoundError:
            return None
        finally:
            sbx.files.remove(path)
