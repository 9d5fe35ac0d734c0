"""Option parsing shared by the ``wind`` subcommands (stdlib only: no numpy, no torch).

``--methods`` takes the same form in every command: one or more method names, separated by
spaces and/or commas (``--methods newton mirror`` or ``--methods newton,mirror``); each name must
be known and given once.

>>> parse_methods(["newton,mirror", "sppo"], ["newton", "mirror", "sppo"])
['newton', 'mirror', 'sppo']
>>> parse_methods(["newton", "newton"], ["newton", "mirror"])
Traceback (most recent call last):
...
ValueError: --methods lists 'newton' twice; give each method once
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

#: the ``metavar`` of ``--methods`` in every command
METHODS_METAVAR = "METHOD"


def methods_help(names: Sequence[str], default: str = "all") -> str:
    """The ``--help`` text of ``--methods``: the form and every valid name.

    >>> methods_help(["a", "b"])
    'methods to run, separated by spaces or commas (default: all); one or more of: a, b'
    """
    return (
        f"methods to run, separated by spaces or commas (default: {default}); one or more of: "
        + ", ".join(names)
    )


def parse_methods(
    values: Sequence[str], names: Sequence[str], option: str = "--methods"
) -> list[str]:
    """The method names of a space- and/or comma-separated ``option``, in order.

    Raises ``ValueError`` (naming ``option`` and the valid names) for an empty list, an unknown
    name or a name given twice.
    """
    items = [name.strip() for value in values for name in str(value).split(",")]
    items = [name for name in items if name]
    if not items:
        raise ValueError(f"{option} is empty; choose from: {', '.join(names)}")
    for i, name in enumerate(items):
        if name not in names:
            raise ValueError(f"unknown method {name!r}; choose one of: {', '.join(names)}")
        if name in items[:i]:
            raise ValueError(f"{option} lists {name!r} twice; give each method once")
    return items


def import_from_cwd() -> None:
    """Let a ``module:function`` reference (``preference: my_reward:score``) name a module in the
    current directory, as ``python -m`` would: the ``wind`` console script's ``sys.path`` lacks
    it. Appended, so it never shadows an installed package."""
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())
