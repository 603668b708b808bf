"""Batched forward kinematics and pixel rays: time per frame against per-configuration references.

    python bench/kinematics.py [--frames 2000]

FK: `Kinematics.joint_frames` + `ee_pose` over (T, 7) joints at once, against yourdfpy's own FK
(``update_cfg`` + ``get_transform`` per frame, per link) on the shipped Panda URDF; both give the same
poses (tests/geometry/test_kinematics.py). Rays: `CameraModel.pixel_rays` (first call, uncached) for a
256x256 plumb-bob camera, against one batched ``cv2.undistortPoints`` call (the ratio is the price
of the round-trip and valid-region checks).
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
import yourdfpy
from rich.console import Console
from rich.table import Table

from genima_data.geometry.camera import UNDISTORT_CRITERIA, CameraModel
from genima_data.geometry.kinematics import franka_panda_kinematics, shipped_urdf
from genima_data.schema import Distortion


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_fk(frames: int) -> tuple[float, float]:
    kin = franka_panda_kinematics()
    q = np.random.default_rng(0).uniform(-2, 2, (frames, 7))
    links = [*(f"panda_link{i}" for i in range(1, 8)), "panda_grasptarget"]

    def ours() -> None:
        kin.joint_frames(q)
        kin.ee_pose(q)

    urdf = yourdfpy.URDF.load(str(shipped_urdf("franka_panda")), load_meshes=False)
    subset = q[: max(1, frames // 20)]  # the reference is slow; time a slice and scale per frame

    def reference() -> None:
        for config in subset:
            urdf.update_cfg(config)
            for link in links:
                urdf.get_transform(link, urdf.base_link)

    return best_of(ours) / frames, best_of(reference, 1) / len(subset)


def bench_rays(size: int = 256) -> tuple[float, float]:
    K = np.array([[220.0, 0.0, (size - 1) / 2], [0.0, 220.0, (size - 1) / 2], [0.0, 0.0, 1.0]])
    lens = Distortion(model="opencv", coeffs=[-0.28, 0.09, 0.001, -0.0015, 0.0])
    camera = CameraModel(K=K, distortion=lens, width=size, height=size)
    grid = np.stack(np.meshgrid(np.arange(size, dtype=float), np.arange(size, dtype=float)), -1).reshape(
        -1, 2
    )
    coeffs = np.asarray(lens.coeffs)

    def ours() -> None:  # what pixel_rays computes once per model (uncached here)
        camera.unproject(grid)

    def reference() -> None:  # one batched OpenCV call, without round-trip or valid-region checks
        cv2.undistortPoints(grid.reshape(-1, 1, 2), K, coeffs, criteria=UNDISTORT_CRITERIA)

    return best_of(ours) / len(grid), best_of(reference) / len(grid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=2000)
    args = parser.parse_args()
    table = Table(title="geometry: time per item (best of 3)")
    for column in ("what", "genima-data", "reference", "speed-up"):
        table.add_column(column, justify="right" if column != "what" else "left")
    fk_ours, fk_ref = bench_fk(args.frames)
    table.add_row(
        "Panda FK, 7 joint frames + TCP, per frame",
        f"{fk_ours * 1e6:.1f} µs",
        f"{fk_ref * 1e6:.1f} µs (yourdfpy)",
        f"{fk_ref / fk_ours:.0f}x",
    )
    ray_ours, ray_ref = bench_rays()
    table.add_row(
        "pixel ray, plumb-bob, per pixel (256²)",
        f"{ray_ours * 1e6:.2f} µs",
        f"{ray_ref * 1e6:.2f} µs (cv2, batched)",
        f"{ray_ref / ray_ours:.2f}x",
    )
    Console().print(table)


if __name__ == "__main__":
    main()
