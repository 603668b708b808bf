"""GENIMA's chained policy: camera images → diffusion agent → spheres on random backgrounds → ACT → actions.

1. The diffusion agent draws the target spheres into the current camera images (`DiffusionAgent`).
2. The spheres are cut out of each generated image by colour (`genima_data.render.detect`, with the
   observation as background so the redrawn scene is left out): the disc of every detected sphere, its
   black stripes included, becomes a sphere layer with full coverage.
3. The layer is blended over a random texture with a sphere weight ~ U[0.7, 1]
   (`compose.random_background_target`): the same kind of image ACT was trained on (`targets/<cam>/rnd_bg`).
   ``background="generated"`` skips this and hands the generated images to ACT unchanged, as GENIMA's own
   evaluation script does.
4. ACT turns those images, the proprioception [gripper_open, joints] and the instruction into a
   (chunk, dof + 1) chunk of absolute joint positions and gripper_open.

`evaluate_genima` runs the chain offline over held-out episodes and reports the action error per chunk
step in eval-act's format. `rlbench_rollouts` runs it in RLBench (only where rlbench is installed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from genima_data.progress import progress_bar
from genima_data.render.compose import TextureSource, random_background_target
from genima_data.render.detect import detect_blobs, sphere_mask
from genima_data.render.targets import TargetConfig
from genima_data.store import open_dataset
from genima_models.act.checkpoint import STATE_FILE, locate_checkpoint, read_trainer_state
from genima_models.act.evaluate import ACTEvaluation, ChunkErrors
from genima_models.act.policy import ACTPolicy
from genima_models.data import (
    DEFAULT_VAL_FRACTION,
    episode_instruction,
    episode_split,
    resolve_cameras,
    robot_sample,
)
from genima_models.diffusion.agent import GENIMA_INFERENCE_STEPS, DiffusionAgent
from genima_models.diffusion.config import DiffusionError

Background = Literal["random", "generated"]
GENIMA_EXECUTION_HORIZON = 20  # GENIMA's eval_genima.yaml: actions of a chunk executed before replanning
GENIMA_EPISODE_LENGTH = 200  # and the step budget of an evaluation episode


@dataclass(frozen=True)
class GeneratedSpheres:
    """Spheres cut out of a generated image: its pixels inside the detected discs, on black; coverage 0/1."""

    sphere_rgb: np.ndarray
    alpha: np.ndarray


def generated_spheres(
    generated: np.ndarray, observation: np.ndarray, config: TargetConfig
) -> GeneratedSpheres:
    """The sphere layer of one generated camera image (see the module docstring, step 2)."""
    blobs = detect_blobs(generated, config.sphere_colours(), background=observation)
    mask = sphere_mask(blobs, generated.shape[:2])
    return GeneratedSpheres(np.where(mask[..., None], generated, 0).astype(np.uint8), mask.astype(np.float32))


class GenimaPolicy:
    """The diffusion agent and the ACT controller chained; see the module docstring."""

    def __init__(
        self,
        agent: DiffusionAgent,
        controller: ACTPolicy,
        *,
        textures: TextureSource | None = None,
        background: Background = "random",
        seed: int = 0,
        source: str = "models in memory",
    ) -> None:
        if background not in get_args(Background):
            raise DiffusionError(
                f"unknown background '{background}'; choose from {', '.join(get_args(Background))}",
                field="background",
            )
        missing = [cam for cam in controller.cameras if cam not in agent.config.cameras]
        if missing:
            raise DiffusionError(
                f"the controller reads camera(s) {missing} that the diffusion agent does not draw "
                f"({agent.config.cameras})",
                field="cameras",
            )
        self.agent = agent
        self.controller = controller
        self.textures = textures or TextureSource(seed=seed)
        self.background = background
        self.rng = np.random.default_rng(seed)
        self.source = source  # where the two stages came from, for reports

    @classmethod
    def load(
        cls,
        diffusion_checkpoint: str | Path,
        act_checkpoint: str | Path,
        *,
        steps: int = GENIMA_INFERENCE_STEPS,
        seed: int = 0,
        device: str | None = None,
        texture_folder: str | Path | None = None,
        background: Background = "random",
        download_weights: bool = False,
    ) -> GenimaPolicy:
        """Both stages from their checkpoints (run directories or checkpoint directories); the diffusion
        base model is downloaded only with `download_weights`."""
        agent = DiffusionAgent.load(
            diffusion_checkpoint, steps=steps, seed=seed, device=device, download=download_weights
        )
        controller = ACTPolicy.from_checkpoint(act_checkpoint, device=device)
        textures = TextureSource(texture_folder, seed=seed)
        source = f"{diffusion_checkpoint} + {act_checkpoint}"
        return cls(agent, controller, textures=textures, background=background, seed=seed, source=source)

    def controller_images(
        self,
        observation: Mapping[str, np.ndarray],
        instruction: str,
        rng: np.random.Generator | None = None,
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(generated targets, controller inputs) per camera for one observation (steps 1–3)."""
        generated = self.agent.generate(observation, instruction)
        if self.background == "generated":
            return generated, {cam: generated[cam] for cam in self.controller.cameras}
        rng = rng or self.rng
        inputs = {}
        for cam in self.controller.cameras:
            layer = generated_spheres(generated[cam], observation[cam], self.agent.config.target_config)
            texture = self.textures.sample(rng, generated[cam].shape[:2])
            inputs[cam] = random_background_target(layer, texture, rng)
        return generated, inputs

    def predict(
        self,
        observation: Mapping[str, np.ndarray],
        proprio: np.ndarray,
        instruction: str,
        rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        """Camera images (uint8 HxWx3), proprio [gripper_open, joints] → (chunk, dof + 1) actions: joint
        positions in radians and gripper_open in {0, 1}."""
        _, inputs = self.controller_images(observation, instruction, rng)
        return self.controller.predict(inputs, proprio, instruction)


# ---------------------------------------------------------------------------------------------- offline
def evaluate_policy(
    policy: GenimaPolicy,
    data: str | Path,
    episodes: Sequence[str],
    *,
    split: str = "val",
    frame_stride: int = 1,
    seed: int = 0,
    progress: bool = False,
) -> ACTEvaluation:
    """Action error of the chained policy on every `frame_stride`-th frame (0 … T-2) of `episodes`.

    Each prediction is compared with the recorded future [joints, gripper_open] at t+1 … t+chunk (steps
    past the episode end are not counted), per chunk step as `genima-train eval-act` reports it. The
    random backgrounds of sample i are drawn from a generator seeded by (seed, i).
    """
    if frame_stride < 1:
        raise DiffusionError(f"frame stride must be at least 1, got {frame_stride}", field="frame_stride")
    chunk = policy.controller.chunk_size
    errors = ChunkErrors(chunk)
    samples = 0
    with open_dataset(data) as store:
        resolve_cameras(store.manifest, policy.agent.config.cameras, file=Path(data))
        lengths = {m.episode_id: m.length for m in store.manifest.episodes}
        unknown = [eid for eid in episodes if eid not in lengths]
        if unknown:
            raise DiffusionError(f"no episode(s) {unknown} in the dataset", file=data, field="episodes")
        total = sum(len(range(0, lengths[eid] - 1, frame_stride)) for eid in episodes)
        with progress_bar(total, "evaluating GENIMA", enabled=progress) as advance:
            for eid in episodes:
                with store.episode(eid) as ep:
                    joints = ep.load("robot/joint_positions").astype(np.float32)
                    gripper = ep.load("robot/gripper_open").astype(np.float32)
                    instruction = episode_instruction(store.manifest, ep.meta.task, ep.meta.instruction)
                    for t in range(0, ep.length - 1, frame_stride):
                        proprio, actions, is_pad = robot_sample(joints, gripper, t, chunk)
                        cameras = policy.agent.config.cameras
                        observation = {cam: ep.frame(f"cameras/{cam}/rgb", t) for cam in cameras}
                        rng = np.random.default_rng([seed, samples])
                        predicted = policy.predict(observation, proprio, instruction, rng)
                        errors.add(predicted[None], actions[None], ~is_pad[None])
                        samples += 1
                        advance(1)
    return errors.evaluation(
        checkpoint=policy.source,
        dataset=str(data),
        split=split,
        episodes=list(episodes),
        samples=samples,
        policy="GENIMA (diffusion agent + ACT)",
    )


def evaluate_genima(
    diffusion_checkpoint: str | Path,
    act_checkpoint: str | Path,
    data: str | Path,
    *,
    split: str = "val",
    frame_stride: int = 1,
    steps: int = GENIMA_INFERENCE_STEPS,
    seed: int = 0,
    device: str | None = None,
    texture_folder: str | Path | None = None,
    background: Background = "random",
    progress: bool = False,
    download_weights: bool = False,
) -> ACTEvaluation:
    """Offline evaluation of the chained policy on `split` of `data` (see `evaluate_policy`); the val split
    is the one the ACT run held out (same fraction and seed) unless the manifest lists splits."""
    policy = GenimaPolicy.load(
        diffusion_checkpoint,
        act_checkpoint,
        steps=steps,
        seed=seed,
        device=device,
        texture_folder=texture_folder,
        background=background,
        download_weights=download_weights,
    )
    act_path = locate_checkpoint(act_checkpoint)
    state = read_trainer_state(act_path) if (act_path / STATE_FILE).exists() else {}
    with open_dataset(data) as store:
        episodes = episode_split(
            store.manifest,
            split,
            val_fraction=state.get("val_fraction", DEFAULT_VAL_FRACTION),
            seed=state.get("split_seed", 0),
            file=data,
        )
    return evaluate_policy(
        policy, data, episodes, split=split, frame_stride=frame_stride, seed=seed, progress=progress
    )


# ---------------------------------------------------------------------------------------------- RLBench
RLBENCH_CAMERAS = ("wrist", "front", "left_shoulder", "right_shoulder", "overhead")


@dataclass(frozen=True)
class Rollout:
    """One simulated episode: whether the task succeeded, the reward and the steps taken."""

    success: bool
    reward: float
    steps: int


def rlbench_observation(obs: Any, cameras: list[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Camera images and proprio [gripper_open, joints] of an RLBench `Observation`."""
    unknown = [cam for cam in cameras if cam not in RLBENCH_CAMERAS]
    if unknown:
        raise DiffusionError(
            f"RLBench has no camera(s) {unknown} (it has {RLBENCH_CAMERAS})", field="cameras"
        )
    images = {cam: np.asarray(getattr(obs, f"{cam}_rgb")) for cam in cameras}
    proprio = np.concatenate([[float(obs.gripper_open)], np.asarray(obs.joint_positions, np.float32)])
    return images, proprio.astype(np.float32)


def run_episode(
    policy: GenimaPolicy,
    task: Any,
    *,
    max_steps: int = GENIMA_EPISODE_LENGTH,
    execution_horizon: int = GENIMA_EXECUTION_HORIZON,
) -> Rollout:
    """One episode of an RLBench task environment (``reset() -> (descriptions, obs)``,
    ``step(action) -> (obs, reward, terminate)``) with absolute joint-position actions + gripper.

    Each chunk's first `execution_horizon` actions are executed before the policy is asked again, as
    GENIMA's evaluation does; the episode ends on termination or after `max_steps` actions.
    """
    descriptions, obs = task.reset()
    instruction = descriptions[0]
    cameras = policy.agent.config.cameras
    steps, reward, terminate = 0, 0.0, False
    while not terminate and steps < max_steps:
        images, proprio = rlbench_observation(obs, cameras)
        chunk = policy.predict(images, proprio, instruction)
        for action in chunk[:execution_horizon]:
            obs, reward, terminate = task.step(action)
            steps += 1
            if terminate or steps >= max_steps:
                break
    return Rollout(success=reward > 0.99, reward=float(reward), steps=steps)


def rlbench_rollouts(
    policy: GenimaPolicy, task_name: str, episodes: int, *, headless: bool = True, **episode_options: Any
) -> list[Rollout]:
    """Run `episodes` episodes of RLBench task `task_name` (needs rlbench, PyRep and CoppeliaSim)."""
    try:
        from rlbench.action_modes.action_mode import MoveArmThenGripper
        from rlbench.action_modes.arm_action_modes import JointPosition
        from rlbench.action_modes.gripper_action_modes import Discrete
        from rlbench.backend.utils import task_file_to_task_class
        from rlbench.environment import Environment
        from rlbench.observation_config import ObservationConfig
    except ImportError as exc:
        raise DiffusionError(
            f"RLBench rollouts need rlbench (with PyRep and CoppeliaSim) installed: {exc}", field="rlbench"
        ) from None
    env = Environment(
        action_mode=MoveArmThenGripper(JointPosition(absolute_mode=True), Discrete()),
        obs_config=ObservationConfig(),
        headless=headless,
    )
    env.launch()
    try:
        task = env.get_task(task_file_to_task_class(task_name))
        return [run_episode(policy, task, **episode_options) for _ in range(episodes)]
    finally:
        env.shutdown()
