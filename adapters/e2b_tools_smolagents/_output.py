"""What a step printed and returned, turned into what smolagents shows the model."""

from __future__ import annotations

import base64
import binascii
import io
from typing import Any

from e2b_tools import Execution, OutputMessage, SavedOutput

IMAGE_FORMATS = ("png", "jpeg")
"""Result formats returned to smolagents as a ``PIL.Image`` (as its E2B executor does)."""
TEXT_FORMATS = ("text", "markdown", "html", "json", "latex", "svg")
"""Other result formats, in the order one is picked for the step's output."""


class Transcript:
    """stdout and stderr of one step, interleaved as printed, with bounded memory.

    Keeps the first and the last ``limit // 2`` characters and counts what fell in
    between, so a flood of output never grows the host's memory past ``limit``.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._head: list[str] = []
        self._head_len = 0
        self._tail: list[str] = []
        self._tail_len = 0
        self.omitted = 0

    def __call__(self, message: OutputMessage) -> None:
        """Take one output chunk (an ``on_stdout`` / ``on_stderr`` callback)."""
        self.add(str(message))

    def add(self, text: str) -> None:
        """Append ``text``."""
        half = self.limit // 2
        room = half - self._head_len
        if room > 0:
            self._head.append(text[:room])
            self._head_len += min(room, len(text))
            text = text[room:]
        if not text:
            return
        self._tail.append(text)
        self._tail_len += len(text)
        while self._tail_len > self.limit - half:
            excess = self._tail_len - (self.limit - half)
            first = self._tail[0]
            if len(first) <= excess:
                self._tail.pop(0)
                self._tail_len -= len(first)
                self.omitted += len(first)
            else:
                self._tail[0] = first[excess:]
                self._tail_len -= excess
                self.omitted += excess

    def render(self, saved: SavedOutput | None = None) -> str:
        """The text the model reads: all of it, or head, a marker and tail."""
        head, tail = "".join(self._head), "".join(self._tail)
        if not self.omitted:
            return head + tail
        where = (
            f" The whole output ({saved.chars} characters, {saved.lines} lines) is in the "
            f"sandbox file {saved.path}: read parts of it with open() and seek() if needed."
            if saved is not None
            else ""
        )
        return (
            f"{head}\n[... {self.omitted} characters of output omitted to stay below "
            f"{self.limit} characters.{where} ...]\n{tail}"
        )


def step_output(execution: Execution) -> Any:
    """The value smolagents records for a step: the main result (the trailing
    expression), as a ``PIL.Image`` when it is an image, else as text; ``None`` without."""
    for result in execution.results:
        if not result.is_main_result:
            continue
        for fmt in IMAGE_FORMATS:
            data = getattr(result, fmt, None)
            if data:
                image = _decode_image(data)
                if image is not None:
                    return image
        for fmt in TEXT_FORMATS:
            data = getattr(result, fmt, None)
            if data is not None:
                return data
    return None


def _decode_image(data: str) -> Any:
    import PIL.Image

    try:
        image = PIL.Image.open(io.BytesIO(base64.b64decode(data, validate=True)))
        image.load()
    except (binascii.Error, ValueError, OSError, PIL.Image.DecompressionBombError):
        return None  # bad bytes from the sandbox are never raised to the agent
    return image
