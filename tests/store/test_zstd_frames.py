"""zstd frames with kept contexts: interchangeable with numcodecs' frames, exact, safe across threads; the
match finder tuned for residuals pays for itself."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numcodecs
import numpy as np
import pytest
import zstandard

from genima_data.store import zstd_frames
from genima_data.store.gradient import encode_gradient


def _payload(seed: int, nbytes: int = 40_000) -> bytes:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 8, nbytes, dtype=np.uint8).tobytes()  # compressible, like image residuals


def test_frames_are_interchangeable_with_numcodecs_zstd_in_both_directions():
    data = _payload(0)
    assert bytes(numcodecs.Zstd().decode(zstd_frames.compress(data, 1))) == data
    assert zstd_frames.decompress(numcodecs.Zstd(level=1).encode(data), len(data)) == data
    assert zstd_frames.decompress(numcodecs.Zstd(level=3, checksum=True).encode(data), len(data)) == data


def test_a_checksummed_frame_with_a_flipped_byte_is_refused_not_returned():
    data = _payload(1)
    frame = bytearray(zstd_frames.compress(data, 1, checksum=True))
    frame[-1] ^= 0xFF  # the checksum trailer
    with pytest.raises(zstandard.ZstdError):
        zstd_frames.decompress(bytes(frame), len(data))


def test_a_frame_holding_other_than_the_expected_bytes_is_refused_naming_both_sizes():
    frame = zstd_frames.compress(_payload(2, 1000), 1)
    with pytest.raises(zstandard.ZstdError, match="holds 1000 bytes, expected 999"):
        zstd_frames.decompress(frame, 999)


def test_threads_compressing_and_decompressing_at_once_each_get_their_own_exact_results():
    payloads = [_payload(seed) for seed in range(32)]

    def round_trip(data: bytes) -> bool:
        return zstd_frames.decompress(zstd_frames.compress(data, 1), len(data)) == data

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(round_trip, payloads * 4))


def test_residual_tuning_makes_image_residual_frames_smaller_than_level_1_and_numcodecs_reads_them(
    make_episode,
):
    frames = make_episode(frames=12)["cameras/front/rgb"][:]  # rendered scene frames
    residuals = [r.tobytes() for r in encode_gradient(frames, colour=True)]
    tuned = [zstd_frames.compress(r, 1, residuals=True) for r in residuals]
    plain = [zstd_frames.compress(r, 1) for r in residuals]
    assert sum(map(len, tuned)) < 0.99 * sum(map(len, plain))  # 3-5 % on these frames
    assert [bytes(numcodecs.Zstd().decode(t)) for t in tuned] == residuals
