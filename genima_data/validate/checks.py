"""The core checks: schema and files, structure, timing, values, calibration, image streams, labels.

Each check is a small function of a context yielding findings (see `genima_data.validate.registry`).
Geometric checks (joint visibility, FK consistency) live in their own module listed in CHECK_MODULES.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from genima_data.atomic import TMP_PREFIX
from genima_data.episode import ArraySource, is_image_path, spec_for
from genima_data.schema import FORMAT_VERSION, ROTATION_TOLERANCE, check_rigid_transform, natural_key
from genima_data.store.base import StructureKind, iter_blocks
from genima_data.validate.registry import (
    DatasetContext,
    EpisodeContext,
    Finding,
    check,
    describe_frames,
)

JOINTS = "robot/joint_positions"
GRIPPER = "robot/gripper_open"
ACTION = "action/joint_positions"
TIMESTAMPS = "timestamps"
GRIPPER_TOLERANCE = 1e-6  # float32 round-off around the [0, 1] bounds
POSE_ARRAYS = ("robot/ee_pose", "robot/link_poses")


# ---------------------------------------------------------------- dataset: manifest, files, calibration
@check(
    "manifest",
    scope="dataset",
    description="Manifest describes a usable GENIMA dataset: format version, cameras, tasks, episodes, "
    "joint velocity limits (a manifest that fails the schema makes the dataset unreadable: exit 2).",
)
def manifest_content(ctx: DatasetContext) -> Iterator[Finding]:
    m = ctx.manifest
    if m.format_version != FORMAT_VERSION:
        yield ctx.warning(
            f"written with format version {m.format_version}; this genima-data reads {FORMAT_VERSION}",
            field="format_version",
        )
    if not m.episodes:
        yield ctx.error("the dataset has no episodes", field="episodes")
    if not m.cameras:
        yield ctx.error("no cameras: GENIMA draws its targets on camera images", field="cameras")
    if not m.tasks:
        yield ctx.warning("no tasks listed: episodes' tasks and instructions are unchecked", field="tasks")
    if m.robot.joint_velocity_limits is None:
        yield ctx.warning("not set: trajectory jumps cannot be checked", field="robot.joint_velocity_limits")


@check(
    "episode_files",
    scope="dataset",
    description="Manifest episode index matches the disk: indexed episodes exist and open (a missing or "
    "truncated file is an error for that episode), no unindexed episodes or leftovers of interrupted writes.",
)
def episode_files(ctx: DatasetContext) -> Iterator[Finding]:
    # missing and unreadable episodes are reported by the episode pass, which tries to open each one
    indexed = set(ctx.dataset.episode_ids)
    for episode_id in ctx.dataset.episodes_on_disk():
        if episode_id not in indexed:
            yield ctx.warning(
                "on disk but not in the manifest's episode index, so readers ignore it (an interrupted "
                "append? re-run the command that wrote the dataset)",
                episode=episode_id,
                file=ctx.dataset.episode_path(episode_id),
            )
    leftovers = leftovers_of_interrupted_writes(ctx.path)
    if leftovers:
        yield ctx.warning(
            f"{len(leftovers)} leftover(s) of interrupted writes ({', '.join(leftovers[:3])}); they are not "
            "part of the dataset and deliver leaves them out; re-running the interrupted convert or "
            "render-targets removes them",
            file=ctx.path,
        )


def leftovers_of_interrupted_writes(root: Path) -> list[str]:
    """Relative POSIX paths of ``.tmp-*`` entries anywhere below `root` (not looking inside them)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        found += [
            Path(dirpath, n).relative_to(root).as_posix()
            for n in filenames + dirnames
            if n.startswith(TMP_PREFIX)
        ]
        dirnames[:] = [d for d in dirnames if not d.startswith(TMP_PREFIX)]  # a leftover counts once
    return sorted(found, key=natural_key)


def _field_of_view_deg(focal_px: float, size_px: int) -> float:
    return math.degrees(2 * math.atan(size_px / (2 * focal_px)))


@check(
    "calibration",
    scope="dataset",
    description="Intrinsics are plausible (principal point inside the image, field of view from the focal "
    "lengths, square pixels) and every static camera has T_world_camera.",
)
def calibration(ctx: DatasetContext) -> Iterator[Finding]:
    o = ctx.options
    for cam in ctx.manifest.cameras:
        where = f"cameras.{cam.name}"
        K = cam.K_array
        fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
        if not (-0.5 <= cx <= cam.width - 0.5 and -0.5 <= cy <= cam.height - 0.5):
            yield ctx.error(
                f"principal point ({cx:g}, {cy:g}) lies outside the {cam.width}x{cam.height} image: K "
                "belongs to another resolution or is normalised",
                field=f"{where}.K",
            )
        for axis, focal, size in (("x", fx, cam.width), ("y", fy, cam.height)):
            fov = _field_of_view_deg(focal, size)
            if not o.min_fov_deg <= fov <= o.max_fov_deg:
                yield ctx.error(
                    f"f{axis} = {focal:g} px gives a {fov:.1f}° field of view across {size} px, outside "
                    f"[{o.min_fov_deg:g}°, {o.max_fov_deg:g}°]: K in mm, normalised or for another "
                    "resolution?",
                    field=f"{where}.K",
                )
        if max(fx / fy, fy / fx) > o.max_pixel_aspect:
            yield ctx.warning(
                f"fx / fy = {fx / fy:.3f}: non-square pixels are rare; are fx and fy from the same "
                "calibration?",
                field=f"{where}.K",
            )
        if cam.is_static and cam.T_world_camera is None:
            yield ctx.error(
                "static camera (mount 'world') has no T_world_camera: its targets cannot be rendered",
                field=f"{where}.T_world_camera",
            )


@check(
    "duplicates",
    scope="dataset",
    description="No two episodes have identical joint trajectories (hash of robot/joint_positions).",
)
def duplicates(ctx: DatasetContext) -> Iterator[Finding]:
    by_digest: dict[str, list[str]] = defaultdict(list)
    for episode_id, digest in ctx.joint_digests.items():
        by_digest[digest].append(episode_id)
    for ids in by_digest.values():
        first, *copies = sorted(ids, key=natural_key)
        for copy in copies:
            yield ctx.error(
                f"identical joint trajectory to episode {first}: a duplicated demonstration",
                episode=copy,
                field=JOINTS,
                file=ctx.dataset.episode_path(copy),
            )


def joint_digest(ctx: EpisodeContext) -> str | None:
    """Fingerprint of the episode's joint trajectory (dtype, shape and bytes), for `duplicates`."""
    if not ctx.usable(JOINTS):
        return None
    q = np.ascontiguousarray(ctx.array(JOINTS))
    return hashlib.sha256(f"{q.dtype.str}{q.shape}".encode() + q.tobytes()).hexdigest()


# ---------------------------------------------------------------- episode: metadata and structure
@check(
    "episode_meta",
    scope="episode",
    description="Episode metadata is valid against the schema, names its own id and a manifest task, and "
    "agrees with the manifest's episode index.",
)
def episode_meta(ctx: EpisodeContext) -> Iterator[Finding]:
    meta = ctx.meta
    if meta.episode_id != ctx.episode_id:
        yield ctx.error(
            f"metadata says episode_id '{meta.episode_id}' but it is stored as '{ctx.episode_id}'",
            field="episode_id",
        )
    tasks = [t.name for t in ctx.manifest.tasks]
    if tasks and meta.task not in tasks:
        yield ctx.error(f"task '{meta.task}' is not among the manifest's tasks {tasks}", field="task")
    if ctx.summary is not None:
        for name in ("task", "length", "success", "variation"):
            indexed, actual = getattr(ctx.summary, name), getattr(meta, name)
            if indexed != actual:
                yield ctx.error(
                    f"the manifest's episode index says {indexed!r}, the episode says {actual!r}: the index "
                    "is stale (re-commit the dataset)",
                    field=name,
                )


def _structure_findings(ctx: EpisodeContext, kinds: Sequence[StructureKind]) -> Iterator[Finding]:
    for kind, error in ctx.structure:
        if kind in kinds:
            yield ctx.error(error.message, field=error.field)


@check(
    "required_arrays",
    scope="episode",
    description="Required arrays (timestamps, robot/joint_positions, robot/gripper_open) and an RGB stream "
    "for every manifest camera are present.",
)
def required_arrays(ctx: EpisodeContext) -> Iterator[Finding]:
    yield from _structure_findings(ctx, ("missing",))
    for cam in ctx.manifest.cameras:
        path = f"cameras/{cam.name}/rgb"
        if not ctx.has(path):
            yield ctx.error("the manifest lists this camera but the episode has no RGB stream", field=path)


@check(
    "chunks",
    scope="episode",
    description="Every chunk of every array is on disk: genima-data writes them all, so a missing chunk is "
    "lost data (an incomplete copy), though the store would read it as zeros.",
)
def chunks(ctx: EpisodeContext) -> Iterator[Finding]:
    for path, (missing, total) in sorted(ctx.dataset.missing_chunks(ctx.episode_id).items()):
        yield ctx.error(
            f"{missing} of {total} chunks are not on disk (lost in a copy?); they would read as zeros",
            field=path,
        )


@check(
    "structure",
    scope="episode",
    description="Every array is in the logical tree with the expected dtype and frame shape (joints: dof, "
    "actions: dof + 1, images: H x W x 3) and names a manifest camera.",
)
def structure(ctx: EpisodeContext) -> Iterator[Finding]:
    yield from _structure_findings(ctx, ("unknown", "camera", "dtype", "shape"))


@check(
    "frame_counts",
    scope="episode",
    description="Every stream has as many frames as the episode (equal frame counts across streams).",
)
def frame_counts(ctx: EpisodeContext) -> Iterator[Finding]:
    yield from _structure_findings(ctx, ("frames",))


# ---------------------------------------------------------------- episode: timing
@check(
    "timestamps",
    scope="episode",
    description="Timestamps strictly increase at the manifest's fps; reports jitter statistics and dropped "
    "frames (intervals longer than 1.5 periods) with their frame indices.",
)
def timestamps(ctx: EpisodeContext) -> Iterator[Finding]:
    if not ctx.usable(TIMESTAMPS) or ctx.episode[TIMESTAMPS].shape[0] < 2:
        return
    o, fps = ctx.options, ctx.manifest.fps
    period = 1.0 / fps
    dt = np.diff(ctx.array(TIMESTAMPS).astype(np.float64))
    finite = np.isfinite(dt)
    backwards = np.flatnonzero(finite & (dt <= 0)) + 1
    if backwards.size:
        yield ctx.error(
            f"not strictly increasing at {describe_frames(backwards)}", field=TIMESTAMPS, frames=backwards
        )
    forward = dt[finite & (dt > 0)]
    if not forward.size:
        return
    regular = forward[forward <= o.dropped_frame_factor * period]
    # the mean of regular intervals resists jitter and drops; the median decides when few are regular
    measured = float(regular.mean() if regular.size >= forward.size / 2 else np.median(forward))
    if abs(measured - period) > o.fps_tolerance * period:
        yield ctx.error(
            f"frame interval {measured * 1e3:.2f} ms ({1 / measured:.3g} Hz) disagrees with the manifest's "
            f"fps {fps:g} ({period * 1e3:.2f} ms)",
            field=TIMESTAMPS,
        )
        return  # dropped frames and jitter are measured against a period that is wrong
    gap = finite & (dt > o.dropped_frame_factor * period)
    gaps = np.flatnonzero(gap) + 1
    dropped = int(np.sum(np.maximum(np.round(dt[gap] / period) - 1, 1)))
    if gaps.size:
        yield ctx.warning(
            f"about {dropped} dropped frame(s): intervals of up to {dt[gap].max() / period:.1f} periods "
            f"before {describe_frames(gaps)}",
            field=TIMESTAMPS,
            frames=gaps,
        )
    deviation = regular - period
    jitter = float(deviation.std())
    stats = (
        f"interval {measured * 1e3:.2f} ms at {fps:g} fps: jitter std {jitter * 1e3:.2f} ms, max "
        f"{np.abs(deviation).max() * 1e3:.2f} ms; {dropped} dropped frame(s)"
    )
    noisy = jitter > o.jitter_warning_fraction * period
    yield (ctx.warning if noisy else ctx.info)(stats, field=TIMESTAMPS)


# ---------------------------------------------------------------- episode: values
def _column_names(ctx: EpisodeContext, columns: int) -> list[str]:
    joints = ctx.manifest.robot.joint_names
    if columns == len(joints):
        return [f"joint {j}" for j in joints]
    if columns == len(joints) + 1:
        return [*(f"joint {j}" for j in joints), "gripper"]
    return [f"column {c}" for c in range(columns)]


def _nonfinite_frames(source: ArraySource) -> tuple[np.ndarray, set[int], set[str]]:
    """Frames and (for 2-D arrays) columns holding NaN/inf, and which of the two occur; block by block."""
    frames, columns, kinds = [], set(), set()
    for start, _, block in iter_blocks(source):
        bad = ~np.isfinite(block)
        if not bad.any():
            continue
        kinds |= {name for name, test in (("NaN", np.isnan), ("inf", np.isinf)) if test(block).any()}
        frames.append(np.flatnonzero(bad.reshape(len(block), -1).any(axis=1)) + start)
        if block.ndim == 2:
            columns |= set(np.flatnonzero(bad.any(axis=0)).tolist())
    return (np.concatenate(frames) if frames else np.zeros(0, int)), columns, kinds


@check(
    "finite",
    scope="episode",
    description="No NaN or inf in any numeric array (image streams such as depth are read frame by frame; "
    "invalid depth pixels are a warning).",
)
def finite(ctx: EpisodeContext) -> Iterator[Finding]:
    for path in ctx.episode.paths():
        source = ctx.episode[path]
        if np.dtype(source.dtype).kind not in "fc":
            continue
        if is_image_path(path):
            nonfinite = ctx.frame_stats(path).nonfinite
            bad = np.flatnonzero(nonfinite)
            if bad.size:
                yield ctx.warning(
                    f"{int(nonfinite.sum())} NaN/inf pixels in {bad.size} frame(s): {describe_frames(bad)}",
                    field=path,
                    frames=bad,
                )
            continue
        bad, columns, kinds = _nonfinite_frames(source)
        if bad.size:
            names = _column_names(ctx, source.shape[1]) if len(source.shape) == 2 else []
            where = f" ({', '.join(names[c] for c in sorted(columns))})" if names else ""
            yield ctx.error(
                f"{' and '.join(sorted(kinds))} at {describe_frames(bad)}{where}", field=path, frames=bad
            )


def _range_findings(
    ctx: EpisodeContext,
    path: str,
    values: np.ndarray,
    names: Sequence[str],
    lower: Sequence[float],
    upper: Sequence[float],
    margin: float,
    unit: str,
) -> Iterator[Finding]:
    """One error per column of `values` (T, n) that leaves [lower - margin, upper + margin]."""
    for j, name in enumerate(names):
        column = values[:, j]
        outside = np.flatnonzero((column < lower[j] - margin) | (column > upper[j] + margin))
        if outside.size:
            seen = column[outside]
            yield ctx.error(
                f"{name} outside [{lower[j]:g}, {upper[j]:g}]{unit} (margin {margin:g}) at "
                f"{describe_frames(outside)}: values {seen.min():g} to {seen.max():g}{unit}",
                field=path,
                frames=outside,
            )


@check(
    "joint_limits",
    scope="episode",
    description="Joint positions stay within the robot's joint limits (plus a small margin).",
)
def joint_limits(ctx: EpisodeContext) -> Iterator[Finding]:
    robot = ctx.manifest.robot
    if ctx.usable(JOINTS):
        yield from _range_findings(
            ctx,
            JOINTS,
            ctx.array(JOINTS),
            robot.joint_names,
            robot.joint_lower,
            robot.joint_upper,
            ctx.options.joint_limit_margin_rad,
            " rad",
        )


@check("gripper_range", scope="episode", description="robot/gripper_open is in [0, 1] (1 = open).")
def gripper_range(ctx: EpisodeContext) -> Iterator[Finding]:
    if ctx.usable(GRIPPER):
        values = ctx.array(GRIPPER).reshape(-1, 1)
        yield from _range_findings(ctx, GRIPPER, values, ["gripper_open"], [0], [1], GRIPPER_TOLERANCE, "")


@check(
    "actions",
    scope="episode",
    description="Commanded actions, if present, keep joints within limits and the gripper command in "
    "[0, 1] (their dof + 1 shape and finiteness are checked by structure and finite).",
)
def actions(ctx: EpisodeContext) -> Iterator[Finding]:
    robot = ctx.manifest.robot
    if not ctx.usable(ACTION):
        return
    action = ctx.array(ACTION)
    margin = ctx.options.joint_limit_margin_rad
    yield from _range_findings(
        ctx, ACTION, action, robot.joint_names, robot.joint_lower, robot.joint_upper, margin, " rad"
    )
    yield from _range_findings(ctx, ACTION, action[:, -1:], ["gripper"], [0], [1], GRIPPER_TOLERANCE, "")


def _frame_intervals(ctx: EpisodeContext, T: int) -> np.ndarray:
    """Seconds between consecutive frames: recorded timestamps when they are sane, else 1 / fps."""
    if ctx.usable(TIMESTAMPS) and ctx.episode[TIMESTAMPS].shape == (T,):
        dt = np.diff(ctx.array(TIMESTAMPS).astype(np.float64))
        if np.all(np.isfinite(dt)) and np.all(dt > 0):
            return dt
    return np.full(max(T - 1, 0), 1.0 / ctx.manifest.fps)


@check(
    "trajectory_jumps",
    scope="episode",
    description="Joint speed implied by consecutive frames stays below the robot's joint_velocity_limits × "
    "velocity_limit_factor.",
)
def trajectory_jumps(ctx: EpisodeContext) -> Iterator[Finding]:
    limits = ctx.manifest.robot.joint_velocity_limits
    if limits is None or not ctx.usable(JOINTS):
        return  # the manifest check warns about missing limits
    q = ctx.array(JOINTS).astype(np.float64)
    speed = np.abs(np.diff(q, axis=0)) / _frame_intervals(ctx, len(q))[:, None]
    factor = ctx.options.velocity_limit_factor
    for j, name in enumerate(ctx.manifest.robot.joint_names):
        jumps = np.flatnonzero(speed[:, j] > factor * limits[j]) + 1
        if jumps.size:
            yield ctx.error(
                f"joint {name} moves at up to {np.nanmax(speed[jumps - 1, j]):.3g} rad/s, above {factor:g} × "
                f"its {limits[j]:g} rad/s limit, arriving at {describe_frames(jumps)}: a glitch, dropped "
                "frames or wrong units?",
                field=JOINTS,
                frames=jumps,
            )


# ---------------------------------------------------------------- episode: cameras
def _camera_of(path: str) -> str | None:
    spec = spec_for(path)
    match = spec.regex().match(path) if spec else None
    return match.groupdict().get("cam") if match else None


@check(
    "image_size",
    scope="episode",
    description="Image streams have the width and height the manifest's calibration is for.",
)
def image_size(ctx: EpisodeContext) -> Iterator[Finding]:
    cameras = {c.name: c for c in ctx.manifest.cameras}
    for path in ctx.episode.paths():
        cam = cameras.get(_camera_of(path) or "")
        shape = ctx.episode[path].shape
        if cam is None or not is_image_path(path) or len(shape) < 3:
            continue
        if tuple(shape[1:3]) != (cam.height, cam.width):
            yield ctx.error(
                f"frames are {shape[2]}x{shape[1]} but camera '{cam.name}' is calibrated at "
                f"{cam.width}x{cam.height}: K belongs to another resolution",
                field=path,
            )


@check(
    "camera_poses",
    scope="episode",
    description="Every moving camera has per-frame extrinsics or a T_link_camera, so its targets can be "
    "rendered.",
)
def camera_poses(ctx: EpisodeContext) -> Iterator[Finding]:
    for cam in ctx.manifest.cameras:
        path = f"cameras/{cam.name}/extrinsics"
        if not cam.is_static and cam.T_link_camera is None and not ctx.has(path):
            yield ctx.error(
                f"camera mounted on '{cam.mount}' has neither per-frame extrinsics nor T_link_camera: "
                "its targets cannot be rendered",
                field=path,
            )


@check(
    "rigid_poses",
    scope="episode",
    description="Per-frame poses (camera extrinsics, robot/ee_pose, robot/link_poses) are rigid transforms: "
    "orthonormal rotation with det +1, bottom row 0 0 0 1.",
)
def rigid_poses(ctx: EpisodeContext) -> Iterator[Finding]:
    paths = [*POSE_ARRAYS, *(p for p in ctx.episode.paths() if p.endswith("/extrinsics"))]
    for path in paths:
        if not ctx.usable(path):
            continue
        poses = ctx.array(path).astype(np.float64)
        bad = np.flatnonzero(_non_rigid(poses.reshape(len(poses), -1, 4, 4)).any(axis=1))
        if bad.size:
            first = poses[bad[0]].reshape(-1, 4, 4)
            try:  # schema's wording for the first offending matrix
                for T in first:
                    check_rigid_transform(T, "pose")
                reason = "numerically not rigid"
            except ValueError as exc:
                reason = str(exc)
            yield ctx.error(
                f"not a rigid transform at {describe_frames(bad)} (frame {bad[0]}: {reason})",
                field=path,
                frames=bad,
            )


def _non_rigid(T: np.ndarray) -> np.ndarray:
    """Which finite 4x4 matrices in (..., 4, 4) are not rigid (non-finite ones are `finite`'s to report)."""
    R = T[..., :3, :3]
    orthonormal_error = np.abs(np.swapaxes(R, -1, -2) @ R - np.eye(3)).max(axis=(-1, -2))
    bottom_error = np.abs(T[..., 3, :] - [0, 0, 0, 1]).max(axis=-1)
    with np.errstate(invalid="ignore"):
        bad = (
            (orthonormal_error > ROTATION_TOLERANCE)
            | (np.abs(np.linalg.det(R) - 1) > ROTATION_TOLERANCE)
            | (bottom_error > 1e-6)
        )
    return bad & np.isfinite(T).all(axis=(-1, -2))


def _rgb_streams(ctx: EpisodeContext) -> list[str]:
    paths = ctx.episode.paths()
    return [p for p in paths if p.startswith("cameras/") and p.endswith("/rgb") and ctx.usable(p)]


@check(
    "blank_frames",
    scope="episode",
    description="Camera frames are not blank (pixel standard deviation below blank_std_threshold): an "
    "entirely blank stream is an error, some blank frames a warning.",
)
def blank_frames(ctx: EpisodeContext) -> Iterator[Finding]:
    threshold = ctx.options.blank_std_threshold
    for path in _rgb_streams(ctx):
        std = ctx.frame_stats(path).std
        blank = np.flatnonzero(std < threshold)
        if blank.size and blank.size == std.size:
            yield ctx.error(
                f"every frame is blank (pixel std < {threshold:g}): a dead, covered or unplugged camera",
                field=path,
            )
        elif blank.size:
            yield ctx.warning(
                f"{blank.size} blank frame(s) (pixel std < {threshold:g}) at {describe_frames(blank)}",
                field=path,
                frames=blank,
            )


def _true_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of every run of True in a 1-D bool array."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


@check(
    "frozen_frames",
    scope="episode",
    description="No camera repeats the identical frame for frozen_run_frames or more frames while the arm "
    "moves (a stalled driver or a sync fault); identical frames while the arm is still are reported as info.",
)
def frozen_frames(ctx: EpisodeContext) -> Iterator[Finding]:
    o = ctx.options
    q = ctx.array(JOINTS) if ctx.usable(JOINTS) else None
    for path in _rgb_streams(ctx):
        for start, stop in _true_runs(ctx.frame_stats(path).same_as_previous):
            first, last = start - 1, stop - 1  # frames first..last are identical
            if last - first + 1 < o.frozen_run_frames:
                continue
            frames = range(first, last + 1)
            what = f"frames {first}–{last} ({len(frames)} frames) are identical"
            if q is None or len(q) <= last:
                yield ctx.warning(f"{what}; no usable joint positions tell if the arm moved", field=path)
                continue
            motion = float(np.nanmax(np.abs(q[first : last + 1] - q[first])))
            if motion > o.frozen_motion_rad:
                message = f"{what} while the arm moves {motion:.3g} rad: the stream froze"
                yield ctx.error(message, field=path, frames=frames)
            else:
                yield ctx.info(f"{what} while the arm is still", field=path, frames=frames)


# ---------------------------------------------------------------- episode: length and labels
@check(
    "episode_length",
    scope="episode",
    description="Episode length is within [min_length, max_length]; by default GENIMA needs more than "
    "horizon + 2 frames so that frames have a future target.",
)
def episode_length(ctx: EpisodeContext) -> Iterator[Finding]:
    o, length = ctx.options, ctx.meta.length
    if length < o.effective_min_length:
        why = "" if o.min_length is not None else f" (GENIMA needs more than horizon + 2 = {o.horizon + 2})"
        message = f"{length} frames, fewer than the minimum {o.effective_min_length}{why}"
        yield ctx.error(message, field="length")
    if o.max_length is not None and length > o.max_length:
        yield ctx.warning(
            f"{length} frames, more than the maximum {o.max_length}: several demonstrations run together?",
            field="length",
        )


@check(
    "success_labels",
    scope="episode",
    description="Every episode has a success label (warning when missing; unsuccessful episodes are info).",
)
def success_labels(ctx: EpisodeContext) -> Iterator[Finding]:
    if ctx.meta.success is None:
        yield ctx.warning("no success label: GENIMA is trained on successful demonstrations", field="success")
    elif not ctx.meta.success:
        yield ctx.info("labelled unsuccessful", field="success")


@check(
    "instructions",
    scope="episode",
    description="Every episode has a natural-language instruction (GENIMA conditions on it).",
)
def instructions(ctx: EpisodeContext) -> Iterator[Finding]:
    if ctx.meta.instruction.strip():
        return
    task = ctx.manifest.task(ctx.meta.task)
    listed = len(task.instructions) if task else 0
    fallback = f"its task lists {listed}" if listed else "nor does its task"
    yield ctx.warning(f"no instruction ({fallback}): GENIMA conditions on it", field="instruction")
