"""State kept in files (``state_dir``): written whole, read back or set aside."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from .logs import event

__all__ = ["set_aside", "write_json"]

log = logging.getLogger("otel_health")


def write_json(path: Path, doc: Any, *, failed: str) -> None:
    """Write ``doc`` to a new file beside ``path`` that then replaces it: a crash leaves the old
    file or the new one, never half of one. A write that fails is logged as the event ``failed``."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(doc, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        event(log, logging.ERROR, failed, path=str(path), reason=exc.strerror or type(exc).__name__)


def set_aside(path: Path) -> Path:
    """Move a file that cannot be read out of the way (``NAME.unreadable``), kept for a person to
    look at; where it now is (``path`` itself if it could not be moved)."""
    aside = path.with_name(f"{path.name}.unreadable")
    try:
        os.replace(path, aside)
    except OSError:
        return path
    return aside
