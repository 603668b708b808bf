import numpy as np
import pytest

from genima_data.render.detect import (
    COLOUR_TOLERANCE,
    classify_colours,
    detect_blobs,
    detect_spheres,
    sphere_mask,
)
from genima_data.render.targets import TargetConfig

from .sphere_drawing import draw_striped_sphere

COLOURS = TargetConfig().sphere_colours()


def _scene(rng, size=128):
    return np.clip(rng.normal((120, 110, 100), 12, (size, size, 3)), 0, 255).astype(np.uint8)


def _rotation(rng):
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    return q


def test_centres_of_striped_spheres_are_found_to_a_fraction_of_a_pixel():
    rng = np.random.default_rng(0)
    errors, centroid_errors = [], []
    for _ in range(40):
        image = _scene(rng)
        centre, radius = rng.uniform(30, 98, 2), rng.uniform(4, 20)
        draw_striped_sphere(image, centre, radius, COLOURS["joint1"], _rotation(rng))
        blob = detect_blobs(image, COLOURS)["joint1"]
        errors.append(np.hypot(*(np.array(blob.centre) - centre)))
        v, u = np.nonzero(classify_colours(image, list(COLOURS.values())) == 2)
        centroid_errors.append(np.hypot(u.mean() - centre[0], v.mean() - centre[1]))
        assert abs(blob.radius - radius) < 1.0
    assert np.mean(errors) < 0.3 and max(errors) < 1.0
    assert np.mean(centroid_errors) > 2 * np.mean(
        errors
    )  # why the hull circle fit: stripes bias the centroid


def test_noise_of_generated_images_and_stray_specks_do_not_move_the_centre():
    rng = np.random.default_rng(1)
    errors = []
    for _ in range(30):
        observation = _scene(rng)
        target, centre = observation.copy(), rng.uniform(30, 98, 2)
        draw_striped_sphere(target, centre, 10, COLOURS["joint3"], _rotation(rng))
        noisy = np.clip(target + rng.normal(0, 10, target.shape), 0, 255).astype(np.uint8)
        far = (int(centre[1] + 25) % 128, int(centre[0] + 25) % 128)
        noisy[far] = COLOURS["joint3"]  # a stray pixel of the sphere's colour elsewhere
        blob = detect_blobs(noisy, COLOURS, background=observation)["joint3"]
        errors.append(np.hypot(*(np.array(blob.centre) - centre)))
    assert np.mean(errors) < 0.5 and max(errors) < 1.5


def test_scene_objects_of_a_sphere_colour_are_ignored_given_the_observation():
    rng = np.random.default_rng(2)
    observation = _scene(rng)
    observation[90:110, 10:30] = (150, 5, 5)  # a red object, close to the red sphere's colour
    target = observation.copy()
    draw_striped_sphere(target, (64.0, 40.0), 8, COLOURS["joint1"], np.eye(3))
    without = detect_blobs(target, COLOURS)["joint1"]
    with_background = detect_blobs(target, COLOURS, background=observation)["joint1"]
    assert np.hypot(with_background.centre[0] - 64, with_background.centre[1] - 40) < 0.5
    assert without.centre[1] > 80  # the larger red area wins without the observation


def test_colour_tolerance_bounds_which_pixels_count():
    image = np.zeros((1, 3, 3), np.uint8)
    red = np.array(COLOURS["joint1"], float)
    image[0, 0] = red + np.array([COLOUR_TOLERANCE - 1, 0, 0])
    image[0, 1] = red + np.array([COLOUR_TOLERANCE + 1, 0, 0])
    image[0, 2] = (77, 0, 0)  # half-way between red and a black stripe: neither
    assert classify_colours(image, list(COLOURS.values())).tolist() == [[2, -1, -1]]


def test_absent_colours_are_none_and_the_contract_returns_centres_by_colour_name():
    image = _scene(np.random.default_rng(3))
    draw_striped_sphere(image, (40.0, 50.0), 9, COLOURS["gripper_closed"], np.eye(3))
    centres = detect_spheres(image, TargetConfig())
    assert sorted(centres) == sorted(COLOURS)
    assert centres["gripper_open"] is None and centres["joint5"] is None
    assert np.hypot(centres["gripper_closed"][0] - 40, centres["gripper_closed"][1] - 50) < 0.5


def test_sphere_mask_covers_the_whole_disc_stripes_included():
    image = _scene(np.random.default_rng(4))
    draw_striped_sphere(image, (60.0, 60.0), 12, COLOURS["joint5"], np.eye(3))
    mask = sphere_mask(detect_blobs(image, COLOURS), image.shape[:2])
    v, u = np.mgrid[0:128, 0:128]
    disc = (u - 60) ** 2 + (v - 60) ** 2 <= 12**2
    assert (mask & disc).sum() / disc.sum() > 0.97 and (mask & ~disc).sum() < 0.05 * disc.sum()


def test_images_that_are_not_rgb_are_refused():
    with pytest.raises(ValueError, match="uint8 HxWx3"):
        detect_blobs(np.zeros((8, 8), np.uint8), COLOURS)
    with pytest.raises(ValueError, match="background is"):
        detect_blobs(np.zeros((8, 8, 3), np.uint8), COLOURS, background=np.zeros((4, 4, 3), np.uint8))
