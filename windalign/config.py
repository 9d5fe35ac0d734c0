"""One way to declare and validate config dataclass fields (stdlib only: no numpy, no torch).

Each field is declared with :func:`option`: a default, one help string ``"meaning (symbol); valid
range"`` and an optional ``check``. Each dataclass calls :func:`validate` from ``__post_init__``,
so a config is checked when it is built, before any model loads; :func:`help_table` renders the
help strings for docs and ``--help``.

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Toy:
...     k: int = option(8, help="actions per context (K); an integer >= 2", check=lambda v: v >= 2)
...     seed: int = option(0, help="problem seed")
...     def __post_init__(self) -> None:
...         validate(self, "toy")
>>> Toy(k=3).k
3
>>> Toy(k=1)
Traceback (most recent call last):
...
ValueError: toy.k = 1 is invalid; it must be an integer >= 2
>>> print(help_table(Toy, "toy"))
| key | default | meaning | valid |
|---|---|---|---|
| `toy.k` | `8` | actions per context (K) | an integer >= 2 |
| `toy.seed` | `0` | problem seed | any |
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection
from typing import Any

Check = Callable[[Any], bool]


def option(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    check: Check | None = None,
    default_factory: Callable[[], Any] | Any = dataclasses.MISSING,
) -> Any:
    """A dataclass field carrying its ``help`` string and an optional ``check``.

    ``help`` reads ``"meaning (paper symbol); valid range"``: the text after the last ``"; "`` is
    the valid range quoted by :func:`validate` when ``check(value)`` is false (or raises).
    """
    meta = {"help": help, "check": check}
    return dataclasses.field(default=default, default_factory=default_factory, metadata=meta)


def split_help(help: str) -> tuple[str, str]:
    """``"meaning (symbol); range"`` -> ``(meaning, range)``; the range is ``""`` if absent.

    >>> split_help("prompts per round (B); an integer >= 1")
    ('prompts per round (B)', 'an integer >= 1')
    """
    meaning, sep, valid = help.rpartition("; ")
    return (meaning, valid) if sep else (help, "")


def validate(obj: Any, section: str) -> None:
    """Raise ``ValueError`` naming ``section.field``, its value and valid range for the first
    field of dataclass ``obj`` whose check fails (a check that raises fails); ``section = ""`` names
    top-level fields without a prefix."""
    for f in dataclasses.fields(obj):
        check = f.metadata.get("check")
        if check is None:
            continue
        value = getattr(obj, f.name)
        try:
            ok = bool(check(value))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            valid = split_help(f.metadata["help"])[1] or "valid"
            key = f"{section}.{f.name}" if section else f.name
            raise ValueError(f"{key} = {value!r} is invalid; it must be {valid}")


def help_table(cls: type, section: str, exclude: Collection[str] = ()) -> str:
    """A markdown table of the fields of dataclass ``cls`` (but ``exclude``): key, default,
    meaning, valid range."""
    rows = ["| key | default | meaning | valid |", "|---|---|---|---|"]
    for f in dataclasses.fields(cls):
        if f.name in exclude:
            continue
        if f.default is not dataclasses.MISSING:
            default = f"`{f.default!r}`"
        elif f.default_factory is not dataclasses.MISSING:
            default = f"`{f.default_factory()!r}`"
        else:
            default = "(required)"
        meaning, valid = split_help(f.metadata.get("help", ""))
        key = f"{section}.{f.name}" if section else f.name
        rows.append(f"| `{key}` | {default} | {meaning} | {valid or 'any'} |")
    return "\n".join(rows)
