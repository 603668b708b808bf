"""Crash-safe file output: write under a temporary name in the same directory, then rename into place.

A rename within one file system is atomic on POSIX, so a reader sees either the old file or the complete
new one, never a half-written file under the final name. Temporary names start with `.tmp-` so stores and
resumed runs can recognise and remove leftovers of an interrupted run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from genima_data.errors import GenimaDataError

TMP_PREFIX = ".tmp-"


def temp_path_for(path: str | Path, temp_dir: str | Path | None = None) -> Path:
    """A unique temporary name for `path`: a sibling, or inside `temp_dir` (same file system, so the final
    rename is atomic)."""
    path = Path(path)
    name = f"{TMP_PREFIX}{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    return path.with_name(name) if temp_dir is None else Path(temp_dir) / name


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # some file systems refuse to open directories
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_output(
    path: str | Path, *, fsync: bool = True, temp_dir: str | Path | None = None
) -> Iterator[Path]:
    """Yield a temporary path to write to; on success it replaces `path`, on error it is removed.

    Works for files and for directories (a zarr episode group, an export folder). `temp_dir` keeps the
    temporary out of `path`'s directory (for layouts whose readers list that directory), on the same file
    system.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if temp_dir is not None:
        Path(temp_dir).mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(path, temp_dir)
    try:
        yield tmp
        if fsync and tmp.is_file():
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        if path.is_dir() and not path.is_symlink():
            if not tmp.is_dir():  # a file never replaces a directory: it may be a dataset or anything else
                raise GenimaDataError("is a directory; give a file name for this output", file=path)
            # os.replace cannot replace a non-empty directory: move the old one aside first
            old = temp_path_for(path, temp_dir)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
        if fsync:
            _fsync_dir(path.parent)
    except BaseException:
        remove_path(tmp)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def remove_path(path: str | Path) -> None:
    """Remove a file or directory tree if it exists."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def remove_temporaries(directory: str | Path) -> int:
    """Delete leftovers of interrupted writes (names starting with TMP_PREFIX) in `directory`."""
    directory = Path(directory)
    if not directory.is_dir():
        return 0
    leftovers = [p for p in directory.iterdir() if p.name.startswith(TMP_PREFIX)]
    for p in leftovers:
        remove_path(p)
    return len(leftovers)
