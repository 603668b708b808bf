"""The canonical store: one logical tree (DESIGN.md), two back-ends.

* `open_dataset(path)` opens a committed dataset read-only (HDF5 directory or ``.zarr`` store, detected).
* `create_dataset(path, manifest)` starts (or resumes, or with ``append=True`` extends) a write; write
  episodes with `Dataset.write_episode` and finish with `Dataset.commit`.
"""

from __future__ import annotations

from pathlib import Path

from genima_data.errors import StoreError
from genima_data.schema import Manifest
from genima_data.store.base import Dataset, Mode
from genima_data.store.hdf5 import HDF5Dataset
from genima_data.store.zarr import ZarrDataset

BACKENDS: dict[str, type[Dataset]] = {"hdf5": HDF5Dataset, "zarr": ZarrDataset}


def detect_backend(path: str | Path) -> str | None:
    """'zarr' or 'hdf5' for an existing dataset (complete or in progress), else None."""
    path = Path(path)
    return next((name for name, cls in BACKENDS.items() if cls.looks_like(path)), None)


def backend_for_new(path: str | Path) -> str:
    """Back-end implied by a destination path: ``*.zarr`` is zarr, anything else an HDF5 directory."""
    return "zarr" if Path(path).suffix == ".zarr" else "hdf5"


def open_dataset(path: str | Path, mode: Mode = "r") -> Dataset:
    """Open a dataset; ``mode="a"`` attaches a writer (resume, add targets, update the manifest)."""
    path = Path(path)
    if not path.exists():
        raise StoreError("no such dataset", file=path)
    backend = detect_backend(path)
    if backend is None:
        raise StoreError(
            "not a genima-data dataset (no manifest.json and no zarr.json with a manifest)", file=path
        )
    return BACKENDS[backend].open(path, mode)


def create_dataset(
    path: str | Path,
    manifest: Manifest,
    *,
    backend: str | None = None,
    append: bool = False,
    image_codec: str | None = None,
    array_codec: str | None = None,
) -> Dataset:
    """Start writing a dataset at `path`, resuming an interrupted write of the same dataset."""
    path = Path(path)
    backend = backend or detect_backend(path) or backend_for_new(path)
    if backend not in BACKENDS:
        raise StoreError(f"unknown store back-end '{backend}'; choose from {sorted(BACKENDS)}", file=path)
    return BACKENDS[backend].create(
        path, manifest, append=append, image_codec=image_codec, array_codec=array_codec
    )


__all__ = ["BACKENDS", "Dataset", "backend_for_new", "create_dataset", "detect_backend", "open_dataset"]
