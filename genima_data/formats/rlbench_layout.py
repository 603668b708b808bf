"""The on-disk layout of RLBench datasets and of the rendered-target folders GENIMA's scripts read.

One place for folder and file names, shared by the RLBench reader/writer and by target export (render's
``--export-png``), so both write the layout the official code expects:

* RLBench's dataset generator (``rlbench/backend/const.py``)::

      <root>/<task>/variation<V>/variation_descriptions.pkl
      <root>/<task>/variation<V>/episodes/episode<E>/low_dim_obs.pkl
      <root>/<task>/variation<V>/episodes/episode<E>/<cam>_{rgb,depth,mask}/<t>.png   (no zero padding)

  Forks (PerAct's) write ``all_variations/`` instead of ``variation<V>/`` with ``variation_number.pkl`` and
  ``variation_descriptions.pkl`` inside each episode folder.

* GENIMA's ``render/render_data.py`` writes two sibling datasets of the same shape, without depth and mask
  folders: ``<root>_rgb_rendered`` (``<cam>_rgb`` = spheres drawn on the observation, plus
  ``tiled_rgb/<t>.png`` and ``tiled_rgb_rendered/<t>.png``, 2x2 tiles for t < T-1, read by
  ``diffusion/rlbench_dataset``) and ``<root>_rnd_bg`` (``<cam>_rgb`` = spheres on random textures, read by
  the ACT controller).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

LOW_DIM_PICKLE = "low_dim_obs.pkl"
VARIATION_DESCRIPTIONS = "variation_descriptions.pkl"
VARIATION_NUMBER = "variation_number.pkl"
VARIATION_FOLDER = "variation{}"
ALL_VARIATIONS_FOLDER = "all_variations"
EPISODES_FOLDER = "episodes"
EPISODE_FOLDER = "episode{}"
IMAGE_FILE = "{}.png"
STREAM_KINDS = ("rgb", "depth", "mask")
RLBENCH_CAMERAS = ("left_shoulder", "right_shoulder", "overhead", "wrist", "front")

VARIATION_PATTERN = re.compile(r"^variation(\d+)$")
EPISODE_PATTERN = re.compile(r"^episode(\d+)$")
FRAME_PATTERN = re.compile(r"^(0|[1-9]\d*)\.png$")
STREAM_PATTERN = re.compile(r"^(?P<cam>.+)_(?P<kind>rgb|depth|mask)$")

RGB_RENDERED_SUFFIX = "_rgb_rendered"  # diffusion agent: spheres on the observation
RND_BG_SUFFIX = "_rnd_bg"  # controller: spheres on a random background
TILED_RGB = "tiled_rgb"
TILED_RGB_RENDERED = "tiled_rgb_rendered"
GENIMA_TILE_ORDER = (("wrist", "front"), ("right_shoulder", "left_shoulder"))


def variation_folder(variation: int | None) -> str:
    """``variation<V>``, or ``all_variations`` for None."""
    return ALL_VARIATIONS_FOLDER if variation is None else VARIATION_FOLDER.format(variation)


def episode_folder(root: Path, task: str, variation: int | None, episode: int) -> Path:
    """``<root>/<task>/variation<V>/episodes/episode<E>`` (``all_variations`` when variation is None)."""
    return root / task / variation_folder(variation) / EPISODES_FOLDER / EPISODE_FOLDER.format(episode)


def stream_folder(episode_dir: Path, camera: str, kind: str) -> Path:
    """``<episode_dir>/<camera>_<kind>`` for kind rgb, depth or mask."""
    return episode_dir / f"{camera}_{kind}"


def frame_file(folder: Path, t: int) -> Path:
    return folder / IMAGE_FILE.format(t)


def target_roots(root: Path) -> dict[str, Path]:
    """The sibling datasets GENIMA's scripts read, keyed by the store's target stream name."""
    return {
        "rgb": root.with_name(root.name + RGB_RENDERED_SUFFIX),
        "rnd_bg": root.with_name(root.name + RND_BG_SUFFIX),
    }


def tile_2x2(images: Mapping[str, np.ndarray], order=GENIMA_TILE_ORDER) -> np.ndarray:
    """GENIMA's 2x2 tile of four equally sized HxWx3 images at their own resolution."""
    return np.concatenate([np.concatenate([images[cam] for cam in row], axis=1) for row in order], axis=0)


def tile_cameras(order=GENIMA_TILE_ORDER) -> list[str]:
    return [cam for row in order for cam in row]
