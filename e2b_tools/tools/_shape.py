"""Output shaped for a model's context window (pure functions, no I/O).

Over budget, text keeps its head and tail and gets a marker in between saying how
many lines and bytes were left out and where the whole output is, so the model can
page through it with ``read_file``. ANSI escapes are stripped, carriage-return progress
lines collapsed, and binary data summarised instead of dumped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC: titles, hyperlinks
    r"|\x1b[@-Z\\-_]"  # two-byte escapes
)
# Control characters a model gains nothing from (tab and newline are kept).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "PNG image"),
    (b"\xff\xd8\xff", "JPEG image"),
    (b"GIF8", "GIF image"),
    (b"%PDF", "PDF document"),
    (b"PK\x03\x04", "ZIP archive"),
    (b"\x1f\x8b", "gzip data"),
    (b"\x7fELF", "ELF executable"),
    (b"SQLite format 3\x00", "SQLite database"),
)


def clean(text: str) -> str:
    """Strip ANSI escapes and control characters; keep only the last state of
    ``\\r``-rewritten progress lines."""
    text = _ANSI.sub("", text)
    text = text.replace("\r\n", "\n")
    if "\r" in text:
        lines = []
        for line in text.split("\n"):
            if "\r" in line:
                parts = [p for p in line.split("\r") if p]
                line = parts[-1] if parts else ""
            lines.append(line)
        text = "\n".join(lines)
    return _CONTROL.sub("", text)


def describe_binary(data: bytes) -> str:
    """A one-line summary of binary data, e.g. ``binary data: 2.1 KiB, PNG image``."""
    kind = next((name for magic, name in _MAGIC if data.startswith(magic)), None)
    head = data[:16].hex(" ")
    what = kind or f"unknown format, starts with {head}"
    return f"binary data: {human_size(len(data))}, {what}"


def is_binary(data: bytes) -> bool:
    """Whether bytes are better summarised than shown: a NUL byte or not UTF-8."""
    sample = data[:8192]
    if b"\x00" in sample:
        return True
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multibyte character cut by the sample's end is still text.
        return exc.start < len(sample) - 3
    return False


def utf8_prefix(data: bytes, limit: int) -> bytes:
    """The longest prefix of ``data`` within ``limit`` bytes that ends on a character."""
    if len(data) <= limit:
        return data
    cut = limit
    while cut > 0 and (data[cut] & 0xC0) == 0x80:
        cut -= 1
    return data[:cut]


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{n} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} bytes"  # pragma: no cover


def looks_binary_text(text: str) -> bool:
    """Whether decoded output is really binary: many replacement or control characters."""
    sample = _ANSI.sub("", text[:8192])  # colour codes are not binary
    if not sample:
        return False
    junk = sample.count("\ufffd") + len(_CONTROL.findall(sample))
    return junk > max(8, len(sample) // 20)


@dataclass
class Shaped:
    """Text cut to a budget, with what was left out."""

    text: str
    truncated: bool = False
    omitted_lines: int = 0
    omitted_bytes: int = 0
    first_omitted_line: int = 0


def shape(
    text: str,
    budget: int,
    *,
    saved_path: str | None = None,
    total_lines: int | None = None,
    total_bytes: int | None = None,
    line_offset: int = 0,
    reader: str = "read_file",
) -> Shaped:
    """Cut ``text`` to about ``budget`` characters, keeping head and tail.

    Args:
        text: Output to show (already cleaned or not: it is cleaned here).
        budget: Characters the result may take, marker included.
        saved_path: Where the whole output can be read inside the sandbox.
        total_lines: Lines in the whole output when ``text`` is already a partial copy
            (so the marker's counts and offsets refer to the saved file).
        total_bytes: UTF-8 bytes in the whole output, likewise.
        line_offset: Lines of the whole output that precede ``text``.
        reader: The name of the tool the marker tells the model to page with.
    """
    if looks_binary_text(text):
        size = total_bytes if total_bytes is not None else len(text.encode("utf-8", "replace"))
        where = f"; the output was saved to {saved_path}" if saved_path else ""
        return Shaped(
            f"[binary output, {human_size(size)}, not shown{where}. Write it to a file and "
            "inspect it with run_code (e.g. its length, type or a hex dump of the start).]\n",
            truncated=True,
            omitted_bytes=size,
        )
    text = clean(text)
    if len(text) <= budget:
        return Shaped(text)
    marker_room = 360
    room = max(budget - marker_room, 40)
    head_room = room * 3 // 5
    tail_room = room - head_room
    head = text[:head_room]
    # Prefer whole lines, unless that throws away most of the window.
    nl = head.rfind("\n")
    if nl >= head_room // 2:
        head = head[: nl + 1]
    tail_start = len(text) - tail_room
    nl = text.find("\n", tail_start)
    if nl != -1 and nl - tail_start < tail_room // 2:
        tail_start = nl + 1
    tail = text[tail_start:]
    middle = text[len(head) : tail_start]
    head_lines = head.count("\n")
    omitted_lines = middle.count("\n")
    if total_lines is not None:
        omitted_lines = max(omitted_lines, total_lines - head_lines - tail.count("\n"))
    first = line_offset + head_lines + 1
    omitted_bytes = len(middle.encode("utf-8", "replace"))
    if total_bytes is not None:
        kept = len(head.encode("utf-8", "replace")) + len(tail.encode("utf-8", "replace"))
        omitted_bytes = max(omitted_bytes, total_bytes - kept)
    if saved_path:
        where = (
            f"full output saved to {saved_path}; read the rest with "
            f"{reader}(path={saved_path!r}, offset={first}, limit=200)"
        )
    else:
        where = "the full output was not saved"
    marker = f"\n[... {omitted_lines} lines ({human_size(omitted_bytes)}) omitted; {where} ...]\n"
    if head and not head.endswith("\n"):
        marker = "\n" + marker.lstrip("\n")
    return Shaped(
        head + marker + tail,
        truncated=True,
        omitted_lines=omitted_lines,
        omitted_bytes=omitted_bytes,
        first_omitted_line=first,
    )
