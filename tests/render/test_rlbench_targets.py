"""Targets on the real RLBench sample (tests/data/rlbench, read by genima_data.formats.rlbench) land where
RLBench's own camera matrices put the recorded joints and gripper."""

from __future__ import annotations

import numpy as np

from genima_data.convert import convert
from genima_data.formats.rlbench_pickle import load_pickle
from genima_data.render.pipeline import render_targets
from genima_data.render.targets import TargetConfig, TargetRenderer, target_frame
from genima_data.store import open_dataset

CAMERAS = ("front", "left_shoulder", "right_shoulder", "wrist", "overhead")


def rlbench_pixel(obs, camera: str, point: np.ndarray) -> tuple[np.ndarray, bool]:
    """RLBench's projection (shared data README), moved to OpenCV pixel centres (-0.5)."""
    E, K = obs.misc[f"{camera}_camera_extrinsics"], obs.misc[f"{camera}_camera_intrinsics"]
    p = E[:3, :3].T @ (point - E[:3, 3])
    return np.array([K[0, 0] * p[0] / p[2] + K[0, 2], K[1, 1] * p[1] / p[2] + K[1, 2]]) - 0.5, p[2] > 0


def test_spheres_sit_on_the_recorded_rlbench_joints(rlbench_dir, tmp_path):
    store = tmp_path / "rlbench.zarr"
    convert(rlbench_dir, store)
    render_targets(store, random_bg="procedural")
    config = TargetConfig()
    checked = 0
    with open_dataset(store) as ds:
        renderer = TargetRenderer(ds.manifest, config, root=ds.path)
        for eid in ds.episode_ids:
            with ds.episode(eid) as ep:
                raw = load_pickle(rlbench_dir / ep.meta.source.path / "low_dim_obs.pkl")._observations
                size = ep["cameras/front/rgb"].shape[1:3]
                for cam in CAMERAS:
                    for t in (0, ep.length // 2, ep.length - 1):
                        target_obs = raw[target_frame(t, ep.length, config.horizon)]
                        points = {"gripper": target_obs.gripper_matrix[:3, 3]}
                        if cam not in config.gripper_only_cameras:
                            points |= {
                                f"joint{j}": target_obs.misc["joint_poses"][j][:3] for j in config.joints
                            }
                        centres = renderer.sphere_centres(ep, t, cam)
                        assert set(centres) == set(points)
                        stored = ep.frame(f"targets/{cam}/rgb", t)
                        observation = ep.frame(f"cameras/{cam}/rgb", t)
                        for name, point in points.items():
                            uv, in_front = rlbench_pixel(raw[t], cam, point)
                            inside = in_front and all(-0.5 <= uv[i] < size[1 - i] - 0.5 for i in (0, 1))
                            if not inside:
                                assert centres[name] is None, (eid, cam, t, name)
                                continue
                            assert centres[name] is not None, (eid, cam, t, name)
                            assert np.hypot(*(np.array(centres[name]) - uv)) < 0.5, (eid, cam, t, name)
                            u, v = np.round(uv).astype(int)
                            assert not np.array_equal(stored[v, u], observation[v, u]), (
                                "a sphere is drawn there"
                            )
                            checked += 1
    assert checked > 50
