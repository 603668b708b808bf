"""Random backgrounds (procedural and folders) and GENIMA's 2x2 tiling."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genima_data.errors import GenimaDataError
from genima_data.render.compose import (
    GENIMA_TILE_ORDER,
    TextureSource,
    random_background_target,
    spheres_over,
    tile_2x2,
    untile_2x2,
)
from genima_data.render.spheres import RenderedSpheres

CAMERAS = ("wrist", "front", "right_shoulder", "left_shoulder")


def solid_sphere_layer(size=32, colour=(200, 40, 10)) -> RenderedSpheres:
    """A fully covered disc of one colour, alpha 1 inside, 0 outside."""
    yy, xx = np.mgrid[0:size, 0:size]
    inside = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 4) ** 2
    rgb = np.zeros((size, size, 3), np.uint8)
    rgb[inside] = colour
    return RenderedSpheres(rgb, inside.astype(np.float32), np.where(inside, 0, -1).astype(np.int16))


@settings(max_examples=30, deadline=None)
@given(size=st.integers(1, 20), batch=st.lists(st.integers(1, 3), max_size=2), seed=st.integers(0, 100))
def test_untile_inverts_tile(size, batch, seed):
    rng = np.random.default_rng(seed)
    images = {c: rng.integers(0, 256, (*batch, size, size, 3), dtype=np.uint8) for c in CAMERAS}
    tiled = tile_2x2(images, tile_size=size)
    assert tiled.shape == (*batch, 2 * size, 2 * size, 3)
    back = untile_2x2(tiled)
    assert set(back) == set(CAMERAS)
    for c in CAMERAS:
        assert np.array_equal(back[c], images[c])


def test_tiles_follow_genimas_order():
    assert GENIMA_TILE_ORDER == (("wrist", "front"), ("right_shoulder", "left_shoulder"))
    images = {c: np.full((4, 4, 3), i, np.uint8) for i, c in enumerate(CAMERAS)}
    tiled = tile_2x2(images, tile_size=4)
    assert tiled[0, 0, 0] == 0 and tiled[0, 4, 0] == 1  # wrist top-left, front top-right
    assert (
        tiled[4, 0, 0] == 2 and tiled[4, 4, 0] == 3
    )  # right_shoulder bottom-left, left_shoulder bottom-right


def test_tiling_resizes_to_the_tile_size():
    images = {c: np.full((128, 128, 3), 100, np.uint8) for c in CAMERAS}
    assert tile_2x2(images).shape == (512, 512, 3)


def test_tiling_without_a_camera_names_it():
    images = {c: np.zeros((8, 8, 3), np.uint8) for c in CAMERAS[:3]}
    with pytest.raises(GenimaDataError, match="missing \\['left_shoulder'\\]"):
        tile_2x2(images, tile_size=8)


def test_untiling_an_odd_image_is_an_error():
    with pytest.raises(GenimaDataError, match="even height and width"):
        untile_2x2(np.zeros((7, 8, 3), np.uint8))


def test_random_backgrounds_reproduce_with_the_same_seed():
    layer = solid_sphere_layer()
    source = TextureSource(seed=3)

    def draw(seed):
        rng = np.random.default_rng(seed)
        return random_background_target(layer, source.sample(rng, (32, 32)), rng)

    assert np.array_equal(draw(7), draw(7))
    assert not np.array_equal(draw(7), draw(8))
    other = TextureSource(seed=4).sample(np.random.default_rng(7), (32, 32))
    assert not np.array_equal(source.sample(np.random.default_rng(7), (32, 32)), other)


def test_random_background_replaces_every_non_sphere_pixel_and_weights_spheres_in_genimas_range():
    layer = solid_sphere_layer()
    inside = layer.alpha == 1
    colour = np.array([200, 40, 10.0])
    background = np.full((32, 32, 3), (20, 220, 120), np.uint8)
    weights = []
    for seed in range(200):
        out = random_background_target(layer, background, np.random.default_rng(seed))
        assert np.array_equal(out[~inside], background[~inside])
        # out = w * colour + (1 - w) * background on sphere pixels: recover w from the red channel
        weights.append((out[inside][:, 0].astype(float).mean() - 20) / (colour[0] - 20))
    weights = np.array(weights)
    assert weights.min() >= 0.7 - 0.01 and weights.max() <= 1.0 + 0.01
    assert weights.max() - weights.min() > 0.2, "the weight must vary between draws"


def test_spheres_over_keeps_hard_pixels_exact():
    layer = solid_sphere_layer()
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    out = spheres_over(layer.sphere_rgb, layer.alpha, image)
    inside = layer.alpha == 1
    assert np.array_equal(out[inside], layer.sphere_rgb[inside])
    assert np.array_equal(out[~inside], image[~inside])


def test_spheres_over_blends_partial_coverage():
    rgb = np.array([[[100, 0, 0]]], np.uint8)  # premultiplied: colour (200, 0, 0) at alpha 0.5
    out = spheres_over(rgb, np.array([[0.5]], np.float32), np.array([[[0, 0, 200]]], np.uint8))
    assert out.tolist() == [[[100, 0, 100]]]


def test_spheres_over_rejects_mismatched_images():
    layer = solid_sphere_layer()
    with pytest.raises(GenimaDataError, match="image is \\(16, 16, 3\\)"):
        spheres_over(layer.sphere_rgb, layer.alpha, np.zeros((16, 16, 3), np.uint8))


def test_procedural_textures_vary_and_fill_the_requested_size():
    source = TextureSource()
    rng = np.random.default_rng(0)
    samples = [source.sample(rng, (24, 40)) for _ in range(20)]
    assert all(s.shape == (24, 40, 3) and s.dtype == np.uint8 for s in samples)
    assert len({s.tobytes() for s in samples}) == 20
    assert np.mean([s.std() for s in samples]) > 10, "textures should not be flat"


def test_folder_textures_are_the_folders_images_resized(tmp_path):
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    for i, c in enumerate(colours):
        cv2.imwrite(str(tmp_path / f"tex{i}.png"), np.full((50, 70, 3), c[::-1], np.uint8))  # BGR on disk
    (tmp_path / "notes.txt").write_text("not an image")
    source = TextureSource(tmp_path)
    assert source.describe()["images"] == 3
    rng = np.random.default_rng(0)
    seen = {tuple(source.sample(rng, (16, 16))[0, 0]) for _ in range(30)}
    assert seen == set(colours)


def test_bad_texture_folders_are_clear_errors(tmp_path):
    with pytest.raises(GenimaDataError, match="texture folder does not exist"):
        TextureSource(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(GenimaDataError, match="no images"):
        TextureSource(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(GenimaDataError, match="cannot read texture image"):
        TextureSource(tmp_path / "bad").sample(np.random.default_rng(0), (8, 8))
