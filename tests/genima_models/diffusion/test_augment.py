import numpy as np
import pytest

torch = pytest.importorskip("torch")

from genima_models.diffusion.augment import (  # noqa: E402
    color_jitter,
    hsv_to_rgb,
    random_shift,
    rgb_to_hsv,
)


def _image(seed: int = 0, size: int = 16) -> torch.Tensor:
    return torch.rand((3, size, size), generator=torch.Generator().manual_seed(seed))


def test_random_shift_moves_both_images_by_the_same_reflect_padded_offset():
    a, b = _image(0), _image(1)
    shifted_a, shifted_b = random_shift([a, b], 2, torch.Generator().manual_seed(3))
    padded_a = torch.nn.functional.pad(a[None], (2, 2, 2, 2), mode="reflect")[0]
    padded_b = torch.nn.functional.pad(b[None], (2, 2, 2, 2), mode="reflect")[0]
    offsets = [
        (dy, dx)
        for dy in range(5)
        for dx in range(5)
        if torch.equal(shifted_a, padded_a[:, dy : dy + 16, dx : dx + 16])
        and torch.equal(shifted_b, padded_b[:, dy : dy + 16, dx : dx + 16])
    ]
    assert len(offsets) == 1
    assert shifted_a.shape == a.shape


def test_random_shift_covers_every_offset_within_the_padding():
    image = torch.arange(16 * 16, dtype=torch.float32).reshape(1, 16, 16)
    generator = torch.Generator().manual_seed(0)
    corners = {float(random_shift([image], 2, generator)[0][0, 2, 2]) for _ in range(400)}
    assert len(corners) == 25  # (2 * 2 + 1)^2 offsets, all reachable


def test_hsv_round_trip_and_known_hues():
    image = _image(5, 32)
    assert torch.allclose(hsv_to_rgb(rgb_to_hsv(image)), image, atol=1e-5)
    primaries = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [0.5, 0.5, 0.5]]).T[:, :, None]
    hsv = rgb_to_hsv(primaries)[:, :, 0]
    assert torch.allclose(hsv[0], torch.tensor([0, 1 / 3, 2 / 3, 0]), atol=1e-6)
    assert torch.allclose(hsv[1], torch.tensor([1.0, 1, 1, 0]))


def test_color_jitter_without_spread_is_the_identity():
    image = _image(2)
    out = color_jitter(image, 0, 0, 0, 0, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out, image, atol=1e-6)


def test_color_jitter_brightness_stays_within_its_range():
    image = torch.full((3, 8, 8), 0.5)
    ratios = [
        float(color_jitter(image, 0.2, 0, 0, 0, generator=torch.Generator().manual_seed(s)).mean() / 0.5)
        for s in range(50)
    ]
    assert 0.8 <= min(ratios) < 0.9 and 1.1 < max(ratios) <= 1.2


def test_color_jitter_hue_rotates_colours_and_keeps_values_in_range():
    red = torch.tensor([1.0, 0.0, 0.0])[:, None, None].expand(3, 4, 4)
    hues = []
    for seed in range(30):
        out = color_jitter(red, 0, 0, 0, 0.05, generator=torch.Generator().manual_seed(seed))
        assert out.min() >= 0 and out.max() <= 1
        hue = float(rgb_to_hsv(out)[0, 0, 0])
        hues.append(hue if hue < 0.5 else hue - 1)
    assert max(np.abs(hues)) <= 0.05 + 1e-6 and np.std(hues) > 0.01
