import dataclasses

import pytest

torch = pytest.importorskip("torch")

from genima_models.act.augment import augment_images, random_crop  # noqa: E402
from genima_models.act.config import TrainConfig  # noqa: E402

pytestmark = pytest.mark.train


def test_augmentation_switched_off_returns_the_images_unchanged():
    images = torch.rand(2, 3, 3, 16, 16)
    off = TrainConfig(crop_fraction=1.0, brightness=0.0, contrast=0.0, saturation=0.0, noise_std=0.0)
    torch.testing.assert_close(augment_images(images, off), images)


def test_each_image_gets_its_own_augmentation_and_stays_in_range():
    images = torch.rand(1, 1, 3, 16, 16).expand(4, 2, -1, -1, -1).contiguous()
    config = dataclasses.replace(TrainConfig(), brightness=0.5, noise_std=0.0)
    out = augment_images(images, config, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.min() >= 0 and out.max() <= 1
    flat = out.flatten(0, 1)
    assert all(not torch.allclose(flat[0], flat[i]) for i in range(1, len(flat)))


def test_random_crop_zooms_into_a_window_of_the_image():
    ramp = torch.linspace(0, 1, 32).expand(1, 3, 32, 32).contiguous()  # brightness grows left to right
    cropped = random_crop(ramp, 0.5, torch.Generator().manual_seed(0))
    width = cropped[0, 0, 0, -1] - cropped[0, 0, 0, 0]
    assert width == pytest.approx(0.5, abs=1e-4)  # half the ramp spread over the full width
