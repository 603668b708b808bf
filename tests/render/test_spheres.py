"""The exact sphere rasteriser: masks, z-buffer, stripe texture, anti-aliasing, skipped spheres."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genima_data.render.spheres import (
    STRIPE_COLOURED,
    Sphere,
    render_sphere_frames,
    render_spheres,
    stripe_coloured,
)
from genima_data.schema import Distortion
from tests.render.conftest import pinhole

CYAN = np.array([5, 206, 235], np.uint8)
RED = np.array([154, 0, 0], np.uint8)


def rot_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def sphere(centre, radius, colour=CYAN, R=None, name="s") -> Sphere:
    return Sphere(name, np.asarray(centre, float), float(radius), np.eye(3) if R is None else R, colour)


def ray_classes(camera, centre, radius, rel_tol=1e-9):
    """Pixels whose centre ray certainly hits / certainly misses the sphere (a thin band is undecided)."""
    rays = camera.pixel_rays()
    c = np.asarray(centre, float)
    along = rays @ c
    perp2 = c @ c - along**2
    r2 = radius**2
    tol = rel_tol * max(c @ c, 1.0)
    hits = (along > 0) & (perp2 < r2 - tol)
    misses = (along <= 0) | (perp2 > r2 + tol)
    return hits, misses


lenses = st.one_of(
    st.just(Distortion(model="none")),
    st.builds(
        lambda k1, k2, p1, p2: Distortion(model="opencv", coeffs=[k1, k2, p1, p2]),
        st.floats(-0.3, 0.3),
        st.floats(-0.1, 0.1),
        st.floats(-0.01, 0.01),
        st.floats(-0.01, 0.01),
    ),
    st.builds(
        lambda *k: Distortion(model="fisheye", coeffs=list(k)), *[st.floats(-0.05, 0.05) for _ in range(4)]
    ),
)
cameras = st.builds(
    lambda h, w, fov, lens: pinhole(h, fov, width=w, distortion=lens),
    st.integers(4, 40),
    st.integers(4, 40),
    st.floats(20, 120),
    lenses,
)
centres = st.tuples(st.floats(-3, 3), st.floats(-3, 3), st.floats(-2, 4))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(camera=cameras, centre=centres, radius=st.floats(0.0, 2.0))
def test_mask_is_exactly_the_pixels_whose_ray_hits_the_sphere(camera, centre, radius):
    """Holds with lens distortion too: the culling blocks are built from the camera's own rays."""
    out = render_spheres(camera, [sphere(centre, radius)])
    mask = out.sphere_id == 0
    if np.linalg.norm(centre) <= radius:  # camera inside the sphere: culled like GENIMA's back faces
        assert not mask.any()
        return
    hits, misses = ray_classes(camera, centre, radius)
    assert mask[hits].all(), "a pixel whose ray hits the sphere was not drawn (culling too tight)"
    assert not mask[misses].any(), "a pixel whose ray misses the sphere was drawn"
    assert np.array_equal(out.alpha > 0, mask)
    assert (out.sphere_rgb[~mask] == 0).all()


def test_pixels_outside_the_lens_model_are_skipped_and_the_rest_stay_exact():
    # a fisheye lens whose model folds over inside the image: pixels beyond its valid region have no ray
    cam = pinhole(32, 150, distortion=Distortion(model="fisheye", coeffs=[0.5, -0.4, 0.2, -0.1]))
    rays = cam.pixel_rays()
    assert np.isnan(rays).any() and not np.isnan(rays).all()
    for centre in ([0, 0, 1.0], [0.8, 0.3, 0.6], [-0.5, -0.5, 0.4]):
        out = render_spheres(cam, [sphere(centre, 0.25)], supersample=3)
        hits, misses = ray_classes(cam, centre, 0.25)
        mask = out.sphere_id == 0
        assert mask[hits].all() and not mask[misses].any()
        assert not mask[np.isnan(rays).any(-1)].any()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(camera=cameras, a=centres, b=centres, ra=st.floats(0.01, 1.0), rb=st.floats(0.01, 1.0))
def test_each_pixel_shows_the_nearest_of_overlapping_spheres(camera, a, b, ra, rb):
    out = render_spheres(camera, [sphere(a, ra, CYAN), sphere(b, rb, RED)])
    rays = camera.pixel_rays()
    depths = []
    for c, r in ((a, ra), (b, rb)):
        c = np.asarray(c)
        along = rays @ c
        disc = along**2 - (c @ c - r * r)
        ok = (disc >= 0) & (along > 0) & (np.linalg.norm(c) > r)
        depths.append(np.where(ok, along - np.sqrt(np.where(ok, disc, 0)), np.inf))
    depth = np.stack(depths)
    with np.errstate(invalid="ignore"):  # inf - inf where both miss
        clear = ~(np.abs(depth[0] - depth[1]) <= 1e-6)  # skip near-ties
    both_miss = np.isinf(depth).all(0)
    expected = np.where(both_miss, -1, np.argmin(depth, axis=0))
    decided = clear & (both_miss | (np.min(depth, 0) < np.inf))
    hits_a, miss_a = ray_classes(camera, a, ra)
    hits_b, miss_b = ray_classes(camera, b, rb)
    certain = (hits_a | miss_a) & (hits_b | miss_b)
    sel = decided & certain
    assert np.array_equal(out.sphere_id[sel], expected[sel])


def test_z_buffer_does_not_depend_on_the_input_order(camera):
    near, far = sphere([0.02, 0, 1.0], 0.1, CYAN, name="near"), sphere([-0.02, 0, 1.3], 0.15, RED, name="far")
    ab, ba = render_spheres(camera, [near, far]), render_spheres(camera, [far, near])
    assert np.array_equal(ab.sphere_rgb, ba.sphere_rgb)
    assert np.array_equal(ab.sphere_id, np.where(ba.sphere_id >= 0, 1 - ba.sphere_id, -1))
    centre = (32, 33)  # the near sphere covers the image centre in front of the far one
    assert ab.sphere_id[centre] == 0
    assert (ab.sphere_id == 1).any(), "the far sphere should still show around the near one"


def test_flat_colours_are_exact_and_stripes_are_black():
    out = render_spheres(pinhole(64), [sphere([0, 0, 1.0], 0.3, RED)])
    colours = {tuple(c) for c in out.sphere_rgb[out.sphere_id == 0]}
    assert colours == {(154, 0, 0), (0, 0, 0)}


def stripe_profile(out, axis):
    """Fraction of coloured pixels per column (axis=0) or row (axis=1) inside the sphere."""
    inside = out.sphere_id == 0
    coloured = inside & out.sphere_rgb.any(-1)
    return coloured.sum(axis) / np.maximum(inside.sum(axis), 1), inside.any(axis)


# far away with a long lens the projection is nearly orthographic, so the stripe planes look straight
ORTHO_CAMERA, ORTHO_CENTRE, ORTHO_RADIUS = pinhole(96, fov_deg=2.0), [0, 0, 50.0], 0.6


def is_banded(profile: np.ndarray) -> bool:
    """Nearly every line is all band or all stripe (a pixel of perspective at band edges allowed)."""
    pure = (profile == 0) | (profile == 1)
    return pure.mean() > 0.9 and (np.minimum(profile, 1 - profile) <= 0.15).all()


def test_stripes_are_vertical_bands_along_the_sphere_local_x():
    out = render_spheres(ORTHO_CAMERA, [sphere(ORTHO_CENTRE, ORTHO_RADIUS, CYAN)])
    profile, present = stripe_profile(out, axis=0)  # per column
    assert is_banded(profile[present]), "columns mix band and stripe: the stripes are not vertical"
    assert (profile[present] == 1).sum() > 10 and (profile[present] == 0).sum() > 10


def test_stripes_turn_with_the_sphere_frame():
    cam = ORTHO_CAMERA
    turned = render_spheres(cam, [sphere(ORTHO_CENTRE, ORTHO_RADIUS, CYAN, R=rot_z(np.pi / 2))])
    per_row, present = stripe_profile(turned, axis=1)
    assert is_banded(per_row[present]), "turned 90° about the view axis, the bands must be rows"
    straight = render_spheres(cam, [sphere(ORTHO_CENTRE, ORTHO_RADIUS, CYAN)])
    assert not np.array_equal(turned.sphere_rgb, straight.sphere_rgb)
    flipped = render_spheres(cam, [sphere(ORTHO_CENTRE, ORTHO_RADIUS, CYAN, R=rot_z(np.pi))])
    flipped_profile, _ = stripe_profile(flipped, axis=0)
    straight_profile, _ = stripe_profile(straight, axis=0)
    assert np.abs(flipped_profile - straight_profile[::-1]).mean() < 0.05, "180° mirrors the bands"


def test_stripe_bands_follow_genima_texture_layout():
    widths = np.diff(np.flatnonzero(np.diff(np.r_[-1, STRIPE_COLOURED.astype(int), -1]) != 0))
    assert widths.tolist() == [24, 24, 24, 24, 24, 24, 24, 24, 24, 40]
    assert STRIPE_COLOURED[:24].all() and not STRIPE_COLOURED[24:48].any()
    assert stripe_coloured(np.array([0.0, 0.1, 0.99, 1.0])).tolist() == [True, False, False, False]


def test_columns_carry_the_band_of_their_texture_coordinate():
    # far away with a long lens the projection is nearly orthographic: column x maps to u = (x/r + 1)/2
    cam = pinhole(200, fov_deg=2.0)
    out = render_spheres(cam, [sphere([0, 0, 50.0], 0.8, CYAN)])
    f, cx = cam.K[0, 0], cam.K[0, 2]
    cols = np.flatnonzero((out.sphere_id == 0).any(0))
    row = round(float(cam.K[1, 2]))
    u = ((cols - cx) * 50.0 / f / 0.8 + 1) / 2
    expected = stripe_coloured(u)
    got = out.sphere_rgb[row, cols].any(-1)
    edge = np.abs(u * 256 - np.round(u * 256 / 24) * 24) < 2  # band edges: allow the pixel either side
    assert np.array_equal(got[~edge], expected[~edge])


@pytest.mark.parametrize(
    "centre,radius",
    [
        ([0, 0, -1.0], 0.2),  # behind the camera
        ([5.0, 0, 1.0], 0.2),  # outside the image
        ([0, 0, 1.0], 0.0),  # zero radius
        ([0, 0, 1.0], -0.1),  # negative radius
        ([np.nan, 0, 1.0], 0.1),  # not a number
        ([0, 0, 0.05], 0.1),  # camera inside
    ],
    ids=["behind", "off-image", "zero-radius", "negative-radius", "nan", "camera-inside"],
)
def test_unrenderable_spheres_are_skipped_without_error(camera, centre, radius):
    out = render_spheres(camera, [sphere(centre, radius), sphere([0, 0, 1.0], 0.05, RED)], supersample=3)
    assert not (out.sphere_id == 0).any()
    assert (out.sphere_id == 1).any(), "the valid sphere must still render"


def test_no_spheres_gives_an_empty_image(camera):
    out = render_spheres(camera, [])
    assert out.sphere_rgb.shape == (64, 64, 3) and not out.sphere_rgb.any()
    assert (out.sphere_id == -1).all() and not out.alpha.any()


def test_antialiasing_keeps_the_mask_and_covers_the_exact_area():
    cam = pinhole(64, fov_deg=60)
    d, r = 1.0, 0.12
    hard = render_spheres(cam, [sphere([0, 0, d], r)])
    soft = render_spheres(cam, [sphere([0, 0, d], r)], supersample=5)
    assert np.array_equal(hard.sphere_id, soft.sphere_id)
    theta = np.arcsin(r / d)
    area = np.pi * (cam.K[0, 0] * np.tan(theta)) ** 2
    assert soft.alpha.sum() == pytest.approx(area, rel=0.01)
    partial = (soft.alpha > 0) & (soft.alpha < 1)
    assert partial.sum() > 0
    interior = hard.sphere_id == 0
    interior &= (
        np.roll(interior, 2, 0)
        & np.roll(interior, -2, 0)
        & np.roll(interior, 2, 1)
        & np.roll(interior, -2, 1)
    )
    assert (soft.alpha[interior] == 1).all(), "only rim pixels are supersampled"


def test_frames_render_like_single_images(camera):
    rng = np.random.default_rng(3)
    centres = np.stack(
        [rng.uniform(-0.3, 0.3, (5, 3)), rng.uniform(-0.3, 0.3, (5, 3)), rng.uniform(0.6, 1.5, (5, 3))], -1
    )
    R = np.broadcast_to(rot_z(0.3), (5, 3, 3, 3))
    colours = np.broadcast_to(np.stack([CYAN, RED, CYAN]), (5, 3, 3))
    batch = render_sphere_frames(camera, centres, np.array([0.08, 0.05, 0.0]), R, colours, supersample=2)
    for f in range(5):
        single = render_spheres(
            camera, [sphere(centres[f, s], [0.08, 0.05, 0.0][s], colours[f, s], R[f, s]) for s in range(3)], 2
        )
        assert np.array_equal(batch.sphere_rgb[f], single.sphere_rgb)
        assert np.array_equal(batch.alpha[f], single.alpha)
        assert np.array_equal(batch.sphere_id[f], single.sphere_id)
