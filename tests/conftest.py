"""Shared fixtures: small manifests and episodes, the demo dataset in both back-ends, a CLI runner."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from genima_data.cli import main
from genima_data.demo import build_demo, demo_episode, demo_manifest
from genima_data.episode import Episode
from genima_data.schema import Manifest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RLBENCH_SAMPLE = SHARED_DATA / "rlbench_reach_target"


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


def cli_runner(entry_point, capsys):
    """A function running `entry_point([ARGS...])` in-process, returning exit code and captured output."""

    def run(*args: object) -> CliResult:
        capsys.readouterr()
        try:
            entry_point([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out = capsys.readouterr()
        return CliResult(code, out.out, out.err)

    return run


@pytest.fixture
def run_cli(capsys):
    """Run `genima-data ARGS...` in-process; returns exit code and captured output."""
    return cli_runner(main, capsys)


@pytest.fixture
def manifest() -> Manifest:
    return demo_manifest(size=32)


@pytest.fixture
def make_episode():
    """Demo episodes at test size (32x32 images, 12 frames) by index."""

    def make(index: int = 0, frames: int = 12) -> Episode:
        return demo_episode(index, frames=frames, size=32)

    return make


@pytest.fixture(scope="session")
def demo_store_dir(tmp_path_factory) -> Path:
    """The demo dataset, built once per session in both back-ends; copy before modifying."""
    root = tmp_path_factory.mktemp("demo")
    build_demo(root / "sample.zarr", episodes=3, frames=24, size=32)
    build_demo(root / "sample_h5", episodes=3, frames=24, size=32)
    return root


@pytest.fixture(params=["sample.zarr", "sample_h5"], ids=["zarr", "hdf5"])
def demo_copy(request, demo_store_dir, tmp_path) -> Path:
    """A private copy of the demo dataset in each back-end."""
    dst = tmp_path / request.param
    shutil.copytree(demo_store_dir / request.param, dst)
    return dst


def assert_episodes_equal(a: Episode, b: Episode) -> None:
    """Same metadata, same array paths, bit-identical values and dtypes."""
    assert a.meta == b.meta
    assert a.paths() == b.paths()
    for key in a.paths():
        x, y = np.asarray(a[key][...]), np.asarray(b[key][...])
        assert x.dtype == y.dtype, key
        assert x.shape == y.shape, key
        assert np.array_equal(x, y, equal_nan=True), key


# --- render: an HDF5-only copy for tests whose subject is not the store back-end
@pytest.fixture
def demo_h5(demo_store_dir, tmp_path) -> Path:
    """A private HDF5 copy of the demo dataset."""
    dst = tmp_path / "sample_h5"
    shutil.copytree(demo_store_dir / "sample_h5", dst)
    return dst


# ---------------------------------------------------------------- formats (ALOHA, LeRobot): foreign datasets


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 images or stacks, in dB (inf when identical)."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.fixture(scope="session")
def lerobot_demo(demo_store_dir, tmp_path_factory) -> Path:
    """The demo dataset (3 episodes, 24 frames, 32x32) written as LeRobot v3 once; copy before modifying."""
    from genima_data.convert import convert

    path = tmp_path_factory.mktemp("lerobot") / "demo_lerobot"
    convert(demo_store_dir / "sample.zarr", path, to="lerobot")
    return path


@pytest.fixture
def lerobot_copy(lerobot_demo, tmp_path) -> Path:
    """A private copy of `lerobot_demo`."""
    dst = tmp_path / "lerobot"
    shutil.copytree(lerobot_demo, dst)
    return dst


# ------------------------------------------------------------------------------------------ ACT controller
# (genima_models, issue 5): demo stores carrying pre-rendered controller targets whose pixels encode
# (camera, frame), so a test can tell which image a sample holds.
ACT_FRAMES = 24


def target_pixel(camera_index: int, t: int) -> int:
    """Value of every pixel of the test target of camera `camera_index` at frame t."""
    return 10 * camera_index + t


def add_test_targets(path: Path) -> None:
    """Write targets/<cam>/rnd_bg into every episode of the dataset at `path`."""
    from genima_data.store import open_dataset

    with open_dataset(path, mode="a") as ds:
        for summary in ds.manifest.episodes:
            T = summary.length
            size = (ds.manifest.cameras[0].height, ds.manifest.cameras[0].width)
            ds.add_arrays(
                summary.episode_id,
                {
                    f"targets/{cam.name}/rnd_bg": np.broadcast_to(
                        np.array([target_pixel(c, t) for t in range(T)], np.uint8)[:, None, None, None],
                        (T, *size, 3),
                    ).copy()
                    for c, cam in enumerate(ds.manifest.cameras)
                },
            )


@pytest.fixture(scope="session")
def act_store_dir(tmp_path_factory) -> Path:
    """Demo datasets (3 episodes x 24 frames, 32x32) with test targets, both back-ends; do not modify."""
    root = tmp_path_factory.mktemp("act")
    for name in ("sample.zarr", "sample_h5"):
        build_demo(root / name, episodes=3, frames=ACT_FRAMES, size=32).close()
        add_test_targets(root / name)
    return root


@pytest.fixture(params=["sample.zarr", "sample_h5"], ids=["zarr", "hdf5"])
def act_store(request, act_store_dir) -> Path:
    return act_store_dir / request.param


@pytest.fixture
def run_train_cli(capsys):
    """Run `genima-train ARGS...` in-process; returns exit code and captured output."""
    from genima_models.cli import main as train_main

    return cli_runner(train_main, capsys)


ACT_TEST_CAMERAS = ["front", "wrist"]


@pytest.fixture
def make_act_model():
    """Tiny ACT models over ACT_TEST_CAMERAS with known joint statistics (mean -1…1, std 0.1…0.7)."""
    import torch

    from genima_models.act.config import preset_configs
    from genima_models.act.model import ACTModel
    from genima_models.data import JointStats

    def make(seed: int = 0):
        torch.manual_seed(seed)
        config, _ = preset_configs("tiny")
        config.cameras = list(ACT_TEST_CAMERAS)
        return ACTModel.build(config, JointStats(np.linspace(-1, 1, 7), np.linspace(0.1, 0.7, 7), 100))

    return make


@pytest.fixture(scope="session")
def act_run(act_store_dir, tmp_path_factory):
    """A short tiny-preset training run on the zarr test store (do not modify)."""
    from genima_models.act.train import train_act

    out = tmp_path_factory.mktemp("act_run") / "run"
    train_act(
        act_store_dir / "sample.zarr",
        out,
        preset="tiny",
        steps=4,
        batch_size=4,
        cameras=ACT_TEST_CAMERAS,
        log_every=2,
        progress=False,
    )
    return out


# ---------------------------------------------------------------- vendor: raw recordings (branch `vendor`)
VENDOR_EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "vendor"


def vendor_generator() -> dict:
    """The functions of examples/vendor/make_vendor_data.py (the example data generator)."""
    import runpy

    return runpy.run_path(str(VENDOR_EXAMPLES / "make_vendor_data.py"))


@pytest.fixture(scope="session")
def vendor_a_dir(tmp_path_factory) -> Path:
    """Vendor A's raw recording (2 episodes, 30 frames, 48x48), generated once; copy before modifying."""
    return vendor_generator()["write_vendor_a"](tmp_path_factory.mktemp("raw") / "vendor_a")


@pytest.fixture
def vendor_a(vendor_a_dir, tmp_path) -> tuple[Path, dict]:
    """A private copy of vendor A's recording and its mapping as a dict (write it with `write_mapping`)."""
    import yaml

    root = tmp_path / "vendor_a"
    shutil.copytree(vendor_a_dir, root)
    return root, yaml.safe_load((VENDOR_EXAMPLES / "vendor_a.yaml").read_text())


def write_mapping(path: Path, mapping: dict) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(mapping, sort_keys=False))
    return path
