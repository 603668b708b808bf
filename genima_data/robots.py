"""Robot descriptions for the arms GENIMA users record with: joint names and limits, as schema.Robot.

Limits are the manufacturers' published values (Franka Emika Panda datasheet, Universal Robots UR5e
technical specifications, Trossen/Interbotix ViperX 300 6DOF description as used by ALOHA). Kinematics
for the same models live in `genima_data.geometry.kinematics`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import yaml

from genima_data.errors import SchemaError
from genima_data.schema import Robot, parse_model

PANDA_JOINT_NAMES = tuple(f"panda_joint{i}" for i in range(1, 8))
PANDA_JOINT_LOWER = [-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973]
PANDA_JOINT_UPPER = [2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973]
PANDA_VELOCITY = [2.1750, 2.1750, 2.1750, 2.1750, 2.6100, 2.6100, 2.6100]

UR5E_JOINT_NAMES = (
    "shoulder_pan_joint",
    "shoulder_lift_joint",
    "elbow_joint",
    "wrist_1_joint",
    "wrist_2_joint",
    "wrist_3_joint",
)
UR5E_JOINT_LIMIT = 2 * math.pi
UR5E_VELOCITY = [math.pi, math.pi, math.pi, math.pi, math.pi, math.pi]

# ViperX 300 6DOF (each ALOHA arm): joint ranges of the Interbotix/Trossen description, radians
VX300S_JOINTS = ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate")
VX300S_JOINT_LOWER = [-3.14158, -1.85005, -1.76278, -3.14158, -1.8675, -3.14158]
VX300S_JOINT_UPPER = [3.14158, 1.25664, 1.6057, 3.14158, 2.23402, 3.14158]


def franka_panda(T_world_base: np.ndarray | None = None) -> Robot:
    """Franka Emika Panda with its Franka Hand."""
    return Robot(
        name="Franka Emika Panda",
        model="franka_panda",
        joint_names=list(PANDA_JOINT_NAMES),
        joint_lower=PANDA_JOINT_LOWER,
        joint_upper=PANDA_JOINT_UPPER,
        joint_velocity_limits=PANDA_VELOCITY,
        T_world_base=(np.eye(4) if T_world_base is None else T_world_base).tolist(),
        ee_link="panda_grasptarget",
        gripper="Franka Hand",
    )


def ur5e(T_world_base: np.ndarray | None = None) -> Robot:
    """Universal Robots UR5e (gripper unspecified)."""
    return Robot(
        name="Universal Robots UR5e",
        model="ur5e",
        joint_names=list(UR5E_JOINT_NAMES),
        joint_lower=[-UR5E_JOINT_LIMIT] * 6,
        joint_upper=[UR5E_JOINT_LIMIT] * 6,
        joint_velocity_limits=UR5E_VELOCITY,
        T_world_base=(np.eye(4) if T_world_base is None else T_world_base).tolist(),
        ee_link="tool0",
    )


def viperx_300s(T_world_base: np.ndarray | None = None, prefix: str = "") -> Robot:
    """Trossen ViperX 300 6DOF with its parallel gripper (one arm of ALOHA; `prefix` e.g. 'left_')."""
    return Robot(
        name="Trossen ViperX 300 6DOF",
        model="vx300s",
        joint_names=[f"{prefix}{joint}" for joint in VX300S_JOINTS],
        joint_lower=VX300S_JOINT_LOWER,
        joint_upper=VX300S_JOINT_UPPER,
        T_world_base=(np.eye(4) if T_world_base is None else T_world_base).tolist(),
        gripper="ViperX parallel gripper",
    )


ROBOTS = {"franka_panda": franka_panda, "ur5e": ur5e, "vx300s": viperx_300s}


def robot_preset(model: str, T_world_base: np.ndarray | None = None) -> Robot:
    try:
        return ROBOTS[model](T_world_base)
    except KeyError:
        raise SchemaError(
            f"unknown robot model '{model}'; built in: {', '.join(sorted(ROBOTS))}", field="robot.model"
        ) from None


def load_robot(spec: str | Path) -> Robot:
    """A built-in robot by model name (see ROBOTS), or a schema.Robot read from a JSON or YAML file."""
    if str(spec) in ROBOTS:
        return robot_preset(str(spec))
    path = Path(spec)
    if not path.is_file():
        raise SchemaError(
            f"'{spec}' is neither a built-in robot ({', '.join(sorted(ROBOTS))}) nor a robot file",
            field="robot",
        )
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SchemaError(f"not valid JSON/YAML: {' '.join(str(exc).split())}", file=path) from None
    return parse_model(Robot, data, file=path)
