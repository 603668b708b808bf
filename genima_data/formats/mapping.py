"""What readers of foreign formats share: calibration files, and mapping state vectors onto one arm.

Foreign formats record a flat state vector per frame (ALOHA's 14-dim `qpos`, LeRobot's `observation.state`)
whose entries are named; the canonical tree wants one arm's joints plus one gripper opening. `ArmLayout`
picks the entries: the joints and the gripper of one arm, chosen by name prefix (``left`` → ``left_*``)
when the vector holds several arms.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genima_data.calibration import load_calibration
from genima_data.errors import FormatError, StoreError
from genima_data.schema import Camera, Manifest, parse_model


def chosen_cameras(
    available: Sequence[str], wanted: Sequence[str] | str | None, *, source: str | Path
) -> list[str]:
    """The `available` cameras, or those named in `wanted` (the `cameras` option); a misspelt name is a
    one-line error listing what is there, rather than a dataset silently left without that camera."""
    if wanted is None:
        return list(available)
    wanted = [wanted] if isinstance(wanted, str) else [str(n) for n in wanted]
    unknown = [n for n in wanted if n not in available]
    if unknown:
        raise FormatError(
            f"unknown camera(s) {unknown} (available: {', '.join(available) or 'none'})",
            file=source,
            field="cameras",
        )
    return [n for n in available if n in wanted]


def calibrated_cameras(
    names: Sequence[str],
    calibration: str | Path | None,
    sidecar: Path,
    *,
    source: str | Path,
    what: str,
    sizes: Mapping[str, tuple[int, int]] | None = None,
) -> list[Camera]:
    """Cameras `names`, calibrated from the file the user gave (`calibration`) or else the `sidecar` file
    genima-data wrote next to the data; a one-line error names every camera left without calibration, and
    a camera calibrated at another resolution than its images' (`sizes`: name → (width, height))."""
    path = calibration if calibration is not None else (sidecar if sidecar.is_file() else None)
    by_name = {c.name: c for c in load_calibration(path)} if path is not None else {}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise FormatError(
            f"no calibration for camera(s) {missing}: {what} carries none: pass --calibration FILE, or "
            "--reader-opt 'cameras=[...]' to import fewer cameras",
            file=source,
            field="cameras",
        )
    cameras = [by_name[n] for n in names]
    for camera in cameras:
        check_resolution(camera, (sizes or {}).get(camera.name), calibration=path, source=source)
    return cameras


def check_resolution(
    camera: Camera, size: tuple[int, int] | None, *, calibration: str | Path | None, source: str | Path
) -> None:
    """K is only valid at the resolution it was calibrated at: refuse images of another size."""
    if size is not None and tuple(size) != (camera.width, camera.height):
        raise FormatError(
            f"camera '{camera.name}' is calibrated at {camera.width}x{camera.height} but its images in "
            f"{source} are {size[0]}x{size[1]}: the calibration belongs to another resolution",
            file=calibration,
            field=f"cameras.{camera.name}",
        )


@dataclass(frozen=True)
class ArmLayout:
    """Indices of one arm's joints and gripper in a named state vector."""

    names: tuple[str, ...]
    joints: tuple[int, ...]
    gripper: int

    @classmethod
    def from_names(
        cls, names: Sequence[str], *, arm: str | None = None, gripper: str | None = None, field: str = "state"
    ) -> ArmLayout:
        """Pick the joints and gripper of `arm` (a name prefix), the gripper by name or by 'gripper' in it."""
        names = tuple(str(n) for n in names)
        candidates = [i for i, n in enumerate(names) if arm is None or n.startswith(f"{arm}_")]
        if not candidates:
            raise FormatError(
                f"no entries of arm '{arm}' (names start with '{arm}_') in {list(names)}", field=field
            )
        if gripper is not None:
            if gripper not in names:
                raise FormatError(f"gripper '{gripper}' is not one of {list(names)}", field=field)
            grippers = [names.index(gripper)]
        else:
            grippers = [i for i in candidates if "gripper" in names[i].lower()]
        if len(grippers) != 1:
            found = [names[i] for i in grippers]
            hint = (
                "choose an arm with --reader-opt arm=<prefix>"
                if found
                else "name it with --reader-opt gripper=<name>"
            )
            raise FormatError(f"{len(found)} gripper entries {found} in {list(names)}: {hint}", field=field)
        joints = tuple(i for i in candidates if i != grippers[0])
        return cls(names=names, joints=joints, gripper=grippers[0])

    @property
    def joint_names(self) -> list[str]:
        return [self.names[i] for i in self.joints]

    @property
    def is_whole_vector(self) -> bool:
        """Whether joints + gripper are exactly the vector in order (nothing dropped, nothing moved)."""
        return (*self.joints, self.gripper) == tuple(range(len(self.names)))

    def split(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(T, n) vectors → (T, joints) joint positions and (T,) gripper values, float32."""
        vectors = np.asarray(vectors)
        return (
            vectors[:, list(self.joints)].astype(np.float32),
            vectors[:, self.gripper].astype(np.float32),
        )

    def joints_and_gripper(self, vectors: np.ndarray) -> np.ndarray:
        """(T, n) → (T, joints + 1): the arm's joints then its gripper (the action layout), float32."""
        joints, gripper = self.split(vectors)
        return np.concatenate([joints, gripper[:, None]], axis=1)

    def merge(self, vectors: np.ndarray, joints: np.ndarray, gripper: np.ndarray | None = None) -> np.ndarray:
        """`vectors` with this arm's slots set to `joints` (and `gripper`), unless they already hold them.

        A round trip keeps the original vectors bit for bit (e.g. float64 ones that the float32 joint
        positions came from); edited values replace the originals'. `gripper` None keeps that slot.
        """
        current_joints, current_gripper = self.split(vectors)
        if np.array_equal(current_joints, joints) and (
            gripper is None or np.array_equal(current_gripper, gripper)
        ):
            return vectors
        merged = np.array(vectors, copy=True)
        merged[:, list(self.joints)] = joints
        if gripper is not None:
            merged[:, self.gripper] = gripper
        return merged


def manifest_record(manifest: Manifest) -> dict:
    """What a foreign format cannot hold of a manifest, for a sidecar file (cameras go to calibration)."""
    return manifest.model_dump(mode="json", exclude={"episodes", "storage", "cameras"})


def manifest_from_record(record: dict, cameras: Sequence[Camera], *, file: str | Path) -> Manifest:
    """The manifest `manifest_record` saved, with `cameras` (its calibration) put back."""
    return parse_model(
        Manifest, {**record, "cameras": [c.model_dump(mode="json") for c in cameras]}, file=file
    )


def writer_manifest(given: Manifest | None, existing: Manifest | None, *, path: Path, what: str) -> Manifest:
    """The manifest a writer of a foreign format works with: `given`, unless `path` already holds another
    dataset (refused); or, for a worker attaching without one (`given` None), the write in progress."""
    if given is None:
        if existing is None:
            raise StoreError(f"no {what} write in progress to attach to", file=path)
        return existing
    if existing is not None and existing.identity() != given.identity():
        raise StoreError(
            f"destination already holds a different dataset ('{existing.name}'); choose another destination "
            "or remove it",
            file=path,
        )
    return given
