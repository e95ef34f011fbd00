"""Atomic file writes: a reader (or a restarted job) sees the old file or the new one, never half.

Write to a temporary file in the same directory, fsync it, rename it over the target and
fsync the directory, so the rename itself survives a power cut or a killed node.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def fsync_dir(directory: Path) -> None:
    """Make a rename or link in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], sync_dir: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success fsync it and rename it over ``target``.

    For writers that want a path rather than a file object (``torch.save``, ``zipfile``).
    On an exception the temporary file is removed and ``target`` is left untouched.
    ``sync_dir=False`` leaves the directory's fsync to the caller, who writes several files
    and makes their renames durable with one ``fsync_dir``.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
        if sync_dir:
            fsync_dir(target.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_bytes(target: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(target: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    atomic_write_bytes(target, text.encode("utf-8"))


def atomic_write_json(target: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON (keys in their given order) to ``target`` atomically."""
    atomic_write_text(target, json.dumps(obj, indent=2) + "\n")


def write_once_json(target: str | os.PathLike[str], obj: Any) -> bool:
    """Create ``target`` with ``obj`` atomically unless it exists; True if this call created it.

    ``atomic_write_json`` writes a private staging file (temporary file, fsync, rename);
    ``os.link`` then creates the final name only if absent, so of two racing writers exactly
    one wins and nobody ever sees half a file.
    """
    target = Path(target)
    staging = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex}.staged")
    atomic_write_json(staging, obj)
    try:
        os.link(staging, target)
        created = True
    except FileExistsError:
        created = False
    except OSError:  # a file system without hard links: rename, after a last look
        if target.exists():
            created = False
        else:
            os.replace(staging, target)
            created = True
    finally:
        with contextlib.suppress(FileNotFoundError):
            staging.unlink()
    fsync_dir(target.parent)
    return created
