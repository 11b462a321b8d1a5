"""Adapter tool classes derived from the core tools, one per tool."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

from ._tools import ALL_TOOLS

AdapterT = TypeVar("AdapterT", bound=type)


def derive_tool_classes(base: AdapterT, framework: str, module: str) -> dict[str, AdapterT]:
    """One subclass of a framework's tool ``base`` per core tool, by tool name.

    Each is named after the core tool (``RunCode`` -> ``RunCodeTool``), lives in
    ``module`` (frameworks that key tools on ``module.qualname`` find it), and carries
    the core tool's ``name``, ``description`` and input model (as ``args_schema``) and
    its name again as ``core_name``. A tool added to the core needs no adapter change.

    Example:
        >>> class Base:
        ...     pass
        >>> sorted(derive_tool_classes(Base, "Demo", __name__))[:2]
        ['list_files', 'read_file']
    """
    derived: dict[str, AdapterT] = {}
    for core in ALL_TOOLS:
        name = f"{core.__name__}Tool"
        namespace: dict[str, Any] = {
            "__module__": module,
            "__qualname__": name,
            "__doc__": f"The ``{core.name}`` tool for {framework}.\n\n{core.description}",
            "__annotations__": {"name": str, "description": str, "args_schema": type[BaseModel]},
            "core_name": core.name,
            "name": core.name,
            "description": core.description,
            "args_schema": core.input_model,
        }
        derived[core.name] = type(name, (base,), namespace)  # type: ignore[assignment]
    return derived
