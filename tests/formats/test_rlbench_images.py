import cv2
import numpy as np
import pytest

from genima_data.errors import FormatError
from genima_data.formats.rlbench_images import (
    DEPTH_SCALE,
    depth_from_png,
    depth_to_png,
    encode_png_rgb,
    mask_from_png,
    mask_to_png,
    png_size,
    read_png_frame,
    read_png_rgb,
)

NEAR, FAR = 0.009999999776482582, 4.5  # RLBench's front camera planes


def test_depth_png_decodes_with_red_as_the_high_byte():
    packed = np.array([[[1, 2, 3], [255, 255, 255], [0, 0, 0]]], dtype=np.uint8)
    expected = NEAR + np.array([1 * 65536 + 2 * 256 + 3, DEPTH_SCALE, 0]) / DEPTH_SCALE * (FAR - NEAR)
    depth = depth_from_png(packed, NEAR, FAR)
    assert depth.dtype == np.float32
    assert np.array_equal(depth[0], expected.astype(np.float32))


def test_depth_stored_as_float32_survives_png_and_back_bit_exactly():
    rng = np.random.default_rng(0)
    packed = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    metres = depth_from_png(packed, NEAR, FAR)
    again = depth_from_png(depth_to_png(metres, NEAR, FAR), NEAR, FAR)
    assert np.array_equal(metres, again)
    # the 24-bit code itself moves at most one step where float32 is coarser than the code
    codes = lambda p: p.astype(np.int64) @ [65536, 256, 1]  # noqa: E731
    assert np.abs(codes(depth_to_png(metres, NEAR, FAR)) - codes(packed)).max() <= 1


def test_depth_outside_the_planes_is_clipped_like_rlbench():
    packed = depth_to_png(np.array([[NEAR - 1, FAR + 1]]), NEAR, FAR)
    assert packed[0, 0].tolist() == [0, 0, 0] and packed[0, 1].tolist() == [255, 255, 255]


def test_mask_png_decodes_with_red_as_the_low_byte():
    packed = np.array([[[1, 2, 3]]], dtype=np.uint8)
    assert mask_from_png(packed).tolist() == [[1 + 2 * 256 + 3 * 65536]]
    handles = np.array([[0, 255, 256, 70000, (1 << 24) - 1]], dtype=np.int32)
    assert np.array_equal(mask_from_png(mask_to_png(handles)), handles)


def test_mask_handles_beyond_24_bits_are_refused():
    with pytest.raises(FormatError, match=r"mask handles must lie in \[0, 2\^24\)"):
        mask_to_png(np.array([[1 << 24]]))


def test_png_round_trip_is_rgb_not_bgr(tmp_path):
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[..., 0] = 200
    path = tmp_path / "0.png"
    path.write_bytes(encode_png_rgb(rgb))
    assert np.array_equal(read_png_rgb(path), rgb)
    assert cv2.imread(str(path))[0, 0].tolist() == [0, 0, 200]  # on disk it is a normal RGB PNG
    assert png_size(path) == (6, 4)


def test_frames_unpacked_from_the_bgr_decode_match_the_rgb_functions(tmp_path):
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    path = tmp_path / "0.png"
    path.write_bytes(encode_png_rgb(pixels))
    assert np.array_equal(read_png_frame(path, "rgb"), pixels)
    assert np.array_equal(read_png_frame(path, "mask"), mask_from_png(pixels))
    depth = read_png_frame(path, "depth", NEAR, FAR)
    assert depth.dtype == np.float32 and np.array_equal(depth, depth_from_png(pixels, NEAR, FAR))


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_png_is_a_one_line_error_naming_the_file(tmp_path, damage):
    path = tmp_path / "3.png"
    data = encode_png_rgb(np.full((32, 32, 3), 7, np.uint8))
    path.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"not a png", "empty": b""}[damage])
    with pytest.raises(FormatError) as err:
        read_png_rgb(path)
    assert str(err.value) == f"{path}: PNG is corrupt or truncated (cannot decode it)"


def test_grey_png_is_refused(tmp_path):
    path = tmp_path / "0.png"
    cv2.imwrite(str(path), np.zeros((4, 4), np.uint8))
    with pytest.raises(FormatError, match="expected an 8-bit RGB PNG, got 1 channel"):
        read_png_rgb(path)


def test_png_size_refuses_non_png(tmp_path):
    path = tmp_path / "0.png"
    path.write_bytes(b"GIF89a" + bytes(30))
    with pytest.raises(FormatError, match="not a PNG file"):
        png_size(path)
