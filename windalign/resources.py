"""Memory estimates checked before allocating (stdlib only).

A command whose arrays grow with its options (``wind solve -B -K``, the bandit's
``env.n_actions`` / ``env.n_eval``) estimates its peak memory first and refuses, naming the options
and the fix, when that exceeds what the machine has available, instead of failing with a
``MemoryError`` minutes and gigabytes later.

>>> format_bytes(3 * 2**30)
'3.2 GB'
>>> check_memory(10**13, "-B 10 x -K 10", "lower -B or -K", available=2**30)
Traceback (most recent call last):
...
ValueError: -B 10 x -K 10 needs about 10 TB of memory, more than the 1.1 GB available;
lower -B or -K
"""

from __future__ import annotations

import os

#: bytes of one float64
FLOAT64 = 8


def format_bytes(n: float) -> str:
    """``n`` bytes in decimal units (``'3.2 GB'``, ``'170 TB'``).

    >>> format_bytes(1.7e14), format_bytes(512)
    ('170 TB', '512 B')
    """
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            value = n / size
            return f"{value:.2g} {unit}" if value < 100 else f"{value:,.0f} {unit}"
    return f"{int(n)} B"


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (``MemAvailable`` in ``/proc/meminfo``, else
    the physical memory from ``sysconf``); ``None`` where neither is known."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return None


def check_memory(needed: float, what: str, fix: str, available: int | None = None) -> None:
    """Raise ``ValueError`` if ``needed`` bytes exceed the available memory.

    ``what`` names the inputs that set the size (``"-B 1000 x -K 5000"``), ``fix`` says what to
    change. ``available`` defaults to :func:`available_memory`; nothing is checked when it is
    unknown.
    """
    available = available_memory() if available is None else available
    if available is not None and needed > available:
        raise ValueError(
            f"{what} needs about {format_bytes(needed)} of memory, more than the "
            f"{format_bytes(available)} available; {fix}"
        )
