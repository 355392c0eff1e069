"""``cached``: ``functools.cached_property`` without its lock.

On Python 3.11 every first access of a ``cached_property`` takes one lock shared by all
instances of the class; the payload objects compute their JSON sizes, tokens and bodies that
way once per action, and the lock showed up in profiles of the dispatch service. These
objects are built and read on the event loop only, so the lock buys nothing (Python 3.12
removed it for the same reason).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

__all__ = ["cached"]

_T = TypeVar("_T")


class cached(Generic[_T]):
    """Computed on first access and stored in the instance's ``__dict__`` (later accesses
    never reach the descriptor). Works on frozen dataclasses, as ``cached_property`` does."""

    def __init__(self, func: Callable[[Any], _T]) -> None:
        self.func = func
        self.name = func.__name__
        self.__doc__ = func.__doc__

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None) -> cached[_T]: ...

    @overload
    def __get__(self, instance: object, owner: type[Any] | None = None) -> _T: ...

    def __get__(self, instance: object | None, owner: type[Any] | None = None) -> Any:
        if instance is None:
            return self
        value = self.func(instance)
        instance.__dict__[self.name] = value
        return value
