"""Write e2b_tools/_sync.py, the blocking API, from the async one (run: make sync).

Every public member of the async classes (and of their bases in this package) gets a
blocking twin in the generated file:
a coroutine method runs its async twin through ``_run`` (``e2b_tools._bridge.blocking``),
a property reads the async one. Signatures and overloads come from ``inspect`` (the
annotations are strings, copied as written) and each default from the source text of
the async method, so named constants stay named. A result that is an async object
(``AsyncSandbox``, ``AsyncCommandHandle``) comes back in its blocking class.
tests/unit/test_docs.py fails when the committed file differs from ``render()``.

What cannot be derived is spelled out in ``WRAPPERS`` (class docstrings, members left
out, hand-written members). A new async member no rule covers stops the script with a
message naming what to extend, rather than being guessed at.

Needs Python 3.11+ (``typing.get_overloads``) and ruff (it formats the output).
"""

from __future__ import annotations

import ast
import builtins
import inspect
import subprocess
import sys
import textwrap
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from e2b_tools._command_handle import AsyncCommandHandle
from e2b_tools._commands import AsyncCommands
from e2b_tools._files import AsyncFiles, AsyncFileStreamReader
from e2b_tools._paginator import AsyncSandboxPaginator
from e2b_tools._sandbox import AsyncSandbox

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "e2b_tools" / "_sync.py"
PACKAGE = "e2b_tools"


@dataclass(frozen=True)
class Wrapper:
    """One blocking class: the async class it wraps, and what is written by hand."""

    name: str
    inner: type
    doc: str
    skip: dict[str, str] = field(default_factory=dict)
    """Async members with no blocking twin, and why."""
    extra: str = ""
    """Hand-written members, emitted after ``__init__``; they replace async members
    (such as ``__repr__``) of the same name."""
    creates: str = ""
    """An async class method the constructor calls when given no async object (E2B's
    v1 ``Sandbox(template=..., timeout=...)`` creates a sandbox)."""


# The blocking classes, in the order they are written. An async object that a method
# returns, or that the async __init__ stores in an attribute (``self.commands =
# AsyncCommands(...)``), comes back wrapped in the blocking class of its row.
WRAPPERS = [
    Wrapper(
        "Sandbox",
        AsyncSandbox,
        """A running sandbox (blocking API). See :class:`AsyncSandbox` for the details.

        Example:
            >>> with Sandbox.create() as sbx:  # doctest: +SKIP
            ...     sbx.run_code("x = 41")
            ...     sbx.run_code("x + 1").text
            '42'
        """,
        skip={"loop": "the blocking API's loop is internal to e2b_tools._bridge"},
        creates="create",
        # Below __repr__: the lifecycle members callable on the class with a sandbox id
        # and on an instance (class_method_variant), a pair no rule of the script covers.
        extra='''
        @property
        def async_sandbox(self) -> AsyncSandbox:
            """The async twin of this object (same sandbox, same connection)."""
            return self._inner

        def __repr__(self) -> str:
            return f"<Sandbox {self.sandbox_id} image={self.image!r}>"

        @staticmethod
        def _cls_connect(
            cls: type[Sandbox],
            sandbox_id: str,
            timeout: float | None = None,
            *,
            backend: Backend | None = None,
            **options: Unpack[ConnectionOptions],
        ) -> Sandbox:
            return cls(
                _run(AsyncSandbox.connect(sandbox_id, timeout, backend=backend, **options))
            )

        @class_method_variant(_cls_connect)
        def connect(
            self, timeout: float | None = None, **options: Unpack[ConnectionOptions]
        ) -> Sandbox:
            """Attach to a sandbox by id, resuming it if paused (``Sandbox.connect(sandbox_id,
            timeout=None)``), or resume this one (``sbx.connect()``).

            Blocking twin of :meth:`AsyncSandbox.connect`.
            """
            _run(self._inner.connect(timeout, **options))
            return self

        @staticmethod
        def _cls_kill(
            cls: type[Sandbox],
            sandbox_id: str,
            *,
            backend: Backend | None = None,
            **options: Unpack[ConnectionOptions],
        ) -> bool:
            return _run(AsyncSandbox.kill(sandbox_id, backend=backend, **options))

        @class_method_variant(_cls_kill)
        def kill(self, **options: Unpack[ConnectionOptions]) -> bool:
            """Stop and remove the sandbox (``Sandbox.kill(sandbox_id)``: by id).

            Blocking twin of :meth:`AsyncSandbox.kill`.
            """
            return _run(self._inner.kill(**options))

        @staticmethod
        def _cls_pause(
            cls: type[Sandbox],
            sandbox_id: str,
            keep_memory: bool = True,
            *,
            backend: Backend | None = None,
        ) -> bool:
            return _run(AsyncSandbox.pause(sandbox_id, keep_memory, backend=backend))

        @class_method_variant(_cls_pause)
        def pause(self, keep_memory: bool = True) -> bool:
            """Freeze the sandbox, memory, files and timeout clock kept; connect() resumes it.

            Blocking twin of :meth:`AsyncSandbox.pause`.
            """
            return _run(self._inner.pause(keep_memory))

        @class_method_variant(_cls_pause)
        def beta_pause(self, keep_memory: bool = True) -> bool:
            """E2B's older name of :meth:`pause`.

            Blocking twin of :meth:`AsyncSandbox.beta_pause`.
            """
            return _run(self._inner.beta_pause(keep_memory))

        @staticmethod
        def _cls_set_timeout(
            cls: type[Sandbox], sandbox_id: str, timeout: float, *, backend: Backend | None = None
        ) -> None:
            _run(AsyncSandbox.set_timeout(sandbox_id, timeout, backend=backend))

        @class_method_variant(_cls_set_timeout)
        def set_timeout(self, timeout: float) -> None:
            """Move the sandbox's deadline to ``timeout`` seconds from now.

            Blocking twin of :meth:`AsyncSandbox.set_timeout`.
            """
            _run(self._inner.set_timeout(timeout))

        @staticmethod
        def _cls_get_info(
            cls: type[Sandbox], sandbox_id: str, *, backend: Backend | None = None
        ) -> SandboxInfo:
            return _run(AsyncSandbox.get_info(sandbox_id, backend=backend))

        @class_method_variant(_cls_get_info)
        def get_info(self) -> SandboxInfo:
            """What the engine (and the agent, for ``end_at``) knows of this sandbox.

            Blocking twin of :meth:`AsyncSandbox.get_info`.
            """
            return _run(self._inner.get_info())

        @staticmethod
        def _cls_get_metrics(
            cls: type[Sandbox],
            sandbox_id: str,
            start: datetime | None = None,
            end: datetime | None = None,
            *,
            backend: Backend | None = None,
        ) -> builtins.list[SandboxMetrics]:
            return _run(AsyncSandbox.get_metrics(sandbox_id, start, end, backend=backend))

        @class_method_variant(_cls_get_metrics)
        def get_metrics(
            self, start: datetime | None = None, end: datetime | None = None
        ) -> builtins.list[SandboxMetrics]:
            """The sandbox's CPU, memory and workspace use now, from the engine's stats.

            Blocking twin of :meth:`AsyncSandbox.get_metrics`.
            """
            return _run(self._inner.get_metrics(start, end))
        ''',
    ),
    Wrapper(
        "SandboxPaginator",
        AsyncSandboxPaginator,
        """Pages of :meth:`Sandbox.list`, newest sandbox first (blocking API).

        Example:
            >>> paginator = Sandbox.list(limit=10)  # doctest: +SKIP
            >>> while paginator.has_next:  # doctest: +SKIP
            ...     for info in paginator.next_items():
            ...         print(info.sandbox_id, info.state)
        """,
    ),
    Wrapper("Commands", AsyncCommands, "Shell commands (blocking); see :class:`AsyncCommands`."),
    Wrapper(
        "CommandHandle",
        AsyncCommandHandle,
        "A command started with ``background=True`` or ``commands.connect`` (blocking API).",
        skip={"__aiter__": "the blocking twin is the hand-written __iter__"},
        extra='''
        def __iter__(self) -> Iterator[OutputChunk]:
            """The output as ``(stdout, stderr, pty)`` tuples until the command ends, as
            E2B's ``CommandHandle.__iter__`` yields it."""
            chunks = self._inner.__aiter__()

            async def step() -> OutputChunk:
                return await chunks.__anext__()

            while True:
                try:
                    yield _run(step())
                except StopAsyncIteration:
                    return
        ''',
    ),
    Wrapper(
        "Files",
        AsyncFiles,
        "Files (blocking); see :class:`AsyncFiles`.",
        # E2B's blocking watch_dir takes no callbacks: its handle keeps the events.
        extra='''
        def watch_dir(
            self,
            path: str,
            user: Username | None = None,
            request_timeout: float | None = None,
            recursive: bool = False,
            include_entry: bool = False,
            allow_network_mounts: bool = False,
        ) -> WatchHandle:
            """Watch a directory for changes (E2B's blocking ``watch_dir``); the handle's
            ``get_new_events()`` returns those since its last call, until ``stop()``.

            Blocking twin of :meth:`AsyncFiles.watch_dir` (see it for the arguments),
            without its callbacks and ``timeout``: the watch lasts until ``stop()`` or
            the sandbox's end.
            """
            start = self._inner._start_watch(
                path, recursive, user, request_timeout, None, include_entry
            )
            return WatchHandle(_run(start))
        ''',
    ),
    Wrapper(
        "FileStreamReader",
        AsyncFileStreamReader,
        """A file read with ``format="stream"``: an iterator of ``bytes`` chunks.

        Use it with ``with`` (or call :meth:`close`) when you may stop early.
        """,
        skip={
            "__aiter__": "hand-written __iter__",
            "__anext__": "hand-written __next__",
            "aclose": "hand-written close, E2B's name",
        },
        extra='''
        def __iter__(self) -> FileStreamReader:
            return self

        def __next__(self) -> bytes:
            async def step() -> bytes:
                return await self._inner.__anext__()

            try:
                return _run(step())
            except StopAsyncIteration:
                raise StopIteration from None

        def close(self) -> None:
            """Stop reading; the rest of the file is dropped (safe to call twice)."""
            _run(self._inner.aclose())
        ''',
    ),
]
WRAPPED = {w.inner.__name__: w.name for w in WRAPPERS}
"""Async class name -> blocking class name."""

CONTEXT_MANAGER = {"__aenter__": "__enter__", "__aexit__": "__exit__"}
"""The async dunders with a generated twin; any other must be hand-written or skipped."""

IGNORED = {"__module__", "__qualname__", "__doc__", "__dict__", "__weakref__", "__annotations__"}

RUNTIME_IMPORTS = {
    "Any": ("typing", "Any"),
    "Coroutine": ("collections.abc", "Coroutine"),
    "TypeVar": ("typing", "TypeVar"),
    "WatchHandle": ("._watch", "WatchHandle"),
    "blocking": ("._bridge", "blocking"),
    "overload": ("typing", "overload"),
}
"""What the generated module itself needs, besides the names the signatures use."""

HEADER = '''\
# Generated by scripts/gen_sync.py from the async API: do not edit by hand.
# Change the async classes (or the script) and run `make sync`.
"""Blocking facade over the async API: one source of truth for behaviour.

Every sync method runs its async twin on one event loop in a background thread
(started on first use) and waits for it. Signatures are copied from the async ones by
``scripts/gen_sync.py``; ``tests/unit/test_docs.py`` fails when this file is stale.
Streaming callbacks passed to the sync API run on that background thread.
"""
'''

RUN_HELPER = """\
T = TypeVar("T")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return blocking.run(coro)
"""


class GenError(Exception):
    """The async API has something the script has no rule for."""


# -- reading the async source ----------------------------------------------------------


def _doc_line(obj: object) -> str:
    """The first line of an object's own docstring ("" without one)."""
    doc = getattr(obj, "__doc__", None)
    return inspect.cleandoc(doc).splitlines()[0] if doc else ""


def _function_node(fn: Callable[..., Any]) -> tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    source = textwrap.dedent(inspect.getsource(fn))
    node = ast.parse(source).body[0]
    assert isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)), fn
    return source, node


def _default_sources(fn: Callable[..., Any]) -> dict[str, str]:
    """Parameter name -> the source text of its default, as written in ``fn``."""
    source, node = _function_node(fn)
    args = node.args
    positional = [*args.posonlyargs, *args.args]
    with_default = positional[len(positional) - len(args.defaults) :]
    pairs = list(zip(with_default, args.defaults, strict=True))
    pairs += [
        (a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is not None
    ]
    out = {}
    for arg, default in pairs:
        text = ast.get_source_segment(source, default)
        assert text is not None, (fn, arg.arg)
        out[arg.arg] = text
    return out


def _names(expression: str) -> set[str]:
    """The names an annotation or default expression refers to."""
    tree = ast.parse(expression, mode="eval")
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


def _rename(annotation: str) -> str:
    """An annotation with each wrapped async class replaced by its blocking class."""
    tree = ast.parse(annotation, mode="eval")
    spots = [n for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id in WRAPPED]
    for node in sorted(spots, key=lambda n: n.col_offset, reverse=True):
        assert node.end_col_offset is not None
        start, end = node.col_offset, node.end_col_offset
        annotation = annotation[:start] + WRAPPED[node.id] + annotation[end:]
    return annotation


def _literal(annotation: str) -> str | None:
    """The source of ``value`` when the annotation is ``Literal[value]``, else None."""
    tree = ast.parse(annotation, mode="eval").body
    if (
        isinstance(tree, ast.Subscript)
        and isinstance(tree.value, ast.Name)
        and tree.value.id == "Literal"
        and not isinstance(tree.slice, ast.Tuple)
    ):
        return ast.unparse(tree.slice)
    return None


class Imports:
    """Where each name the generated code uses comes from, read off the async modules."""

    def __init__(self) -> None:
        self.sources: dict[str, tuple[str, str | None]] = {}
        """Name -> (module, imported name), or (module, None) for ``import module``."""
        self.wanted: dict[str, tuple[str, str | None]] = {}
        for name, origin in RUNTIME_IMPORTS.items():
            self._add(name, origin)

    def learn(self, module: ModuleType) -> None:
        """Record the module-level imports and definitions of an async module."""
        own = "." + module.__name__.rpartition(".")[2]
        statements: list[ast.stmt] = []
        for stmt in ast.parse(inspect.getsource(module)).body:
            # ``if TYPE_CHECKING:`` blocks import names too.
            statements += stmt.body if isinstance(stmt, ast.If) else [stmt]
        for stmt in statements:
            if isinstance(stmt, ast.ImportFrom):
                if stmt.level not in (0, 1) or stmt.module is None:
                    raise GenError(f"{module.__name__}: no rule for {ast.unparse(stmt)}")
                origin = "." * stmt.level + stmt.module
                for alias in stmt.names:
                    if alias.asname in (None, alias.name):  # "as" names stay unknown
                        self._add(alias.name, (origin, alias.name))
            elif isinstance(stmt, ast.Import):
                for alias in stmt.names:
                    if alias.asname is None and "." not in alias.name:
                        self._add(alias.name, (alias.name, None))
            elif isinstance(stmt, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                self._add(stmt.name, (own, stmt.name))
            elif isinstance(stmt, (ast.Assign, ast.AnnAssign)):
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                for target in targets:
                    if isinstance(target, ast.Name):
                        self._add(target.id, (own, target.id))

    def _add(self, name: str, origin: tuple[str, str | None]) -> None:
        known = self.sources.setdefault(name, origin)
        if known != origin:
            raise GenError(f"{name} comes from both {known[0]} and {origin[0]}")

    def use(self, expression: str) -> None:
        """Import what ``expression`` (annotation or default) needs."""
        for name in _names(expression) - set(WRAPPED.values()):
            if name in self.sources:
                self.wanted[name] = self.sources[name]
            elif not hasattr(builtins, name):
                raise GenError(f"cannot tell where {name!r} (in {expression!r}) comes from")

    def render(self) -> str:
        """The import block, sorted as ruff's isort rule wants it."""
        plain: set[str] = set()
        by_module: dict[str, set[str]] = {}
        for module, name in self.wanted.values():
            if name is None:
                plain.add(module)
            else:
                by_module.setdefault(module, set()).add(name)
        sections: dict[int, list[str]] = {}
        for module in sorted(plain, key=_module_key):
            sections.setdefault(_section(module), []).append(f"import {module}")
        for module in sorted(by_module, key=_module_key):
            names = ", ".join(sorted(by_module[module], key=_member_key))
            sections.setdefault(_section(module), []).append(f"from {module} import {names}")
        blocks = ["\n".join(lines) for _, lines in sorted(sections.items())]
        return "from __future__ import annotations\n\n" + "\n\n".join(blocks) + "\n"


def _section(module: str) -> int:
    """isort's sections: standard library, third party, first party, local folder."""
    if module.startswith("."):
        return 3
    top = module.partition(".")[0]
    if top == PACKAGE:
        return 2
    return 0 if top in sys.stdlib_module_names else 1


def _module_key(module: str) -> tuple[str, str]:
    return module.lower(), module


def _member_key(name: str) -> tuple[int, str, str]:
    """isort's order-by-type: CONSTANTS, then Classes, then everything else."""
    kind = 0 if name.isupper() and len(name) > 1 else 1 if name[:1].isupper() else 2
    return kind, name.lower(), name


# -- writing the blocking classes ------------------------------------------------------


@dataclass(frozen=True)
class Method:
    """One async method to mirror."""

    wrapper: Wrapper
    name: str
    fn: Callable[..., Any]
    kind: str  # "method", "classmethod" or "staticmethod"

    @property
    def decorator(self) -> str:
        return "" if self.kind == "method" else f"@{self.kind}\n"

    @property
    def pointer(self) -> str:
        return f"Blocking twin of :meth:`{self.wrapper.inner.__name__}.{self.name}`."

    def call(self, literal: tuple[str, str] | None = None) -> str:
        """The call of the async twin passing the parameters on as they came.

        ``literal`` is (parameter, value source) to pass that value instead.
        """
        owner = "self._inner" if self.kind == "method" else self.wrapper.inner.__name__
        params = list(inspect.signature(self.fn).parameters.values())
        if self.kind != "staticmethod":
            params = params[1:]  # self / cls
        args = []
        for p in params:
            value = literal[1] if literal is not None and literal[0] == p.name else p.name
            if p.kind is inspect.Parameter.VAR_POSITIONAL:
                args.append(f"*{p.name}")
            elif p.kind is inspect.Parameter.VAR_KEYWORD:
                args.append(f"**{p.name}")
            elif p.kind is inspect.Parameter.KEYWORD_ONLY:
                args.append(f"{p.name}={value}")
            else:
                args.append(value)
        return f"{owner}.{self.name}({', '.join(args)})"

    def result(self, annotation: str, call: str) -> str:
        """The statement returning ``call``'s result, wrapped if it is an async object."""
        value = f"_run({call})" if inspect.iscoroutinefunction(self.fn) else call
        if annotation in WRAPPED:
            blocking_cls = WRAPPED[annotation]
            if blocking_cls == self.wrapper.name and self.kind == "classmethod":
                blocking_cls = "cls"
            value = f"{blocking_cls}({value})"
        elif _names(annotation) & set(WRAPPED):
            raise GenError(f"{self.fn.__qualname__}: no rule to wrap a {annotation}")
        # A function declared to return None must not return _run(...) (mypy).
        return value if annotation == "None" else f"return {value}"


def _signature(fn: Callable[..., Any], imports: Imports) -> str:
    """``(params) -> ret`` with the source's annotations and default expressions."""
    sig = inspect.signature(fn)
    defaults = _default_sources(fn)
    module = vars(sys.modules[fn.__module__])
    parts: list[str] = []
    previous: inspect._ParameterKind | None = None
    for p in sig.parameters.values():
        if previous is inspect.Parameter.POSITIONAL_ONLY and p.kind is not previous:
            parts.append("/")
        if p.kind is inspect.Parameter.KEYWORD_ONLY and previous not in (
            inspect.Parameter.KEYWORD_ONLY,
            inspect.Parameter.VAR_POSITIONAL,
        ):
            parts.append("*")
        text = p.name
        if p.kind is inspect.Parameter.VAR_POSITIONAL:
            text = "*" + text
        elif p.kind is inspect.Parameter.VAR_KEYWORD:
            text = "**" + text
        if p.annotation is not inspect.Parameter.empty:
            annotation = str(p.annotation)
            if _names(annotation) & set(WRAPPED):
                raise GenError(f"{fn.__qualname__}: no rule to unwrap parameter {p.name}")
            imports.use(annotation)
            text += f": {annotation}"
        if p.default is not inspect.Parameter.empty:
            expression = defaults[p.name]
            if eval(expression, module) != p.default:
                raise GenError(f"{fn.__qualname__}: cannot reproduce the default of {p.name}")
            imports.use(expression)
            text += (" = " if ":" in text else "=") + expression
        parts.append(text)
        previous = p.kind
    if previous is inspect.Parameter.POSITIONAL_ONLY:
        parts.append("/")
    if sig.return_annotation is inspect.Signature.empty:
        raise GenError(f"{fn.__qualname__} has no return annotation")
    ret = str(sig.return_annotation)
    imports.use(ret)
    return f"({', '.join(parts)}) -> {_rename(ret)}"


def _docstring(summary: str, pointer: str) -> str:
    summary = summary.replace("\\", "\\\\")
    return f'"""{summary}\n\n{pointer}\n"""' if summary else f'"""{pointer}"""'


def _def(head: str, body: list[str]) -> str:
    return head + "\n" + textwrap.indent("\n".join(body), "    ")


def _overloaded(method: Method, imports: Imports) -> str:
    """Overload stubs, then an implementation that dispatches on the pinned literal.

    Each overload pins one parameter to a literal (``background: Literal[True]``,
    ``format: Literal["bytes"]``). The implementation calls the async method with that
    literal, one branch per overload, so the type checker picks the overload and the
    result is wrapped by its type. The overload whose literal is the parameter's default
    is the fall-through: it passes the caller's value on as it came, so the async method
    still sees (and validates) it.
    """
    impl = method.fn
    impl_params = inspect.signature(impl).parameters
    stubs = []
    cases: list[tuple[str, str, str]] = []  # (parameter, literal source, return annotation)
    for stub in typing.get_overloads(impl):
        signature = _signature(stub, imports)
        stubs.append(f"@overload\n{method.decorator}def {method.name}{signature}: ...\n")
        sig = inspect.signature(stub)
        pinned = [
            (name, _literal(str(p.annotation)))
            for name, p in sig.parameters.items()
            if str(p.annotation) != str(impl_params[name].annotation)
        ]
        if len(pinned) != 1 or pinned[0][1] is None:
            raise GenError(f"{impl.__qualname__}: an overload must pin one parameter to a literal")
        name, value = pinned[0]
        assert value is not None
        cases.append((name, value, str(sig.return_annotation)))
    params = {case[0] for case in cases}
    if len(params) != 1:
        raise GenError(f"{impl.__qualname__}: the overloads pin different parameters {params}")
    (param,) = params
    default = impl_params[param].default
    fallback = cases[-1]
    if default is not inspect.Parameter.empty:
        fallback = next((c for c in cases if ast.literal_eval(c[1]) == default), fallback)
    body = [_docstring(_doc_line(impl), method.pointer)]
    for case in cases:
        if case is not fallback:
            _, value, annotation = case
            test = {"True": param, "False": f"not {param}"}.get(value, f"{param} == {value}")
            branch = method.result(annotation, method.call((param, value)))
            body.append(f"if {test}:\n    {branch}")
    body.append(method.result(fallback[2], method.call()))
    head = f"{method.decorator}def {method.name}{_signature(impl, imports)}:"
    return "\n".join([*stubs, _def(head, body)])


def _method(method: Method, imports: Imports) -> str:
    fn = method.fn
    if inspect.isasyncgenfunction(fn):
        raise GenError(f"{fn.__qualname__}: no rule for an async generator")
    if typing.get_overloads(fn):
        return _overloaded(method, imports)
    ret = str(inspect.signature(fn).return_annotation)
    if method.name == "__aenter__":
        # It returns the async object itself; the blocking one returns itself.
        if ret != method.wrapper.inner.__name__:
            raise GenError(f"{fn.__qualname__}: no rule for an __aenter__ not returning self")
        statement = "return self"
    else:
        statement = method.result(ret, method.call())
    name = CONTEXT_MANAGER.get(method.name, method.name)
    head = f"{method.decorator}def {name}{_signature(fn, imports)}:"
    return _def(head, [_docstring(_doc_line(fn), method.pointer), statement])


def _property(wrapper: Wrapper, name: str, prop: property, imports: Imports) -> str:
    owner = wrapper.inner.__name__
    if prop.fget is None or prop.fset is not None or prop.fdel is not None:
        raise GenError(f"{owner}.{name}: no rule for a property that is not read-only")
    annotation = inspect.signature(prop.fget).return_annotation
    if annotation is inspect.Signature.empty:
        raise GenError(f"{owner}.{name} has no return annotation")
    ret = str(annotation)
    imports.use(ret)
    value = f"self._inner.{name}"
    if ret in WRAPPED:
        value = f"{WRAPPED[ret]}({value})"
    elif _names(ret) & set(WRAPPED):
        raise GenError(f"{owner}.{name}: no rule to wrap a {ret}")
    doc = _docstring(_doc_line(prop.fget), f"Same as :attr:`{owner}.{name}`.")
    return _def(f"@property\ndef {name}(self) -> {_rename(ret)}:", [doc, f"return {value}"])


def _sub_objects(wrapper: Wrapper) -> Iterator[tuple[str, str, str]]:
    """``self.x = AsyncY(...)`` in the async ``__init__``: (x, blocking Y, docstring)."""
    _, node = _function_node(vars(wrapper.inner)["__init__"])
    body = node.body
    for stmt, following in zip(body, [*body[1:], None], strict=True):
        if not (
            isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(target := stmt.targets[0], ast.Attribute)
            and isinstance(target.value, ast.Name)
            and target.value.id == "self"
            and isinstance(stmt.value, ast.Call)
            and isinstance(stmt.value.func, ast.Name)
            and stmt.value.func.id in WRAPPED
        ):
            continue
        doc = ""
        if (
            isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            # The async attribute docstring shows an awaited call; a blocking one is not.
            doc = following.value.value.replace("await ", "")
        yield target.attr, WRAPPED[stmt.value.func.id], doc


def _init(wrapper: Wrapper, imports: Imports) -> str:
    inner = wrapper.inner.__name__
    imports.use(inner)
    body = ["self._inner = inner"]
    if wrapper.creates:
        imports.use("Any")
        method = f"{inner}.{wrapper.creates}"
        body = [
            f'''"""Wrap ``inner``; or create a new sandbox, as E2B's v1 constructor
            ``Sandbox(template=None, timeout=None, metadata=None, envs=None, ...)`` did
            (the arguments of :meth:`{method}`; E2B deprecates this form in favour of
            ``create``)."""''',
            f"if isinstance(inner, {inner}):",
            "    if kwargs:",
            f'        raise TypeError(f"{wrapper.name}({inner}) takes no other arguments, "'
            'f"got {sorted(kwargs)}")',
            "else:",
            f"    inner = _run({method}(inner, **kwargs))",
            *body,
        ]
    for attr, cls, doc in _sub_objects(wrapper):
        body.append(f"self.{attr} = {cls}(inner.{attr})")
        if doc:
            body.append(f'"""{doc}"""'.replace("\\", "\\\\"))
    if wrapper.creates:
        params = f"inner: {inner} | str | None = None, **kwargs: Any"
        signature = f"def __init__(self, {params}) -> None:"
    else:
        signature = f"def __init__(self, inner: {inner}) -> None:"
    return _def(signature, body)


def _extra(wrapper: Wrapper, imports: Imports) -> tuple[str, set[str]]:
    """The hand-written members' source and names (their annotations are imported)."""
    source = textwrap.dedent(wrapper.extra).strip()
    nodes = ast.parse(source).body
    names = {n.name for n in nodes if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    for node in nodes:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for decorator in node.decorator_list:
                for name in _names(ast.unparse(decorator)) - names - {"staticmethod"}:
                    imports.use(name)
            args = node.args
            starred = [a for a in (args.vararg, args.kwarg) if a is not None]
            for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, *starred]:
                if arg.annotation is not None:
                    imports.use(ast.unparse(arg.annotation))
            if node.returns is not None:
                imports.use(ast.unparse(node.returns))
    return source, names


def _bases(cls: type) -> list[type]:
    """The package's classes ``cls`` inherits from (``object`` left out)."""
    return [klass for klass in cls.__mro__[1:] if klass is not object]


def _members(cls: type) -> dict[str, Any]:
    """``cls``'s own members in source order, then those it inherits from its bases."""
    members: dict[str, Any] = {}
    for klass in [cls, *_bases(cls)]:
        for name, value in vars(klass).items():
            members.setdefault(name, value)
    return members


def _class(wrapper: Wrapper, imports: Imports) -> str:
    cls = wrapper.inner
    for base in _bases(cls):
        if not base.__module__.startswith(f"{PACKAGE}."):
            raise GenError(f"{cls.__name__}: no rule for base class {base.__qualname__}")
    members = [_init(wrapper, imports)]
    extra, hand_written = _extra(wrapper, imports)
    if extra:
        members.append(extra)
    for name, value in _members(cls).items():
        dunder = name.startswith("__") and name.endswith("__")
        if name in IGNORED or name in wrapper.skip or name in hand_written or name == "__init__":
            continue
        if name.startswith("_") and not dunder:
            continue  # private
        if dunder and name not in CONTEXT_MANAGER:
            raise GenError(f"{cls.__name__}.{name}: hand-write its twin (extra=) or skip it")
        if isinstance(value, property):
            members.append(_property(wrapper, name, value, imports))
        elif isinstance(value, (classmethod, staticmethod)):
            kind = type(value).__name__
            members.append(_method(Method(wrapper, name, value.__func__, kind), imports))
        elif inspect.isfunction(value):
            members.append(_method(Method(wrapper, name, value, "method"), imports))
        else:
            raise GenError(f"{cls.__name__}.{name}: no rule for a {type(value).__name__}")
    doc = inspect.cleandoc(wrapper.doc)
    doc = f'"""{doc}\n"""' if "\n" in doc else f'"""{doc}"""'
    body = "\n\n".join([doc, *members])
    return f"class {wrapper.name}:\n" + textwrap.indent(body, "    ")


def render() -> str:
    """The generated module's text (formatted by ruff), without writing it."""
    imports = Imports()
    for wrapper in WRAPPERS:
        for klass in [wrapper.inner, *_bases(wrapper.inner)]:
            imports.learn(sys.modules[klass.__module__])
    for name in ("Any", "Coroutine", "TypeVar", "blocking"):
        imports.use(name)
    body = "\n\n\n".join(_class(wrapper, imports) for wrapper in WRAPPERS)
    if "@overload" in body:
        imports.use("overload")
    source = "\n".join([HEADER, imports.render(), RUN_HELPER, "", body])
    return _format(source)


def _format(source: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--stdin-filename", str(TARGET), "-"],
        input=source,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if done.returncode != 0:
        raise GenError(f"ruff format failed:\n{done.stderr}\n--- the source ---\n{source}")
    return done.stdout


def main() -> None:
    TARGET.write_text(render())
    print(f"wrote {TARGET.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
