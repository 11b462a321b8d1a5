"""proto3 JSON mapping primitives: parse a message body, read typed fields, write values.

Reading follows protobuf's JSON parsers (Go ``protojson`` with ``DiscardUnknown`` as
connect-go uses it, protobuf-py's ``from_json``): a field may be spelled in
lowerCamelCase (its JSON name) or as the proto field name (snake_case), but not both;
``null`` means "not set"; unknown fields are ignored (newer clients may send more);
integers may be JSON numbers or decimal strings; enums names or numbers; bytes base64
(standard or URL-safe, padding optional). A wrong type is ``invalid_argument`` naming
the field. Writing follows the canonical form: lowerCamelCase, 64-bit integers as
strings, bytes as standard padded base64, timestamps as RFC 3339 in UTC.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
from collections.abc import Mapping
from typing import Any

from ._connect import Code, ConnectError

_UINT32_MAX = 2**32 - 1
_INT64 = (-(2**63), 2**63 - 1)
_B64 = re.compile(r"[A-Za-z0-9+/\-_]*={0,2}")


def invalid(message: str) -> ConnectError:
    """An ``invalid_argument`` error (bad request content)."""
    return ConnectError(Code.INVALID_ARGUMENT, message)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise invalid(f"duplicate field {key!r}")
        result[key] = value
    return result


def _no_constant(name: str) -> None:
    raise invalid(f"{name} is not valid JSON")


def parse_object(payload: bytes, message: str) -> Obj:
    """Parse a request payload into the fields of ``message`` (a JSON object)."""
    try:
        value = json.loads(
            payload.decode("utf-8"),
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constant,
        )
    except UnicodeDecodeError as exc:
        raise invalid(f"{message}: body is not UTF-8: {exc.reason}") from None
    except json.JSONDecodeError as exc:
        raise invalid(f"{message}: body is not valid JSON: {exc.msg} at {exc.pos}") from None
    except ValueError as exc:  # e.g. an integer literal over Python's digit limit
        raise invalid(f"{message}: body is not valid JSON: {exc}") from None
    except RecursionError:
        raise invalid(f"{message}: JSON nested too deeply") from None
    return Obj(value, message)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


class Obj:
    """The fields of one JSON-encoded message, read by proto field name.

    Example:
        >>> Obj({"exitCode": "3"}, "EndEvent").int32("exit_code")
        3
    """

    def __init__(self, value: object, path: str) -> None:
        if not isinstance(value, dict):
            raise invalid(f"{path}: expected an object, got {_kind(value)}")
        self._value: dict[str, Any] = value
        self.path = path

    def get(self, name: str) -> object:
        """The raw value of field ``name`` (``None`` if absent or null)."""
        camel = _camel(name)
        if camel != name and camel in self._value and name in self._value:
            raise invalid(f"{self.path}: field {name!r} is set twice ({camel!r} and {name!r})")
        value = self._value.get(camel)
        return self._value.get(name) if value is None else value

    def _fail(self, name: str, want: str, value: object) -> ConnectError:
        return invalid(f"{self.path}.{_camel(name)}: expected {want}, got {_kind(value)}")

    def string(self, name: str) -> str | None:
        """A ``string`` field."""
        value = self.get(name)
        if value is None or isinstance(value, str):
            return value
        raise self._fail(name, "a string", value)

    def boolean(self, name: str) -> bool | None:
        """A ``bool`` field (JSON ``true``/``false`` only)."""
        value = self.get(name)
        if value is None or isinstance(value, bool):
            return value
        raise self._fail(name, "a boolean", value)

    def _integer(self, name: str, low: int, high: int, kind: str) -> int | None:
        value = self.get(name)
        if value is None:
            return None
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif (isinstance(value, float) and value.is_integer()) or (
            isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,20}", value)
        ):
            number = int(value)
        if number is None:
            raise self._fail(name, f"an integer ({kind})", value)
        if not low <= number <= high:
            raise invalid(f"{self.path}.{_camel(name)}: {number} is out of range for {kind}")
        return number

    def uint32(self, name: str) -> int | None:
        """A ``uint32`` field."""
        return self._integer(name, 0, _UINT32_MAX, "uint32")

    def int32(self, name: str) -> int | None:
        """An ``int32`` or ``sint32`` field."""
        return self._integer(name, -(2**31), 2**31 - 1, "int32")

    def int64(self, name: str) -> int | None:
        """An ``int64`` field (canonically a string; numbers accepted)."""
        return self._integer(name, *_INT64, "int64")

    def bytes_(self, name: str) -> bytes | None:
        """A ``bytes`` field: base64, standard or URL-safe, padding optional."""
        value = self.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self._fail(name, "a base64 string", value)
        if not _B64.fullmatch(value):
            raise invalid(f"{self.path}.{_camel(name)}: invalid base64")
        text = value.rstrip("=").replace("-", "+").replace("_", "/")
        try:
            return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except binascii.Error:
            raise invalid(f"{self.path}.{_camel(name)}: invalid base64") from None

    def enum(self, name: str, values: Mapping[str, int]) -> int | None:
        """An enum field, by name (one of ``values``) or by number (any int32)."""
        value = self.get(name)
        if isinstance(value, str) and not value.lstrip("-").isdigit():
            if value not in values:
                known = ", ".join(values)
                raise invalid(f"{self.path}.{_camel(name)}: unknown value {value!r} ({known})")
            return values[value]
        if value is not None and not isinstance(value, (int, float, str)):
            raise self._fail(name, "an enum name or number", value)
        return self.int32(name)

    def message(self, name: str) -> Obj | None:
        """A message field, as its own :class:`Obj`."""
        value = self.get(name)
        return None if value is None else Obj(value, f"{self.path}.{_camel(name)}")

    def strings(self, name: str) -> list[str]:
        """A ``repeated string`` field."""
        value = self.get(name)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self._fail(name, "an array", value)
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise self._fail(f"{name}[{index}]", "a string", item)
        return list(value)

    def string_map(self, name: str) -> dict[str, str]:
        """A ``map<string, string>`` field."""
        value = self.get(name)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self._fail(name, "an object", value)
        for key, item in value.items():
            if not isinstance(item, str):
                raise self._fail(f"{name}[{key!r}]", "a string", item)
        return dict(value)

    def oneof(self, group: str, *names: str) -> str | None:
        """Which member of oneof ``group`` is set (``None`` if none); two is an error."""
        present = [name for name in names if self.get(name) is not None]
        if len(present) > 1:
            raise invalid(f"{self.path}: oneof {group!r} has more than one field set: {present}")
        return present[0] if present else None


def b64(data: bytes) -> str:
    """``bytes`` in JSON: standard base64 with padding."""
    return base64.b64encode(data).decode("ascii")


def timestamp(value: float | dt.datetime) -> str:
    """A ``google.protobuf.Timestamp`` in JSON: RFC 3339, UTC, ``Z``, with 0, 3, 6 or 9
    fractional digits. ``value`` is Unix seconds or an aware datetime."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError("timestamp() needs an aware datetime")
        delta = value - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
        total_ns = (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000
    else:
        total_ns = round(value * 10**9)
    seconds, nanos = divmod(total_ns, 10**9)
    base = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=seconds)
    text = base.strftime("%Y-%m-%dT%H:%M:%S")
    if nanos:
        digits = f"{nanos:09d}"
        text += "." + (
            digits[:3] if nanos % 10**6 == 0 else digits[:6] if nanos % 1000 == 0 else digits
        )
    return text + "Z"
