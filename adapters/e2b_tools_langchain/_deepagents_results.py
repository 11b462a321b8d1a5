"""What :mod:`e2b_tools_langchain.deepagents` shares with itself but not with users:
the scripts it runs in the sandbox, and the translation of e2b-tools results and errors
into Deep Agents' protocol types (Deep Agents is imported by that module first, with
the message that names the extra).
"""

from __future__ import annotations

import base64
import codecs
import json
import posixpath

from deepagents.backends.protocol import (
    FILE_NOT_FOUND,
    INVALID_PATH,
    IS_DIRECTORY,
    PERMISSION_DENIED,
    ExecuteResponse,
    FileData,
    FileInfo,
    GlobResult,
    ReadResult,
)
from deepagents.backends.sandbox import MAX_BINARY_BYTES, MAX_OUTPUT_BYTES, TRUNCATION_MSG
from deepagents.backends.utils import normalize_read_bounds

from e2b_tools import (
    EntryInfo,
    FileType,
    InvalidArgumentError,
    NotFoundError,
    SandboxError,
    SandboxFileError,
)

TIMEOUT_EXIT_CODE = 124
"""Exit code ``execute`` reports for a command killed at its timeout (as GNU ``timeout``)."""

# Exits 3 when stdin (a file's first bytes) is not UTF-8; a cut multibyte character at
# the end is fine.
_SNIFF_SCRIPT = """
import codecs, sys
try:
    codecs.getincrementaldecoder("utf-8")().decode(sys.stdin.buffer.read(), final=False)
except UnicodeDecodeError:
    sys.exit(3)
"""

# The pre-0.7 Deep Agents glob: Python's glob.glob(recursive=True) from the search root,
# paths relative to it, directories included. argv: root, pattern, max matches, seconds.
_RELATIVE_GLOB_SCRIPT = """
import glob, json, os, sys, time
root, pattern, cap, budget = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
try:
    os.chdir(root)
except FileNotFoundError:
    print(json.dumps({"error": "path_not_found"})); sys.exit(0)
except NotADirectoryError:
    print(json.dumps({"error": "not_a_directory"})); sys.exit(0)
except PermissionError:
    print(json.dumps({"error": "permission_denied"})); sys.exit(0)
found, cut, deadline = [], False, time.monotonic() + budget
for name in glob.iglob(pattern, recursive=True):
    if len(found) >= cap or time.monotonic() > deadline:
        cut = True
        break
    found.append(name)
for name in sorted(found):
    print(json.dumps({"path": name, "is_dir": os.path.isdir(name)}))
if cut:
    print(json.dumps({"truncated": True}))
"""


def _bad_path(path: object) -> bool:
    """Whether ``path`` is not an absolute path the protocol accepts."""
    return not isinstance(path, str) or not path.startswith("/") or "\x00" in path


# What each kind of file error is to the protocol; the rest keep their own text.
_FILE_CODES = {
    "is_directory": IS_DIRECTORY,
    # The root filesystem is read-only: to the model that is a permission problem.
    "permission_denied": PERMISSION_DENIED,
    # A path through a regular file.
    "not_a_directory": INVALID_PATH,
    "exists": INVALID_PATH,
}

# Files Deep Agents hands to the model as media or documents rather than as text.
_BINARY_EXTENSIONS = frozenset(
    {
        ".png",
        ".jpg",
        ".jpeg",
        ".gif",
        ".webp",
        ".heic",
        ".heif",
        ".mp3",
        ".wav",
        ".aac",
        ".aiff",
        ".flac",
        ".ogg",
        ".mp4",
        ".mpeg",
        ".mpg",
        ".mov",
        ".avi",
        ".flv",
        ".wmv",
        ".webm",
        ".3gpp",
        ".mkv",
        ".pdf",
        ".ppt",
        ".pptx",
    }
)


def _binary_by_name(path: str) -> bool:
    return posixpath.splitext(path)[1].lower() in _BINARY_EXTENSIONS


def _file_error(exc: SandboxError) -> str:
    """The protocol's code for a failed file operation, or the error's own text.

    Errors that are not about the path (the sandbox stopped, a timeout) are raised.
    """
    if isinstance(exc, NotFoundError):
        return FILE_NOT_FOUND
    if isinstance(exc, InvalidArgumentError):
        return INVALID_PATH
    if isinstance(exc, SandboxFileError):
        return _FILE_CODES.get(exc.kind, exc.message)
    if type(exc) is SandboxError:  # the agent refused the request itself
        return exc.message
    raise exc


def _dir_error(exc: SandboxError) -> str:
    """Codes for ``ls`` as Deep Agents' own sandbox reports them (its middleware looks
    for ``not_a_directory``)."""
    if isinstance(exc, NotFoundError):
        return "path_not_found"
    if isinstance(exc, SandboxFileError) and exc.kind == "not_a_directory":
        return "not_a_directory"
    return _file_error(exc)


# mypy checks for Python 3.10, which has no typing.NotRequired (Deep Agents needs 3.11
# and uses it), so it takes the optional keys of these TypedDicts for required ones.
def _file_data(content: str, encoding: str = "utf-8") -> FileData:
    return {"content": content, "encoding": encoding}  # type: ignore[typeddict-item]


def _glob_match(path: str, is_dir: bool) -> FileInfo:
    return {"path": path, "is_dir": is_dir}  # type: ignore[typeddict-item]


def _file_info(entry: EntryInfo) -> FileInfo:
    return {
        "path": entry.path,
        "is_dir": entry.type == FileType.DIR,
        "size": entry.size,
        "modified_at": entry.modified_time.isoformat(),
    }


def _is_utf8(prefix: bytes) -> bool:
    try:
        codecs.getincrementaldecoder("utf-8")().decode(prefix, final=False)
    except UnicodeDecodeError:
        return False
    return True


def _binary_too_big(file_path: str) -> ReadResult:
    return ReadResult(
        error=(
            f"File '{file_path}': Binary file exceeds maximum preview size of "
            f"{MAX_BINARY_BYTES} bytes"
        )
    )


def _binary_result(file_path: str, data: bytes) -> ReadResult:
    if len(data) > MAX_BINARY_BYTES:
        return _binary_too_big(file_path)
    return ReadResult(file_data=_file_data(base64.b64encode(data).decode("ascii"), "base64"))


def _page_text(file_path: str, text: str, offset: int, limit: int) -> ReadResult:
    """One page of ``text`` as Deep Agents' sandbox ``read`` returns it.

    Lines split at LF, CRLF or CR and are joined with LF; at most ``MAX_OUTPUT_BYTES``
    (UTF-8) per page, where a cut page ends with ``TRUNCATION_MSG`` and ``next_offset``
    points at the first line not shown in full.
    """
    offset, limit = normalize_read_bounds(offset, limit)
    if limit == 0:
        return ReadResult(file_data=_file_data(""), no_lines_requested=True)
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines[-1] == "":
        lines.pop()  # the file's final newline ends the last line; it starts none
    total = len(lines)
    if offset >= total:
        return ReadResult(
            error=f"File '{file_path}': Line offset {offset} exceeds file length ({total} lines)"
        )
    budget = MAX_OUTPUT_BYTES - len(TRUNCATION_MSG.encode("utf-8"))
    parts: list[str] = []
    used = shown = 0
    cut = False
    for i, line in enumerate(lines[offset : offset + limit]):
        piece = line if i == 0 else "\n" + line
        size = len(piece.encode("utf-8"))
        if used + size > budget:
            parts.append(piece.encode("utf-8")[: budget - used].decode("utf-8", errors="ignore"))
            cut = True
            break
        parts.append(piece)
        used += size
        shown += 1
    content = "".join(parts) + (TRUNCATION_MSG if cut else "")
    # A line cut short is read again from its start; a first line over the cap is
    # skipped, or the reader would never get past it.
    end = offset + max(shown, 1)
    return ReadResult(
        file_data=_file_data(content),
        total_lines=total,
        start_line=offset + 1,
        end_line=end,
        next_offset=end if end < total else None,
    )


def _parse_relative_glob(response: ExecuteResponse, root: str) -> GlobResult:
    if response.exit_code == TIMEOUT_EXIT_CODE:
        return GlobResult(error=f"Path '{root}': glob timed out; narrow the pattern or path")
    matches: list[FileInfo] = []
    truncated = False
    for line in response.output.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            return GlobResult(error=f"Path '{root}': glob failed: {response.output[:200]}")
        if "error" in record:
            return GlobResult(error=f"Path '{root}': {record['error']}")
        if record.get("truncated"):
            truncated = True
        else:
            matches.append(_glob_match(record["path"], bool(record["is_dir"])))
    if response.exit_code != 0:
        return GlobResult(error=f"Path '{root}': glob failed: {response.output[:200]}")
    return GlobResult(
        matches=matches, truncated=truncated, truncation_reason="budget" if truncated else None
    )
