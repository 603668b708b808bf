"""Registry of dataset formats: each a reader and/or writer of `Episode`s, registered by name.

`convert` is ``write(read(src))`` over this registry. A format module defines a `Format` whose
callables import heavy dependencies (pyarrow, av) only when called, so detection stays cheap. Built-in
formats are listed in `BUILTIN` as ``module:attribute``; `register_format` adds others at run time.

Reader protocol: ``.manifest`` (Manifest), ``.episode_ids`` (natural order), ``.episode(id) -> Episode``.
Writer protocol: ``.has_episode(id)``, ``.write_episode(episode)`` (atomic), ``.commit()`` (index last).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from genima_data.episode import Episode
from genima_data.errors import FormatError
from genima_data.schema import Manifest


class Reader(Protocol):
    @property
    def manifest(self) -> Manifest: ...

    @property
    def episode_ids(self) -> list[str]: ...

    def episode(self, episode_id: str) -> Episode: ...


class Writer(Protocol):
    def has_episode(self, episode_id: str) -> bool: ...

    def write_episode(self, episode: Episode) -> None: ...

    def commit(self) -> Any: ...


@dataclass(frozen=True)
class Format:
    """A named format. `writer(path, manifest, **options)` starts or resumes a write (coordinator);
    `writer(path, None, **options)` attaches to a write in progress (worker processes)."""

    name: str
    description: str
    detect: Callable[[Path], bool]
    reader: Callable[..., Reader] | None = None
    writer: Callable[..., Writer] | None = None
    parallel_write: bool = True  # False: episodes must be written by one process (shared files)
    suffix: str | None = None  # destination suffix that implies this format, e.g. ".zarr"


BUILTIN: dict[str, str] = {
    "zarr": "genima_data.formats.store:ZARR",
    "hdf5": "genima_data.formats.store:HDF5",
    "rlbench": "genima_data.formats.rlbench:RLBENCH",
    "lerobot": "genima_data.formats.lerobot:LEROBOT",
    "aloha": "genima_data.formats.aloha:ALOHA",
    "raw": "genima_data.formats.raw:RAW",
}
_REGISTERED: dict[str, Format] = {}


def register_format(fmt: Format) -> None:
    """Make a format available to `convert` and the CLI under `fmt.name`."""
    _REGISTERED[fmt.name] = fmt


def format_names() -> list[str]:
    return sorted({*BUILTIN, *_REGISTERED})


def get_format(name: str) -> Format:
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name not in BUILTIN:
        raise FormatError(f"unknown format '{name}'; known formats: {', '.join(format_names())}")
    module, attr = BUILTIN[name].split(":")
    fmt = getattr(importlib.import_module(module), attr)
    _REGISTERED[name] = fmt
    return fmt


def detect_format(path: str | Path) -> str:
    """Name of the format `path` is in, trying every registered reader's detector."""
    path = Path(path)
    if not path.exists():
        raise FormatError("no such file or directory", file=path)
    for name in format_names():
        fmt = get_format(name)
        if fmt.reader is not None and fmt.detect(path):
            return name
    raise FormatError(
        f"cannot tell the format; pass --from (known formats: {', '.join(format_names())})", file=path
    )


def destination_format(path: str | Path) -> str | None:
    """Format implied by an existing destination or by its suffix, if any."""
    path = Path(path)
    for name in format_names():
        fmt = get_format(name)
        if fmt.writer is not None and path.exists() and fmt.detect(path):
            return name
    return next((n for n in format_names() if get_format(n).suffix == path.suffix and path.suffix), None)
