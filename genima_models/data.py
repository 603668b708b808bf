"""Torch datasets over the canonical store (zarr or HDF5): what GENIMA's two stages train on.

Generic parts, shared by every model's dataset:

* `episode_split` — train/val episode ids from ``Manifest.splits`` when present, else a deterministic split.
* `FrameIndex` — a flat sample index over (episode, frame) pairs.
* `StoreHandle` — opens the store lazily, once per process, so DataLoader workers never share a file handle.

The ACT controller's dataset, `ACTDataset`, yields per sample the camera images (pre-rendered
``targets/<cam>/rnd_bg``, or rendered on the fly from the store's poses and calibration with a random
texture), proprio ``[gripper_open, joints]`` at t, the action chunk of ``[joints, gripper_open]`` at
t+1 … t+chunk padded at the episode end with a padding mask, and the instruction. Values are in robot
units; models normalise with `JointStats` (exact statistics of the training episodes).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import torch.utils.data

from genima_data.episode import Episode
from genima_data.errors import GenimaDataError
from genima_data.schema import Manifest
from genima_data.stats import FieldStats, compute_stats
from genima_data.store import Dataset, open_dataset
from genima_models.errors import TrainingDataError

DEFAULT_VAL_FRACTION = 0.1
MIN_JOINT_STD = 1e-2  # rad; a joint that never moves would otherwise blow up its z-score (ACT clips the same)
OPEN_EPISODES = 4  # episodes kept open per worker for on-the-fly rendering
TargetMode = Literal["auto", "prerendered", "on-the-fly"]
TARGET_MODES: tuple[str, ...] = ("auto", "prerendered", "on-the-fly")


# ---------------------------------------------------------------------------------------------- generic
def episode_split(
    manifest: Manifest,
    split: str,
    *,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    seed: int = 0,
    file: str | Path | None = None,
) -> list[str]:
    """Episode ids of `split` ('train', 'val', 'all' or any name in ``manifest.splits``).

    ``manifest.splits`` wins; with only one of train/val listed, the other is its complement. Without
    splits, a seeded permutation of the episodes puts ``round(n * val_fraction)`` of them (at least one when
    there are two or more) in 'val': the same dataset and seed always give the same split. `file` (the
    dataset) is named in the errors.
    """
    ids = [e.episode_id for e in manifest.episodes]
    if split == "all":
        return ids
    known = set(ids)
    listed = manifest.splits
    if split in listed:
        missing = [eid for eid in listed[split] if eid not in known]
        if missing:
            raise TrainingDataError(
                f"lists episodes not in the dataset: {missing[:5]}", file=file, field=f"splits.{split}"
            )
        return list(listed[split])
    other = {"train": "val", "val": "train"}.get(split)
    if other is None:
        raise TrainingDataError(
            f"no split '{split}' (splits: {sorted(listed) or 'none'}; 'train', 'val' and 'all' always work)",
            file=file,
            field="splits",
        )
    if other in listed:
        excluded = set(listed[other])
        return [eid for eid in ids if eid not in excluded]
    n_val = 0 if len(ids) < 2 else max(1, round(len(ids) * val_fraction))
    val = {ids[i] for i in np.random.default_rng(seed).permutation(len(ids))[:n_val]}
    return [eid for eid in ids if (eid in val) == (split == "val")]


class FrameIndex:
    """Sample i -> (episode_id, t) over episodes contributing ``counts[episode_id]`` frames (t from 0)."""

    def __init__(self, counts: Mapping[str, int]) -> None:
        self.episode_ids = [eid for eid, n in counts.items() if n > 0]
        self._starts = np.cumsum([0, *(counts[eid] for eid in self.episode_ids)])

    def __len__(self) -> int:
        return int(self._starts[-1])

    def locate(self, index: int) -> tuple[str, int]:
        if not 0 <= index < len(self):
            raise IndexError(f"sample {index} out of range for {len(self)} samples")
        e = int(np.searchsorted(self._starts, index, side="right")) - 1
        return self.episode_ids[e], int(index - self._starts[e])


class StoreHandle:
    """A store opened on first use in each process; pickles as its path (what DataLoader workers get)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._store: Dataset | None = None
        self._pid: int | None = None

    def get(self) -> Dataset:
        if self._store is None or self._pid != os.getpid():
            self._store = open_dataset(self.path)
            self._pid = os.getpid()
        return self._store

    def close(self) -> None:
        if self._store is not None and self._pid == os.getpid():
            self._store.close()
        self._store = None

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "_store": None, "_pid": None}


class OpenEpisodes:
    """The `limit` most recently used episodes of a store, kept open; a forked process starts afresh (its
    parent's handles are never used or closed there)."""

    def __init__(self, limit: int = OPEN_EPISODES) -> None:
        self.limit = limit
        self._episodes: OrderedDict[str, Episode] = OrderedDict()
        self._pid = os.getpid()

    def get(self, store: Dataset, episode_id: str) -> Episode:
        if self._pid != os.getpid():
            self._episodes, self._pid = OrderedDict(), os.getpid()
        episode = self._episodes.pop(episode_id, None) or store.episode(episode_id)
        self._episodes[episode_id] = episode
        while len(self._episodes) > self.limit:
            self._episodes.popitem(last=False)[1].close()
        return episode

    def close(self) -> None:
        if self._pid == os.getpid():
            while self._episodes:
                self._episodes.popitem()[1].close()
        self._episodes = OrderedDict()

    def __getstate__(self) -> dict[str, Any]:
        return {"limit": self.limit, "_episodes": OrderedDict(), "_pid": None}


def resize_image(image: np.ndarray, size: int | None) -> np.ndarray:
    """An HxWx3 uint8 image scaled to size x size (area averaging when shrinking); unchanged for None."""
    if size is None or image.shape[:2] == (size, size):
        return image
    shrinking = size < min(image.shape[:2])
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def stack_camera_images(images: Sequence[np.ndarray], size: int | None) -> np.ndarray:
    """HxWx3 uint8 images of the cameras -> (cameras, 3, H, W) uint8, resized to `size` when given."""
    resized = [resize_image(np.asarray(img), size) for img in images]
    shapes = {img.shape for img in resized}
    if len(shapes) > 1:
        raise TrainingDataError(f"camera images differ in size {sorted(shapes)}; set an image size")
    return np.ascontiguousarray(np.stack(resized).transpose(0, 3, 1, 2))


def episode_instruction(manifest: Manifest, task: str, instruction: str) -> str:
    """The episode's instruction, else its task's first instruction, else the task name in words."""
    if instruction:
        return instruction
    spec = manifest.task(task)
    return spec.instructions[0] if spec and spec.instructions else task.replace("_", " ")


def robot_sample(
    joints: np.ndarray, gripper: np.ndarray, t: int, chunk_size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Proprio [gripper_open, joints] at t, the chunk [joints, gripper_open] at t+1 … t+chunk_size and its
    padding mask; steps past the episode end repeat the last frame and are masked."""
    future = np.arange(t + 1, t + 1 + chunk_size)
    is_pad = future > len(joints) - 1
    future = np.minimum(future, len(joints) - 1)
    proprio = np.concatenate([gripper[t : t + 1], joints[t]]).astype(np.float32)
    actions = np.concatenate([joints[future], gripper[future, None]], axis=1).astype(np.float32)
    return proprio, actions, is_pad


# ---------------------------------------------------------------------------------------------- stats
@dataclass(frozen=True)
class JointStats:
    """Per-joint mean and standard deviation (radians) for z-scoring; the gripper is left as is."""

    mean: np.ndarray
    std: np.ndarray
    count: int

    @classmethod
    def from_field(cls, joints: FieldStats, *, min_std: float = MIN_JOINT_STD) -> JointStats:
        """Mean and population std of `genima_data.stats` joint statistics, std floored at `min_std`."""
        return cls(joints.mean, np.maximum(joints.std, min_std), int(joints.count.min()))

    @classmethod
    def of_episodes(cls, path: str | Path, episode_ids: Sequence[str]) -> JointStats:
        """Exact statistics over every frame of the episodes' ``robot/joint_positions``."""
        stats = compute_stats(path, episodes=episode_ids, image_frames=0)
        return cls.from_field(stats.field("robot/joint_positions"))

    def to_dict(self) -> dict[str, Any]:
        return {"joint_mean": self.mean.tolist(), "joint_std": self.std.tolist(), "count": self.count}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JointStats:
        return cls(
            np.asarray(data["joint_mean"], np.float64),
            np.asarray(data["joint_std"], np.float64),
            int(data["count"]),
        )


# ---------------------------------------------------------------------------------------------- targets
def target_path(camera: str) -> str:
    """Store path of the controller's input: spheres on a random background."""
    return f"targets/{camera}/rnd_bg"


class ControllerImages:
    """Camera images for the controller: pre-rendered ``targets/<cam>/rnd_bg`` where the store has them,
    else spheres rendered on the fly (genima_data.render) over a random texture.

    `prerendered` holds the (episode, camera) pairs read from the store; every other pair is rendered.
    """

    def __init__(
        self,
        manifest: Manifest,
        root: Path,
        cameras: Sequence[str],
        prerendered: set[tuple[str, str]],
        *,
        texture_folder: Path | None = None,
        seed: int = 0,
    ) -> None:
        self.manifest = manifest
        self.root = root
        self.cameras = list(cameras)
        self.prerendered = prerendered
        self.texture_folder = texture_folder
        self.seed = seed
        self._renderer: Any = None
        self._textures: Any = None
        self._episodes = OpenEpisodes()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_renderer": None, "_textures": None}

    def read(self, store: Dataset, episode_id: str, t: int, rng: np.random.Generator) -> list[np.ndarray]:
        """HxWx3 uint8 image of each camera at frame t."""
        return [
            store.read_frame(episode_id, target_path(cam), t)
            if (episode_id, cam) in self.prerendered
            else self.render(store, episode_id, t, cam, rng)
            for cam in self.cameras
        ]

    def render(
        self, store: Dataset, episode_id: str, t: int, camera: str, rng: np.random.Generator
    ) -> np.ndarray:
        """Spheres of frame t's target pose on a random texture, as GENIMA's controller sees them."""
        from genima_data.render.compose import random_background_target

        renderer, textures = self._tools()
        target = renderer.render(self._episodes.get(store, episode_id), t, camera)
        background = textures.sample(rng, target.sphere_rgb.shape[:2])
        return random_background_target(target, background, rng)

    def _tools(self) -> tuple[Any, Any]:
        if self._renderer is None:
            from genima_data.render.compose import TextureSource
            from genima_data.render.targets import TargetRenderer

            self._renderer = TargetRenderer(self.manifest, root=self.root)
            self._textures = TextureSource(self.texture_folder, seed=self.seed)
        return self._renderer, self._textures

    def close(self) -> None:
        self._episodes.close()

    def check_renderable(self, store: Dataset, episode_ids: Sequence[str]) -> None:
        """Render frame 0 of the first episode lacking each camera's targets; a clear error if that fails."""
        for cam in self.cameras:
            episode_id = next((e for e in episode_ids if (e, cam) not in self.prerendered), None)
            if episode_id is None:
                continue
            try:
                self.render(store, episode_id, 0, cam, np.random.default_rng(0))
            except (GenimaDataError, ImportError) as exc:
                reason = exc.message if isinstance(exc, GenimaDataError) else str(exc)
                raise TrainingDataError(
                    f"no pre-rendered targets and cannot render them on the fly ({reason}); run "
                    "`genima-data render-targets` or record robot poses / a robot model and camera "
                    "calibration",
                    file=store.path,
                    episode=episode_id,
                    field=target_path(cam),
                ) from None


def resolve_cameras(
    manifest: Manifest, cameras: Sequence[str] | None, *, file: Path | None = None
) -> list[str]:
    """The requested cameras (default: all of the manifest's), each checked against the manifest."""
    available = [c.name for c in manifest.cameras]
    if not cameras:
        if not available:
            raise TrainingDataError("the manifest lists no cameras", file=file, field="cameras")
        return available
    unknown = [c for c in cameras if c not in available]
    if unknown:
        raise TrainingDataError(
            f"camera(s) {unknown} not in the dataset (cameras: {available})", file=file, field="cameras"
        )
    return list(cameras)


# ---------------------------------------------------------------------------------------------- ACT
class ACTDataset(torch.utils.data.Dataset):
    """Samples for GENIMA's ACT controller; see the module docstring for what one sample holds.

    Every frame t with at least one future frame is a sample (t = 0 … T-2). Robot arrays of the split are
    read once up front (small); images are read (or rendered) per sample through a per-process store handle.
    With ``random_textures=False`` on-the-fly backgrounds are seeded by the sample index (evaluation).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        split: str = "train",
        episodes: Sequence[str] | None = None,
        cameras: Sequence[str] | None = None,
        chunk_size: int = 20,
        image_size: int | None = None,
        targets: TargetMode = "auto",
        texture_folder: Path | None = None,
        val_fraction: float = DEFAULT_VAL_FRACTION,
        split_seed: int = 0,
        random_textures: bool = True,
    ) -> None:
        if targets not in TARGET_MODES:
            raise TrainingDataError(f"unknown target mode '{targets}'; choose from {', '.join(TARGET_MODES)}")
        self.path = Path(path)
        self.chunk_size = chunk_size
        self.image_size = image_size
        self.random_textures = random_textures
        self.store = StoreHandle(self.path)
        with open_dataset(self.path) as store:
            manifest = store.manifest
            self.manifest = manifest
            self.cameras = resolve_cameras(manifest, cameras, file=self.path)
            ids = (
                list(episodes)
                if episodes is not None
                else episode_split(
                    manifest, split, val_fraction=val_fraction, seed=split_seed, file=self.path
                )
            )
            if not ids:
                raise TrainingDataError(f"split '{split}' has no episodes", file=self.path, field="splits")
            self.joints: dict[str, np.ndarray] = {}
            self.gripper: dict[str, np.ndarray] = {}
            self.instructions: dict[str, str] = {}
            prerendered: set[tuple[str, str]] = set()
            for eid in ids:
                with store.episode(eid) as ep:
                    self._check_length(ep)
                    self.joints[eid] = ep.load("robot/joint_positions").astype(np.float32)
                    self.gripper[eid] = ep.load("robot/gripper_open").astype(np.float32)
                    self.instructions[eid] = episode_instruction(manifest, ep.meta.task, ep.meta.instruction)
                    if targets != "on-the-fly":
                        prerendered |= {(eid, cam) for cam in self.cameras if target_path(cam) in ep}
            missing = [(e, c) for e in ids for c in self.cameras if (e, c) not in prerendered]
            if targets == "prerendered" and missing:
                raise TrainingDataError(
                    "no pre-rendered targets (run `genima-data render-targets`, or use on-the-fly targets)",
                    file=self.path,
                    episode=missing[0][0],
                    field=target_path(missing[0][1]),
                )
            self.images = ControllerImages(
                manifest, self.path, self.cameras, prerendered, texture_folder=texture_folder
            )
            if missing:
                self.images.check_renderable(store, ids)
            self.images.close()  # DataLoader workers open their own handles
        self.episode_ids = ids
        self.index = FrameIndex({eid: len(self.joints[eid]) - 1 for eid in ids})

    def _check_length(self, episode: Episode) -> None:
        if episode.length < self.chunk_size + 1:
            raise TrainingDataError(
                f"has {episode.length} frames, shorter than one action chunk ({self.chunk_size} future "
                "frames after the first); drop it from the split or lower the chunk size",
                file=self.path,
                episode=episode.episode_id,
                field="length",
            )

    @property
    def dof(self) -> int:
        return self.manifest.robot.dof

    def joint_stats(self) -> JointStats:
        """Exact joint statistics over every frame of this dataset's episodes (genima_data.stats)."""
        return JointStats.of_episodes(self.path, self.episode_ids)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, index: int) -> dict[str, Any]:
        episode_id, t = self.index.locate(index)
        proprio, actions, is_pad = robot_sample(
            self.joints[episode_id], self.gripper[episode_id], t, self.chunk_size
        )
        rng = np.random.default_rng() if self.random_textures else np.random.default_rng(index)
        images = self.images.read(self.store.get(), episode_id, t, rng)
        return {
            "images": stack_camera_images(images, self.image_size),
            "proprio": proprio,
            "actions": actions,
            "is_pad": is_pad,
            "instruction": self.instructions[episode_id],
            "episode": episode_id,
            "t": t,
        }
