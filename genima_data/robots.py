"""Robot descriptions for the arms GENIMA users record with: joint names and limits, as schema.Robot.

Limits are the manufacturers' published values (Franka Emika Panda datasheet, Universal Robots UR5e
technical specifications). Kinematics for the same models live in `genima_data.geometry.kinematics`.
"""

from __future__ import annotations

import math

import numpy as np

from genima_data.errors import SchemaError
from genima_data.schema import Robot

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


ROBOTS = {"franka_panda": franka_panda, "ur5e": ur5e}


def robot_preset(model: str, T_world_base: np.ndarray | None = None) -> Robot:
    try:
        return ROBOTS[model](T_world_base)
    except KeyError:
        raise SchemaError(
            f"unknown robot model '{model}'; built in: {', '.join(sorted(ROBOTS))}", field="robot.model"
        ) from None
