"""Forward kinematics, batched over frames: built-in Franka Panda and UR5e, any robot from a URDF.

Every robot is a tree of links connected by joints (URDF's model): a joint has a fixed origin in its
parent link's frame and, if it moves, an axis; its child link's frame is ``parent @ origin @ motion(q)``.
The built-in arms are built from their published DH tables (Franka's modified DH, Universal Robots'
standard DH) into that form; URDFs are parsed with yourdfpy. Evaluation is numpy over any number of
frames at once. Poses are in the world: the robot's ``T_world_base`` is applied.

Joint frames (`Kinematics.joint_frames`) are the child-link frames of the arm joints, in joint order: on
the joint's axis, z along it for the DH arms (RLBench's ``joint_poses`` order; RLBench places its joint
frames 0.4–1.3 cm further along the axes, see the notes). Movable joints that are not arm joints (gripper
fingers) are held at 0; floating and planar URDF joints are held at their origin.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from xml.etree import ElementTree

import numpy as np

from genima_data.errors import GeometryError
from genima_data.geometry.transforms import make_transform, rotation_about_axis
from genima_data.robots import PANDA_JOINT_NAMES, UR5E_JOINT_NAMES

if TYPE_CHECKING:
    from genima_data.episode import Episode
    from genima_data.schema import Manifest, Robot

__all__ = [
    "PANDA_MODIFIED_DH",
    "UR5E_STANDARD_DH",
    "GeometryError",
    "KinematicJoint",
    "Kinematics",
    "fit_base_pose",
    "franka_panda_kinematics",
    "link_poses_or_fk",
    "load_kinematics",
    "shipped_urdf",
    "ur5e_kinematics",
    "urdf_kinematics",
]

HALF_PI = math.pi / 2
# Franka Emika Panda, modified (Craig) DH as Franka publishes it: rows (a, d, alpha), frame i = frame i-1
# @ RotX(alpha) @ TransX(a) @ RotZ(q_i) @ TransZ(d)
PANDA_MODIFIED_DH = (
    (0.0, 0.333, 0.0),
    (0.0, 0.0, -HALF_PI),
    (0.0, 0.316, HALF_PI),
    (0.0825, 0.0, HALF_PI),
    (-0.0825, 0.384, -HALF_PI),
    (0.0, 0.0, HALF_PI),
    (0.088, 0.0, HALF_PI),
)
PANDA_FLANGE_D = 0.107  # flange (panda_link8) along joint 7's axis
PANDA_HAND_YAW = -math.pi / 4  # the Franka Hand sits on the flange rotated -45° about z
PANDA_TCP_OFFSET = 0.1034  # tool centre (between the fingertips) beyond the flange, along the hand's z
PANDA_LINKS = [f"panda_link{i}" for i in range(8)]
PANDA_JOINTS = list(PANDA_JOINT_NAMES)
PANDA_EE_LINK = "panda_grasptarget"

# Universal Robots UR5e, standard DH: rows (d, a, alpha), frame i = frame i-1 @ RotZ(q_i) @ TransZ(d)
# @ TransX(a) @ RotX(alpha). Frame 6 is the tool flange (ROS-Industrial's tool0).
UR5E_STANDARD_DH = (
    (0.1625, 0.0, HALF_PI),
    (0.0, -0.425, 0.0),
    (0.0, -0.3922, 0.0),
    (0.1333, 0.0, HALF_PI),
    (0.0997, 0.0, -HALF_PI),
    (0.0996, 0.0, 0.0),
)
UR5E_LINKS = [
    "base",
    "shoulder_link",
    "upper_arm_link",
    "forearm_link",
    "wrist_1_link",
    "wrist_2_link",
    "wrist_3_link",
]
UR5E_JOINTS = list(UR5E_JOINT_NAMES)
UR5E_EE_LINK = "tool0"

Z_AXIS = np.array([0.0, 0.0, 1.0])
JointKind = Literal["revolute", "prismatic", "fixed"]


@dataclass(frozen=True, eq=False)
class KinematicJoint:
    """A joint of the tree: ``child = parent @ T_parent_joint @ motion(q)``, motion about/along ``axis``."""

    name: str
    parent: str
    child: str
    T_parent_joint: np.ndarray
    axis: np.ndarray = field(default_factory=Z_AXIS.copy)
    kind: JointKind = "revolute"


def _rot_x(angle: float) -> np.ndarray:
    return make_transform(rotation_about_axis([1.0, 0.0, 0.0], angle), np.zeros(3))


def _rot_z(angle: float) -> np.ndarray:
    return make_transform(rotation_about_axis(Z_AXIS, angle), np.zeros(3))


def _translation(x: float = 0.0, y: float = 0.0, z: float = 0.0) -> np.ndarray:
    return make_transform(np.eye(3), np.array([x, y, z]))


class Kinematics:
    """Forward kinematics of a robot: a kinematic tree, its arm joints, tool-centre link and base pose.

    Joint arrays are ``(..., dof)`` radians (metres for prismatic joints) in `joint_names` order; every
    method returns world poses with the same leading shape.
    """

    def __init__(
        self,
        name: str,
        joints: Sequence[KinematicJoint],
        arm_joints: Sequence[str],
        ee_link: str,
        T_world_base: np.ndarray | None = None,
        joint_offsets: Sequence[float] | None = None,
    ) -> None:
        self.name = name
        self.joints = list(joints)
        self.joint_names = list(arm_joints)
        self.ee_link = ee_link
        self.T_world_base = np.eye(4) if T_world_base is None else np.asarray(T_world_base, dtype=np.float64)
        self.joint_offsets = np.zeros(len(arm_joints)) if joint_offsets is None else np.asarray(joint_offsets)
        if self.joint_offsets.shape != (len(arm_joints),):
            raise GeometryError(
                f"robot '{name}' has {len(arm_joints)} joints but {self.joint_offsets.size} joint offsets",
                field="robot.joint_offsets",
            )
        self._by_child = self._index_tree()
        roots = {j.parent for j in self.joints} - set(self._by_child)
        if len(roots) != 1:
            raise GeometryError(f"robot '{name}' must have exactly one root link, found {sorted(roots)}")
        self.root = roots.pop()
        self.link_names = [self.root, *(j.child for j in self._ordered())]
        by_name = {j.name: j for j in self.joints}
        missing = [n for n in self.joint_names if n not in by_name or by_name[n].kind == "fixed"]
        if missing:
            movable = [j.name for j in self.joints if j.kind != "fixed"]
            raise GeometryError(f"robot '{name}' has no movable joints {missing} (movable: {movable})")
        self._check_link(ee_link)
        self._q_index = {n: i for i, n in enumerate(self.joint_names)}

    @property
    def dof(self) -> int:
        return len(self.joint_names)

    def with_base(self, T_world_base: np.ndarray) -> Kinematics:
        """The same robot standing at another base pose."""
        return self._with(T_world_base=T_world_base)

    def with_ee_link(self, ee_link: str) -> Kinematics:
        """The same robot with another link as its tool centre."""
        return self._with(ee_link=ee_link)

    def with_joint_offsets(self, joint_offsets: Sequence[float]) -> Kinematics:
        """The same robot whose recorded joint positions are `joint_offsets` short of the model's angles."""
        return self._with(joint_offsets=joint_offsets)

    def _with(self, **changes: Any) -> Kinematics:
        settings = {
            "ee_link": self.ee_link,
            "T_world_base": self.T_world_base,
            "joint_offsets": self.joint_offsets,
            **changes,
        }
        return Kinematics(self.name, self.joints, self.joint_names, **settings)

    # ------------------------------------------------------------------ forward kinematics
    def link_poses(self, q: np.ndarray, links: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """World poses ``(..., 4, 4)`` of ``links`` (default: all) for joint positions ``q (..., dof)``."""
        q, batch = self._joint_array(q)
        wanted = self.link_names if links is None else list(links)
        for link in wanted:
            self._check_link(link)
        needed = self._ancestors(wanted)
        poses = {self.root: np.broadcast_to(self.T_world_base, (len(q), 4, 4))}
        for joint in self._ordered():
            if joint.child in needed:
                pose = poses[joint.parent] @ joint.T_parent_joint
                if joint.name in self._q_index:
                    pose = pose @ self._motion(joint, q[:, self._q_index[joint.name]])
                poses[joint.child] = pose
        return {link: poses[link].reshape(*batch, 4, 4) for link in wanted}

    def link_pose(self, q: np.ndarray, link: str) -> np.ndarray:
        """World pose ``(..., 4, 4)`` of one link."""
        return self.link_poses(q, [link])[link]

    def joint_frames(self, q: np.ndarray) -> np.ndarray:
        """World poses ``(..., dof, 4, 4)`` of the arm joints' frames (their child links), in joint order."""
        children = [self._joint(n).child for n in self.joint_names]
        poses = self.link_poses(q, children)
        return np.stack([poses[c] for c in children], axis=-3)

    def ee_pose(self, q: np.ndarray) -> np.ndarray:
        """World pose ``(..., 4, 4)`` of the tool centre (the gripper sphere's point in GENIMA)."""
        return self.link_pose(q, self.ee_link)

    # ------------------------------------------------------------------ internals
    def _index_tree(self) -> dict[str, KinematicJoint]:
        by_child: dict[str, KinematicJoint] = {}
        for joint in self.joints:
            if joint.child in by_child:
                raise GeometryError(f"robot '{self.name}': link '{joint.child}' has two parent joints")
            by_child[joint.child] = joint
        return by_child

    def _ordered(self) -> list[KinematicJoint]:
        """Joints parents-first (breadth-first from the root)."""
        children: dict[str, list[KinematicJoint]] = {}
        for joint in self.joints:
            children.setdefault(joint.parent, []).append(joint)
        order, frontier = [], [self.root]
        while frontier:
            nxt = [j for link in frontier for j in children.get(link, [])]
            order.extend(nxt)
            frontier = [j.child for j in nxt]
        if len(order) != len(self.joints):
            raise GeometryError(f"robot '{self.name}': joints form a loop or a second tree")
        return order

    def _ancestors(self, links: Sequence[str]) -> set[str]:
        needed: set[str] = set()
        for link in links:
            while link not in needed:
                needed.add(link)
                if link == self.root:
                    break
                link = self._by_child[link].parent
        return needed

    def _joint(self, name: str) -> KinematicJoint:
        return next(j for j in self.joints if j.name == name)

    def _check_link(self, link: str) -> None:
        if link != self.root and link not in self._by_child:
            raise GeometryError(f"robot '{self.name}' has no link '{link}' (links: {self.link_names})")

    def _joint_array(self, q: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
        q = np.asarray(q, dtype=np.float64)
        if q.ndim == 0 or q.shape[-1] != self.dof:
            raise GeometryError(
                f"joint positions have shape {q.shape}, expected (..., {self.dof}) for robot '{self.name}'",
                field="robot/joint_positions",
            )
        return q.reshape(-1, self.dof) + self.joint_offsets, q.shape[:-1]

    @staticmethod
    def _motion(joint: KinematicJoint, values: np.ndarray) -> np.ndarray:
        if joint.kind == "prismatic":
            return make_transform(np.eye(3), values[:, None] * joint.axis)
        return make_transform(rotation_about_axis(joint.axis, values), np.zeros(3))


# ---------------------------------------------------------------------- built-in arms
def modified_dh_joints(
    rows: Sequence[tuple[float, float, float]], links: Sequence[str], joint_names: Sequence[str]
) -> list[KinematicJoint]:
    """Joints of a modified-DH (Craig) table, rows ``(a, d, alpha)``; ``links`` has one more entry (base).

    RotZ(q) and TransZ(d) commute, so each row is a fixed RotX(alpha) TransX(a) TransZ(d) then RotZ(q).
    """
    return [
        KinematicJoint(name, links[i], links[i + 1], _rot_x(alpha) @ _translation(x=a) @ _translation(z=d))
        for i, (name, (a, d, alpha)) in enumerate(zip(joint_names, rows, strict=True))
    ]


def standard_dh_joints(
    rows: Sequence[tuple[float, float, float]], links: Sequence[str], joint_names: Sequence[str], tip: str
) -> list[KinematicJoint]:
    """Joints of a standard DH table, rows ``(d, a, alpha)``, plus a fixed joint to DH frame n (``tip``).

    Joint i rotates link i-1's frame about its z; the row's fixed part TransZ(d) TransX(a) RotX(alpha)
    becomes the next joint's origin.
    """
    fixed = [_translation(z=d) @ _translation(x=a) @ _rot_x(alpha) for d, a, alpha in rows]
    origins = [np.eye(4), *fixed[:-1]]
    joints = [
        KinematicJoint(name, links[i], links[i + 1], origin)
        for i, (name, origin) in enumerate(zip(joint_names, origins, strict=True))
    ]
    return [*joints, KinematicJoint(f"{tip}_joint", links[-1], tip, fixed[-1], kind="fixed")]


def franka_panda_kinematics(
    T_world_base: np.ndarray | None = None, ee_link: str = PANDA_EE_LINK
) -> Kinematics:
    """Franka Emika Panda with the Franka Hand, from Franka's published modified-DH parameters.

    Links: panda_link0 (base) … panda_link7, panda_link8 (flange), panda_hand, panda_grasptarget (tool
    centre, 0.1034 m beyond the flange).
    """
    joints = modified_dh_joints(PANDA_MODIFIED_DH, PANDA_LINKS, PANDA_JOINTS)
    joints += [
        KinematicJoint(
            "panda_joint8", "panda_link7", "panda_link8", _translation(z=PANDA_FLANGE_D), kind="fixed"
        ),
        KinematicJoint("panda_hand_joint", "panda_link8", "panda_hand", _rot_z(PANDA_HAND_YAW), kind="fixed"),
        KinematicJoint(
            "panda_grasptarget_joint",
            "panda_hand",
            "panda_grasptarget",
            _translation(z=PANDA_TCP_OFFSET),
            kind="fixed",
        ),
    ]
    return Kinematics("franka_panda", joints, PANDA_JOINTS, ee_link, T_world_base)


def ur5e_kinematics(T_world_base: np.ndarray | None = None, ee_link: str = UR5E_EE_LINK) -> Kinematics:
    """Universal Robots UR5e from its published standard DH parameters (base: the controller's frame)."""
    joints = standard_dh_joints(UR5E_STANDARD_DH, UR5E_LINKS, UR5E_JOINTS, UR5E_EE_LINK)
    return Kinematics("ur5e", joints, UR5E_JOINTS, ee_link, T_world_base)


BUILTIN_KINEMATICS = {"franka_panda": franka_panda_kinematics, "ur5e": ur5e_kinematics}


def shipped_urdf(model: str) -> Path:
    """Path of the URDF shipped for a built-in model (written from the same DH parameters)."""
    if model not in BUILTIN_KINEMATICS:
        raise GeometryError(f"no shipped URDF for robot model '{model}'", field="robot.model")
    return Path(str(resources.files("genima_data.geometry") / "urdf" / f"{model}.urdf"))


# ---------------------------------------------------------------------- URDF
def urdf_kinematics(
    path: str | Path,
    joint_names: Sequence[str],
    ee_link: str | None = None,
    T_world_base: np.ndarray | None = None,
) -> Kinematics:
    """Kinematics of any robot from a URDF (parsed with yourdfpy; meshes are not loaded).

    ``joint_names`` are the arm joints in the order of the joint arrays; ``ee_link`` defaults to the
    child link of the last of them.
    """
    path = Path(path)
    try:
        import yourdfpy
    except ImportError:
        raise GeometryError(
            "reading URDFs needs yourdfpy: pip install 'genima-data[urdf]'", file=path, field="robot.urdf"
        ) from None
    if not path.is_file():
        raise GeometryError("URDF file not found", file=path, field="robot.urdf")
    try:
        ElementTree.parse(path)  # yourdfpy would silently fall back to a recovering parser
        urdf = yourdfpy.URDF.load(
            str(path), build_scene_graph=False, load_meshes=False, build_collision_scene_graph=False
        )
        joints = [_urdf_joint(j) for j in urdf.robot.joints]
        name = urdf.robot.name or path.stem
    except Exception as exc:  # lxml, yourdfpy and numpy all raise their own types on a broken file
        raise GeometryError(
            f"cannot parse URDF: {type(exc).__name__}: {exc}", file=path, field="robot.urdf"
        ) from None
    if not joints:
        raise GeometryError("URDF has no joints", file=path, field="robot.urdf")
    by_name = {j.name: j for j in joints}
    tip = ee_link or (by_name[joint_names[-1]].child if joint_names and joint_names[-1] in by_name else "")
    try:
        return Kinematics(name, joints, joint_names, tip, T_world_base)
    except GeometryError as exc:
        raise exc.located(file=path, field="robot.urdf") from None


def _urdf_joint(joint) -> KinematicJoint:
    """A yourdfpy joint as a KinematicJoint (continuous → revolute; floating/planar held at the origin)."""
    kind = {"revolute": "revolute", "continuous": "revolute", "prismatic": "prismatic"}.get(
        joint.type, "fixed"
    )
    origin = np.eye(4) if joint.origin is None else np.asarray(joint.origin, dtype=np.float64)
    axis = np.array([1.0, 0.0, 0.0]) if joint.axis is None else np.asarray(joint.axis, dtype=np.float64)
    if kind != "fixed" and not np.linalg.norm(axis) > 0:
        raise ValueError(f"joint '{joint.name}' has a zero axis")
    return KinematicJoint(
        joint.name, joint.parent, joint.child, origin, axis / (np.linalg.norm(axis) or 1.0), kind
    )


# ---------------------------------------------------------------------- datasets
def load_kinematics(robot: Robot, root: Path | None = None) -> Kinematics:
    """Kinematics of a manifest robot: built-in 'franka_panda' / 'ur5e', or 'urdf' (relative to ``root``).

    The robot's ``T_world_base`` and ``joint_offsets`` are applied and its ``ee_link`` (if set) is the tool
    centre.
    """
    kin = _model_kinematics(robot, root)
    return kin if robot.joint_offsets is None else kin.with_joint_offsets(robot.joint_offsets)


def _model_kinematics(robot: Robot, root: Path | None) -> Kinematics:
    T_world_base = np.asarray(robot.T_world_base, dtype=np.float64)
    if robot.model == "urdf":
        path = Path(robot.urdf or "")
        path = path if path.is_absolute() or root is None else Path(root) / path
        return urdf_kinematics(path, robot.joint_names, robot.ee_link, T_world_base)
    if robot.model not in BUILTIN_KINEMATICS:
        raise GeometryError(
            f"unknown robot model '{robot.model}'; built in: {', '.join(sorted(BUILTIN_KINEMATICS))}, "
            "or 'urdf' with a URDF file",
            field="robot.model",
        )
    kin = BUILTIN_KINEMATICS[robot.model](T_world_base)
    if robot.dof != kin.dof:
        raise GeometryError(
            f"robot model '{robot.model}' has {kin.dof} joints, the manifest lists {robot.dof}",
            field="robot.joint_names",
        )
    return kin if robot.ee_link in (None, kin.ee_link) else kin.with_ee_link(robot.ee_link)


def link_poses_or_fk(
    manifest: Manifest, episode: Episode, kinematics: Kinematics | None = None, *, root: Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Arm joint frames ``(T, L, 4, 4)`` and tool-centre poses ``(T, 4, 4)`` in the world for one episode.

    Recorded ``robot/link_poses`` (world frame) and ``robot/ee_pose`` (base frame, DESIGN.md) are used
    when the episode has them (GENIMA-exact); whatever is missing comes from forward kinematics of
    ``robot/joint_positions`` (``kinematics`` defaults to the manifest robot's, URDFs relative to ``root``).
    """
    has_links, has_ee = "robot/link_poses" in episode, "robot/ee_pose" in episode
    if not (has_links and has_ee) and kinematics is None:
        try:
            kinematics = load_kinematics(manifest.robot, root)
        except GeometryError as exc:
            raise GeometryError(
                f"no recorded robot/link_poses or robot/ee_pose and no forward kinematics: {exc.one_line()}",
                episode=episode.episode_id,
                field="robot/link_poses" if not has_links else "robot/ee_pose",
            ) from None
    q = None if has_links and has_ee else episode.load("robot/joint_positions")
    try:
        links = (
            np.asarray(episode.load("robot/link_poses"), np.float64)
            if has_links
            else kinematics.joint_frames(q)
        )
        if has_ee:
            ee = np.asarray(manifest.robot.T_world_base) @ np.asarray(
                episode.load("robot/ee_pose"), np.float64
            )
        else:
            ee = kinematics.ee_pose(q)
    except GeometryError as exc:
        raise exc.located(episode=episode.episode_id) from None
    return links, ee


def fit_base_pose(
    kinematics: Kinematics, joint_positions: np.ndarray, positions_world: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The ``T_world_base`` that best places FK joint-frame origins on recorded world positions.

    ``joint_positions (T, dof)``, ``positions_world (T, dof, 3)`` (e.g. RLBench ``joint_poses``). Least
    squares over all frames and joints (Kabsch). Returns the pose and the residual distances ``(T, dof)``.
    """
    base_frames = kinematics.with_base(np.eye(4)).joint_frames(joint_positions)[..., :3, 3].reshape(-1, 3)
    target = np.asarray(positions_world, dtype=np.float64).reshape(-1, 3)
    if base_frames.shape != target.shape:
        raise GeometryError(
            f"recorded positions have shape {np.shape(positions_world)}, FK gives {base_frames.shape}",
            field="robot/link_poses",
        )
    mu_b, mu_w = base_frames.mean(axis=0), target.mean(axis=0)
    U, _, Vt = np.linalg.svd((base_frames - mu_b).T @ (target - mu_w))
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(Vt.T @ U.T))])
    R = Vt.T @ D @ U.T
    T_world_base = make_transform(R, mu_w - R @ mu_b)
    fitted = kinematics.with_base(T_world_base).joint_frames(joint_positions)[..., :3, 3]
    residuals = np.linalg.norm(fitted - np.asarray(positions_world), axis=-1)
    return T_world_base, residuals
