"""Whole-pixel moves: the same pixels as numpy's row indexing, and no silent write into a copy."""

from __future__ import annotations

import numpy as np
import pytest

from genima_data.render.pixels import put_pixels, take_pixels


def test_take_and_put_move_the_same_pixels_as_row_indexing():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (2, 5, 7, 3), np.uint8)
    index = np.array([0, 9, 34, 69, 9])
    assert np.array_equal(take_pixels(image, index), image.reshape(-1, 3)[index])
    values = rng.integers(0, 256, (5, 3), np.uint8)
    expected = image.copy()
    expected.reshape(-1, 3)[index[:4]] = values[:4]
    put_pixels(image, index[:4], values[:4])
    assert np.array_equal(image, expected)


def test_put_into_a_strided_view_is_refused_instead_of_writing_a_copy():
    image = np.zeros((4, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="C-contiguous uint8"):
        put_pixels(image[:, ::2], np.array([0]), np.full((1, 3), 7, np.uint8))
    assert not image.any()
