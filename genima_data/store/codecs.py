"""Lossless codecs of the two back-ends, by name, and what a reader needs installed to decode them.

Images and targets must stay bit-exact (sphere colours are labels), so every codec here is lossless. The
defaults were chosen with `bench/store_io.py` (README has the table):

* images, both back-ends: ``gradient-zstd`` = a 2-D gradient predictor, on red and blue relative to green
  where that compresses smaller (chosen per stream; `genima_data.store.gradient`), then zstd level 1 with
  its match finder tuned for residuals (`genima_data.store.zstd_frames`): the predictor is what brings
  images near PNG's size, and it is undone in one vectorised prefix sum. zarr records it as the registered
  codec ``genima_data.gradient``; HDF5, which has no Python filters, stores the residuals and the store
  undoes them on read. 0.89-0.92x PNG's size on camera photographs, 1.00-1.02x on simulator frames with
  sensor noise; see docs/storage.md for read speeds.
* ``blosc-zstd`` (byte stream as is) is 1.2-1.6x PNG's size and decodes faster than ``gradient-zstd`` on
  photographs only (bench/image_codecs.py); HDF5 ``blosc-lz4`` reads fastest (6-11x PNG) at twice PNG's size.
* numeric arrays, both back-ends: ``blosc-lz4`` with byte shuffle. Depth (float32 metres with noisy
  mantissas) barely compresses past that: ``blosc-zstd`` level 5 is 4 % smaller but 8x slower to write
  and 4x slower to read, the largest cost of an RLBench conversion after PNG decoding.

The name of every codec used is recorded in the manifest (`StorageInfo.codecs`) and in each array's own
metadata, so a reader that lacks a plugin can name the package to install.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from genima_data.errors import CodecUnavailableError
from genima_data.store.gradient import GradientCodec, has_colour

Backend = Literal["hdf5", "zarr"]
Kind = Literal["image", "array"]

# images: gradient-zstd is 35-45 % smaller than blosc-zstd and 2-4x faster to write; blosc-zstd decodes faster
# on photographs only (bench/image_codecs.py)
DEFAULT_CODECS: dict[Backend, dict[Kind, str]] = {
    "hdf5": {"image": "gradient-zstd", "array": "blosc-lz4"},
    "zarr": {"image": "gradient-zstd", "array": "blosc-lz4"},
}

ZSTD_FILTER = 32015  # HDF5's registered id of the zstd filter

# HDF5 filter ids registered by hdf5plugin, for messages about files whose filter cannot be loaded
HDF5_PLUGIN_FILTERS: dict[int, str] = {
    32001: "blosc",
    32004: "lz4",
    32008: "bitshuffle",
    ZSTD_FILTER: "zstd",
    32026: "blosc2",
    307: "bzip2",
}


@dataclass(frozen=True)
class Codec:
    """A named lossless codec and how each back-end spells it."""

    name: str
    hdf5_package: str | None  # pip package that registers the HDF5 filter; None when h5py has it built in
    description: str
    subtract_green: bool = True  # gradient-zstd on RGB: red and blue relative to green (chosen per array)

    def hdf5_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for h5py's create_dataset."""
        if self.name == "none":
            return {}
        if self.name in ("gzip", "lzf"):
            return {"compression": self.name, **({"compression_opts": 4} if self.name == "gzip" else {})}
        hdf5plugin = import_hdf5plugin()
        if self.name in ("zstd", "gradient-zstd"):
            return dict(hdf5plugin.Zstd(clevel=self.zstd_level))
        cname = self.name.removeprefix("blosc-")
        return dict(hdf5plugin.Blosc(cname=cname, clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE))

    @property
    def gradient(self) -> bool:
        """Whether frames pass through the gradient predictor before compression."""
        return self.name == "gradient-zstd"

    @property
    def zstd_level(self) -> int:
        return 1 if self.gradient else 3  # residuals: level 1 is as small as 3-5 and 2-4x faster (bench/)

    def check_shape(self, shape: tuple[int, ...], dtype: np.dtype) -> None:
        """Raise CodecUnavailableError if this codec cannot hold an array of this shape and dtype."""
        if self.gradient and (dtype != np.uint8 or len(shape) not in (3, 4)):
            raise CodecUnavailableError(
                f"codec '{self.name}' is for (T, H, W[, C]) uint8 images, not {dtype} {shape}"
            )

    def zarr_kwargs(self, shape: tuple[int, ...], itemsize: int) -> dict[str, Any]:
        """`filters`/`compressors` for zarr.create_array, for an array of this shape."""
        import zarr.codecs as zc

        if self.name == "none":
            return {"compressors": None}
        if self.gradient:
            return {
                "filters": [GradientCodec(colour=has_colour(shape), subtract_green=self.subtract_green)],
                "compressors": [zc.ZstdCodec(level=self.zstd_level)],
            }
        if self.name == "zstd":
            return {"compressors": [zc.ZstdCodec(level=self.zstd_level)]}
        if self.name == "gzip":
            return {"compressors": [zc.GzipCodec(level=4)]}
        if self.name.startswith("blosc-"):
            shuffle = "shuffle" if itemsize > 1 else "noshuffle"
            return {
                "compressors": [
                    zc.BloscCodec(
                        cname=self.name.removeprefix("blosc-"), clevel=5, shuffle=shuffle, typesize=itemsize
                    )
                ]
            }
        raise CodecUnavailableError(f"codec '{self.name}' is not available for zarr stores")


CODECS: dict[str, Codec] = {
    c.name: c
    for c in (
        Codec("gradient-zstd", "hdf5plugin", "2-D gradient predictor + zstd (uint8 images; near PNG's size)"),
        Codec("blosc-zstd", "hdf5plugin", "Blosc with zstd and byte shuffle"),
        Codec("blosc-lz4", "hdf5plugin", "Blosc with lz4 and byte shuffle (fastest, larger)"),
        Codec("zstd", "hdf5plugin", "plain zstd"),
        Codec("gzip", None, "deflate level 4 (built into HDF5 and zarr; slow)"),
        Codec("lzf", None, "LZF (built into h5py; HDF5 only)"),
        Codec("none", None, "uncompressed"),
    )
}


def get_codec(name: str, backend: Backend | None = None) -> Codec:
    try:
        codec = CODECS[name]
    except KeyError:
        raise CodecUnavailableError(f"unknown codec '{name}'; choose from {sorted(CODECS)}") from None
    if backend == "zarr" and name == "lzf":
        raise CodecUnavailableError("codec 'lzf' exists for HDF5 only")
    return codec


def required_packages(backend: Backend, codec_names: list[str]) -> list[str]:
    """Python packages a reader needs for these codecs (zarr's come with zarr itself via numcodecs)."""
    if backend == "zarr":
        return ["numcodecs"]
    return sorted({p for n in codec_names if (p := CODECS[n].hdf5_package)})


def import_hdf5plugin(
    *, file: str | None = None, episode: str | None = None, field: str | None = None
) -> Any:
    """Import hdf5plugin (which registers Blosc/Zstd filters with HDF5) or explain how to get it."""
    try:
        import hdf5plugin
    except ImportError:
        raise CodecUnavailableError(
            "data is compressed with an HDF5 plugin filter (Blosc/Zstd) that this environment cannot "
            "decode; install it with: pip install hdf5plugin",
            file=file,
            episode=episode,
            field=field,
        ) from None
    return hdf5plugin


def check_hdf5_filters(dataset: Any, *, file: str, episode: str | None, field: str) -> None:
    """Raise CodecUnavailableError naming the package when an HDF5 dataset's filter is not loadable."""
    import h5py

    plist = dataset.id.get_create_plist()
    for i in range(plist.get_nfilters()):
        filter_id = plist.get_filter(i)[0]
        if not h5py.h5z.filter_avail(filter_id):
            name = HDF5_PLUGIN_FILTERS.get(filter_id, f"HDF5 filter {filter_id}")
            package = "hdf5plugin" if filter_id in HDF5_PLUGIN_FILTERS else "the HDF5 plugin providing it"
            raise CodecUnavailableError(
                f"compressed with {name} (HDF5 filter {filter_id}), which this environment cannot decode; "
                f"install {package}" + (" (pip install hdf5plugin)" if package == "hdf5plugin" else ""),
                file=file,
                episode=episode,
                field=field,
            )


ZARR_CODEC_PACKAGES: dict[str, str] = {
    "numcodecs.": "numcodecs",
    "imagecodecs_": "imagecodecs",
    "genima_data.": "genima-data",
}


def check_zarr_codecs(codecs: list[dict[str, Any]], *, file: str, episode: str | None, field: str) -> None:
    """Raise CodecUnavailableError naming the package when an array's codec is not registered with zarr."""
    from zarr.registry import get_codec_class

    for codec in codecs:
        name = codec["name"]
        inner = codec.get("configuration", {})
        if name == "sharding_indexed":  # the shard's own pipelines hold the codecs that matter
            check_zarr_codecs(
                [*inner.get("codecs", []), *inner.get("index_codecs", [])],
                file=file,
                episode=episode,
                field=field,
            )
        try:
            get_codec_class(name)
        except KeyError:
            package = next(
                (pkg for prefix, pkg in ZARR_CODEC_PACKAGES.items() if name.startswith(prefix)), None
            )
            hint = (
                f"install or upgrade {package}"
                if package
                else "install the zarr codec plugin that provides it"
            )
            raise CodecUnavailableError(
                f"compressed with codec '{name}', which this environment cannot decode; {hint}",
                file=file,
                episode=episode,
                field=field,
            ) from None
