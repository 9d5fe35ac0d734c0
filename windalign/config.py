"""One way to declare and validate config dataclass fields, and to read them from YAML (no numpy,
no torch).

Each field is declared with :func:`option`: a default, one help string ``"meaning (symbol); valid
range"`` and an optional ``check``. Each dataclass calls :func:`validate` from ``__post_init__``,
so a config is checked when it is built, before any model loads; :func:`help_table` renders the
help strings for docs and ``--help``. :func:`load_yaml` reads config values the way people write
them (YAML 1.2's numbers and booleans, see its docstring); :func:`dump_yaml` writes what it reads
back.

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
import re
from collections.abc import Callable, Collection
from typing import Any

import yaml

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


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 (core schema) numbers and booleans."""


_BOOL = "tag:yaml.org,2002:bool"
_FLOAT = "tag:yaml.org,2002:float"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_BOOL, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(  # after int's resolver, so "5" stays an int
    _FLOAT,
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+.0123456789"),
)


def load_yaml(text: str) -> Any:
    """Parse YAML ``text`` with YAML 1.2's numbers and booleans (PyYAML reads YAML 1.1).

    Numbers read as people write them: ``2e-5``, ``1E-3`` and ``.5`` are floats (YAML 1.1 reads
    ``2e-5`` as a string); only ``true`` / ``false`` are booleans, so ``eval_strategy: no`` stays
    the string ``"no"`` (YAML 1.1 reads ``no``, ``off``, ``yes``, ``on`` as booleans).

    >>> load_yaml("lr: 2e-5\\nbeta: .5\\nk: 4\\nstrategy: no\\nflag: true\\nx: .inf")
    {'lr': 2e-05, 'beta': 0.5, 'k': 4, 'strategy': 'no', 'flag': True, 'x': inf}
    """
    return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass


class _Dumper(yaml.SafeDumper):
    """PyYAML's safe dumper that quotes every string YAML 1.1 or 1.2 would read as another type."""


_Dumper.yaml_implicit_resolvers = {
    first: yaml.SafeLoader.yaml_implicit_resolvers.get(first, [])
    + _Loader.yaml_implicit_resolvers.get(first, [])
    for first in {**yaml.SafeLoader.yaml_implicit_resolvers, **_Loader.yaml_implicit_resolvers}
}


def dump_yaml(data: Any) -> str:
    """YAML text that :func:`load_yaml` (and PyYAML's YAML 1.1 ``safe_load``) read back as ``data``.

    ``yaml.safe_dump`` writes the string ``"1e3"`` bare, which YAML 1.2 reads as the number 1000;
    here such strings are quoted (keys keep their order).

    >>> print(dump_yaml({"tag": "1e3", "strategy": "no", "lr": 2e-05, "k": 4}), end="")
    tag: '1e3'
    strategy: 'no'
    lr: 2.0e-05
    k: 4
    >>> load_yaml(dump_yaml({"tag": "1e3", "strategy": "no"}))
    {'tag': '1e3', 'strategy': 'no'}
    """
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False)
