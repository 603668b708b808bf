"""Training pairs for the diffusion agent, read straight from a genima-data store (zarr or HDF5).

One sample is frame t of an episode:

* ``conditioning_pixel_values``: the four camera images at t tiled 2x2 (`GenimaConfig.tile_order`),
  float (3, R, R) in [0, 1];
* ``pixel_values``: the same tiling of the diffusion targets (spheres of frame t + horizon drawn on the
  observation), float (3, R, R) in [-1, 1] — `targets/<cam>/rgb` from the store, or rendered on the fly;
* ``input_ids``: the tokenized prompt "tiled perspectives of a robot arm executing '<instruction>'".

Frames 0 … T-2 of every episode are used, as GENIMA's dataset does. Augmentation (training only): one
random ±`crop_padding` px shift for both images, colour jitter for the conditioning image only; its
randomness is a pure function of (seed, epoch, sample), so a resumed run sees the same data as an
uninterrupted one. Each DataLoader worker opens its own store handle.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from genima_data.errors import GenimaDataError, StoreError
from genima_data.render.compose import tile_2x2
from genima_data.render.targets import TargetConfig, TargetRenderer
from genima_data.store import open_dataset
from genima_data.store.base import Dataset as Store
from genima_models.data import FrameIndex, OpenEpisodes, StoreHandle, episode_instruction
from genima_models.diffusion.augment import color_jitter, random_shift
from genima_models.diffusion.config import DiffusionConfig, DiffusionError

OPEN_EPISODES = 8  # episodes a worker keeps open


def tile_images(images: Mapping[str, np.ndarray], config: DiffusionConfig) -> np.ndarray:
    """The (R, R, 3) uint8 2x2 tiling of per-camera images in the configured order."""
    missing = [cam for cam in config.cameras if cam not in images]
    if missing:
        raise DiffusionError(f"no image for camera(s) {missing}; tiling needs {config.cameras}")
    return tile_2x2(images, order=config.tile_order, tile_size=config.tile_size)


def to_unit_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) to float (3, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0


def check_prompt(tokenizer: Any, prompt: str, *, episode: str | None = None) -> None:
    """A one-line error when `prompt` has more tokens than the text encoder takes (no silent truncation)."""
    length = len(tokenizer(prompt).input_ids)
    if length > tokenizer.model_max_length:
        raise DiffusionError(
            f"prompt is {length} tokens, the text encoder takes at most {tokenizer.model_max_length}: "
            f"shorten the instruction (prompt: {prompt!r})",
            episode=episode,
            field="instruction",
        )


def tokenize_prompt(tokenizer: Any, prompt: str, *, episode: str | None = None) -> torch.Tensor:
    """(max_length,) token ids padded to the tokenizer's length; see `check_prompt`."""
    check_prompt(tokenizer, prompt, episode=episode)
    ids = tokenizer(prompt, padding="max_length", max_length=tokenizer.model_max_length, truncation=True)
    return torch.tensor(ids.input_ids, dtype=torch.long)


class DiffusionPairs(Dataset):
    """(conditioning, target, prompt) samples of a dataset; see the module docstring."""

    def __init__(
        self,
        path: str | Path,
        config: DiffusionConfig,
        tokenizer: Any,
        *,
        episodes: list[str] | None = None,
        augment: bool = True,
        target_config: TargetConfig | None = None,
    ) -> None:
        self.path = Path(path)
        self.config = config
        self.augment = augment
        self.target_config = target_config
        with open_dataset(self.path) as store:
            self.episode_ids = self._select(store, episodes or config.episodes)
            self.on_the_fly = self._check_targets(store)
            self.input_ids: dict[str, torch.Tensor] = {}
            lengths = {}
            for eid in self.episode_ids:
                with store.episode(eid) as ep:
                    instruction = episode_instruction(store.manifest, ep.meta.task, ep.meta.instruction)
                    self.input_ids[eid] = tokenize_prompt(tokenizer, config.prompt(instruction), episode=eid)
                    lengths[eid] = ep.length - 1  # frames 0 … T-2
        self.index = FrameIndex(lengths)
        if not len(self.index):
            raise StoreError("no training frames: every selected episode has a single frame", file=self.path)
        self.store = StoreHandle(self.path)
        self._episodes = OpenEpisodes(OPEN_EPISODES)
        self._renderer: TargetRenderer | None = None

    def _select(self, store: Store, episodes: list[str] | None) -> list[str]:
        if not episodes:
            return store.episode_ids
        unknown = [e for e in episodes if e not in store]
        if unknown:
            raise StoreError(f"no episode(s) {unknown} in the dataset", file=self.path, field="episodes")
        return list(episodes)

    def _check_targets(self, store: Store) -> bool:
        """Check cameras and targets of every episode; True when targets must be rendered on the fly."""
        manifest_cams = {c.name for c in store.manifest.cameras}
        absent = [c for c in self.config.cameras if c not in manifest_cams]
        if absent:
            raise StoreError(
                f"camera(s) {absent} of the tile order are not in the dataset (cameras: "
                f"{sorted(manifest_cams)}); set tile_order to four of them",
                file=self.path,
                field="tile_order",
            )
        stored_everywhere = True
        for eid in self.episode_ids:
            with store.episode(eid) as ep:
                for cam in self.config.cameras:
                    rgb, target = f"cameras/{cam}/rgb", f"targets/{cam}/rgb"
                    if rgb not in ep:
                        raise StoreError("camera stream is missing", file=self.path, episode=eid, field=rgb)
                    if target not in ep:
                        stored_everywhere = False
                    elif ep[target].shape != ep[rgb].shape:
                        raise StoreError(
                            f"target images are {ep[target].shape[1:3]}, the observations "
                            f"{ep[rgb].shape[1:3]}: targets must be drawn on the observation",
                            file=self.path,
                            episode=eid,
                            field=target,
                        )
        if stored_everywhere and self.config.targets != "on-the-fly":
            return False
        if self.config.targets == "stored":
            raise StoreError(
                "dataset has no (or incomplete) diffusion targets targets/<cam>/rgb: render them with "
                "`genima-data render-targets`, or train with targets on-the-fly",
                file=self.path,
                field="targets",
            )
        self._probe_renderer(store)
        return True

    def _probe_renderer(self, store: Store) -> None:
        """Render one frame per camera now, so a dataset that cannot be rendered fails before training."""
        renderer = TargetRenderer(store.manifest, self.target_config, root=self.path)
        eid = self.episode_ids[0]
        with store.episode(eid) as ep:
            for cam in self.config.cameras:
                try:
                    renderer.render(ep, 0, cam)
                except GenimaDataError as exc:
                    raise StoreError(
                        f"dataset has no diffusion targets and they cannot be rendered on the fly: {exc}",
                        file=self.path,
                        episode=eid,
                        field=f"targets/{cam}/rgb",
                    ) from None

    def __len__(self) -> int:
        return len(self.index)

    def images(self, index: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Observation and target image of every camera for sample `index` (uint8, camera size)."""
        eid, t = self.index.locate(index)
        store = self.store.get()
        ep = self._episodes.get(store, eid)
        observations = {cam: ep.frame(f"cameras/{cam}/rgb", t) for cam in self.config.cameras}
        if not self.on_the_fly:
            return observations, {cam: ep.frame(f"targets/{cam}/rgb", t) for cam in self.config.cameras}
        if self._renderer is None:
            self._renderer = TargetRenderer(store.manifest, self.target_config, root=self.path)
        targets = {cam: self._renderer.render(ep, t, cam).over(observations[cam]) for cam in observations}
        return observations, targets

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        observations, targets = self.images(index)
        conditioning = to_unit_tensor(tile_images(observations, self.config))
        target = to_unit_tensor(tile_images(targets, self.config))
        if self.augment:
            generator = torch.Generator().manual_seed(
                int(np.random.SeedSequence([self.config.seed, epoch, index]).generate_state(1)[0])
            )
            conditioning, target = random_shift([conditioning, target], self.config.crop_padding, generator)
            conditioning = color_jitter(conditioning, *self.config.color_jitter, generator=generator)
        return {
            "conditioning_pixel_values": conditioning,
            "pixel_values": target * 2 - 1,
            "input_ids": self.input_ids[self.index.locate(index)[0]],
        }

    def close(self) -> None:
        self._episodes.close()
        self.store.close()


class StepBatchSampler(Sampler):
    """Batches of (index, epoch) for optimisation steps [start_step, end_step), a fixed shuffle per epoch.

    Step s always gets the same samples, so resuming at step s continues exactly where a run stopped. With
    `world` processes a step's global batch is `world` x `batch_size` samples and process `rank` takes its
    share. Incomplete global batches at an epoch's end are dropped when the dataset holds a full one.
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        seed: int,
        start_step: int,
        end_step: int,
        *,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.seed = seed
        self.start_step = start_step
        self.end_step = end_step
        self.rank = rank
        self.world = world
        self.batches_per_epoch = max(1, num_samples // (batch_size * world))
        self._order: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return max(0, self.end_step - self.start_step)

    def batch(self, step: int) -> list[tuple[int, int]]:
        """This process's (index, epoch) pairs of step `step`."""
        epoch, position = divmod(step, self.batches_per_epoch)
        if self._order is None or self._order[0] != epoch:
            self._order = (epoch, np.random.default_rng([self.seed, epoch]).permutation(self.num_samples))
        size = self.batch_size * self.world
        chosen = self._order[1][position * size : (position + 1) * size]
        mine = chosen[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]
        return [(int(i), epoch) for i in mine]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start_step, self.end_step):
            yield self.batch(step)
