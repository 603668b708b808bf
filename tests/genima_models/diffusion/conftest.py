"""Fixtures of the diffusion-agent tests: a small dataset with stored targets and one trained tiny run."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from genima_data.demo import build_demo
from genima_data.store import open_dataset

pytest.importorskip("diffusers")

TILE = 32  # tests run the tiny preset on 64x64 tilings: 8x8 latents
CAMERAS = ("front", "left_shoulder", "right_shoulder", "wrist")
RED = (154, 0, 0)


def add_marker_targets(path: Path) -> None:
    """Store targets/<cam>/rgb: the observation with a red square (a stand-in for rendered spheres)."""
    with open_dataset(path, "a") as ds:
        for eid in ds.episode_ids:
            with ds.episode(eid) as ep:
                arrays = {}
                for cam in CAMERAS:
                    target = ep.load(f"cameras/{cam}/rgb").copy()
                    target[:, 10:16, 12:18] = RED
                    arrays[f"targets/{cam}/rgb"] = target
            ds.add_arrays(eid, arrays)
        ds.commit()


@pytest.fixture(scope="session")
def pairs_dataset(tmp_path_factory) -> Path:
    """Two 6-frame demo episodes, 32x32 cameras, with stored targets; copy before modifying."""
    path = tmp_path_factory.mktemp("diffusion") / "pairs.zarr"
    build_demo(path, episodes=2, frames=6, size=32).close()
    add_marker_targets(path)
    return path


@pytest.fixture
def pairs_copy(pairs_dataset, tmp_path) -> Path:
    dst = tmp_path / "pairs.zarr"
    shutil.copytree(pairs_dataset, dst)
    return dst


@pytest.fixture(scope="session")
def tiny_run(pairs_dataset, tmp_path_factory) -> Path:
    """A tiny-preset run trained for 2 steps on `pairs_dataset` (checkpoint-2)."""
    from genima_models.diffusion.train import train_diffusion

    out = tmp_path_factory.mktemp("diffusion") / "run"
    train_diffusion(pairs_dataset, out, preset="tiny", steps=2, tile_size=TILE, progress=False)
    return out


def observation(path: Path, episode: str = "episode0", t: int = 0) -> dict[str, np.ndarray]:
    """Camera images of one frame of a dataset."""
    with open_dataset(path) as ds, ds.episode(episode) as ep:
        return {cam: ep.frame(f"cameras/{cam}/rgb", t) for cam in CAMERAS}
