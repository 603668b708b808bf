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


@pytest.fixture
def run_cli(capsys):
    """Run `genima-data ARGS...` in-process; returns exit code and captured output."""

    def run(*args: object) -> CliResult:
        capsys.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out = capsys.readouterr()
        return CliResult(code, out.out, out.err)

    return run


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
