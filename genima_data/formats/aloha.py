"""ACT/ALOHA HDF5 episodes (``episode_<N>.hdf5``) as a format, read and written.

One file per episode, as ACT's and ALOHA's recorders write them::

    attrs: sim (bool), compress (bool, when images are JPEG)
    /observations/qpos        (T, 14)  6 joints + normalised gripper (0 closed, 1 open) per arm, left first
    /observations/qvel        (T, 14)
    /observations/effort      (T, 14)  optional
    /observations/images/<cam>  (T, H, W, 3) uint8 RGB, or (T, L) uint8 JPEG bytes zero-padded to the
                              longest frame (compress=True; decoded with cv2.imdecode, padding ignored)
    /action                   (T, 14)  commanded joint positions + gripper, same layout as qpos
    /compress_len, /base_action, ...   anything else: kept under extras/ and written back

Mapping to the single-arm tree. ALOHA is bimanual; GENIMA drives one arm. The reader takes the arm
chosen by `arm` (``left`` by default): ``robot/joint_positions`` = its six ViperX 300s joints,
``robot/gripper_open`` = its gripper value (already normalised to [0, 1] by ALOHA, 1 = open; not
clipped), ``action/joint_positions`` = its six joints + gripper from ``/action``, velocities and
efforts of its joints. Every dataset of the file is also kept whole under ``extras/<path with '/' as
'.'>`` (e.g. ``extras/observations.qpos``), so the other arm is not lost and writing the episode back
gives the same vectors. Single-arm variants (7-wide qpos) map without a prefix.

ALOHA stores no calibration and no timestamps: cameras come from a calibration file (`calibration`,
or the ``calibration.json`` this writer leaves next to the episodes) and frame t is at ``t / fps``
(ALOHA records at 50 Hz). What ALOHA has no place for (timestamps, end-effector and link poses, moving
camera poses, depth, targets) the writer stores under ``/genima/<tree path>``, which ACT ignores and this
reader restores, so store → ALOHA → store is exact for raw images.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from genima_data.atomic import atomic_output, atomic_write_text, remove_path, remove_temporaries
from genima_data.calibration import load_calibration, save_calibration
from genima_data.episode import Episode, LazyFrames
from genima_data.errors import FormatError, GenimaDataError, StoreError
from genima_data.formats import Format
from genima_data.formats.mapping import (
    ArmLayout,
    calibrated_cameras,
    chosen_cameras,
    manifest_from_record,
    manifest_record,
    writer_manifest,
)
from genima_data.robots import VX300S_JOINTS, load_robot, viperx_300s
from genima_data.schema import (
    EpisodeMeta,
    EpisodeSource,
    EpisodeSummary,
    Manifest,
    Robot,
    Task,
    natural_key,
    parse_model,
)
from genima_data.store.base import check_episode_structure

ALOHA_FPS = 50.0
ARMS = ("left", "right")
BIMANUAL_NAMES = tuple(f"{arm}_{joint}" for arm in ARMS for joint in (*VX300S_JOINTS, "gripper"))
SINGLE_ARM_NAMES = (*VX300S_JOINTS, "gripper")
EPISODE_FILE = re.compile(r"^episode_(\d+)\.hdf5$")
IMAGES = "observations/images"
VECTORS = ("observations/qpos", "observations/qvel", "observations/effort", "action")
GENIMA_GROUP = "genima"
CALIBRATION_FILE = "calibration.json"
RECORD_FILE = "genima.json"
PENDING_FILE = ".genima-pending.json"
EPISODE_ATTR = "genima_episode"
QVEL_ESTIMATED_ATTR = "genima_qvel_estimated"
DEFAULT_JPEG_QUALITY = 50  # what ALOHA's recorder uses
IMAGE_CODECS = ("raw", "jpeg")
WRITTEN_FROM_TREE = frozenset(
    (
        "timestamps",
        "robot/joint_positions",
        "robot/gripper_open",
        "robot/joint_velocities",
        "robot/joint_forces",
        "action/joint_positions",
    )
)


def episode_files(path: Path) -> dict[int, Path]:
    """episode number → file, for the ``episode_<N>.hdf5`` files in `path`."""
    matches = ((EPISODE_FILE.match(p.name), p) for p in path.iterdir()) if path.is_dir() else ()
    return {int(m.group(1)): p for m, p in matches if m}


def looks_like_aloha(path: Path) -> bool:
    return path.is_dir() and (bool(episode_files(path)) or (path / PENDING_FILE).is_file())


def episode_number(episode_id: str) -> int:
    """The N of ``episode_<N>.hdf5`` for an episode id: its trailing number ('episode7' → 7)."""
    match = re.search(r"(\d+)$", episode_id)
    if match is None:
        raise FormatError(
            f"ALOHA files are numbered (episode_<N>.hdf5) but episode id '{episode_id}' ends in no number"
        )
    return int(match.group(1))


def import_h5py() -> Any:
    import h5py

    return h5py


def extras_path(hdf5_path: str) -> str:
    """extras/ name of an ALOHA dataset: 'observations/qpos' → 'extras/observations.qpos'."""
    return "extras/" + hdf5_path.replace("/", ".")


def layout_for(width: int, arm: str, robot: Robot | None, *, field: str) -> ArmLayout:
    """Which entries of a `width`-wide ALOHA vector are the chosen arm's joints and gripper."""
    if robot is not None and robot.dof + 1 == width:
        return ArmLayout.from_names([*robot.joint_names, "gripper"], gripper="gripper", field=field)
    if width == len(BIMANUAL_NAMES):
        return ArmLayout.from_names(BIMANUAL_NAMES, arm=arm, field=field)
    if width == len(SINGLE_ARM_NAMES):
        return ArmLayout.from_names(SINGLE_ARM_NAMES, field=field)
    raise FormatError(
        f"{width}-wide vectors are neither ALOHA's 14 (two arms) nor 7 (one arm); describe the arm with "
        "--reader-opt robot=<robot.yaml> (its joints + 1 gripper)",
        field=field,
    )


def open_episode_file(file: Path) -> Any:
    """An episode file opened for reading; a truncated or non-HDF5 file is a one-line error naming it."""
    try:
        return import_h5py().File(file, "r")
    except OSError as exc:
        raise FormatError(f"not a readable HDF5 file: {exc}", file=file) from None


def recorded_cameras(h5: Any) -> list[str]:
    """Names of the cameras an open episode file has images of."""
    return sorted(h5[IMAGES]) if IMAGES in h5 else []


def vector_width(qpos: Any) -> int:
    """Width of the (T, n) qpos vectors; anything but one vector per frame is a one-line error."""
    if qpos.ndim != 2:
        raise FormatError(
            f"shape {qpos.shape} is not one vector per frame (T, n)", field="/observations/qpos"
        )
    return int(qpos.shape[1])


def decode_jpeg(buffer: np.ndarray, where: str) -> np.ndarray:
    import cv2

    image = cv2.imdecode(np.asarray(buffer, dtype=np.uint8).reshape(-1), cv2.IMREAD_COLOR)
    if image is None:
        raise FormatError("JPEG frame cannot be decoded", file=where)
    return image  # ALOHA encodes RGB arrays with cv2, so decoding gives RGB back (no channel swap)


class AlohaReader:
    """Reads a directory of ACT/ALOHA ``episode_<N>.hdf5`` files as Episodes (see the module docstring).

    Options: `calibration` (camera file; needed unless the directory has genima-data's calibration.json),
    `fps` (50), `arm` ('left' or 'right'), `robot` (built-in model or schema.Robot file; default the
    ViperX 300s), `cameras` (names to import; default all), `task` and `instruction` (ALOHA records
    neither; the task defaults to the directory name).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        calibration: str | Path | None = None,
        fps: float = ALOHA_FPS,
        arm: str = "left",
        robot: str | Path | None = None,
        cameras: list[str] | None = None,
        task: str | None = None,
        instruction: str = "",
    ) -> None:
        self.path = Path(path)
        if (self.path / PENDING_FILE).is_file():
            raise FormatError(
                "ALOHA export is incomplete: an interrupted write never committed it; re-run the command "
                "that wrote it to resume",
                file=self.path,
            )
        if arm not in ARMS:
            raise FormatError(f"arm must be one of {ARMS}, got '{arm}'", field="arm")
        self.files = {f"episode_{n}": p for n, p in episode_files(self.path).items()}
        if not self.files:
            raise FormatError("no episode_<N>.hdf5 files", file=self.path)
        self.arm, self.instruction = arm, instruction
        record_file = self.path / RECORD_FILE
        self.record = json.loads(record_file.read_text()) if record_file.is_file() else None
        recorded_robot = self.record and parse_model(
            Robot, self.record["manifest"]["robot"], file=record_file
        )
        self.robot = load_robot(robot) if robot is not None else recorded_robot
        self.reference, sizes, width = self._survey()
        self.cameras_chosen = cameras is not None
        self.camera_names = chosen_cameras(sorted(sizes), cameras, source=self.reference)
        try:
            self.layout = layout_for(width, arm, self.robot, field="/observations/qpos")
        except GenimaDataError as exc:
            raise exc.located(file=self.reference) from None
        self._manifest = self._build_manifest(calibration, float(fps), task, sizes)

    def _survey(self) -> tuple[Path, dict[str, tuple[int, int]], int]:
        """The first episode file that reads, its cameras' image sizes and its vector width: it sets the
        dataset's cameras and layout, so that one broken file fails only its own episode."""
        errors = []
        for episode_id in self.episode_ids:
            file = self.files[episode_id]
            try:
                with open_episode_file(file) as h5:
                    width = vector_width(self._dataset(h5, "observations/qpos", file))
                    sizes = {camera: self._size(h5, file, camera) for camera in recorded_cameras(h5)}
                return file, sizes, width
            except GenimaDataError as exc:
                errors.append(exc.located(file=file))
        raise errors[0]

    def _size(self, h5: Any, file: Path, camera: str) -> tuple[int, int]:
        """(width, height) of a camera's images in an open episode file."""
        shape = self._images(h5[f"{IMAGES}/{camera}"], file, camera).shape
        return int(shape[2]), int(shape[1])

    def _build_manifest(
        self, calibration: str | Path | None, fps: float, task: str | None, sizes: dict[str, tuple[int, int]]
    ) -> Manifest:
        cameras = calibrated_cameras(
            self.camera_names,
            calibration,
            self.path / CALIBRATION_FILE,
            source=self.path,
            what="ALOHA",
            sizes=sizes,
        )
        if self.record is not None:
            record = {**self.record["manifest"], "robot": self.robot.model_dump(mode="json"), "fps": fps}
            if fps == ALOHA_FPS:  # the default: keep the recorded rate
                record["fps"] = self.record["manifest"]["fps"]
            return manifest_from_record(record, cameras, file=self.path / RECORD_FILE)
        prefix = f"{self.arm}_" if len(self.layout.names) == len(BIMANUAL_NAMES) else ""
        robot = self.robot or viperx_300s(prefix=prefix)
        if robot.dof != len(self.layout.joints):
            raise FormatError(
                f"robot '{robot.model}' has {robot.dof} joints, the arm has {len(self.layout.joints)}",
                field="robot",
            )
        name = task or self.path.name or "aloha"
        return Manifest(
            name=self.path.name or "aloha",
            fps=fps,
            robot=robot,
            cameras=cameras,
            tasks=[Task(name=name, instructions=[self.instruction] if self.instruction else [])],
            provenance=f"ACT/ALOHA HDF5 episodes {self.path} ({self.arm} arm)",
        )

    @property
    def manifest(self) -> Manifest:
        return self._manifest

    @property
    def episode_ids(self) -> list[str]:
        return sorted(self.files, key=natural_key)

    @staticmethod
    def _dataset(h5: Any, name: str, file: Path) -> Any:
        if name not in h5:
            what = "commanded joint positions" if name == "action" else "recorded data"
            raise FormatError(
                f"/{name} is missing (ACT/ALOHA episodes record the {what} there)",
                file=file,
                field=f"/{name}",
            )
        return h5[name]

    def episode(self, episode_id: str) -> Episode:
        """The episode's vectors loaded, its images read (and JPEGs decoded) frame by frame."""
        if episode_id not in self.files:
            raise FormatError(f"no episode '{episode_id}'", file=self.path)
        file = self.files[episode_id]
        try:
            h5 = open_episode_file(file)
        except GenimaDataError as exc:
            raise exc.located(episode=episode_id) from None
        try:
            return self._episode(h5, file, episode_id)
        except GenimaDataError as exc:
            h5.close()
            raise exc.located(file=file, episode=episode_id) from None
        except Exception:
            h5.close()
            raise

    def _episode(self, h5: Any, file: Path, episode_id: str) -> Episode:
        qpos = self._dataset(h5, "observations/qpos", file)[()]
        T = qpos.shape[0] if qpos.ndim else 0
        qpos = self._vectors(qpos, "observations/qpos", T)  # same width as the dataset's layout
        action = self._dataset(h5, "action", file)[()]
        stamps = h5[f"{GENIMA_GROUP}/timestamps"][()] if f"{GENIMA_GROUP}/timestamps" in h5 else None
        arrays: dict[str, Any] = {
            "timestamps": stamps
            if stamps is not None
            else np.arange(T, dtype=np.float64) / self._manifest.fps
        }
        arrays["robot/joint_positions"], arrays["robot/gripper_open"] = self.layout.split(qpos)
        arrays["action/joint_positions"] = self.layout.joints_and_gripper(self._vectors(action, "action", T))
        qvel_estimated = bool(h5.attrs.get(QVEL_ESTIMATED_ATTR, False))
        if "observations/qvel" in h5 and not qvel_estimated:
            qvel = self._vectors(h5["observations/qvel"][()], "observations/qvel", T)
            arrays["robot/joint_velocities"] = self.layout.split(qvel)[0]
        if "observations/effort" in h5:
            effort = self._vectors(h5["observations/effort"][()], "observations/effort", T)
            arrays["robot/joint_forces"] = self.layout.split(effort)[0]
        meta = self._meta(h5, file, episode_id, T)
        skip = {"observations/qvel"} if qvel_estimated else set()
        if "aloha" not in meta.extras:  # written from another source: the vectors hold nothing more
            skip |= set(VECTORS)
        arrays.update(self._extras(h5, T, skip))
        arrays.update(self._camera_frames(h5, file, T))
        return Episode(meta=meta, arrays=arrays, _on_close=[h5.close])

    def _camera_frames(self, h5: Any, file: Path, length: int) -> dict[str, Any]:
        """The dataset's cameras in this file: each present, `length` frames long, at its calibrated size."""
        recorded = recorded_cameras(h5)
        extra = [c for c in recorded if c not in self.camera_names]
        if extra and not self.cameras_chosen:  # importing it would give this episode a camera others lack
            raise FormatError(
                f"camera '{extra[0]}' is not among the dataset's cameras {self.camera_names} (those of "
                f"{self.reference.name}); choose the cameras to import with --reader-opt 'cameras=[...]'",
                field=f"/{IMAGES}/{extra[0]}",
            )
        frames = {}
        for camera in self.camera_names:
            field = f"/{IMAGES}/{camera}"
            if camera not in recorded:
                raise FormatError(
                    f"camera '{camera}' is missing (recorded in {self.reference.name})", field=field
                )
            images = self._images(h5[f"{IMAGES}/{camera}"], file, camera)
            if len(images) != length:
                raise FormatError(f"has {len(images)} frames, /observations/qpos has {length}", field=field)
            calibrated = self._manifest.camera(camera)
            height, width = images.shape[1:3]
            if (width, height) != (calibrated.width, calibrated.height):
                raise FormatError(
                    f"images are {width}x{height}, camera '{camera}' is calibrated at "
                    f"{calibrated.width}x{calibrated.height}",
                    field=field,
                )
            frames[f"cameras/{camera}/rgb"] = images
        return frames

    def _vectors(self, values: np.ndarray, name: str, length: int) -> np.ndarray:
        if values.ndim != 2 or values.shape != (length, len(self.layout.names)):
            raise FormatError(
                f"shape {values.shape}, expected ({length}, {len(self.layout.names)}): one "
                f"{len(self.layout.names)}-wide vector per frame, as in {self.reference.name}",
                field=f"/{name}",
            )
        return values

    def _extras(self, h5: Any, length: int, skip: set[str]) -> dict[str, Any]:
        """Datasets besides the images: /genima/<path> back to <path>, the rest whole under extras/."""
        found: dict[str, Any] = {}

        def visit(name: str, node: Any) -> None:
            if not hasattr(node, "shape") or node.shape[:1] != (length,) or name in skip:
                return
            if name.startswith(f"{GENIMA_GROUP}/"):
                path = name.removeprefix(f"{GENIMA_GROUP}/")
                if path != "timestamps":
                    found[path] = node  # read lazily: may be image-sized
            elif not name.startswith(IMAGES) and name != "compress_len":
                found[extras_path(name)] = node[()]

        h5.visititems(visit)
        return found

    def _images(self, dataset: Any, file: Path, camera: str) -> Any:
        if dataset.ndim == 4:
            return dataset  # raw (T, H, W, 3) uint8: read frame by frame straight from the file
        if dataset.ndim not in (1, 2) or dataset.dtype not in (np.uint8, np.dtype("O")):
            raise FormatError(
                f"shape {dataset.shape} {dataset.dtype} is neither RGB frames nor JPEG bytes",
                field=f"/{IMAGES}/{camera}",
            )
        first = decode_jpeg(dataset[0], f"{file}: {camera} frame 0")
        return LazyFrames(
            lambda t: decode_jpeg(dataset[t], f"{file}: {camera} frame {t}"),
            len(dataset),
            first.shape,
            np.uint8,
            describe=lambda t: f"{file}: /{IMAGES}/{camera} frame {t}",
        )

    def _meta(self, h5: Any, file: Path, episode_id: str, length: int) -> EpisodeMeta:
        if EPISODE_ATTR in h5.attrs:
            return parse_model(EpisodeMeta, h5.attrs[EPISODE_ATTR], file=file, episode=episode_id)
        return EpisodeMeta(
            episode_id=episode_id,
            task=self._manifest.tasks[0].name,
            instruction=self.instruction,
            length=length,
            source=EpisodeSource(format="aloha", path=file.name, index=episode_number(episode_id)),
            extras={
                "aloha": {
                    "sim": bool(h5.attrs.get("sim", False)),
                    "arm": self.arm,
                    "names": list(self.layout.names),
                }
            },
        )


class AlohaWriter:
    """Writes Episodes as ``episode_<N>.hdf5`` files ACT and ALOHA's tools read (one file per episode).

    Options: `image_codec` ('raw': RGB frames, lossless, the default; 'jpeg': JPEG bytes as ALOHA's
    recorder stores them with compress=True), `jpeg_quality` (50, ALOHA's).

    The qpos/action/qvel/effort vectors are the originals kept under extras/ when the episode came from
    ALOHA (with this arm's slots updated if they were edited), otherwise the arm's joints + gripper.
    Without recorded velocities qvel is the finite difference of qpos over time, marked as estimated.
    calibration.json and genima.json next to the files keep what ALOHA has no place for.
    """

    def __init__(
        self,
        path: str | Path,
        manifest: Manifest | None,
        *,
        image_codec: str = "raw",
        jpeg_quality: int = DEFAULT_JPEG_QUALITY,
    ) -> None:
        self.path = Path(path)
        if image_codec not in IMAGE_CODECS:
            raise FormatError(
                f"image_codec must be one of {IMAGE_CODECS}, got '{image_codec}'", field="image_codec"
            )
        self.compress, self.jpeg_quality = image_codec == "jpeg", int(jpeg_quality)
        existing = self._existing_manifest()
        self.manifest = writer_manifest(manifest, existing, path=self.path, what="ALOHA")
        if manifest is not None:  # the coordinator prepares; workers attached to it only write episodes
            self.path.mkdir(parents=True, exist_ok=True)
            remove_temporaries(self.path)
            atomic_write_text(self.path / PENDING_FILE, "{}\n")
            save_calibration(self.manifest.cameras, self.path / CALIBRATION_FILE)
            record = {"manifest": manifest_record(self.manifest)}
            atomic_write_text(self.path / RECORD_FILE, json.dumps(record, indent=2) + "\n")

    def _existing_manifest(self) -> Manifest | None:
        if not self.path.exists():
            return None
        if (self.path / RECORD_FILE).is_file():
            record = json.loads((self.path / RECORD_FILE).read_text())["manifest"]
            return manifest_from_record(
                record, load_calibration(self.path / CALIBRATION_FILE), file=self.path
            )
        if self.path.is_file() or any(self.path.iterdir()):
            raise StoreError("destination exists and is not an ALOHA export of genima-data", file=self.path)
        return None

    def _file(self, episode_id: str) -> Path:
        return self.path / f"episode_{episode_number(episode_id)}.hdf5"

    @staticmethod
    def _recorded_meta(file: Path) -> EpisodeMeta | None:
        """Episode metadata genima-data recorded in an existing file."""
        with import_h5py().File(file, "r") as h5:
            text = h5.attrs.get(EPISODE_ATTR)
        return parse_model(EpisodeMeta, text, file=file) if text else None

    def _holder(self, file: Path) -> str | None:
        meta = self._recorded_meta(file)
        return meta.episode_id if meta else None

    def has_episode(self, episode_id: str) -> bool:
        file = self._file(episode_id)
        return file.is_file() and self._holder(file) == episode_id

    def write_episode(self, episode: Episode) -> None:
        """Write one episode file atomically (it appears complete or not at all)."""
        try:
            check_episode_structure(episode, self.manifest)
            file = self._file(episode.episode_id)
            if file.is_file() and self._holder(file) != episode.episode_id:
                raise FormatError(
                    f"{file.name} already holds episode '{self._holder(file)}' "
                    "(episode numbers must be unique)",
                    file=file,
                )
            with atomic_output(file) as tmp, import_h5py().File(tmp, "w") as h5:
                self._write(h5, episode)
        except GenimaDataError as exc:
            raise exc.located(episode=episode.episode_id) from None

    def _layout(self, episode: Episode, width: int) -> ArmLayout:
        aloha = episode.meta.extras.get("aloha", {})
        if "names" in aloha:
            return ArmLayout.from_names(aloha["names"], arm=aloha.get("arm") if width == 14 else None)
        return ArmLayout.from_names([*self.manifest.robot.joint_names, "gripper"], gripper="gripper")

    def _vectors(
        self, episode: Episode, name: str, joints: np.ndarray, gripper: np.ndarray | None, fill: np.ndarray
    ) -> np.ndarray:
        """The original ALOHA vectors if the episode kept them (this arm's slots updated where edited),
        else this arm's joints + gripper (`fill` where the tree has no gripper value)."""
        original = episode.get(extras_path(name))
        if original is None:
            last = gripper if gripper is not None else fill
            return np.concatenate([joints, np.asarray(last, np.float32)[:, None]], axis=1).astype(np.float32)
        original = np.asarray(original[...])
        return self._layout(episode, original.shape[1]).merge(original, joints, gripper)

    def _write(self, h5: Any, episode: Episode) -> None:
        T = episode.length
        if "action/joint_positions" not in episode:
            raise FormatError(
                "ACT/ALOHA episodes need the commanded joint positions", field="action/joint_positions"
            )
        joints, gripper = episode.load("robot/joint_positions"), episode.load("robot/gripper_open")
        stamps = episode.load("timestamps")
        h5.attrs["sim"] = bool(episode.meta.extras.get("aloha", {}).get("sim", False))
        h5.attrs["compress"] = self.compress
        h5.attrs[EPISODE_ATTR] = episode.meta.model_dump_json()
        qpos = self._vectors(episode, "observations/qpos", joints, gripper, gripper)
        h5["observations/qpos"] = qpos
        action = episode.load("action/joint_positions")
        h5["action"] = self._vectors(episode, "action", action[:, :-1], action[:, -1], action[:, -1])
        gripper_rate = np.gradient(gripper, stamps) if T > 1 else np.zeros(T)
        if "robot/joint_velocities" in episode:
            velocity = episode.load("robot/joint_velocities")
            h5["observations/qvel"] = self._vectors(
                episode, "observations/qvel", velocity, None, gripper_rate
            )
        elif extras_path("observations/qvel") in episode:
            h5["observations/qvel"] = episode.load(extras_path("observations/qvel"))
        else:  # ACT's loader reads qvel: estimate it rather than leave it out, and say so
            h5["observations/qvel"] = np.gradient(qpos, stamps, axis=0) if T > 1 else np.zeros_like(qpos)
            h5.attrs[QVEL_ESTIMATED_ATTR] = True
        if "robot/joint_forces" in episode:
            forces = episode.load("robot/joint_forces")
            h5["observations/effort"] = self._vectors(
                episode, "observations/effort", forces, None, np.full(T, np.nan)
            )
        h5[f"{GENIMA_GROUP}/timestamps"] = stamps
        for path in episode.paths():
            self._write_other(h5, episode, path)

    def _write_other(self, h5: Any, episode: Episode, path: str) -> None:
        """extras/<name> back to the dataset it came from; what ALOHA has no place for under /genima."""
        if path.startswith("extras/"):
            name = path.removeprefix("extras/").replace(".", "/")
            if name not in h5:
                h5[name] = episode.load(path)
        elif path.startswith("cameras/") and path.endswith("/rgb"):
            self._write_images(h5, f"{IMAGES}/{path.split('/')[1]}", episode[path])
        elif path not in WRITTEN_FROM_TREE:
            source = episode[path]
            dataset = h5.create_dataset(
                f"{GENIMA_GROUP}/{path}",
                source.shape,
                dtype=source.dtype,
                chunks=(1, *source.shape[1:]) if len(source.shape) > 2 else None,
            )
            for t in range(episode.length):
                dataset[t] = np.asarray(source[t])

    def _write_images(self, h5: Any, name: str, frames: Any) -> None:
        T, H, W, _ = frames.shape
        if not self.compress:
            dataset = h5.create_dataset(name, (T, H, W, 3), dtype=np.uint8, chunks=(1, H, W, 3))
            for t in range(T):
                dataset[t] = np.asarray(frames[t])
            return
        import cv2

        # ALOHA's layout: JPEG bytes zero-padded to the longest frame; grow the width as frames come
        dataset = h5.create_dataset(name, (T, 0), maxshape=(T, None), dtype=np.uint8, chunks=(1, 1 << 16))
        for t in range(T):
            ok, encoded = cv2.imencode(
                ".jpg", np.asarray(frames[t]), [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality]
            )
            if not ok:
                raise FormatError(f"JPEG encoding failed for frame {t}", field=name)
            if len(encoded) > dataset.shape[1]:
                dataset.resize((T, len(encoded)))
            dataset[t, : len(encoded)] = encoded.reshape(-1)

    def commit(self) -> Manifest:
        """The export is complete: remove the in-progress marker; returns the manifest with the episodes."""
        metas = [self._recorded_meta(file) for file in episode_files(self.path).values()]
        remove_path(self.path / PENDING_FILE)
        return self.manifest.with_episodes(EpisodeSummary.of(meta) for meta in metas if meta is not None)


ALOHA = Format(
    name="aloha",
    description="ACT/ALOHA HDF5 episodes (episode_<N>.hdf5; qpos, qvel, action, raw or JPEG images)",
    detect=looks_like_aloha,
    reader=AlohaReader,
    writer=AlohaWriter,
)
