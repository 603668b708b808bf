"""Sphere-target rendering: speed and agreement against GENIMA's renderer, in the same run.

GENIMA (render/joint_marker.py) builds one pyrender scene per camera-frame: an IntrinsicsCamera, and per
sphere a deep-copied trimesh UV sphere with planar UVs, a texture read from its PNG and a base-colour
factor, rendered offscreen with flat shading. This script does exactly that for the baseline (with the
stripe textures reconstructed from GENIMA's layout and colours), and measures on the bundled demo's
geometry (four spheres per camera-frame, GENIMA's radii and colours):

* kernel: per camera-frame time of our exact renderer (all frames of a camera at once, and one frame at
  a time) against pyrender, at each image size;
* end to end: `render_targets` over a dataset (read observations, render, composite, write targets into
  the store) against GENIMA's loop over PNG folders (read PNGs, render, composite, write PNGs);
* agreement: sphere-mask IoU against pyrender (pixel centres at +0.5 there), pixels that differ outside
  the outermost anti-aliasing ring, and interior pixels whose colour matches exactly.

    python bench/render.py [--sizes 128 256] [--episodes 2] [--frames 48]

pyrender is never a dependency of genima-data; install it for the benchmark only::

    python -m venv /tmp/bench && /tmp/bench/bin/pip install -e . pyrender==0.1.45
    /tmp/bench/bin/pip install --no-deps PyOpenGL==3.1.10      # pyrender pins 3.1.0, which lacks EGL fixes
    apt-get install libegl1 libegl-mesa0                         # Debian's EGL (software rendering)
    PYOPENGL_PLATFORM=egl /tmp/bench/bin/python bench/render.py

Without pyrender the script reports our timings only.
"""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console
from rich.table import Table

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

from genima_data.demo import build_demo
from genima_data.render.pipeline import DEFAULT_TARGET_CODEC, render_targets
from genima_data.render.spheres import STRIPE_COLOURED, Sphere, render_sphere_frames, render_spheres
from genima_data.render.targets import TargetConfig, TargetRenderer
from genima_data.store import open_dataset

CAMERAS = ("front", "left_shoulder", "right_shoulder", "wrist")
OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0, 1.0])
# GENIMA's base-colour factors: open-gripper factor on everything but the closed gripper (joint_marker.py)
FACTOR_OPEN, FACTOR_CLOSED = np.array([0.60392156862, 0.86274509803, 1.0]), np.array([1.0, 1.0, 0.0])


def try_import_pyrender():
    try:
        import pyrender
        import trimesh
        from PIL import Image

        return pyrender, trimesh, Image
    except Exception as exc:  # ImportError, or EGL missing at import time
        return exc


# ------------------------------------------------------------------------------ the GENIMA baseline
class GenimaMarker:
    """GENIMA's JointMarker: one offscreen renderer, sphere meshes cached per radius, one scene per frame
    (render_action), here with camera-frame sphere poses and the camera at the origin."""

    def __init__(self, modules, size: int, texture_dir: Path) -> None:
        self.pyrender, self.trimesh, self.Image = modules
        self.renderer = self.pyrender.OffscreenRenderer(size, size)
        self.meshes: dict[float, object] = {}
        self.material = self.pyrender.MetallicRoughnessMaterial(metallicFactor=0.0)
        self.texture_dir = texture_dir

    def render(
        self, K: np.ndarray, T_camera_sphere: np.ndarray, colours: np.ndarray, radius: float
    ) -> np.ndarray:
        pyrender = self.pyrender
        cached = self.meshes.setdefault(radius, self.trimesh.creation.uv_sphere(radius=radius))
        scene = pyrender.Scene()
        camera = pyrender.IntrinsicsCamera(
            fx=K[0, 0], fy=K[1, 1], cx=K[0, 2] + 0.5, cy=K[1, 2] + 0.5, znear=1e-5, zfar=3.0
        )
        scene.add(camera, pose=OPENCV_TO_OPENGL)
        for pose, colour in zip(T_camera_sphere, colours, strict=True):
            name, factor = texture_for(colour)
            texture = pyrender.Texture(
                source=self.Image.open(self.texture_dir / name).convert("RGBA"), source_channels="RGBA"
            )
            mesh, material = copy.deepcopy(cached), copy.deepcopy(self.material)
            xy = mesh.vertices[:, :2]
            mesh._visual = self.trimesh.visual.texture.TextureVisuals(
                uv=(xy - xy.min(axis=0)) / np.ptp(xy, axis=0), image=np.full((1, 1, 3), 255, np.uint8)
            )
            material.baseColorTexture = texture
            material.baseColorFactor = (*factor, 1.0)
            scene.add(pyrender.Mesh.from_trimesh(mesh, material=material), pose=pose)
        colour, _ = self.renderer.render(scene, pyrender.RenderFlags.FLAT)
        return colour


TEXTURES: dict[tuple[int, int, int], tuple[str, np.ndarray]] = {}


def write_textures(folder: Path, config: TargetConfig) -> None:
    """Stripe textures whose colour times GENIMA's base-colour factor gives the configured colours."""
    for name, colour in config.sphere_colours().items():
        factor = FACTOR_CLOSED if name == "gripper_closed" else FACTOR_OPEN
        texel = np.where(factor > 0, np.clip(np.rint(np.array(colour) / np.maximum(factor, 1e-9)), 0, 255), 0)
        image = np.zeros((256, 256, 3), np.uint8)
        image[:, STRIPE_COLOURED] = texel.astype(np.uint8)
        cv2.imwrite(str(folder / f"{name}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        TEXTURES[tuple(colour)] = (f"{name}.png", factor)


def texture_for(colour: np.ndarray) -> tuple[str, np.ndarray]:
    return TEXTURES[tuple(int(c) for c in colour)]


# ------------------------------------------------------------------------------ measurements
def scenes(dataset: Path, config: TargetConfig) -> dict[str, list[tuple]]:
    """Per camera: (camera model, T_camera_sphere (F, S, 4, 4), colours (F, S, 3), radius) per episode."""
    out: dict[str, list[tuple]] = {c: [] for c in CAMERAS}
    with open_dataset(dataset) as ds:
        renderer = TargetRenderer(ds.manifest, config)
        for eid in ds.episode_ids:
            with ds.episode(eid) as ep:
                for cam in CAMERAS:
                    poses, colours = renderer.sphere_poses(ep, cam, np.arange(ep.length))
                    radius = config.radius_m * config.scale_for(cam)
                    out[cam].append((renderer.camera_model(cam), poses, colours, radius))
    return out


def time_ours(per_camera: dict[str, list[tuple]], repeats: int = 5) -> tuple[float, float]:
    """Seconds per camera-frame: all frames of a camera at once, and frame by frame (best of repeats)."""
    batched, single, frames = [], [], 0
    for _ in range(repeats):
        b = s = 0.0
        frames = 0
        for items in per_camera.values():
            for model, poses, colours, radius in items:
                start = time.perf_counter()
                render_sphere_frames(
                    model, poses[..., :3, 3], np.full(poses.shape[:2], radius), poses[..., :3, :3], colours
                )
                b += time.perf_counter() - start
                start = time.perf_counter()
                for f in range(len(poses)):
                    spheres = [
                        Sphere(str(k), poses[f, k, :3, 3], radius, poses[f, k, :3, :3], colours[f, k])
                        for k in range(poses.shape[1])
                    ]
                    render_spheres(model, spheres)
                s += time.perf_counter() - start
                frames += len(poses)
        batched.append(b / frames)
        single.append(s / frames)
    return min(batched), min(single)


def ring(mask: np.ndarray) -> np.ndarray:
    """Pixels within one pixel (8-neighbourhood) of the mask's boundary, inside or outside."""
    kernel = np.ones((3, 3), np.uint8)
    m = mask.astype(np.uint8)
    return cv2.dilate(m, kernel).astype(bool) & ~cv2.erode(m, kernel).astype(bool)


def time_and_compare_pyrender(per_camera, pyrender_modules, texture_dir: Path, size: int, limit: int):
    """pyrender seconds per camera-frame and agreement statistics over up to `limit` frames per camera."""
    marker = GenimaMarker(pyrender_modules, size, texture_dir)
    seconds, frames = 0.0, 0
    inter = union = outside_ring = interior = same_band = 0
    band_diffs = []
    for items in per_camera.values():
        model, poses, colours, radius = items[0]
        ours = render_sphere_frames(
            model, poses[..., :3, 3], np.full(poses.shape[:2], radius), poses[..., :3, :3], colours
        )
        for f in range(min(limit, len(poses))):
            start = time.perf_counter()
            theirs = marker.render(model.K, poses[f], colours[f], radius)
            seconds += time.perf_counter() - start
            frames += 1
            their_mask = ~np.all(theirs == 255, axis=-1)  # GENIMA's test: anything not white is sphere
            our_mask = ours.sphere_id[f] >= 0
            inter += int((their_mask & our_mask).sum())
            union += int((their_mask | our_mask).sum())
            outside_ring += int(((their_mask != our_mask) & ~ring(our_mask)).sum())
            core = cv2.erode(our_mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
            ours_band = ours.sphere_rgb[f].max(axis=-1) > 0
            interior += int(core.sum())
            same_band += int(((theirs.max(axis=-1) > 60) == ours_band)[core].sum())
            # pixels well inside a band or a stripe (3x3 neighbourhood all alike): colour difference
            band = ours_band.astype(np.uint8)
            steady = core & (
                cv2.erode(band, np.ones((3, 3), np.uint8)) == cv2.dilate(band, np.ones((3, 3), np.uint8))
            )
            band_diffs.append(
                np.abs(theirs[steady].astype(int) - ours.sphere_rgb[f][steady].astype(int)).max(-1)
            )
    diffs = np.concatenate(band_diffs)
    return seconds / frames, {
        "iou": inter / max(union, 1),
        "outside_ring": outside_ring,
        "same_band": same_band / max(interior, 1),
        "band_diff": float(np.median(diffs)) if diffs.size else float("nan"),
        "frames": frames,
    }


def export_observation_pngs(dataset: Path, out: Path) -> list[Path]:
    """GENIMA's input layout: <episode>/<cam>_rgb/<t>.png (setup for the baseline, not timed)."""
    folders = []
    with open_dataset(dataset) as ds:
        for eid in ds.episode_ids:
            with ds.episode(eid) as ep:
                for cam in CAMERAS:
                    folder = out / eid / f"{cam}_rgb"
                    folder.mkdir(parents=True)
                    for t in range(ep.length):
                        rgb = ep.frame(f"cameras/{cam}/rgb", t)
                        cv2.imwrite(str(folder / f"{t}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
                folders.append(out / eid)
    return folders


def genima_end_to_end(
    per_camera, episodes: list[Path], pyrender_modules, texture_dir, size, out: Path
) -> float:
    """GENIMA's render_data.py loop (rgb_rendered): read PNGs, render, composite, write PNGs.

    Returns seconds per camera-frame. One renderer for the whole run (GENIMA makes one per episode)."""
    Image = pyrender_modules[2]
    frames = 0
    marker = GenimaMarker(pyrender_modules, size, texture_dir)
    start = time.perf_counter()
    for e, episode_dir in enumerate(episodes):
        images = {
            cam: [
                np.array(Image.open(episode_dir / f"{cam}_rgb" / f"{t}.png"))
                for t in range(len(per_camera[cam][e][1]))
            ]
            for cam in CAMERAS
        }
        for cam in CAMERAS:
            (out / episode_dir.name / f"{cam}_rgb").mkdir(parents=True, exist_ok=True)
        T = len(per_camera[CAMERAS[0]][e][1])
        for t in range(T - 1):
            for cam in CAMERAS:
                model, poses, colours, radius = per_camera[cam][e]
                render = np.array(marker.render(model.K, poses[t], colours[t], radius))
                white = np.all(render == [255, 255, 255], axis=-1)
                render[white] = images[cam][t][white]
                Image.fromarray(render).save(out / episode_dir.name / f"{cam}_rgb" / f"{t}.png")
                frames += 1
    return (time.perf_counter() - start) / frames


def ours_end_to_end(dataset: Path, workdir: Path, codec: str | None, repeats: int = 3) -> float:
    """render_targets over a fresh copy of the dataset, seconds per camera-frame (best of repeats)."""
    with open_dataset(dataset) as ds:
        frames = sum(e.length for e in ds.manifest.episodes) * len(CAMERAS)
    best = np.inf
    for r in range(repeats):
        copy_path = workdir / f"copy{r}{dataset.suffix}"
        shutil.copytree(dataset, copy_path)
        start = time.perf_counter()
        render_targets(copy_path, codec=codec)
        best = min(best, time.perf_counter() - start)
        shutil.rmtree(copy_path)
    return best / frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--compare-frames", type=int, default=48, help="pyrender frames per camera and size")
    args = parser.parse_args()
    console = Console(width=140)
    pyrender_modules = try_import_pyrender()
    have_pyrender = not isinstance(pyrender_modules, Exception)
    if not have_pyrender:
        console.print(f"[yellow]pyrender unavailable ({pyrender_modules}); our timings only[/]")
    config = TargetConfig()
    kernel = Table(title="Render kernel, 4 spheres per camera-frame (GENIMA radii, demo geometry)")
    for col in (
        "size",
        "ours batched µs",
        "ours 1 frame µs",
        "pyrender ms",
        "ratio batched",
        "ratio 1 frame",
    ):
        kernel.add_column(col, justify="right")
    e2e = Table(
        title="render-targets end to end: read observation, render, composite, write (per camera-frame)"
    )
    for col in ("size", "store", "target codec", "ours ms", "GENIMA (pyrender + PNG) ms", "ratio"):
        e2e.add_column(col, justify="right")
    agree = Table(title="Agreement with pyrender (GENIMA mask = non-white pixels)")
    for col in (
        "size",
        "frames",
        "mask IoU",
        "differing px outside the rim ring",
        "interior px in the same band/stripe",
        "median |Δ colour| inside bands",
    ):
        agree.add_column(col, justify="right")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        textures = tmp / "textures"
        textures.mkdir()
        write_textures(textures, config)
        for size in args.sizes:
            datasets = {}
            for store in ("zarr", "hdf5"):
                path = tmp / f"demo{size}" / ("sample.zarr" if store == "zarr" else "sample_h5")
                build_demo(path, episodes=args.episodes, frames=args.frames, size=size)
                datasets[store] = path
            per_camera = scenes(datasets["hdf5"], config)
            batched, single = time_ours(per_camera)
            row = [str(size), f"{batched * 1e6:.0f}", f"{single * 1e6:.0f}"]
            if have_pyrender:
                theirs, stats = time_and_compare_pyrender(
                    per_camera, pyrender_modules, textures, size, args.compare_frames
                )
                row += [f"{theirs * 1e3:.1f}", f"{theirs / batched:.0f}x", f"{theirs / single:.0f}x"]
                agree.add_row(
                    str(size),
                    str(stats["frames"]),
                    f"{stats['iou']:.4f}",
                    str(stats["outside_ring"]),
                    f"{stats['same_band']:.1%}",
                    f"{stats['band_diff']:.0f}",
                )
            kernel.add_row(*row)
            genima = None
            if have_pyrender:
                pngs = export_observation_pngs(datasets["hdf5"], tmp / f"png{size}")
                genima = genima_end_to_end(
                    per_camera, pngs, pyrender_modules, textures, size, tmp / f"out{size}"
                )
            for store, path in datasets.items():
                for codec in (DEFAULT_TARGET_CODEC, None):
                    ours = ours_end_to_end(path, tmp, codec)
                    e2e.add_row(
                        str(size),
                        store,
                        codec or "store's own",
                        f"{ours * 1e3:.2f}",
                        "" if genima is None else f"{genima * 1e3:.1f}",
                        "" if genima is None else f"{genima / ours:.0f}x",
                    )
    console.print(kernel)
    console.print(e2e)
    if have_pyrender:
        console.print(agree)


if __name__ == "__main__":
    main()
