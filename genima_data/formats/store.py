"""The canonical stores as formats, so `convert` treats them like any other source or destination."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from genima_data.formats import Format
from genima_data.schema import Manifest
from genima_data.store import BACKENDS, Dataset, create_dataset, open_dataset


def _writer(backend: str) -> Any:
    def open_writer(path: Path, manifest: Manifest | None, **options: Any) -> Dataset:
        if manifest is None:
            return open_dataset(path, mode="a")
        return create_dataset(path, manifest, backend=backend, **options)

    return open_writer


ZARR = Format(
    name="zarr",
    description="canonical zarr v3 store (<name>.zarr)",
    detect=BACKENDS["zarr"].looks_like,
    reader=lambda path, **_: open_dataset(path),
    writer=_writer("zarr"),
    suffix=".zarr",
)
HDF5 = Format(
    name="hdf5",
    description="canonical HDF5 directory (manifest.json + episodes/<id>.h5)",
    detect=BACKENDS["hdf5"].looks_like,
    reader=lambda path, **_: open_dataset(path),
    writer=_writer("hdf5"),
)
