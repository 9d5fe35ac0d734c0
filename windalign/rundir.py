"""Run directories that never lie: one module for every command's ``--out``.

A run directory holds the files of one run and a ``status.json`` that says whether they are
finished. Every file is written atomically (a temp file in the same directory, ``fsync``,
``os.replace``), a set of result files is made visible together before the status may say
``complete``, and a lock keeps a second writer out::

    with RunDir("runs/x", command=["wind", "solve"]) as rd:  # refused before any compute
        results = compute()                                  # status.json: "running"
        rd.commit({"summary.json": text, "config.yaml": cfg})
    # status.json: "complete"; "failed" / "interrupted" if the block raised

Layout: ``status.json`` (see :meth:`RunDir.status`), ``.lock`` (the lock file, holding the
writer's pid; it stays after the run, as deleting a lock file races with a waiting writer),
``.staging/`` while a run is open (for writers that need a file name, such as figures) and the
files the command commits. POSIX only (``fcntl``).
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import math
import os
import re
import secrets
import shutil
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from windalign import __version__

STATUS = "status.json"
LOCK = ".lock"
STAGING = ".staging"
#: the ``--overwrite`` flag's help, shared by every command that writes a run directory
OVERWRITE_HELP = "replace the run already in --out (only a directory with a status.json)"
#: the temp files of :func:`atomic_write`: ``.<name>.<pid>.<8 hex digits>.tmp``
_TEMP = re.compile(r"\..+\.\d+\.[0-9a-f]{8}\.tmp")
#: names a command cannot write: the run directory's own bookkeeping
RESERVED = (STATUS, LOCK, STAGING)


class Terminated(KeyboardInterrupt):
    """SIGTERM (what schedulers and ``kill`` send), handled like Ctrl-C: the run directory says
    ``interrupted`` and ``wind`` exits 143 (raised by the CLI's SIGTERM handler)."""


class RunDirError(ValueError):
    """A run directory cannot be used as asked (a file, not empty, locked, unwritable).

    A ``ValueError``, so the ``wind`` command prints it as a one-line error and exits 2.
    """


def _fsync_dir(path: Path) -> None:
    """Flush ``path``'s directory entries (renames) to disk; best effort."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_temp(path: Path, data: str | bytes) -> Path:
    """Write ``data`` to a new hidden temp file next to ``path`` and ``fsync`` it; returns it.

    The temp file gets the mode a plain ``open(path, "w")`` would (``0o666`` less the umask).
    """
    if isinstance(data, str):
        data = data.encode()
    elif not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"{path.name}: data must be str or bytes, got {type(data).__name__}")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def atomic_write(path: str | Path, data: str | bytes) -> Path:
    """Write ``data`` (``str`` is UTF-8 encoded) to ``path`` atomically; returns the path.

    A temp file in the same directory is written and ``fsync``-ed, then ``os.replace``-d onto
    ``path``: a reader (or a crash) sees the old file or the new one, never a half-written one.

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "a.txt"
    >>> atomic_write(p, "one") == p, p.read_text(), sorted(x.name for x in p.parent.iterdir())
    (True, 'one', ['a.txt'])
    """
    path = Path(path)
    tmp = _write_temp(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def finite_json(obj: Any) -> Any:
    """``obj`` with every NaN, ``inf`` and ``-inf`` float replaced by ``None`` (JSON ``null``).

    Recurses into dicts, lists and tuples (tuples become lists); numpy scalars and arrays are
    converted with ``.tolist()`` first. Other values are returned unchanged.

    >>> finite_json({"a": float("nan"), "b": [1.5, float("-inf")], "c": (1, "x")})
    {'a': None, 'b': [1.5, None], 'c': [1, 'x']}
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite_json(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, str | bytes):  # numpy scalar or array
        return finite_json(obj.tolist())
    return obj


def dumps_json(obj: Any) -> str:
    """Strict JSON text of ``obj`` (indented, trailing newline): NaN and +-inf become ``null``
    (see :func:`finite_json`), so the file parses with every JSON reader.

    >>> dumps_json({"gap": float("inf"), "ok": 1.0})
    '{\\n  "gap": null,\\n  "ok": 1.0\\n}\\n'
    """
    return json.dumps(finite_json(obj), indent=2, allow_nan=False) + "\n"


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as strict JSON (:func:`dumps_json`: NaN / inf -> ``null``) atomically."""
    return atomic_write(path, dumps_json(obj))


def read_status(path: str | Path) -> dict[str, Any] | None:
    """The ``status.json`` of run directory ``path`` as a dict; ``None`` if there is none.

    A ``status.json`` that is not a JSON object reads as ``{"status": "unreadable"}``.
    """
    try:
        text = (Path(path) / STATUS).read_text()
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        status = json.loads(text)
    except ValueError:
        return {"status": "unreadable"}
    return status if isinstance(status, dict) else {"status": "unreadable"}


def _now() -> str:
    """The local time as ISO 8601 with its UTC offset, to the second."""
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def _one_line(err: BaseException) -> str:
    """``"Type: message"`` of ``err`` on one line.

    >>> _one_line(ValueError("bad\\n  input"))
    'ValueError: bad input'
    """
    msg = " ".join(str(err).split())
    return f"{type(err).__name__}: {msg}" if msg else type(err).__name__


def try_lock(path: Path) -> tuple[int | None, str]:
    r"""``flock`` the file ``path`` (created if missing) without blocking and write this pid
    into it: ``(fd, "")`` when taken (closing ``fd`` releases it), ``(None, holder's pid)`` when
    another descriptor holds it. Other ``OSError``\ s propagate."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        holder = _holder(fd)
        os.close(fd)
        if err.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            raise
        return None, holder
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd, ""


def _holder(fd: int) -> str:
    """The pid the lock's holder wrote into ``.lock`` (waiting up to 0.1 s for it)."""
    for _ in range(10):
        text = os.pread(fd, 64, 0).decode(errors="replace").strip()
        if text:
            return text
        time.sleep(0.01)  # the holder is between taking the lock and writing its pid
    return "unknown"


class RunDir:
    """One run's output directory, used as a context manager (see the module docstring).

    Constructing it only checks that ``path`` is not an existing file (:class:`RunDirError`
    "--out X is a file; give a directory"; ``flag`` is how messages name the directory:
    ``--out``, or ``output_dir`` for ``wind train``), so a command can do that first and its own
    input checks next. On entry, before any compute:

    * ``path`` an existing file, or a directory that cannot be created: :class:`RunDirError`.
    * The directory is created and ``<path>/.lock`` is locked (``fcntl.flock``, non-blocking);
      if another process holds it: :class:`RunDirError` naming the directory and that pid.
    * Then, under the lock, the directory's contents are judged. It is used as is when it is
      empty (apart from ``.lock``). Otherwise:

      - ``resume=True``: it must be a run directory (have ``status.json``); its contents are
        kept (for commands that continue a run, e.g. training from a checkpoint).
      - ``overwrite=True``: if it is a run directory (has ``status.json``), everything in it
        but ``.lock`` is deleted. A non-empty directory *without* ``status.json`` is never
        deleted, not even with ``overwrite``: ``--out .`` must not wipe a source tree.
      - neither: refused, whatever the old run's status (complete, failed, interrupted, or
        "running" with its process gone), with the fix in the message.

    * ``status.json`` is written: ``{"status": "running", "command", "version", "started",
      "ended": null, "error": null, "pid"}``.

    On exit ``status.json`` is rewritten with ``ended`` and the status ``complete`` (the block
    ended normally), ``interrupted`` (``KeyboardInterrupt``; ``error`` says so) or ``failed``
    (any other exception; ``error`` is its one-line ``"Type: message"``); the exception
    propagates. ``.staging/`` is removed and the lock released. A process killed outright
    (SIGKILL, power loss) leaves ``"running"``, which the next writer reports as unfinished.
    """

    def __init__(
        self,
        path: str | Path,
        command: list[str] | None = None,
        overwrite: bool = False,
        resume: bool = False,
        flag: str = "--out",
    ) -> None:
        if overwrite and resume:
            raise RunDirError("--overwrite and --resume contradict each other; give one")
        self.path = Path(path)
        self.flag = flag  # how the command's user names the directory, for the messages
        self._check_file()
        self.command = list(sys.argv if command is None else command)
        self.overwrite = overwrite
        self.resume = resume
        self._lock_fd: int | None = None
        self._status: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r}, status={self._status.get('status')!r})"

    # -- entry and exit -------------------------------------------------------------------

    def __enter__(self) -> RunDir:
        self._check_path()
        self._lock()
        try:
            self._prepare()
            self._status = {
                "status": "running",
                "command": self.command,
                "version": __version__,
                "started": _now(),
                "ended": None,
                "error": None,
                "pid": os.getpid(),
            }
            atomic_write_json(self.path / STATUS, self._status)
        except BaseException:
            self._unlock()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            status, error = "complete", None
        elif isinstance(exc, KeyboardInterrupt):
            status, error = "interrupted", str(exc) or "interrupted by the user (KeyboardInterrupt)"
        else:
            status, error = "failed", _one_line(exc)
        self._status |= {"status": status, "ended": _now(), "error": error}
        try:
            shutil.rmtree(self.path / STAGING, ignore_errors=True)
            atomic_write_json(self.path / STATUS, self._status)
        except OSError:
            if exc is None:  # never hide the run's own exception behind this one
                raise
        finally:
            self._unlock()

    def _check_file(self) -> None:
        """Reject an existing file given as the directory."""
        if self.path.exists() and not self.path.is_dir():
            raise RunDirError(f"{self.flag} {self.path} is a file; give a directory")

    def _check_path(self) -> None:
        """Reject a file given as the directory, and a directory that cannot be created."""
        self._check_file()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            reason = err.strerror or str(err)
            raise RunDirError(
                f"cannot create {self.flag} {self.path} ({reason}); give a directory you can write"
            ) from None

    def _lock(self) -> None:
        """Take ``.lock`` (non-blocking) and write this pid into it."""
        # refuse before leaving a .lock file in someone else's directory; once .lock exists,
        # only the lock's holder may judge the contents (a writer's temp files come and go)
        if not (self.path / LOCK).exists() and self._foreign():
            self._prepare()  # raises: not a run directory
        try:
            fd, holder = try_lock(self.path / LOCK)
        except OSError as err:
            reason = err.strerror or str(err)
            raise RunDirError(
                f"cannot lock {self.flag} {self.path} ({reason}); give a directory you can write"
            ) from None
        if fd is None:
            raise RunDirError(
                f"{self.flag} {self.path} is in use by another wind process (pid {holder}); wait "
                f"for it to finish or give another {self.flag}"
            )
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def _entries(self) -> list[Path]:
        """The directory's contents but ``.lock``; temp files a killed writer left are deleted
        (under the lock) or ignored (before it)."""
        entries = []
        for p in self.path.iterdir():
            if _TEMP.fullmatch(p.name) and p.is_file():
                if self._lock_fd is not None:
                    p.unlink(missing_ok=True)
            elif p.name != LOCK:
                entries.append(p)
        return entries

    def _foreign(self) -> bool:
        """Whether the directory is non-empty and not a run directory (no ``status.json``)."""
        return bool(self._entries()) and not (self.path / STATUS).exists()

    def _prepare(self) -> None:
        """Judge the existing contents (see the class docstring): keep, clear or refuse."""
        entries = self._entries()
        if not entries:
            return
        old = read_status(self.path)
        if old is None:
            raise RunDirError(
                f"{self.flag} {self.path} is not empty and is not a windalign run directory (no "
                f"{STATUS}); give a new or empty directory (--overwrite only replaces run "
                "directories)"
            )
        if self.resume:
            return
        if self.overwrite:
            for entry in entries:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
            return
        state = old.get("status", "unknown")
        what = f"a {state} run"
        if state == "running":  # we hold the lock, so its writer is gone
            what = "an unfinished run (status 'running', its process is gone)"
        command = old.get("command")
        if isinstance(command, list):
            what += f" of `{' '.join(map(str, command))}`"
        raise RunDirError(
            f"{self.flag} {self.path} already holds {what}; pass --overwrite to replace it or give "
            f"another {self.flag}"
        )

    # -- writing --------------------------------------------------------------------------

    @property
    def status(self) -> dict[str, Any]:
        """The current ``status.json`` contents (a copy)."""
        return dict(self._status)

    @property
    def staging(self) -> Path:
        """A private scratch directory inside the run (created on first use, removed on exit).

        For writers that need a file name (figures): write ``rd.staging / name``, then pass
        that path to :meth:`commit`, which moves it into place with the rest of the results.
        """
        self._require_open()
        path = self.path / STAGING
        path.mkdir(exist_ok=True)
        return path

    def _require_open(self) -> None:
        if self._lock_fd is None:
            raise RuntimeError(f"{self!r} is not open; use it as `with RunDir(...) as rd:`")

    def _target(self, name: str) -> Path:
        """``<dir>/name`` for a relative ``name`` that stays inside the run directory."""
        parts = Path(name).parts
        if not parts or Path(name).is_absolute() or ".." in parts or parts[0] in RESERVED:
            raise ValueError(
                f"cannot write {name!r} in a run directory: give a relative name inside it, "
                f"not one of {', '.join(RESERVED)}"
            )
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def write(self, name: str, data: str | bytes) -> Path:
        """Write one file ``name`` (relative to the run directory) atomically; returns its path.

        For files that stand alone (a checkpoint, a log); results that must agree with each
        other go through :meth:`commit`.
        """
        self._require_open()
        return atomic_write(self._target(name), data)

    def write_json(self, name: str, obj: Any) -> Path:
        """:meth:`write` ``obj`` as strict JSON (:func:`dumps_json`: NaN / inf -> ``null``)."""
        return self.write(name, dumps_json(obj))

    def commit(self, files: Mapping[str, str | bytes | Path]) -> list[Path]:
        """Write a set of result files that belong together; returns their paths.

        ``files`` maps a name (relative to the run directory) to its contents (``str`` /
        ``bytes``) or to a file already written under :attr:`staging`, which is moved in.

        Order: every file is first written to a temp name next to its target and ``fsync``-ed
        (nothing is visible yet; a failure here removes the temps and leaves the directory as
        it was); then all are ``os.replace``-d into place, in the order of ``files`` (give the
        config last); then the directory is ``fsync``-ed. Guarantee: each file is atomic (old
        or new, never partial), and the whole set is in place before ``status.json`` can say
        ``complete``, which only happens when the ``with`` block ends normally after this
        call. A crash between the first ``os.replace`` and the end leaves ``status.json`` at
        ``running`` (or ``failed`` / ``interrupted``), never ``complete`` with a config that
        does not match the results; and since a reused directory is cleared on entry, no file
        of an older run survives next to the new ones (``resume=True`` keeps them, by request).
        """
        self._require_open()
        staged: list[tuple[Path, Path]] = []
        try:
            for name, data in files.items():
                target = self._target(name)
                if isinstance(data, Path):
                    staged.append((self._staged(name, data), target))
                else:
                    staged.append((_write_temp(target, data), target))
        except BaseException:
            for tmp, _ in staged:
                if tmp.parent != self.path / STAGING:
                    tmp.unlink(missing_ok=True)
            raise
        for tmp, target in staged:
            os.replace(tmp, target)
        for parent in {target.parent for _, target in staged}:
            _fsync_dir(parent)
        return [target for _, target in staged]

    def _staged(self, name: str, path: Path) -> Path:
        """Check that ``path`` is a file under :attr:`staging` and ``fsync`` it."""
        staging = (self.path / STAGING).resolve()
        if staging not in path.resolve().parents or not path.is_file():
            raise ValueError(
                f"commit({name!r}): {path} is not a file under {self.path / STAGING}; write "
                "it to rd.staging first or pass its contents as str / bytes"
            )
        with path.open("rb+") as f:
            os.fsync(f.fileno())
        return path
