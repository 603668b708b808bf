"""GENIMA's sphere targets: which joints, at which future frame, in which colour and size, in every camera.

For the observation at frame t of camera c, GENIMA draws the robot's pose at the target frame
``min(t + horizon, T - 2)`` (horizon 20): a sphere at the gripper tool-centre pose, cyan while the gripper
is open and yellow once ``gripper_open <= 0.1``, and spheres at arm joints 1, 3 and 5 (0-based joint
frames) in red, green and purple. Spheres have radius 0.01 m times a per-camera scale (wrist 3, front 8,
shoulders and overhead 6.5); the overhead camera shows only the gripper sphere. The camera pose is the one
of frame t (a wrist camera moves), the sphere poses those of the target frame. Poses come from the
recorded ``robot/link_poses`` / ``robot/ee_pose`` when the episode has them (GENIMA-exact), otherwise
from forward kinematics of the joint positions.

Episodes shorter than the horizon are clamped like GENIMA's: every target shows the second-to-last
frame. An episode needs at least two frames (a target must lie in the future of some frame).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from genima_data.atomic import atomic_write_text
from genima_data.episode import Episode
from genima_data.errors import GenimaDataError, SchemaError
from genima_data.geometry.camera import CameraModel, camera_poses, invert_transform
from genima_data.geometry.kinematics import Kinematics, link_poses_or_fk, load_kinematics
from genima_data.render.compose import spheres_over
from genima_data.render.spheres import RenderedSpheres, render_sphere_frames
from genima_data.schema import Manifest, parse_model

GENIMA_CAMERA_SCALES = {
    "wrist": 3.0,
    "front": 8.0,
    "left_shoulder": 6.5,
    "right_shoulder": 6.5,
    "overhead": 6.5,
}
GRIPPER = "gripper"
FRAMES_PER_BLOCK = 64  # frames rendered together by render_episode
_RECORDED_POSES = ("robot/link_poses", "robot/ee_pose")  # used when recorded, FK of joint_positions else

Colour = Annotated[list[Annotated[int, Field(ge=0, le=255)]], Field(min_length=3, max_length=3)]


class TargetError(GenimaDataError):
    """An episode or configuration cannot produce sphere targets."""


def joint_sphere_name(joint: int) -> str:
    return f"joint{joint}"


class SphereColours(BaseModel):
    """Flat sphere colours after GENIMA's shading (texture colour x base colour), RGB 0-255."""

    model_config = ConfigDict(extra="forbid")

    gripper_open: Colour = Field([5, 206, 235], description="Gripper sphere while the gripper is open.")
    gripper_closed: Colour = Field([255, 255, 0], description="Gripper sphere once the gripper is closed.")
    joints: dict[int, Colour] = Field(
        default_factory=lambda: {1: [154, 0, 0], 3: [43, 207, 62], 5: [132, 104, 240]},
        description="Colour of each joint's sphere, by 0-based joint-frame index.",
    )


class TargetConfig(BaseModel):
    """What the sphere targets show; GENIMA's values by default. Load from YAML with `from_yaml`."""

    model_config = ConfigDict(extra="forbid")

    horizon: int = Field(20, ge=0, description="Frames ahead of the observation the spheres show.")
    joints: list[int] = Field([1, 3, 5], description="0-based arm joint frames that get a sphere.")
    gripper_closed_threshold: float = Field(0.1, description="gripper_open at or below this is closed.")
    radius_m: float = Field(0.01, gt=0, description="Sphere radius before the per-camera scale, metres.")
    camera_scales: dict[str, float] = Field(
        default_factory=lambda: dict(GENIMA_CAMERA_SCALES), description="Radius scale per camera."
    )
    default_scale: float = Field(6.5, gt=0, description="Radius scale of cameras not in camera_scales.")
    gripper_only_cameras: list[str] = Field(["overhead"], description="Cameras that show only the gripper.")
    colours: SphereColours = Field(default_factory=SphereColours)
    cameras: list[str] | None = Field(None, description="Cameras to render; null: every camera with RGB.")
    supersample: int = Field(
        1, ge=1, le=8, description="Anti-aliasing: rays per pixel side on sphere rims (1 = hard edges)."
    )
    random_bg_min_weight: float = Field(
        0.7, ge=0, le=1, description="Random-background targets: sphere weight ~ U[this, 1] (GENIMA 0.7)."
    )

    @model_validator(mode="after")
    def _every_joint_has_a_colour(self) -> TargetConfig:
        missing = [j for j in self.joints if j not in self.colours.joints]
        if missing:
            raise ValueError(f"joints {missing} have no colour in colours.joints")
        if any(j < 0 for j in self.joints):
            raise ValueError("joint indices are 0-based and cannot be negative")
        if any(s <= 0 for s in self.camera_scales.values()):
            raise ValueError("camera_scales must be positive")
        return self

    @classmethod
    def from_yaml(cls, path: str | Path) -> TargetConfig:
        """Read a config from YAML (keys as the fields; any omitted key keeps GENIMA's default)."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except OSError as exc:
            raise SchemaError(f"cannot read target config ({exc.strerror})", file=path) from None
        except yaml.YAMLError as exc:
            raise SchemaError(f"invalid YAML: {' '.join(str(exc).split())}", file=path) from None
        return cls.parse(data, file=path)

    @classmethod
    def parse(cls, data: Any, *, file: str | Path | None = None) -> TargetConfig:
        """Validate a mapping (or JSON text) as a config; errors are one-line SchemaErrors naming a field."""
        return parse_model(cls, data, file=file)

    def to_yaml(self, path: str | Path | None = None) -> str:
        """The config as YAML text; written atomically to `path` when given."""
        text = yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)
        if path is not None:
            atomic_write_text(path, text)
        return text

    def fingerprint(self) -> str:
        """Short hash of the config: equal configs render equal targets."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def scale_for(self, camera: str) -> float:
        return self.camera_scales.get(camera, self.default_scale)

    def joints_for(self, camera: str) -> list[int]:
        """Joints that get a sphere in `camera` (none for gripper-only cameras)."""
        return [] if camera in self.gripper_only_cameras else list(self.joints)

    def sphere_names(self, camera: str) -> list[str]:
        """Sphere names of a camera in render order: the gripper, then its joints."""
        return [GRIPPER, *(joint_sphere_name(j) for j in self.joints_for(camera))]

    def sphere_colours(self) -> dict[str, tuple[int, int, int]]:
        """Every colour a target can contain, by name: gripper_open, gripper_closed, joint<j>."""
        colours = {"gripper_open": self.colours.gripper_open, "gripper_closed": self.colours.gripper_closed}
        colours.update({joint_sphere_name(j): self.colours.joints[j] for j in self.joints})
        return {name: (int(c[0]), int(c[1]), int(c[2])) for name, c in colours.items()}


def target_frame(t: int, length: int, horizon: int) -> int:
    """GENIMA's target frame for the observation at t: ``min(t + horizon, length - 2)``, at least 0."""
    return max(0, min(t + horizon, length - 2))


def target_frames(length: int, horizon: int) -> np.ndarray:
    """`target_frame` for every frame of an episode, (length,) int."""
    return np.maximum(0, np.minimum(np.arange(length) + horizon, length - 2))


@dataclass(frozen=True)
class RenderedTarget:
    """The spheres of one camera image: premultiplied colour on black, coverage, and where they are.

    `centres` maps each sphere name to its ground-truth pixel centre (projection of the sphere centre),
    None when behind the camera or outside the image.
    """

    camera: str
    t: int
    target_t: int
    sphere_rgb: np.ndarray
    alpha: np.ndarray
    sphere_id: np.ndarray
    names: tuple[str, ...]
    centres: dict[str, tuple[float, float] | None]

    def over(self, image: np.ndarray) -> np.ndarray:
        """The spheres composited on `image` (uint8 HxWx3): the diffusion target for the observation."""
        return spheres_over(self.sphere_rgb, self.alpha, image)


@dataclass(frozen=True)
class TargetBlock:
    """Targets of consecutive frames of one camera (arrays with a leading frame axis)."""

    camera: str
    frames: np.ndarray  # (F,) observation frames t
    target_frames: np.ndarray  # (F,) target frames
    spheres: RenderedSpheres
    names: tuple[str, ...]
    centres_uv: np.ndarray  # (F, S, 2) pixel centre of each sphere, NaN when not visible

    def target(self, i: int) -> RenderedTarget:
        """Frame `i` of the block as a RenderedTarget."""
        centres = {
            name: None if np.isnan(uv).any() else (float(uv[0]), float(uv[1]))
            for name, uv in zip(self.names, self.centres_uv[i], strict=True)
        }
        return RenderedTarget(
            camera=self.camera,
            t=int(self.frames[i]),
            target_t=int(self.target_frames[i]),
            sphere_rgb=self.spheres.sphere_rgb[i],
            alpha=self.spheres.alpha[i],
            sphere_id=self.spheres.sphere_id[i],
            names=self.names,
            centres=centres,
        )

    def over(self, images: np.ndarray, *, in_place: bool = False) -> np.ndarray:
        """The spheres on the observations (F, H, W, 3) of these frames (written into them if `in_place`)."""
        return spheres_over(self.spheres.sphere_rgb, self.spheres.alpha, images, in_place=in_place)


def _require_finite(values: np.ndarray, frames: np.ndarray, episode_id: str, field: str) -> None:
    """A one-line TargetError naming the first of `frames` whose values (leading axis) are not finite."""
    bad = frames[~np.isfinite(values[frames].reshape(len(frames), -1)).all(axis=1)]
    if len(bad):
        more = f" (and {len(bad) - 1} more frames)" if len(bad) > 1 else ""
        raise TargetError(
            f"NaN or inf at frame {int(bad[0])}{more}: the target spheres there cannot be placed",
            episode=episode_id,
            field=field,
        )


@dataclass(frozen=True)
class _EpisodePoses:
    """World poses of the target spheres for every frame of one episode."""

    joints: np.ndarray  # (T, L, 4, 4)
    gripper: np.ndarray  # (T, 4, 4)
    gripper_open: np.ndarray  # (T,)


class TargetRenderer:
    """Renders GENIMA sphere targets for the episodes of one dataset (see the module docstring).

    `root` is the dataset directory, for robots described by a URDF path relative to it. Poses of the
    last episode used are cached, so rendering its cameras one after another computes kinematics once.
    """

    def __init__(
        self, manifest: Manifest, config: TargetConfig | None = None, root: Path | None = None
    ) -> None:
        self.manifest = manifest
        self.config = config or TargetConfig()
        self.root = Path(root) if root is not None else None
        self._kinematics: Kinematics | None = None
        self._cameras: dict[str, CameraModel] = {}
        self._poses: tuple[str, _EpisodePoses] | None = None
        self._camera_poses: dict[tuple[str, str], np.ndarray] = {}

    # ------------------------------------------------------------------ inputs
    def kinematics(self) -> Kinematics:
        """The robot's forward kinematics, loaded on first use."""
        if self._kinematics is None:
            self._kinematics = load_kinematics(self.manifest.robot, self.root)
        return self._kinematics

    def _needs_kinematics(self, episode: Episode, camera: str | None = None) -> bool:
        recorded = "robot/link_poses" in episode and "robot/ee_pose" in episode
        if camera is None:
            return not recorded
        cal = self._calibration(camera, episode)
        return not cal.is_static and f"cameras/{camera}/extrinsics" not in episode

    def _kinematics_for(self, episode: Episode, camera: str | None = None) -> Kinematics | None:
        if not self._needs_kinematics(episode, camera):
            return None
        try:
            return self.kinematics()
        except GenimaDataError as exc:
            raise exc.located(episode=episode.episode_id) from None

    def _calibration(self, camera: str, episode: Episode | None = None) -> Any:
        try:
            return self.manifest.camera(camera)
        except KeyError:
            cameras = [c.name for c in self.manifest.cameras]
            raise TargetError(
                f"camera '{camera}' is not in the manifest (cameras: {cameras})",
                episode=episode.episode_id if episode else None,
                field="cameras",
            ) from None

    def camera_model(self, camera: str) -> CameraModel:
        if camera not in self._cameras:
            self._cameras[camera] = CameraModel.from_calibration(self._calibration(camera))
        return self._cameras[camera]

    def _episode_poses(self, episode: Episode) -> _EpisodePoses:
        eid = episode.episode_id
        if self._poses is not None and self._poses[0] == eid:
            return self._poses[1]
        if episode.length < 2:
            raise TargetError(
                f"episode has {episode.length} frame; targets need at least 2 (the target frame is "
                "min(t + horizon, T - 2))",
                episode=eid,
                field="length",
            )
        try:
            joints, gripper = link_poses_or_fk(
                self.manifest, episode, self._kinematics_for(episode), root=self.root
            )
        except GenimaDataError as exc:
            raise exc.located(episode=eid) from None
        bad = [j for j in self.config.joints if j >= joints.shape[1]]
        if bad:
            raise TargetError(
                f"config asks for joints {bad} but the robot has {joints.shape[1]} joint frames",
                episode=eid,
                field="joints",
            )
        poses = _EpisodePoses(
            np.asarray(joints, np.float64),
            np.asarray(gripper, np.float64),
            np.asarray(episode.load("robot/gripper_open"), np.float64),
        )
        used = np.unique(target_frames(episode.length, self.config.horizon))
        recorded_or_fk = {p: p if p in episode else "robot/joint_positions" for p in _RECORDED_POSES}
        _require_finite(poses.joints[:, self.config.joints], used, eid, recorded_or_fk["robot/link_poses"])
        _require_finite(poses.gripper, used, eid, recorded_or_fk["robot/ee_pose"])
        _require_finite(poses.gripper_open, used, eid, "robot/gripper_open")
        self._poses = (eid, poses)
        self._camera_poses.clear()
        return poses

    def _T_camera_world(self, episode: Episode, camera: str) -> np.ndarray:
        key = (episode.episode_id, camera)
        if key not in self._camera_poses:
            self._calibration(camera, episode)
            try:
                T_world_camera = camera_poses(
                    self.manifest, episode, camera, self._kinematics_for(episode, camera), root=self.root
                )
            except GenimaDataError as exc:
                raise exc.located(episode=episode.episode_id) from None
            extrinsics = f"cameras/{camera}/extrinsics"
            field = extrinsics if extrinsics in episode else "robot/joint_positions"  # else FK of the mount
            T_world_camera = np.asarray(T_world_camera, np.float64)
            _require_finite(T_world_camera, np.arange(episode.length), episode.episode_id, field)
            self._camera_poses[key] = invert_transform(T_world_camera)
        return self._camera_poses[key]

    # ------------------------------------------------------------------ spheres
    def sphere_poses(
        self, episode: Episode, camera: str, frames: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Camera-frame sphere poses T_camera_sphere (F, S, 4, 4) and colours (F, S, 3) uint8 of the targets
        of observation frames `frames`, spheres in the order of `TargetConfig.sphere_names`."""
        poses = self._episode_poses(episode)
        target = target_frames(episode.length, self.config.horizon)[frames]
        joints = self.config.joints_for(camera)
        T_world_sphere = np.stack([poses.gripper[target], *(poses.joints[target, j] for j in joints)], axis=1)
        T_camera_sphere = self._T_camera_world(episode, camera)[frames][:, None] @ T_world_sphere
        colours = self.config.colours
        closed = poses.gripper_open[target] <= self.config.gripper_closed_threshold
        gripper = np.where(closed[:, None], colours.gripper_closed, colours.gripper_open)
        joint_colours = np.array([colours.joints[j] for j in joints], np.uint8).reshape(len(joints), 3)
        rgb = np.concatenate(
            [gripper[:, None], np.broadcast_to(joint_colours, (len(frames), *joint_colours.shape))], 1
        )
        return T_camera_sphere, rgb.astype(np.uint8)

    def render_frames(self, episode: Episode, camera: str, frames: np.ndarray | slice) -> TargetBlock:
        """Targets of camera `camera` for the observation frames `frames`, rendered together."""
        frames = np.arange(episode.length)[frames] if isinstance(frames, slice) else np.asarray(frames, int)
        if frames.size and (frames.min() < 0 or frames.max() >= episode.length):
            raise TargetError(
                f"frames outside 0..{episode.length - 1}", episode=episode.episode_id, field="frames"
            )
        T_camera_sphere, colours = self.sphere_poses(episode, camera, frames)
        model = self.camera_model(camera)
        radius = self.config.radius_m * self.config.scale_for(camera)
        spheres = render_sphere_frames(
            model,
            T_camera_sphere[..., :3, 3],
            np.full(T_camera_sphere.shape[:2], radius),
            T_camera_sphere[..., :3, :3],
            colours,
            supersample=self.config.supersample,
        )
        return TargetBlock(
            camera=camera,
            frames=frames,
            target_frames=target_frames(episode.length, self.config.horizon)[frames],
            spheres=spheres,
            names=tuple(self.config.sphere_names(camera)),
            centres_uv=self._pixel_centres(model, T_camera_sphere[..., :3, 3]),
        )

    @staticmethod
    def _pixel_centres(model: CameraModel, centres_camera: np.ndarray) -> np.ndarray:
        F, S = centres_camera.shape[:2]
        uv, in_front = model.project_points(centres_camera.reshape(-1, 3))
        uv = np.asarray(uv, np.float64).copy()
        inside = in_front & (uv[:, 0] >= -0.5) & (uv[:, 0] < model.width - 0.5)
        inside &= (uv[:, 1] >= -0.5) & (uv[:, 1] < model.height - 0.5)
        uv[~inside] = np.nan
        return uv.reshape(F, S, 2)

    def render(self, episode: Episode, t: int, camera: str) -> RenderedTarget:
        """The target of camera `camera` for the observation at frame `t`."""
        return self.render_frames(episode, camera, np.array([t])).target(0)

    def render_episode(self, episode: Episode, camera: str) -> Iterator[RenderedTarget]:
        """Targets of every frame of one camera, rendered FRAMES_PER_BLOCK frames at a time."""
        for start in range(0, episode.length, FRAMES_PER_BLOCK):
            block = self.render_frames(episode, camera, slice(start, start + FRAMES_PER_BLOCK))
            for i in range(len(block.frames)):
                yield block.target(i)

    def sphere_centres(self, episode: Episode, t: int, camera: str) -> dict[str, tuple[float, float] | None]:
        """Ground-truth pixel centre of each target sphere (None when behind the camera or off-image)."""
        T_camera_sphere, _ = self.sphere_poses(episode, camera, np.array([t]))
        uv = self._pixel_centres(self.camera_model(camera), T_camera_sphere[..., :3, 3])[0]
        names = self.config.sphere_names(camera)
        return {
            n: None if np.isnan(p).any() else (float(p[0]), float(p[1]))
            for n, p in zip(names, uv, strict=True)
        }
