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


# --- RLBench format (branch rlbench): real pickles from the shared sample, PNGs written next to them -----
RLBENCH_TEST_DATA = Path(__file__).resolve().parent / "data" / "rlbench"
RLBENCH_CAMERAS = ("left_shoulder", "right_shoulder", "overhead", "wrist", "front")
RLBENCH_DEPTH_CAMERAS = ("front", "wrist")  # depth and mask PNGs for these; rgb for all


def synthetic_rlbench_frame(camera: str, t: int, size: int = 128) -> dict[str, np.ndarray]:
    """Deterministic rgb (uint8), depth (metres, float64) and mask (handles) images for one frame."""
    yy, xx = np.mgrid[0:size, 0:size]
    phase = RLBENCH_CAMERAS.index(camera) * 17 + t * 3
    rgb = np.stack([(xx * 2 + phase) % 256, (yy * 2 + 2 * phase) % 256, (xx + yy + phase) % 256], -1)
    depth = 0.5 + 0.01 * xx + 0.005 * yy + 0.001 * t
    mask = np.where(xx < size // 2, 7 + t, np.where(yy < size // 2, 300, 70000 + camera.__len__()))
    return {"rgb": rgb.astype(np.uint8), "depth": depth, "mask": mask.astype(np.int32)}


def write_rlbench_pngs(root: Path, size: int = 128) -> None:
    """Write RLBench-encoded PNG folders of the right count next to every readable low_dim_obs.pkl."""
    from genima_data.formats import rlbench_images as images
    from genima_data.formats.rlbench_pickle import load_pickle

    for pickle_path in sorted(root.glob("*/*/episodes/*/low_dim_obs.pkl")):
        try:
            observations = load_pickle(pickle_path)._observations
        except Exception:  # the truncated sample episode stays without images
            continue
        for camera in RLBENCH_CAMERAS:
            kinds = ("rgb", "depth", "mask") if camera in RLBENCH_DEPTH_CAMERAS else ("rgb",)
            for kind in kinds:
                (pickle_path.parent / f"{camera}_{kind}").mkdir()
            for t, obs in enumerate(observations):
                frame = synthetic_rlbench_frame(camera, t, size)
                near, far = obs.misc[f"{camera}_camera_near"], obs.misc[f"{camera}_camera_far"]
                pixels = {
                    "rgb": frame["rgb"],
                    "depth": images.depth_to_png(frame["depth"], near, far),
                    "mask": images.mask_to_png(frame["mask"]),
                }
                for kind in kinds:
                    path = pickle_path.parent / f"{camera}_{kind}" / f"{t}.png"
                    path.write_bytes(images.encode_png_rgb(pixels[kind]))


@pytest.fixture(scope="session")
def rlbench_dir(tmp_path_factory) -> Path:
    """The bundled real pickles (variation0: episodes 3, 8, 9) with PNGs; copy before modifying."""
    root = tmp_path_factory.mktemp("rlbench") / "rlbench_data"
    shutil.copytree(RLBENCH_TEST_DATA, root, ignore=shutil.ignore_patterns("variation1"))
    write_rlbench_pngs(root)
    return root


@pytest.fixture
def rlbench_copy(rlbench_dir, tmp_path) -> Path:
    """A private copy of `rlbench_dir`."""
    dst = tmp_path / "rlbench_data"
    shutil.copytree(rlbench_dir, dst)
    return dst


def load_with_fake_rlbench(path: Path) -> dict:
    """Load `path` with plain pickle.load, as rlbench users do, in a fresh interpreter whose sys.modules
    holds stand-in ``rlbench.demo`` / ``rlbench.backend.observation`` modules; returns a summary."""
    import json
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        f"""
        import json, pickle, sys, types
        demo_mod = types.ModuleType("rlbench.demo")
        obs_mod = types.ModuleType("rlbench.backend.observation")
        class Demo:
            def __init__(self, observations, random_seed=None, num_reset_attempts=None):
                self._observations = observations
            def __len__(self):
                return len(self._observations)
            def __getitem__(self, i):
                return self._observations[i]
        class Observation:
            pass
        Demo.__module__, Observation.__module__ = demo_mod.__name__, obs_mod.__name__
        demo_mod.Demo, obs_mod.Observation = Demo, Observation
        for name in ("rlbench", "rlbench.backend"):
            sys.modules[name] = types.ModuleType(name)
        sys.modules["rlbench.demo"], sys.modules["rlbench.backend.observation"] = demo_mod, obs_mod
        with open({str(path)!r}, "rb") as f:
            demo = pickle.load(f)
        classes = sorted({{f"{{type(o).__module__}}.{{type(o).__name__}}" for o in [demo, *demo]}})
        print(json.dumps({{
            "classes": classes, "length": len(demo), "q2": demo[2].joint_positions.tolist(),
            "misc2": sorted(demo[2].misc), "reset": demo.num_reset_attempts,
            "attributes2": sorted(vars(demo[2])),
        }}))
        """
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return json.loads(run.stdout)


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
