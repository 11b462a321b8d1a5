"""A stateful Python code context: a child process of the agent.

Requests arrive as JSON lines on ``req_fd``; results, errors and ``done`` go back as
JSON lines on ``ctl_fd``. The process's own stdout/stderr are pipes that the agent
forwards as ``stdout``/``stderr`` events, so output from ``print``, from C extensions
and from subprocesses all arrive the same way. Before any control message the
kernel flushes ``sys.stdout``/``sys.stderr`` so that output precedes the result.

Cells are read as IPython reads them (:func:`parse_cell`): a cell indented as a
whole is dedented, ``!cmd`` lines run in a shell, and the magics of :class:`Shell` work
(``%pip``, ``%cd``, ``%env``, ``%%bash``, ...), without IPython being installed.
"""

from __future__ import annotations

import ast
import base64
import builtins
import io
import json
import linecache
import os
import signal
import sys
import traceback
import types
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional

from . import procs
from .charts import figure_chart
from .plumbing import READ_CHUNK
from .shell import SHELL_NAME, Shell, UsageError, parse_cell

if TYPE_CHECKING:
    import asyncio

_CO_COROUTINE = 0x80  # inspect.CO_COROUTINE, without importing inspect

# Formats taken from IPython's display protocol, in the order they are tried.
_REPR_METHODS = (
    ("text/html", "_repr_html_"),
    ("text/markdown", "_repr_markdown_"),
    ("image/svg+xml", "_repr_svg_"),
    ("image/png", "_repr_png_"),
    ("image/jpeg", "_repr_jpeg_"),
    ("application/json", "_repr_json_"),
    ("text/latex", "_repr_latex_"),
)

_THIS_FILE = os.path.abspath(__file__).rstrip("c")
# Caps on what one result or error may carry, so a huge value costs the sandbox, never
# the agent or the host: characters of a text representation, of a base64 image, and
# of an error's message and traceback.
TEXT_LIMIT = 1 << 20
IMAGE_LIMIT = 8 << 20
ERROR_LIMIT = 64 << 10


def _capped(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return (
        f"{text[:half]}\n[... {len(text) - 2 * half} characters omitted by e2b-tools: "
        f"the value is {len(text)} characters long ...]\n{text[-half:]}"
    )


class Kernel:
    def __init__(self, req_fd: int, ctl_fd: int) -> None:
        self.req = os.fdopen(req_fd, "rb", buffering=0)
        self.ctl_fd = ctl_fd
        self.module = types.ModuleType("__main__")
        self.module.__dict__["__builtins__"] = builtins
        sys.modules["__main__"] = self.module
        self.ns: Dict[str, Any] = self.module.__dict__
        self.count = 0
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self._buf = b""
        self.ns["display"] = self.display
        self.shell = Shell(self)
        self.ns[SHELL_NAME] = self.shell
        sys.meta_path.insert(0, _ImportPatches(self))

    def send(self, msg: Dict[str, Any]) -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        data = (json.dumps(msg, ensure_ascii=False) + "\n").encode("utf-8", "replace")
        while data:
            n = os.write(self.ctl_fd, data)
            data = data[n:]

    def read_request(self) -> Optional[Dict[str, Any]]:
        while b"\n" not in self._buf:
            chunk = self.req.read(READ_CHUNK)
            if not chunk:
                return None
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        obj = json.loads(line)
        return obj if isinstance(obj, dict) else None

    def serve(self) -> None:
        self.send({"type": "ready", "pid": os.getpid()})
        while True:
            try:
                req = self.read_request()
                if req is None:
                    return
                self.execute(req)
            except KeyboardInterrupt:
                # An interrupt that arrived after the code finished: nothing to stop.
                continue

    def execute(self, req: Dict[str, Any]) -> None:
        self.count += 1
        envs = req.get("envs") or {}
        saved = {k: os.environ.get(k) for k in envs}
        os.environ.update({str(k): str(v) for k, v in envs.items()})
        start = procs.now_ticks()
        try:
            self.run_cell(str(req.get("code", "")))
        except KeyboardInterrupt as exc:
            self.send_error(exc)
            # The agent killed what this call started; collect those of our children.
            procs.reap_children(since=start)
        finally:
            for key, old in saved.items():
                if old is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = old
            self.send({"type": "done", "execution_count": self.count})

    def run_cell(self, code: str) -> None:
        filename = f"<cell-{self.count}>"
        code, tree = parse_cell(code, self.ns, filename)
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        if tree is None:
            try:
                tree = ast.parse(code, filename, "exec")
            except SyntaxError as exc:
                self.send_error(exc)
                return
        last: Optional[ast.expr] = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = tree.body.pop().value  # type: ignore[attr-defined]
        flags = getattr(ast, "PyCF_ALLOW_TOP_LEVEL_AWAIT", 0)
        try:
            body = compile(tree, filename, "exec", flags=flags, dont_inherit=True)
            self.run_compiled(body)
            if last is not None:
                expr = compile(
                    ast.Expression(last), filename, "eval", flags=flags, dont_inherit=True
                )
                value = self.run_compiled(expr)
                if value is not None:
                    self.ns["_"] = value
                    self.send_result(value, main=True)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            self.send_error(exc)
        # Like a notebook: figures still open at the end of a cell are shown.
        self.flush_figures()

    def display(
        self,
        *objs: Any,
        raw: bool = False,
        include: Any = None,
        exclude: Any = None,
        **_ignored: Any,
    ) -> None:
        """Show objects as results now (IPython's ``display``), in every format they have.

        With ``raw=True`` each object is already a ``{mime_type: data}`` bundle.
        ``include``/``exclude`` keep or drop MIME types; IPython's other arguments
        (``metadata``, ``display_id``, ...) are accepted and ignored.
        """
        for obj in objs:
            if raw and isinstance(obj, dict):
                data = {str(k): v for k, v in obj.items()}
            elif raw:
                raise TypeError(f"display(raw=True) takes dicts of MIME data, not {type(obj)}")
            else:
                data = self.mime_bundle(obj)
            if include:
                data = {k: v for k, v in data.items() if k in include}
            if exclude:
                data = {k: v for k, v in data.items() if k not in exclude}
            if data:
                self.send_bundle(data, main=False)

    def flush_figures(self) -> None:
        """Send every open matplotlib figure as a PNG result and close it."""
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is None:
            return
        try:
            numbers = plt.get_fignums()
        except Exception:
            return
        for num in numbers:
            fig = plt.figure(num)
            self.send_result(fig, main=False)
        if numbers:
            plt.close("all")

    def _figure_png(self, value: Any) -> Optional[str]:
        figure_cls = getattr(sys.modules.get("matplotlib.figure"), "Figure", None)
        if figure_cls is None or not isinstance(value, figure_cls):
            return None
        buf = io.BytesIO()
        value.savefig(buf, format="png", bbox_inches="tight")
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is not None:
            plt.close(value)  # shown once, not again at the end of the cell
        return base64.b64encode(buf.getvalue()).decode("ascii")

    def run_compiled(self, code: types.CodeType) -> Any:
        if code.co_flags & _CO_COROUTINE:
            if self.loop is None:
                import asyncio

                self.loop = asyncio.new_event_loop()
            return self.loop.run_until_complete(eval(code, self.ns))
        return eval(code, self.ns)

    def send_result(self, value: Any, main: bool) -> None:
        self.send_bundle(self.mime_bundle(value), main)

    def mime_bundle(self, value: Any) -> Dict[str, Any]:
        """Every format ``value`` has, as IPython's display formatter would find them."""
        data: Dict[str, Any] = {}
        try:
            data["text/plain"] = repr(value)
        except Exception as exc:
            data["text/plain"] = f"<repr failed: {type(exc).__name__}: {exc}>"
        try:
            png = self._figure_png(value)
        except Exception as exc:  # a broken figure must not break the call
            png = None
            data["text/plain"] += f" (could not render: {type(exc).__name__}: {exc})"
        if png is not None:
            data["image/png"] = png
            chart = figure_chart(value)  # E2B's chart data; None if it cannot be read
            if chart:
                data["e2b/chart"] = chart
        for mime, method in _REPR_METHODS:
            fn = getattr(value, method, None)
            if fn is None or isinstance(value, type) or not callable(fn):
                continue
            try:
                out = fn()
            except Exception:
                continue
            if isinstance(out, tuple):
                out = out[0]
            if out is None:
                continue
            if isinstance(out, bytes):
                out = base64.b64encode(out).decode("ascii")
            elif mime == "application/json" and isinstance(out, str):
                try:
                    out = json.loads(out)
                except ValueError:
                    continue
            data[mime] = out if mime == "application/json" else str(out)
        table = _dataframe_data(value)
        if table is not None:
            data["e2b/data"] = table
        return data

    def send_bundle(self, data: Dict[str, Any], main: bool) -> None:
        """Send one result, each format capped (see ``TEXT_LIMIT``, ``IMAGE_LIMIT``)."""
        for mime, value in list(data.items()):
            if not isinstance(value, str):
                # Structured data (JSON, E2B's table data): whole or not at all.
                try:
                    size = len(json.dumps(value, allow_nan=False))
                except (TypeError, ValueError):
                    value = data[mime] = _json_safe(value)
                    size = len(json.dumps(value))
                if size > TEXT_LIMIT:
                    del data[mime]
                    note = f" ({mime} of {size} characters dropped: too large)"
                    data["text/plain"] = str(data.get("text/plain", "")) + note
            elif not mime.startswith("image/") or mime == "image/svg+xml":
                data[mime] = _capped(value, TEXT_LIMIT)
            elif len(value) > IMAGE_LIMIT:
                del data[mime]
                data["text/plain"] = str(data.get("text/plain", "")) + (
                    f" ({mime} of {len(value)} base64 characters dropped: too large)"
                )
        self.send({"type": "result", "data": data, "is_main_result": main})

    def send_error(self, exc: BaseException) -> None:
        if isinstance(exc, UsageError):
            text = f"UsageError: {exc}"  # IPython shows no traceback for these
        else:
            # Only the user's frames: the kernel's (run_cell, the Shell) are dropped.
            tb = None
            frames = []
            walk = exc.__traceback__
            while walk is not None:
                if os.path.abspath(walk.tb_frame.f_code.co_filename).rstrip("c") != _THIS_FILE:
                    frames.append(walk)
                walk = walk.tb_next
            for frame in reversed(frames):
                tb = types.TracebackType(tb, frame.tb_frame, frame.tb_lasti, frame.tb_lineno)
            text = "".join(traceback.format_exception(type(exc), exc, tb))
        self.send(
            {
                "type": "error",
                "name": type(exc).__name__,
                "value": _capped(str(exc), ERROR_LIMIT),
                "traceback": _capped(text, ERROR_LIMIT),
            }
        )


def _json_safe(value: Any) -> Any:
    """``value`` as plain JSON data: NaN and infinities become None, dates ISO text,
    NumPy scalars Python numbers, anything else its ``str``."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "isoformat"):
        try:
            return str(value.isoformat())
        except Exception:
            pass
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return _json_safe(item())
        except Exception:
            pass
    return str(value)


# Cells of a DataFrame past which its table data is not sent (its html and text are).
DATA_CELL_LIMIT = 100_000


def _dataframe_data(value: Any) -> Optional[Dict[str, Any]]:
    """E2B's ``e2b/data`` of a pandas DataFrame: its columns as lists (``to_dict("list")``)."""
    cls = type(value)
    if cls.__name__ != "DataFrame" or not cls.__module__.startswith("pandas"):
        return None
    try:
        if int(value.size) > DATA_CELL_LIMIT:
            return None
        table = _json_safe(value.to_dict(orient="list"))
    except Exception:
        return None
    return table if isinstance(table, dict) else None


class _ImportPatches:
    """Patches modules as they are first imported, so that they show results the way
    they do in IPython: ``plt.show()``, IPython's own ``display`` (user code imports it
    from ``IPython.display``; outside an IPython shell it would only print), and PIL's
    ``Image.show()``."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.patches: Dict[str, Callable[[types.ModuleType], None]] = {
            "matplotlib.pyplot": self._pyplot,
            "IPython.core.display_functions": self._ipython_display,
            "IPython.core.display": self._ipython_display,
            "PIL.Image": self._pil,
        }

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        patch = self.patches.pop(name, None)
        if patch is None:
            return None
        import importlib.util

        sys.meta_path.remove(self)  # to find the real module
        try:
            spec = importlib.util.find_spec(name)
        finally:
            if self.patches:
                sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        real_exec = loader.exec_module

        def exec_module(module: types.ModuleType) -> None:
            real_exec(module)
            try:
                patch(module)
            except Exception:
                pass  # a version we do not know: the module works as it is

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec

    def _pyplot(self, module: types.ModuleType) -> None:
        kernel = self.kernel

        def show(*args: Any, **kwargs: Any) -> None:
            kernel.flush_figures()

        module.show = show  # type: ignore[attr-defined]

    def _ipython_display(self, module: types.ModuleType) -> None:
        if hasattr(module, "display"):
            module.display = self.kernel.display  # type: ignore[attr-defined]

    def _pil(self, module: types.ModuleType) -> None:
        kernel = self.kernel

        def show(image: Any, *args: Any, **kwargs: Any) -> None:
            kernel.display(image)

        module.Image.show = show


def _prepare_interpreter() -> None:
    """Make this forked agent look like a fresh ``python3 -c`` to user code.

    The agent runs isolated (``-I``), so its ``sys.path`` lacks the working directory,
    ``PYTHONPATH`` and the user site (where ``pip install --user`` puts packages).
    """
    import site

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = [p for p in sys.path if p and os.path.abspath(p) != here]
    user_site = site.getusersitepackages()
    try:
        # Made now, so that what ``pip install`` puts there later imports at once (the
        # import system does not look again at a directory that did not exist).
        os.makedirs(user_site, exist_ok=True)
    except OSError:
        pass
    if user_site not in path:
        # Before the first dist-packages entry, as ``site`` orders it.
        at = next((i for i, p in enumerate(path) if "-packages" in p), len(path))
        path.insert(at, user_site)
    extra = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[:] = ["", *extra, *path]
    sys.argv = ["-c"]
    for fd, name in ((1, "stdout"), (2, "stderr")):
        stream = io.TextIOWrapper(
            io.FileIO(fd, "w", closefd=False),
            encoding="utf-8",
            errors="backslashreplace",
            # Whole lines per write (and so per event); the kernel flushes before every
            # result and at the end of each call, so nothing waits longer than a line.
            line_buffering=True,
        )
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)
    stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
    sys.stdin = stdin
    setattr(sys, "__stdin__", stdin)  # noqa: B010 - a Final name for type checkers


def main(req_fd: int, ctl_fd: int) -> None:
    """Serve requests until ``req_fd`` closes (runs in a process forked from the agent)."""
    _prepare_interpreter()
    try:
        # Under memory pressure the kernel, not the agent, is the one to go.
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass
    # Inherited dispositions may ignore SIGINT; timeouts rely on KeyboardInterrupt.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    Kernel(req_fd, ctl_fd).serve()
