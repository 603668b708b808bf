"""Geometric checks: do the robot poses and camera poses make GENIMA's sphere targets land where they should?

* target_joints_visible: every target point (the gripper tool centre and Panda joints 1, 3, 5 at frame
  min(t + horizon, T - 2)) is in front of and inside at least one camera at every frame t.
* poses_match_fk: recorded robot/link_poses and robot/ee_pose agree with forward kinematics of
  robot/joint_positions.
* static_cameras_still: per-frame extrinsics of static cameras do not move and match the manifest pose.
* wrist_camera_follows_link: a link-mounted camera's extrinsics are rigid in its link's frame.

Poses come from `genima_data.geometry`: recorded poses where the episode has them, FK otherwise; the
robot's kinematics are built once per process (``ctx.cached``), URDFs relative to the dataset root.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from genima_data.errors import GeometryError
from genima_data.geometry.camera import CameraModel, camera_poses
from genima_data.geometry.kinematics import Kinematics, link_poses_or_fk, load_kinematics
from genima_data.geometry.transforms import invert_transform, rotation_angle, transform_points
from genima_data.validate.registry import EpisodeContext, Finding, check, describe_frames

JOINTS = "robot/joint_positions"
LINK_POSES = "robot/link_poses"
EE_POSE = "robot/ee_pose"
GENIMA_TARGET_JOINTS = (1, 3, 5)  # 0-based arm joints GENIMA marks besides the gripper


def _kinematics(ctx: EpisodeContext) -> Kinematics:
    """The manifest robot's kinematics, built once per process; GeometryError if it has none."""
    return ctx.cached("geometry.kinematics", lambda: load_kinematics(ctx.manifest.robot, ctx.path))


def _kinematics_or_none(ctx: EpisodeContext) -> Kinematics | None:
    try:
        return _kinematics(ctx)
    except GeometryError:
        return None  # fine when the episode recorded its poses; link_poses_or_fk says so otherwise


def _target_frames(length: int, horizon: int) -> np.ndarray:
    """GENIMA's target frame for every t: min(t + horizon, T - 2), at least 0."""
    return np.clip(np.minimum(np.arange(length) + horizon, length - 2), 0, None)


def _pose_deviation(T_a: np.ndarray, T_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Translation distance (m) and rotation angle (degrees) between pose batches."""
    distance = np.linalg.norm(T_a[..., :3, 3] - T_b[..., :3, 3], axis=-1)
    angle = np.degrees(rotation_angle(np.swapaxes(T_a[..., :3, :3], -1, -2) @ T_b[..., :3, :3]))
    return distance, angle


def _largest(distance: np.ndarray, angle: np.ndarray) -> str:
    return f"up to {np.nanmax(distance) * 100:.2f} cm / {np.nanmax(angle):.2f}°"


@check(
    "target_joints_visible",
    scope="episode",
    description="Every GENIMA target (gripper tool centre and joints 1, 3, 5 at frame min(t + horizon, "
    "T - 2)) is in front of and inside at least one camera at every frame (GENIMA assumes it).",
)
def target_joints_visible(ctx: EpisodeContext) -> Iterator[Finding]:
    episode, manifest = ctx.episode, ctx.manifest
    cameras = [c for c in manifest.cameras if f"cameras/{c.name}/rgb" in episode]
    inputs = [JOINTS, LINK_POSES, EE_POSE, *(f"cameras/{c.name}/extrinsics" for c in cameras)]
    if not cameras or not all(ctx.usable(p) for p in inputs if p == JOINTS or p in episode):
        return  # the structure checks report missing images and malformed arrays
    kin = _kinematics_or_none(ctx)
    joint_frames, ee = link_poses_or_fk(manifest, episode, kin, root=ctx.path)
    targets = {"gripper tool centre": (EE_POSE, ee[:, :3, 3])}
    for j in GENIMA_TARGET_JOINTS:
        if j < joint_frames.shape[1]:
            targets[f"joint {j}"] = (LINK_POSES, joint_frames[:, j, :3, 3])
    points = np.stack([p for _, p in targets.values()], axis=1)[
        _target_frames(episode.length, ctx.options.horizon)
    ]
    seen = np.zeros(points.shape[:2], dtype=bool)
    for cam in cameras:
        T_camera_world = invert_transform(camera_poses(manifest, episode, cam.name, kin, root=ctx.path))
        in_camera = transform_points(T_camera_world, points)
        seen |= CameraModel.from_calibration(cam).visible(in_camera.reshape(-1, 3)).reshape(seen.shape)
    seen |= ~np.isfinite(points).all(axis=-1)  # NaN poses are the `finite` check's to report
    for k, (name, (field, _)) in enumerate(targets.items()):
        unseen = np.flatnonzero(~seen[:, k])
        if len(unseen):
            yield ctx.error(
                f"the {name} at the target frame (t + {ctx.options.horizon}) is behind or outside every "
                f"camera ({', '.join(c.name for c in cameras)}) in {describe_frames(unseen)}: its sphere is "
                "drawn nowhere",
                field=field,
                frames=unseen,
            )


@check(
    "poses_match_fk",
    scope="episode",
    description="Recorded robot/link_poses and robot/ee_pose lie within fk_tolerance_m of forward kinematics "
    "of robot/joint_positions (wrong joint order, units, base pose or robot model otherwise).",
)
def poses_match_fk(ctx: EpisodeContext) -> Iterator[Finding]:
    recorded = [p for p in (LINK_POSES, EE_POSE) if ctx.usable(p)]
    if not recorded or not ctx.usable(JOINTS):
        return
    try:
        kin = _kinematics(ctx)
    except GeometryError as exc:
        yield ctx.warning(
            f"cannot compare recorded poses with forward kinematics: {exc.message}", field=recorded[0]
        )
        return
    q = ctx.array(JOINTS)
    tolerance = ctx.options.fk_tolerance_m
    if LINK_POSES in recorded:
        links = ctx.array(LINK_POSES)
        if links.shape[1] != kin.dof:
            yield ctx.error(
                f"has {links.shape[1]} frames per time step, the robot has {kin.dof} joints", field=LINK_POSES
            )
        else:
            yield from _report_distance(ctx, LINK_POSES, links, kin.joint_frames(q), tolerance)
    if EE_POSE in recorded:
        T_world_base = np.asarray(ctx.manifest.robot.T_world_base)
        yield from _report_distance(
            ctx, EE_POSE, T_world_base @ ctx.array(EE_POSE), kin.ee_pose(q), tolerance
        )


def _report_distance(
    ctx: EpisodeContext, field: str, recorded: np.ndarray, fk: np.ndarray, tolerance: float
) -> Iterator[Finding]:
    distance = np.linalg.norm(recorded[..., :3, 3] - fk[..., :3, 3], axis=-1)
    per_frame = distance.reshape(len(distance), -1).max(axis=1)
    bad = np.flatnonzero(per_frame > tolerance)  # NaN frames are the `finite` check's to report
    if len(bad):
        t = int(np.nanargmax(per_frame))
        where = f" (joint {int(np.nanargmax(distance[t]))})" if distance.ndim == 2 else ""
        yield ctx.error(
            f"up to {per_frame[t] * 100:.1f} cm from forward kinematics of {JOINTS}{where} at frame {t}, "
            f"beyond {tolerance * 100:g} cm in {describe_frames(bad)}: joint order, units, base pose or "
            "robot model?",
            field=field,
            frames=bad,
        )


@check(
    "static_cameras_still",
    scope="episode",
    description="Per-frame extrinsics of static cameras stay put (camera_tolerance_m / _deg) and match "
    "the manifest's T_world_camera.",
)
def static_cameras_still(ctx: EpisodeContext) -> Iterator[Finding]:
    o = ctx.options
    for cam in ctx.manifest.cameras:
        field = f"cameras/{cam.name}/extrinsics"
        if not cam.is_static or not ctx.usable(field):
            continue
        extrinsics = ctx.array(field).astype(np.float64)
        manifest_pose = cam.T_world_camera_array()
        reference = extrinsics[0] if manifest_pose is None else manifest_pose
        distance, angle = _pose_deviation(extrinsics, reference)
        moved = np.flatnonzero((distance > o.camera_tolerance_m) | (angle > o.camera_tolerance_deg))
        if len(moved):
            against = "its first frame" if manifest_pose is None else "the manifest's T_world_camera"
            yield ctx.error(
                f"static camera moves {_largest(distance, angle)} from {against} in {describe_frames(moved)}",
                field=field,
                frames=moved,
            )


@check(
    "wrist_camera_follows_link",
    scope="episode",
    description="A link-mounted camera's per-frame extrinsics are rigid in its link's frame (recorded "
    "robot/ee_pose when mounted on the ee link, forward kinematics otherwise) and match T_link_camera.",
)
def wrist_camera_follows_link(ctx: EpisodeContext) -> Iterator[Finding]:
    o, robot = ctx.options, ctx.manifest.robot
    for cam in ctx.manifest.cameras:
        field = f"cameras/{cam.name}/extrinsics"
        if cam.is_static or not ctx.usable(field) or not ctx.usable(JOINTS):
            continue
        if cam.mount == robot.ee_link and ctx.usable(EE_POSE):
            link = np.asarray(robot.T_world_base) @ ctx.array(EE_POSE)
            tolerance_m, tolerance_deg, source = o.camera_tolerance_m, o.camera_tolerance_deg, EE_POSE
        else:
            try:
                link = _kinematics(ctx).link_pose(ctx.array(JOINTS), cam.mount)
            except GeometryError as exc:
                yield ctx.warning(f"cannot follow mount link '{cam.mount}': {exc.message}", field=field)
                continue
            tolerance_m, tolerance_deg, source = o.fk_tolerance_m, o.fk_tolerance_deg, "forward kinematics"
        T_link_camera = invert_transform(link) @ ctx.array(field).astype(np.float64)
        manifest_pose = cam.T_link_camera_array()
        offsets = T_link_camera[:, :3, 3]
        middle = np.nanargmin(np.linalg.norm(offsets - np.nanmedian(offsets, axis=0), axis=1))
        reference = T_link_camera[middle] if manifest_pose is None else manifest_pose
        distance, angle = _pose_deviation(T_link_camera, reference)
        off = np.flatnonzero((distance > tolerance_m) | (angle > tolerance_deg))
        if len(off):
            against = "its typical pose" if manifest_pose is None else "the manifest's T_link_camera"
            yield ctx.error(
                f"camera moves {_largest(distance, angle)} in the frame of '{cam.mount}' ({source}) from "
                f"{against} in {describe_frames(off)}: it does not follow its link",
                field=field,
                frames=off,
            )
