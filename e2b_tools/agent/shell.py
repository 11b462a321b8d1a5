"""IPython's cell syntax for the Python kernel: ``!cmd`` lines, line and cell magics,
and a cell indented as a whole (see :class:`Shell` for what is supported)."""

from __future__ import annotations

import ast
import builtins
import os
import re
import shlex
import subprocess
import sys
import time
import types
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

if TYPE_CHECKING:
    from .kernel_python import Kernel

SHELL_NAME = "__e2b_shell__"
"""The namespace's name for the :class:`Shell` that ``!`` and ``%`` lines call."""

# A line IPython treats as an escape: ``!cmd``, ``!!cmd``, ``%magic args``, optionally
# assigned (``files = !ls``).
_ESCAPED = re.compile(
    r"^(?P<indent>[ \t]*)"
    r"(?:(?P<target>[A-Za-z_][\w.]*(?:[ \t]*,[ \t]*[A-Za-z_][\w.]*)*)[ \t]*=[ \t]*)?"
    r"(?P<escape>!!|!|%)(?P<rest>[^%=!].*|)$"
)
# Magics IPython also runs without their ``%`` in a one-line cell (its "automagic").
_AUTOMAGIC = frozenset({"pip", "cd", "env", "pwd", "matplotlib"})


def transform_cell(code: str, ns: Optional[Dict[str, Any]] = None) -> str:
    r"""Rewrite a cell the way IPython does before compiling it (see :func:`parse_cell`)."""
    return parse_cell(code, ns)[0]


def parse_cell(
    code: str, ns: Optional[Dict[str, Any]] = None, filename: str = "<unknown>"
) -> Tuple[str, Optional[ast.Module]]:
    r"""Rewrite a cell the way IPython does, and its syntax tree when the rewrite parsed it.

    The tree comes back for a cell that is plain Python (most cells), so the kernel does
    not parse it twice; it is None for a rewritten cell.

    Leading blank lines go; a cell indented as a whole is dedented by its first line's
    indent; a first line ``%%name args`` makes the cell a cell magic; and, in a cell that
    is not valid Python as it stands, ``!cmd`` / ``x = !cmd`` / ``%name args`` lines
    become calls to the :class:`Shell` (``\`` continues such a line). A one-line cell
    whose first word is one of ``_AUTOMAGIC`` and no name in ``ns`` (or a builtin) is
    that magic (IPython's automagic: ``pip install x``, ``cd dir``).
    """
    lines = code.splitlines(True)
    while lines and not lines[0].strip():
        lines.pop(0)
    if lines:
        indent = lines[0][: len(lines[0]) - len(lines[0].lstrip(" \t"))]
        if indent:
            lines = [ln[len(indent) :] if ln.startswith(indent) else ln for ln in lines]
    code = "".join(lines)
    word, _ = _split_word(code)
    if (
        "\n" not in code.strip()
        and word in _AUTOMAGIC
        and code[len(word) : len(word) + 1].strip() == ""
        and word not in (ns or {})
        and not hasattr(builtins, word)
    ):
        code = "%" + code
        lines = [code]
    if code.startswith("%%"):
        first, _, body = code.partition("\n")
        name, line = _split_word(first[2:])
        return f"{SHELL_NAME}.run_cell_magic({name!r}, {line!r}, {body!r})\n", None
    try:
        return code, ast.parse(code, filename)
    except SyntaxError:
        pass
    out: List[str] = []
    i = 0
    while i < len(lines):
        line = lines[i].rstrip("\r\n")
        i += 1
        m = _ESCAPED.match(line)
        if m is None:
            out.append(line + "\n")
            continue
        rest = m.group("rest").rstrip()
        while rest.endswith("\\") and i < len(lines):
            rest = rest[:-1] + " " + lines[i].strip()
            i += 1
        escape, target = m.group("escape"), m.group("target")
        if escape == "%":
            name, args = _split_word(rest)
            call = f"{SHELL_NAME}.run_line_magic({name!r}, {args!r})"
        elif escape == "!!" or target:
            call = f"{SHELL_NAME}.getoutput({rest!r})"
        else:
            call = f"{SHELL_NAME}.system({rest!r})"
        out.append(m.group("indent") + (f"{target} = " if target else "") + call + "\n")
    return "".join(out), None


def _split_word(text: str) -> Tuple[str, str]:
    parts = text.strip().split(None, 1)
    return (parts[0] if parts else "", parts[1].strip() if len(parts) > 1 else "")


class UsageError(Exception):
    """A magic that does not exist or was called wrongly (IPython's name for it)."""


class SList(List[str]):
    """Lines of a command's output (``files = !ls``), as IPython's ``SList``."""

    @property
    def s(self) -> str:
        """The lines joined by spaces."""
        return " ".join(self)

    @property
    def n(self) -> str:
        """The lines joined by newlines."""
        return "\n".join(self)

    @property
    def l(self) -> List[str]:  # noqa: E743 - IPython's name
        return list(self)


# IPython's default shell aliases (``%ls``, ...), run as shell commands.
_ALIASES = {
    "ls": "ls -F",
    "ll": "ls -F -l",
    "cat": "cat",
    "cp": "cp",
    "mkdir": "mkdir",
    "mv": "mv",
    "rm": "rm",
    "rmdir": "rmdir",
}
_DISPLAY_MAGICS = {
    "html": "text/html",
    "markdown": "text/markdown",
    "latex": "text/latex",
    "svg": "image/svg+xml",
    "javascript": "application/javascript",
    "js": "application/javascript",
}


class Shell:
    """What ``!`` and ``%`` lines call: the part of IPython's shell that makes sense here.

    ``!cmd`` runs ``cmd`` in bash (sh without bash), stderr merged into stdout as in a
    notebook; ``x = !cmd`` / ``!!cmd`` return its output lines; both set ``_exit_code``
    and expand ``{expr}`` and ``$name`` from the namespace (when all of them resolve).
    Line magics: ``%pip``, ``%cd``, ``%pwd``, ``%env``, ``%time``, ``%system``/``%sx``,
    ``%matplotlib`` (accepted; figures always show inline) and the aliases of
    ``_ALIASES``. Cell magics: ``%%bash``, ``%%sh``, ``%%writefile``, and ``%%html``,
    ``%%markdown``, ``%%latex``, ``%%svg``, ``%%javascript`` (displayed as results).
    Any other magic raises :class:`UsageError`.
    """

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.oldpwd: Optional[str] = None

    @staticmethod
    def _sh() -> str:
        return "/bin/bash" if os.path.exists("/bin/bash") else "/bin/sh"

    def _flush(self) -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass

    def _run(self, argv: List[str]) -> int:
        """Run with the kernel's stdout; an interrupt kills the child (``subprocess``)."""
        self._flush()
        rc = subprocess.call(argv, stdin=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        self.kernel.ns["_exit_code"] = rc
        return rc

    def system(self, cmd: str) -> None:
        """``!cmd``: run it, its output streamed as stdout."""
        self._run([self._sh(), "-c", expand(cmd, sys._getframe(1))])

    def getoutput(self, cmd: str) -> SList:
        """``x = !cmd``: run it and return its output lines."""
        self._flush()
        proc = subprocess.run(
            [self._sh(), "-c", expand(cmd, sys._getframe(1))],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.kernel.ns["_exit_code"] = proc.returncode
        return SList(proc.stdout.decode("utf-8", "replace").splitlines())

    def run_line_magic(self, name: str, line: str) -> Any:
        """``%name line``."""
        frame = sys._getframe(1)
        fn: Optional[Callable[[str, types.FrameType], Any]] = getattr(self, f"line_{name}", None)
        if fn is not None:
            return fn(expand(line, frame) if name != "time" else line, frame)
        if name in _ALIASES:
            self._run([self._sh(), "-c", f"{_ALIASES[name]} {expand(line, frame)}"])
            return None
        raise UsageError(f"Line magic function `%{name}` not found.")

    def run_cell_magic(self, name: str, line: str, cell: str) -> Any:
        """A cell starting ``%%name line``."""
        if name in _DISPLAY_MAGICS:
            self.kernel.send_bundle({_DISPLAY_MAGICS[name]: cell}, main=False)
            return None
        fn: Optional[Callable[[str, str], Any]] = getattr(self, f"cell_{name}", None)
        if fn is None:
            raise UsageError(f"Cell magic `%%{name}` not found.")
        return fn(expand(line, sys._getframe(1)), cell)

    # -- line magics -------------------------------------------------------------
    def line_pip(self, line: str, frame: types.FrameType) -> None:
        self._run([sys.executable, "-m", "pip", *shlex.split(line)])
        import importlib

        importlib.invalidate_caches()  # what was just installed imports at once

    def line_cd(self, line: str, frame: types.FrameType) -> None:
        words = shlex.split(line)
        quiet = "-q" in words
        words = [w for w in words if w != "-q"]
        target = words[0] if words else "~"
        if target == "-":
            target = self.oldpwd or os.getcwd()
        here = os.getcwd()
        try:
            os.chdir(os.path.expanduser(target))
        except OSError as exc:
            print(exc)  # as IPython does: a message, not an exception
            return
        self.oldpwd = here
        if not quiet:
            print(os.getcwd())

    def line_pwd(self, line: str, frame: types.FrameType) -> str:
        return os.getcwd()

    def line_env(self, line: str, frame: types.FrameType) -> Any:
        if not line:
            return dict(os.environ)
        if "=" in line or len(line.split(None, 1)) == 2:
            sep = "=" if "=" in line else None
            key, value = (part.strip() for part in line.split(sep, 1))
            os.environ[key] = value
            print(f"env: {key}={value}")
            return None
        try:
            return os.environ[line]
        except KeyError:
            raise UsageError(f"Environment does not have key: {line}") from None

    def line_matplotlib(self, line: str, frame: types.FrameType) -> None:
        return None

    def line_system(self, line: str, frame: types.FrameType) -> SList:
        return self.getoutput(line)

    line_sx = line_system

    def line_time(self, line: str, frame: types.FrameType) -> Any:
        try:
            code = compile(line, "<timed>", "eval")
        except SyntaxError:
            code = compile(line, "<timed>", "exec")
        cpu0, wall0 = os.times(), time.perf_counter()
        value = eval(code, frame.f_globals, frame.f_locals)
        cpu1, wall = os.times(), time.perf_counter() - wall0
        user, system = cpu1.user - cpu0.user, cpu1.system - cpu0.system
        print(
            f"CPU times: user {_duration(user)}, sys: {_duration(system)}, "
            f"total: {_duration(user + system)}\nWall time: {_duration(wall)}"
        )
        return value

    # -- cell magics -------------------------------------------------------------
    def _script(self, shell: str, line: str, cell: str) -> None:
        self._flush()
        proc = subprocess.run([shell, *shlex.split(line)], input=cell.encode("utf-8"))
        self.kernel.ns["_exit_code"] = proc.returncode
        if proc.returncode:
            raise subprocess.CalledProcessError(proc.returncode, cell)

    def cell_bash(self, line: str, cell: str) -> None:
        self._script(self._sh(), line, cell)

    def cell_sh(self, line: str, cell: str) -> None:
        self._script("/bin/sh", line, cell)

    def cell_writefile(self, line: str, cell: str) -> None:
        words = shlex.split(line)
        append = bool({"-a", "--append"} & set(words))
        names = [w for w in words if w not in ("-a", "--append")]
        if len(names) != 1:
            raise UsageError("%%writefile takes one file name (and -a to append)")
        path = os.path.expanduser(names[0])
        exists = os.path.exists(path)
        print(f"{'Appending to' if append else 'Overwriting' if exists else 'Writing'} {path}")
        with open(path, "a" if append else "w", encoding="utf-8") as f:
            f.write(cell)


def _duration(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e3), ("µs", 1e6)):
        if seconds * scale >= 1:
            return f"{seconds * scale:.3g} {unit}"
    return f"{seconds * 1e9:.0f} ns"


_EXPR = re.compile(r"\{\{|\}\}|\$\$|\{([^{}]+)\}|\$([A-Za-z_]\w*)")


def expand(cmd: str, frame: types.FrameType) -> str:
    """IPython's variable expansion of a shell line: ``{expr}`` and ``$name`` from the
    caller's namespace; ``{{``, ``}}`` and ``$$`` stand for themselves. When anything
    fails to resolve the line runs as written (so ``$HOME`` and awk's ``{print $1}``
    reach the shell intact)."""
    if "{" not in cmd and "$" not in cmd:
        return cmd
    ns = {**frame.f_globals, **frame.f_locals}

    def one(m: re.Match[str]) -> str:
        if m.group(1) is not None:
            return str(eval(m.group(1), ns))
        if m.group(2) is not None:
            return str(ns[m.group(2)])
        return m.group()[0]

    try:
        return _EXPR.sub(one, cmd)
    except Exception:
        return cmd
