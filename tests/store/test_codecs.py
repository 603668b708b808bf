"""Every image codec a store offers round-trips bit-exact, through both of zarr's read paths."""

from __future__ import annotations

import numpy as np
import pytest

from genima_data.store import create_dataset, open_dataset
from genima_data.store.codecs import DEFAULT_CODECS, get_codec

ZARR_IMAGE_CODECS = ["blosc-zstd", "gradient-zstd", "blosc-lz4", "zstd", "gzip", "none"]
HDF5_IMAGE_CODECS = ["blosc-zstd", "gradient-zstd", "blosc-lz4", "zstd", "lzf", "gzip", "none"]


def _write_one_episode(path, manifest, episode, codec):
    ds = create_dataset(path, manifest, image_codec=codec)
    ds.write_episode(episode)
    ds.commit()
    return open_dataset(path)


@pytest.mark.parametrize("codec", ZARR_IMAGE_CODECS)
def test_zarr_image_codec_is_lossless_on_fast_and_zarr_python_paths(tmp_path, manifest, make_episode, codec):
    episode = make_episode()
    expected = np.asarray(episode["cameras/front/rgb"][:])
    with _write_one_episode(tmp_path / "ds.zarr", manifest, episode, codec).episode("episode0") as stored:
        source = stored["cameras/front/rgb"]
        assert source.attrs["codec"] == codec
        assert source._direct is not None, "images should take the direct frame path"
        for t in range(episode.length):
            assert np.array_equal(source[t], expected[t]), t
        assert np.array_equal(source.array[:], expected)


@pytest.mark.parametrize("codec", HDF5_IMAGE_CODECS)
def test_hdf5_image_codec_is_lossless(tmp_path, manifest, make_episode, codec):
    episode = make_episode()
    reader = _write_one_episode(tmp_path / "ds", manifest, episode, codec)
    assert reader.manifest.storage.codecs["image"] == codec
    for t in range(episode.length):
        assert np.array_equal(
            reader.read_frame("episode0", "cameras/front/rgb", t), episode["cameras/front/rgb"][t]
        )


def test_defaults_are_offered_by_their_back_end():
    for backend, kinds in DEFAULT_CODECS.items():
        for name in kinds.values():
            assert get_codec(name, backend).name == name
