"""`render_targets`: write GENIMA sphere targets into a dataset, crash-safe and resumable.

For every episode and camera it adds ``targets/<cam>/rgb`` (spheres on the observation: the diffusion
target) and, with a texture source, ``targets/<cam>/rnd_bg`` (spheres on a random background: the
controller's input). Each array carries the attribute ``genima_targets``: the JSON record of what made it
(target config, renderer version, background source). A re-run skips arrays whose record matches, so an
interrupted run resumes where it stopped (its ``.tmp-*`` leftovers are removed first); arrays made with a
different record are never silently mixed with new ones: the run stops before rendering anything unless
``overwrite`` replaces them.

Targets are rendered a block of frames at a time while the store copies them in (memory stays bounded on
long episodes); the random background of frame t depends only on (seed, episode, camera, t), so results
do not depend on the order, the block size or the number of workers.
"""

from __future__ import annotations

import json
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from genima_data.episode import Episode, contiguous_frames, frame_number
from genima_data.errors import GenimaDataError
from genima_data.parallel import run_tasks
from genima_data.progress import progress_bar
from genima_data.render.compose import TextureSource, spheres_over
from genima_data.render.targets import TargetBlock, TargetConfig, TargetError, TargetRenderer
from genima_data.schema import Manifest, natural_key
from genima_data.store import open_dataset
from genima_data.store.codecs import get_codec

RECORD_ATTR = "genima_targets"
RENDERER_VERSION = "genima-data spheres 1"  # bump when the same config would render different pixels
KINDS = ("rgb", "rnd_bg")
LAYER_CACHE_BYTES = 256 << 20  # rendered sphere layers kept for the second stream of the same camera
# targets are derived data, cheap to re-create: a fast lossless codec keeps render-targets render-bound
DEFAULT_TARGET_CODEC = "blosc-lz4"


def target_path(camera: str, kind: str) -> str:
    return f"targets/{camera}/{kind}"


def targets_record(config: TargetConfig, textures: TextureSource | None = None) -> str:
    """The record stored with each target array: config, renderer version and (rnd_bg) background."""
    record: dict[str, Any] = {"renderer": RENDERER_VERSION, "config": config.model_dump(mode="json")}
    if textures is not None:
        record["background"] = textures.describe()
    return json.dumps(record, sort_keys=True)


def stored_record(episode: Episode, path: str) -> str | None:
    """The record an existing target array was written with (None: absent, or written without one)."""
    if path not in episode:
        return None
    value = getattr(episode[path], "attrs", {}).get(RECORD_ATTR)
    return None if value is None else str(value)


def frame_rng(seed: int, episode_id: str, camera: str, t: int) -> np.random.Generator:
    """The generator of frame t's random background: independent of order, blocks and workers."""
    return np.random.default_rng([seed, zlib.crc32(episode_id.encode()), zlib.crc32(camera.encode()), t])


# ------------------------------------------------------------------------------ lazy target streams
class _SphereLayers:
    """Rendered TargetBlocks of one camera by frame range, kept while they fit in LAYER_CACHE_BYTES."""

    def __init__(self, renderer: TargetRenderer, episode: Episode, camera: str) -> None:
        self.renderer, self.episode, self.camera = renderer, episode, camera
        self._blocks: OrderedDict[tuple[int, int], TargetBlock] = OrderedDict()

    def block(self, start: int, stop: int) -> TargetBlock:
        key = (start, stop)
        if key not in self._blocks:
            self._blocks[key] = self.renderer.render_frames(self.episode, self.camera, slice(start, stop))
            while (
                len(self._blocks) > 1 and sum(_nbytes(b) for b in self._blocks.values()) > LAYER_CACHE_BYTES
            ):
                self._blocks.popitem(last=False)
        return self._blocks[key]


def _nbytes(block: TargetBlock) -> int:
    return block.spheres.sphere_rgb.nbytes + block.spheres.alpha.nbytes + block.spheres.sphere_id.nbytes


class TargetStream:
    """A (T, H, W, 3) uint8 array source whose frames are rendered when the store reads them.

    ``kind="rgb"``: spheres over the observation; ``kind="rnd_bg"``: spheres over random textures.
    """

    def __init__(
        self,
        layers: _SphereLayers,
        kind: str,
        textures: TextureSource | None = None,
        min_weight: float = 0.7,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}")
        if kind == "rnd_bg" and textures is None:
            raise ValueError("rnd_bg targets need a TextureSource")
        self.layers, self.kind, self.textures, self.min_weight = layers, kind, textures, min_weight
        rgb = layers.episode[f"cameras/{layers.camera}/rgb"]
        self.shape = tuple(int(s) for s in rgb.shape)
        self.dtype = np.dtype(np.uint8)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: Any) -> np.ndarray:
        if isinstance(index, int | np.integer):
            t = frame_number(index, self.shape[0])
            return self._frames(t, t + 1)[0]
        span = contiguous_frames(index, self.shape[0])
        if span is None:
            raise TypeError("target streams support an int or a contiguous slice")
        return self._frames(*span)

    def _frames(self, start: int, stop: int) -> np.ndarray:
        if stop <= start:
            return np.empty((0, *self.shape[1:]), np.uint8)
        block = self.layers.block(start, stop)
        if self.kind == "rgb":
            rgb = self.layers.episode[f"cameras/{self.layers.camera}/rgb"]
            # a block read decodes into one fresh array; copied only if a source returned a view
            return block.over(np.require(rgb[start:stop], np.uint8, ["C", "W", "O"]), in_place=True)
        return random_backgrounds(block, self.layers.episode.episode_id, self.textures, self.min_weight)


def random_backgrounds(
    block: TargetBlock, episode_id: str, textures: TextureSource, min_weight: float = 0.7
) -> np.ndarray:
    """Spheres of a block over per-frame random textures, weight ~ U[min_weight, 1] (frame_rng draws)."""
    H, W = block.spheres.alpha.shape[1:]
    backgrounds = np.empty((len(block.frames), H, W, 3), np.uint8)
    weights = np.empty(len(block.frames))
    for i, t in enumerate(block.frames):
        rng = frame_rng(textures.seed, episode_id, block.camera, int(t))
        backgrounds[i] = textures.sample(rng, (H, W))
        weights[i] = rng.uniform(min_weight, 1.0)
    return spheres_over(block.spheres.sphere_rgb, block.spheres.alpha, backgrounds, weights, in_place=True)


# ------------------------------------------------------------------------------ planning
@dataclass(frozen=True)
class TargetJob:
    """The target arrays one episode still needs; everything a fresh worker process needs."""

    dataset: str
    episode_id: str
    paths: tuple[str, ...]  # targets/<cam>/<kind>
    config_json: str
    texture_folder: str | None
    texture_seed: int
    replace: bool
    codec: str | None


@dataclass
class RenderTargetsResult:
    """What `render_targets` did; `failed` maps episode id to its one-line error."""

    dataset: Path
    cameras: list[str]
    record: str
    rendered: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": str(self.dataset),
            "cameras": self.cameras,
            "record": json.loads(self.record),
            "rendered": self.rendered,
            "skipped": self.skipped,
            "failed": self.failed,
        }


def requested_cameras(manifest: Manifest, requested: list[str] | None) -> list[str]:
    """The cameras to render: `requested`, else every manifest camera; one not in the manifest is an error."""
    names = [c.name for c in manifest.cameras]
    unknown = [c for c in requested or [] if c not in names]
    if unknown:
        raise TargetError(f"cameras {unknown} are not in the manifest (cameras: {names})", field="cameras")
    return list(requested or names)


def cameras_for(episode: Episode, cameras: list[str]) -> list[str]:
    """`cameras`, each of which must have an RGB stream in the episode (no camera is silently left out)."""
    missing = [c for c in cameras if f"cameras/{c}/rgb" not in episode]
    if missing:
        with_rgb = [c for c in episode.camera_names if f"cameras/{c}/rgb" in episode]
        raise TargetError(
            f"no RGB stream for cameras {missing} (episode has {with_rgb})",
            episode=episode.episode_id,
            field=f"cameras/{missing[0]}/rgb",
        )
    return list(cameras)


def _config_of(record: str) -> Any:
    return json.loads(record)["config"]


def made_with(record: str | None, config: TargetConfig) -> bool:
    """Whether a stored target record (`stored_record`) was made with `config`, whatever the background."""
    return record is not None and _config_of(record) == _config_of(targets_record(config))


def _plan(
    episode: Episode, cameras: list[str], records: dict[str, str], overwrite: bool
) -> tuple[list[str], list[str]]:
    """(paths to render, paths made with another record) of one episode."""
    todo, stale = [], []
    for cam in cameras_for(episode, cameras):
        for kind in KINDS:
            path = target_path(cam, kind)
            existing = stored_record(episode, path)
            if kind in records and existing != records[kind]:
                todo.append(path)
                if path in episode:
                    stale.append(path)
            elif (
                kind not in records
                and existing is not None
                and _config_of(existing) != _config_of(records["rgb"])
            ):
                stale.append(path)  # rnd_bg left from another config, not re-rendered this time
    if overwrite:
        stale = [p for p in stale if p not in todo]
    return todo, stale


# ------------------------------------------------------------------------------ running
_WORKER_RENDERERS: dict[tuple[str, str], TargetRenderer] = {}
_WORKER_TEXTURES: dict[tuple[str | None, int], TextureSource] = {}


def render_episode_targets(job: TargetJob) -> str | None:
    """Render and store one episode's missing targets; None on success, else the one-line error."""
    where: Path = Path(job.dataset)
    try:
        with open_dataset(job.dataset, mode="a") as ds:
            where = ds.episode_path(job.episode_id)
            key = (job.dataset, job.config_json)
            if key not in _WORKER_RENDERERS:
                _WORKER_RENDERERS.clear()
                config = TargetConfig.parse(job.config_json)
                _WORKER_RENDERERS[key] = TargetRenderer(ds.manifest, config, root=ds.path)
            renderer = _WORKER_RENDERERS[key]
            textures = None
            if any(p.endswith("/rnd_bg") for p in job.paths):
                tkey = (job.texture_folder, job.texture_seed)
                if tkey not in _WORKER_TEXTURES:
                    _WORKER_TEXTURES[tkey] = TextureSource(job.texture_folder, seed=job.texture_seed)
                textures = _WORKER_TEXTURES[tkey]
            records = {
                "rgb": targets_record(renderer.config),
                "rnd_bg": targets_record(renderer.config, textures),
            }
            with ds.episode(job.episode_id) as episode:
                layers: dict[str, _SphereLayers] = {}
                arrays, attrs = {}, {}
                for path in job.paths:
                    _, cam, kind = path.split("/")
                    layer = layers.setdefault(cam, _SphereLayers(renderer, episode, cam))
                    arrays[path] = TargetStream(layer, kind, textures, renderer.config.random_bg_min_weight)
                    attrs[path] = {RECORD_ATTR: records[kind]}
                ds.add_arrays(job.episode_id, arrays, replace=job.replace, attrs=attrs, codec=job.codec)
    except GenimaDataError as exc:
        return str(exc.located(file=where, episode=job.episode_id))
    return None


def render_targets(
    dataset: str | Path,
    *,
    config: TargetConfig | None = None,
    cameras: list[str] | None = None,
    random_bg: str | Path | None = None,
    seed: int = 0,
    workers: int = 1,
    overwrite: bool = False,
    episodes: list[str] | None = None,
    codec: str | None = DEFAULT_TARGET_CODEC,
    progress: bool = False,
) -> RenderTargetsResult:
    """Render sphere targets for every episode of a dataset into its store (see the module docstring).

    `random_bg`: None (no rnd_bg), ``"procedural"`` (seeded procedural textures) or a folder of images.
    `cameras` overrides ``config.cameras``; by default every manifest camera (an episode without one's RGB
    stream fails, listed in the result's `failed`). `codec` is the store codec of the target arrays (None:
    the store's image codec); it does not change a pixel.
    """
    config = config or TargetConfig()
    dataset = Path(dataset)
    textures = None
    if random_bg is not None:
        folder = None if str(random_bg) == "procedural" else Path(random_bg)
        textures = TextureSource(folder, seed=seed)
    records = {"rgb": targets_record(config)}
    if textures is not None:
        records["rnd_bg"] = targets_record(config, textures)
    jobs: list[TargetJob] = []
    with open_dataset(dataset) as ds:
        if codec is not None:
            get_codec(codec, ds.backend)  # unknown or unavailable: fail before rendering anything
        try:
            cameras = requested_cameras(ds.manifest, cameras or config.cameras)
        except GenimaDataError as exc:
            raise exc.located(file=dataset) from None
        result = RenderTargetsResult(dataset=dataset, cameras=cameras, record=records["rgb"])
        ids = ds.episode_ids if episodes is None else episodes
        unknown = [e for e in ids if e not in ds]
        if unknown:
            raise TargetError(f"no episodes {unknown} in the dataset", file=dataset, field="episodes")
        ds.remove_leftovers()  # of killed runs; safe only here, before any worker writes
        stale_all: list[tuple[str, str]] = []
        for eid in ids:
            try:
                with ds.episode(eid) as episode:
                    todo, stale = _plan(episode, cameras, records, overwrite)
            except GenimaDataError as exc:  # this episode cannot get targets; the others still can
                result.failed[eid] = str(exc.located(file=ds.episode_path(eid), episode=eid))
                continue
            stale_all += [(eid, p) for p in stale]
            if not todo:
                result.skipped.append(eid)
                continue
            jobs.append(
                TargetJob(
                    str(dataset),
                    eid,
                    tuple(todo),
                    config.model_dump_json(),
                    None if textures is None or textures.folder is None else str(textures.folder),
                    seed,
                    replace=True,
                    codec=codec,
                )
            )
    if stale_all:
        eid, path = stale_all[0]
        hint = "pass --overwrite to replace them" if not overwrite else "render them again with --random-bg"
        raise TargetError(
            f"{len(stale_all)} target arrays were rendered with another config or background; {hint}",
            file=dataset,
            episode=eid,
            field=path,
        )
    with progress_bar(len(jobs), "render-targets", enabled=progress) as advance:
        for job, error in run_tasks(render_episode_targets, jobs, workers=workers):
            if error is None:
                result.rendered.append(job.episode_id)
            else:
                result.failed[job.episode_id] = error
            advance(1)
    result.rendered.sort(key=natural_key)
    return result
