"""State kept in files (``state_dir``): written whole or appended to, off the event loop,
read back bounded, or set aside.

A whole file is written to a new file beside it that then replaces it, and the folder is
synced after the rename, so a crash leaves the old file or the new one (never half of one,
never neither). An appended line is synced before it counts; a line a crash cut short is the
last one and is passed over when read. Temporary files a crash left behind are removed when
the state is next read.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from .logs import event

__all__ = ["NotFound", "Unreadable", "append_line", "clean_temporaries", "read_bounded", "replace_file", "set_aside",
           "write_json"]

log = logging.getLogger("otel_health")


class Unreadable(Exception):
    """A file that cannot be read: the reason, one line."""


class NotFound(Unreadable):
    """There is no such file."""


def read_bounded(path: Path, limit: int) -> str:
    """A regular file's UTF-8 text, at most ``limit`` bytes. A FIFO, a device such as
    /dev/zero (also behind a symlink) or a directory is refused before anything is read, so
    reading never hangs and never runs out of memory."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise NotFound("file not found; give an existing file") from None
    except OSError as exc:
        raise Unreadable(f"{exc.strerror or type(exc).__name__}; check the path and permissions") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # before fdopen, which refuses a directory itself
        os.close(fd)
        raise Unreadable("not a regular file (a FIFO, device or directory); give a file")
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise Unreadable(f"larger than {limit // 1024} KiB; split it into several files")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise Unreadable("not UTF-8 text; save it as UTF-8") from None


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_file(path: Path, data: bytes) -> None:
    """``path`` holds ``data``, or (OSError) what it held before."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _sync_folder(path.parent)


def write_json(path: Path, doc: Any, *, failed: str) -> bool:
    """:func:`replace_file` with ``doc`` as JSON; a write that fails is logged as the event
    ``failed`` and answers False."""
    try:
        replace_file(path, json.dumps(doc).encode("utf-8"))
    except OSError as exc:
        event(log, logging.ERROR, failed, path=str(path), reason=exc.strerror or type(exc).__name__)
        return False
    return True


def append_line(path: Path, line: bytes) -> None:
    """Append one line to ``path`` and sync it (the folder too when the file is new); OSError
    when it could not be made lasting, and then nothing of it is left in the file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        before = os.fstat(fd).st_size
        try:
            os.write(fd, line + b"\n")
            os.fsync(fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, before)  # a short write would be read back as a torn line
            raise
    finally:
        os.close(fd)
    if new:
        _sync_folder(path.parent)


def clean_temporaries(folder: Path, name: str) -> None:
    """Remove the temporary files of ``name`` a crash left in ``folder`` (see :func:`replace_file`)."""
    try:
        leftovers = list(folder.glob(f".{name}.*"))
    except OSError:
        return
    for path in leftovers:
        try:
            path.unlink()
        except OSError:
            continue


def set_aside(path: Path) -> Path:
    """Move a file that cannot be read out of the way (``NAME.unreadable``), kept for a person to
    look at; where it now is (``path`` itself if it could not be moved)."""
    aside = path.with_name(f"{path.name}.unreadable")
    try:
        os.replace(path, aside)
    except OSError:
        return path
    return aside
