"""One name -> object registry, shared by solvers, dynamics and losses.

CLI choices, error messages, the docs tables and test parametrization all read the same registry,
so a name is never spelled out twice.

>>> reg = Registry("toy solver")
>>> @reg.register("double", help="multiply by two")
... def double(x: float) -> float:
...     return 2 * x
>>> reg["double"](3)
6
>>> reg.names()
['double']
>>> reg["triple"]
Traceback (most recent call last):
...
KeyError: "unknown toy solver 'triple'; choose one of: double"
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """A registered object with its one-line help string."""

    name: str
    obj: T
    help: str


class Registry(Generic[T]):
    """Ordered mapping from names to registered objects (functions, classes)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, help: str = "") -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name`` with a one-line ``help``."""

        def deco(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            doc = help or (getattr(obj, "__doc__", None) or "").strip().split("\n")[0]
            self._entries[name] = Entry(name, obj, doc)
            return obj

        return deco

    def __getitem__(self, name: str) -> T:
        try:
            return self._entries[name].obj
        except KeyError:
            raise KeyError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._entries)

    def entries(self) -> list[Entry[T]]:
        """Registered entries (name, object, help), in registration order."""
        return list(self._entries.values())

    def help_table(self) -> str:
        """A markdown table of names and help strings (for docs and ``--help``)."""
        rows = [f"| `{e.name}` | {e.help} |" for e in self._entries.values()]
        return "\n".join([f"| {self.kind} | what it is |", "|---|---|", *rows])
