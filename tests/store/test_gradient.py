"""The gradient-zstd image codec: exact on any uint8 frames, readable by plain zarr, decoded on HDF5 reads."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from genima_data.errors import CodecUnavailableError, StoreError
from genima_data.store import create_dataset, open_dataset, zstd_frames
from genima_data.store.base import fit_codec
from genima_data.store.codecs import check_zarr_codecs, get_codec
from genima_data.store.gradient import (
    GradientCodec,
    decode_gradient,
    encode_gradient,
    prefers_subtract_green,
)
from genima_data.store.hdf5 import SUBTRACT_GREEN, H5Array

frame_shapes = st.tuples(st.integers(1, 3), st.integers(1, 20), st.integers(1, 20))


@settings(max_examples=60, deadline=None)
@given(data=st.data(), shape=frame_shapes, colour=st.booleans(), green=st.booleans())
def test_gradient_transform_is_exact_on_any_uint8_frames(data, shape, colour, green):
    full = (*shape, 3) if colour else shape
    frames = data.draw(arrays(np.uint8, full))
    residuals = encode_gradient(frames, colour, subtract_green=green)
    assert np.array_equal(decode_gradient(residuals, colour, subtract_green=green), frames)


def test_gradient_decodes_into_a_given_array_and_refuses_one_it_cannot_fill():
    frames = np.random.default_rng(0).integers(0, 256, (2, 9, 7, 3), np.uint8)
    out = np.zeros_like(frames)
    assert decode_gradient(encode_gradient(frames, True), True, out=out) is out
    assert np.array_equal(out, frames)
    with pytest.raises(ValueError, match="C-contiguous uint8"):
        decode_gradient(encode_gradient(frames, True), True, out=np.zeros((2, 9, 14, 3), np.uint8)[:, :, ::2])


def test_gradient_is_exact_on_frames_too_large_for_a_32_bit_prefix_sum():
    # above 2**31 / 255 pixels the prefix sum runs in float64 (exact up to 2**53), then wraps
    frame = np.full((2901, 2903), 255, np.uint8)
    frame[::7] = np.arange(2903, dtype=np.uint8)
    assert np.array_equal(decode_gradient(encode_gradient(frame, False), False), frame)


def test_gradient_residuals_of_a_smooth_image_are_zero_away_from_the_border():
    y, x = np.mgrid[0:16, 0:16]
    plane = np.stack([2 * x + y, x + 3 * y, 5 + x], axis=-1).astype(np.uint8)
    residual = encode_gradient(plane, colour=True)
    assert not residual[1:, 1:].any()  # a plane is predicted exactly; only the first row/column remain


def test_gradient_zstd_stores_natural_frames_smaller_than_blosc_zstd(tmp_path, manifest, make_episode):
    episode = make_episode(frames=6)
    sizes = {}
    for codec in ("gradient-zstd", "blosc-zstd"):
        ds = create_dataset(tmp_path / codec, manifest, image_codec=codec)
        ds.write_episode(episode)
        ds.commit()
        with h5py.File(tmp_path / codec / "episodes" / "episode0.h5") as f:
            sizes[codec] = f["cameras/front/rgb"].id.get_storage_size()
    assert sizes["gradient-zstd"] < 0.8 * sizes["blosc-zstd"]


def test_hdf5_gradient_dataset_holds_residuals_and_reads_back_frames_for_any_index(
    tmp_path, manifest, make_episode
):
    episode = make_episode()
    frames = np.asarray(episode["cameras/front/rgb"][:])
    ds = create_dataset(tmp_path / "ds", manifest, image_codec="gradient-zstd")
    ds.write_episode(episode)
    ds.commit()
    with h5py.File(tmp_path / "ds" / "episodes" / "episode0.h5") as f:
        raw = f["cameras/front/rgb"]
        assert raw.attrs["codec"] == "gradient-zstd"
        green = bool(raw.attrs[SUBTRACT_GREEN])
        assert np.array_equal(raw[3], encode_gradient(frames[3], colour=True, subtract_green=green))
    with open_dataset(tmp_path / "ds").episode("episode0") as stored:
        source = stored["cameras/front/rgb"]
        assert np.array_equal(source[3], frames[3])
        assert np.array_equal(source[-1], frames[-1])
        assert np.array_equal(source[2:5], frames[2:5])
        assert np.array_equal(source[[1, 4]], frames[[1, 4]])
        assert np.array_equal(source[2:5, 3:9, :, 1], frames[2:5, 3:9, :, 1])
        assert np.array_equal(source[..., 0], frames[..., 0])
        assert np.array_equal(np.asarray(source), frames)


def test_zarr_python_reads_gradient_arrays_through_the_entry_point(tmp_path, manifest, make_episode):
    episode = make_episode()
    ds = create_dataset(tmp_path / "ds.zarr", manifest, image_codec="gradient-zstd")
    ds.write_episode(episode)
    ds.commit()
    np.save(tmp_path / "expected.npy", np.asarray(episode["cameras/front/rgb"][:]))
    # a fresh interpreter that never imports genima_data: zarr finds the codec by its entry point
    array_dir = tmp_path / "ds.zarr" / "episodes" / "episode0" / "cameras" / "front" / "rgb"
    script = (
        "import sys, zarr, numpy as np\n"
        f"a = zarr.open_array({str(array_dir)!r})\n"
        f"assert np.array_equal(a[:], np.load({str(tmp_path / 'expected.npy')!r}))\n"
        "assert 'genima_data.store.gradient' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)


def test_gradient_codec_refuses_float_arrays_naming_the_field(tmp_path, manifest, make_episode):
    ds = create_dataset(tmp_path / "ds", manifest)
    ds.write_episode(make_episode())
    with pytest.raises(StoreError, match=r"extras/depth_like.*gradient-zstd.*uint8"):
        ds.add_arrays(
            "episode0", {"extras/depth_like": np.zeros((12, 4, 4), np.float32)}, codec="gradient-zstd"
        )


def test_missing_gradient_codec_names_the_package_to_install():
    with pytest.raises(CodecUnavailableError, match="install or upgrade genima-data"):
        check_zarr_codecs(
            [{"name": "genima_data.not_yet_invented"}], file="ds.zarr", episode="e0", field="cameras/x/rgb"
        )


def test_hdf5_frame_reads_decode_raw_chunks_stored_compressed_unfiltered_or_never_written(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (4, 6, 5, 3), dtype=np.uint8)
    residuals = encode_gradient(frames, colour=True)
    with h5py.File(tmp_path / "f.h5", "w") as f:
        raw = f.create_dataset(
            "rgb",
            shape=frames.shape,
            dtype=np.uint8,
            chunks=(1, 6, 5, 3),
            **get_codec("gradient-zstd").hdf5_kwargs(),
        )
        raw.attrs["codec"] = "gradient-zstd"  # what the store records: the dataset holds residuals
        raw[0] = residuals[0]  # through HDF5's zstd filter
        raw.id.write_direct_chunk((1, 0, 0, 0), zstd_frames.compress(residuals[1].tobytes(), 1))
        # filter mask bit 0: HDF5 kept this chunk without its zstd filter (it may, for incompressible data)
        raw.id.write_direct_chunk((2, 0, 0, 0), residuals[2].tobytes(), filter_mask=1)
        source = H5Array(raw)  # frame 3 never written: the fill value, zero
        assert [np.array_equal(source[t], frames[t]) for t in range(3)] == [True, True, True]
        assert np.array_equal(source[3], np.zeros_like(frames[3]))
        assert np.array_equal(source[-4], frames[0])
        with pytest.raises(IndexError):
            source[4]


def test_hdf5_gradient_frames_are_written_as_residual_tuned_zstd_chunks(tmp_path, manifest, make_episode):
    ds = create_dataset(tmp_path / "ds_h5", manifest)
    episode = make_episode(frames=4)
    ds.write_episode(episode)
    ds.commit()
    frames = episode["cameras/front/rgb"][:]
    with h5py.File(tmp_path / "ds_h5/episodes/episode0.h5", "r") as f:
        chunks = [f["cameras/front/rgb"].id.read_direct_chunk((t, 0, 0, 0))[1] for t in range(len(frames))]
    residuals = encode_gradient(frames, colour=True, subtract_green=prefers_subtract_green(frames, 1))
    assert chunks == [zstd_frames.compress(r.tobytes(), 1, residuals=True) for r in residuals]


def shared_detail_frames(frames: int = 3, size: int = 48) -> np.ndarray:
    """Photograph-like RGB frames: one textured plane seen through three channel gains."""
    texture = np.random.default_rng(1).integers(0, 100, (frames, size, size)).astype(np.float64)
    return np.clip(texture[..., None] * (1.0, 1.2, 0.8) + 40, 0, 255).astype(np.uint8)


def independent_noise_frames(frames: int = 3, size: int = 48) -> np.ndarray:
    """Simulator-like RGB frames: flat colours with sensor noise drawn independently per channel."""
    noise = np.random.default_rng(2).normal(0, 1.5, (frames, size, size, 3))
    return np.clip(noise + np.array([120, 90, 60]), 0, 255).astype(np.uint8)


def test_green_is_subtracted_where_channels_share_detail_and_not_where_their_noise_is_independent():
    assert prefers_subtract_green(shared_detail_frames(), 1) is True
    assert prefers_subtract_green(independent_noise_frames(), 1) is False
    assert prefers_subtract_green(np.zeros((0, 4, 4, 3), np.uint8), 1) is True


@pytest.mark.parametrize("name", ["ds.zarr", "ds_h5"])
def test_stores_record_the_colour_transform_they_chose_and_read_both_back_exactly(
    tmp_path, manifest, make_episode, name
):
    episode = make_episode()
    shape = episode["cameras/front/rgb"].shape
    streams = {
        "cameras/front/rgb": shared_detail_frames(shape[0], shape[1]),
        "cameras/wrist/rgb": independent_noise_frames(shape[0], shape[1]),
    }
    ds = create_dataset(tmp_path / name, manifest)
    ds.write_episode(episode.with_arrays({**episode.arrays, **streams}))
    ds.commit()
    with open_dataset(tmp_path / name).episode("episode0") as stored:
        for path, frames in streams.items():
            assert np.array_equal(stored[path][:], frames)
            assert np.array_equal(stored[path][1], frames[1])
    assert recorded_subtract_green(tmp_path / name) == {"cameras/front/rgb": True, "cameras/wrist/rgb": False}


def gradient_configuration(node: dict) -> dict:
    """The genima_data.gradient codec's settings in an image array's zarr.json (inside its shard codec)."""
    inner = node["codecs"][0]["configuration"]["codecs"]
    return next(c for c in inner if c["name"] == "genima_data.gradient")["configuration"]


def recorded_subtract_green(root) -> dict[str, bool]:
    """Per camera stream of episode0, the colour transform the store wrote down."""
    out = {}
    for path in ("cameras/front/rgb", "cameras/wrist/rgb"):
        if root.name.endswith(".zarr"):
            node = json.loads((root / "episodes/episode0" / path / "zarr.json").read_text())
            out[path] = gradient_configuration(node)["subtract_green"]
        else:
            with h5py.File(root / "episodes/episode0.h5") as f:
                out[path] = bool(f[path].attrs[SUBTRACT_GREEN])
    return out


def test_hdf5_gradient_arrays_written_before_the_choice_existed_read_with_green_subtracted(
    tmp_path, manifest, make_episode
):
    episode = make_episode()
    frames = shared_detail_frames(*episode["cameras/front/rgb"].shape[:2])
    ds = create_dataset(tmp_path / "ds_h5", manifest)
    ds.write_episode(episode.with_arrays({**episode.arrays, "cameras/front/rgb": frames}))
    ds.commit()
    with h5py.File(tmp_path / "ds_h5/episodes/episode0.h5", "a") as f:
        del f["cameras/front/rgb"].attrs[SUBTRACT_GREEN]  # as files of earlier versions were written
    with open_dataset(tmp_path / "ds_h5").episode("episode0") as stored:
        assert np.array_equal(stored["cameras/front/rgb"][:], frames)


def test_zarr_gradient_codec_defaults_to_green_subtracted_and_refuses_settings_it_does_not_know():
    assert GradientCodec.from_dict({"name": "genima_data.gradient", "configuration": {"colour": True}}) == (
        GradientCodec(colour=True, subtract_green=True)
    )
    with pytest.raises(CodecUnavailableError, match=r"does not know \(predictor\); upgrade genima-data"):
        GradientCodec.from_dict({"name": "genima_data.gradient", "configuration": {"predictor": "paeth"}})


def test_a_zarr_gradient_array_from_a_newer_writer_is_a_one_line_error_naming_the_field(
    demo_store_dir, tmp_path, run_cli
):
    path = tmp_path / "newer.zarr"
    shutil.copytree(demo_store_dir / "sample.zarr", path)
    node_file = path / "episodes/episode0/cameras/front/rgb/zarr.json"
    node = json.loads(node_file.read_text())
    gradient_configuration(node)["predictor"] = "paeth"  # a setting a later version might add
    node_file.write_text(json.dumps(node))
    result = run_cli("info", str(path))
    assert result.exit_code != 0 and "Traceback" not in result.stderr
    assert re.search(
        r"episode episode0: cameras/front/rgb: codec genima_data.gradient has settings this genima-data does "
        r"not know \(predictor\); upgrade genima-data",
        " ".join(result.stderr.split()),  # rich may wrap the line
    )


def test_fitting_the_codec_passes_every_block_through_and_fits_rgb_frames_only():
    gradient, blosc = get_codec("gradient-zstd"), get_codec("blosc-lz4")
    noisy = independent_noise_frames(4, 16)
    blocks = [(0, 2, noisy[:2]), (2, 4, noisy[2:])]
    fitted, passed = fit_codec(gradient, iter(blocks))
    assert fitted.subtract_green is False and list(passed) == blocks  # the block looked at is not lost
    grey = [(0, 4, noisy[..., 0])]
    fitted, passed = fit_codec(gradient, iter(grey))
    assert fitted.subtract_green is True and list(passed) == grey
    assert fit_codec(blosc, iter(blocks))[0] == blosc
    fitted, passed = fit_codec(gradient, iter([]))
    assert fitted == gradient and list(passed) == []
