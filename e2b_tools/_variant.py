"""Methods callable on an instance or on the class with a sandbox id (E2B's
``class_method_variant``): ``sbx.kill()`` and ``Sandbox.kill(sandbox_id)``."""

from __future__ import annotations

import functools
import types
from collections.abc import Callable
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, cast, overload

P = ParamSpec("P")
Q = ParamSpec("Q")
R = TypeVar("R")


class ClassOrInstanceMethod(Generic[P, Q, R]):
    """A method called on an instance (``sbx.kill()``) or on the class with a sandbox
    id (``Sandbox.kill(sandbox_id)``), as E2B's ``class_method_variant`` does.

    The class form is a function whose first argument is the class it was called on.
    """

    def __init__(
        self,
        by_id: Callable[Concatenate[type[Any], P], R],
        method: Callable[Concatenate[Any, Q], R],
    ) -> None:
        self._by_id = by_id
        self._method = method
        functools.update_wrapper(cast(Any, self), method)  # name, docs, signature

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> Callable[P, R]: ...

    @overload
    def __get__(self, obj: object, owner: type[Any] | None = None) -> Callable[Q, R]: ...

    def __get__(self, obj: object, owner: type[Any] | None = None) -> Callable[..., R]:
        if obj is not None:
            return cast(Callable[Q, R], types.MethodType(self._method, obj))
        assert owner is not None
        by_id, method, cls = self._by_id, self._method, owner

        @functools.wraps(by_id)
        def on_class(*args: Any, **kwargs: Any) -> R:
            if args and isinstance(args[0], cls):  # Sandbox.kill(sbx): the instance form
                return method(*args, **kwargs)
            return by_id(cls, *args, **kwargs)

        return on_class


def class_method_variant(
    by_id: Callable[Concatenate[type[Any], P], R],
) -> Callable[[Callable[Concatenate[Any, Q], R]], ClassOrInstanceMethod[P, Q, R]]:
    """Make the decorated method also callable on the class, where ``by_id`` (which
    takes the class, then a sandbox id) runs instead."""

    def decorate(method: Callable[Concatenate[Any, Q], R]) -> ClassOrInstanceMethod[P, Q, R]:
        return ClassOrInstanceMethod(by_id, method)

    return decorate
