"""Exact sphere rasteriser: ray–sphere intersection per pixel, z-buffer, GENIMA's stripe texture. No OpenGL.

A pixel shows a sphere when the ray through its centre (`CameraModel.pixel_rays`, lens distortion undone)
hits it; the nearest hit across spheres wins. Each sphere's colour is flat (no lighting) times GENIMA's
stripe texture, evaluated in the sphere's own frame: the texture coordinate u runs along the sphere's local
x axis, ``u = (x_local / r + 1) / 2`` (GENIMA maps the mesh's local x extent onto the texture width), and
the texture is five coloured bands of 24/256 of the width separated by black bands of 24, 24, 24, 24 and
40/256, so the stripes turn with the joint.

Work per sphere is bounded without projecting anything: every camera gets a table of 8x8-pixel blocks,
each with the mean direction of its rays and the largest angle from it to any ray of the block (pixel
corners included). A sphere seen from the camera centre is a cone of half-angle asin(r / |c|); a block can
only hold hits when its own cone meets that one, which honours any lens distortion because it is built
from the camera's real rays. Only the pixels of such blocks are ray-tested, for every sphere of every frame
at once.

Anti-aliasing (``supersample > 1``) re-tests only the pixels the rim of a sphere crosses, with
``supersample²`` rays spread over the pixel; ``alpha`` is then the covered fraction and ``sphere_rgb`` the
mean colour over the pixel (premultiplied: spheres on black). ``sphere_id`` always says which sphere the
pixel *centre* sees, so the hard mask is the same with and without anti-aliasing.

Skipped cleanly, never an error: spheres of zero or negative radius, with non-finite values, behind the
camera, outside the image, and spheres that contain the camera centre (seen from inside a sphere, GENIMA's
OpenGL renderer culls its back faces and draws nothing; so do we).
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from genima_data.render.pixels import put_pixels, take_pixels
from genima_data.schema import Distortion

TEXTURE_WIDTH = 256
# GENIMA's stripe texture across its width: (band width in texels, coloured?), left (u = 0) to right
STRIPE_BANDS: tuple[tuple[int, bool], ...] = (
    (24, True),
    (24, False),
    (24, True),
    (24, False),
    (24, True),
    (24, False),
    (24, True),
    (24, False),
    (24, True),
    (40, False),
)
STRIPE_COLOURED = np.concatenate([np.full(width, coloured) for width, coloured in STRIPE_BANDS])
assert STRIPE_COLOURED.size == TEXTURE_WIDTH

FINE_BLOCK = 4  # pixels per side of the culling blocks
COARSE_BLOCK = 4  # fine blocks per side of a coarse block
CAMERA_CACHE_SIZE = 8
CHUNK_PIXELS = 1 << 18  # frames rendered together: about this many pixels, so per-pixel buffers stay cached
ANGLE_MARGIN = 0.25  # of a pixel's angular size: pixel edges under distortion are curves, not great circles


class PixelRayCamera(Protocol):
    """What the rasteriser needs of a camera (`genima_data.geometry.camera.CameraModel` provides it)."""

    K: np.ndarray
    distortion: Distortion
    width: int
    height: int

    def pixel_rays(self) -> np.ndarray: ...

    def unproject(self, uv: np.ndarray, depth: np.ndarray | None = None) -> np.ndarray: ...


@dataclass(frozen=True)
class Sphere:
    """One sphere in the camera frame: centre (m), radius (m), orientation and flat colour."""

    name: str
    centre_camera: np.ndarray
    radius_m: float
    R_camera_sphere: np.ndarray
    colour: np.ndarray


@dataclass(frozen=True)
class RenderedSpheres:
    """Spheres on black (premultiplied by alpha), coverage in [0, 1] and the sphere each pixel centre sees.

    Single-frame renders have shapes (H, W, 3), (H, W), (H, W); `render_sphere_frames` adds a leading frame
    axis. `sphere_id` is the index of the sphere in the input, -1 where the pixel centre sees none.
    """

    sphere_rgb: np.ndarray
    alpha: np.ndarray
    sphere_id: np.ndarray


def stripe_coloured(u: np.ndarray) -> np.ndarray:
    """Whether texture coordinate u in [0, 1] falls on a coloured (True) or black (False) band."""
    # clip before the cast (microscopic spheres can push u to ±inf); u = 1 belongs to the last texel
    texel = np.clip(np.asarray(u) * TEXTURE_WIDTH, 0.0, TEXTURE_WIDTH - 0.5).astype(np.intp)
    return STRIPE_COLOURED[texel]


def _angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle between unit vectors along the last axis (atan2 form: exact for tiny angles too)."""
    cross = np.linalg.norm(np.cross(a, b), axis=-1)
    return np.arctan2(cross, (a * b).sum(-1))


class _RayTables:
    """Per-camera rays, culling blocks and pixel footprints (built once, kept in a small LRU cache)."""

    def __init__(self, camera: PixelRayCamera) -> None:
        self.camera = camera
        H, W = camera.height, camera.width
        self.shape = (H, W)
        self.rays = np.ascontiguousarray(np.asarray(camera.pixel_rays(), dtype=np.float64).reshape(H * W, 3))
        corner_uv = np.stack(np.meshgrid(np.arange(W + 1) - 0.5, np.arange(H + 1) - 0.5), axis=-1)
        corners = _unit(camera.unproject(corner_uv.reshape(-1, 2).astype(np.float64))).reshape(
            H + 1, W + 1, 3
        )
        centre = self.rays.reshape(H, W, 3)
        footprint = np.max(
            [_angle(centre, corners[dy : dy + H, dx : dx + W]) for dy in (0, 1) for dx in (0, 1)],
            axis=0,
        )
        margin = ANGLE_MARGIN * float(np.nanmedian(footprint))
        # angular radius of each pixel, rad; unknown (corner outside the lens model) counts as rim
        self.footprint = np.nan_to_num(footprint + margin, nan=np.inf).reshape(-1)
        self._build_blocks(centre, corners, margin)
        self._subrays: dict[int, np.ndarray] = {}
        self._zbuffer = np.empty(0)

    def zbuffer(self, size: int) -> np.ndarray:
        """A scratch depth buffer of at least `size` entries, all +inf (users reset what they touch)."""
        if self._zbuffer.size < size:
            self._zbuffer = np.full(size, np.inf)
        return self._zbuffer

    def _build_blocks(self, centre: np.ndarray, corners: np.ndarray, margin: float) -> None:
        H, W = self.shape
        fine = _blocks(np.arange(H * W).reshape(H, W), FINE_BLOCK)
        self.fine_pixels = fine.reshape(len(fine), -1)
        self.block_rays = np.ascontiguousarray(self.rays[self.fine_pixels])  # (blocks, pixels, 3)
        self.fine_dirs, fine_radius = _block_cones(centre, corners, FINE_BLOCK, margin)
        self.fine_cos_sin = _cos_sin(fine_radius)
        fine_rows, fine_cols = -(-H // FINE_BLOCK), -(-W // FINE_BLOCK)
        coarse = _blocks(np.arange(fine_rows * fine_cols).reshape(fine_rows, fine_cols), COARSE_BLOCK)
        self.coarse_children = coarse.reshape(len(coarse), -1)
        self.coarse_dirs, coarse_radius = _block_cones(centre, corners, FINE_BLOCK * COARSE_BLOCK, margin)
        self.coarse_cos_sin = _cos_sin(coarse_radius)

    def subrays(self, supersample: int) -> np.ndarray:
        """(H*W, s², 3) unit rays through an s x s grid of points inside every pixel."""
        if supersample not in self._subrays:
            H, W = self.shape
            offsets = (np.arange(supersample) + 0.5) / supersample - 0.5
            oy, ox = np.meshgrid(offsets, offsets, indexing="ij")
            vv, uu = np.mgrid[0:H, 0:W]
            uv = np.stack(
                [uu.reshape(-1, 1) + ox.reshape(1, -1), vv.reshape(-1, 1) + oy.reshape(1, -1)], axis=-1
            )
            rays = _unit(self.camera.unproject(uv.reshape(-1, 2).astype(np.float64)))
            self._subrays[supersample] = rays.reshape(H * W, supersample * supersample, 3)
        return self._subrays[supersample]


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _cos_sin(angle: np.ndarray) -> np.ndarray:
    """(…, 2) cos and sin of block radii for `_cone_overlap`.

    A block wider than π/2 (only under extreme fisheye distortion) gets cos = -inf: always a candidate.
    """
    capped = np.minimum(angle, np.pi)
    cos_sin = np.stack([np.cos(capped), np.sin(capped)], axis=-1)
    cos_sin[angle > np.pi / 2] = (-np.inf, 0.0)
    return cos_sin


def _pad_to_blocks(grid: np.ndarray, size: int) -> np.ndarray:
    """Pad the first two axes up to multiples of `size` by repeating the last row and column.

    Edge blocks then repeat some of their own entries: harmless for both block pixels and block cones.
    """
    rows, cols = -(-grid.shape[0] // size), -(-grid.shape[1] // size)
    pad = ((0, rows * size - grid.shape[0]), (0, cols * size - grid.shape[1])) + ((0, 0),) * (grid.ndim - 2)
    return np.pad(grid, pad, mode="edge")


def _blocks(index: np.ndarray, size: int) -> np.ndarray:
    """(n_blocks, size, size) entries of a 2-D index grid cut into size x size blocks, row-major."""
    padded = _pad_to_blocks(index, size)
    rows, cols = padded.shape[0] // size, padded.shape[1] // size
    return padded.reshape(rows, size, cols, size).transpose(0, 2, 1, 3).reshape(-1, size, size)


def _block_cones(
    centre: np.ndarray, corners: np.ndarray, size: int, margin: float
) -> tuple[np.ndarray, np.ndarray]:
    """Mean ray direction of each size x size pixel block and the largest angle from it to any ray of the
    block, pixel corners included (same block order as `_blocks`)."""
    centre = _pad_to_blocks(centre, size)
    rows, cols = centre.shape[0] // size, centre.shape[1] // size
    extra = ((0, rows * size + 1 - corners.shape[0]), (0, cols * size + 1 - corners.shape[1]), (0, 0))
    corners = np.pad(corners, extra, mode="edge")  # one more corner than pixels per side
    window = np.lib.stride_tricks.sliding_window_view(corners, (size + 1, size + 1), axis=(0, 1))
    corner_rays = window[::size, ::size].reshape(rows, cols, 3, -1).transpose(0, 1, 3, 2)
    centre_rays = (
        centre.reshape(rows, size, cols, size, 3).transpose(0, 2, 1, 3, 4).reshape(rows, cols, -1, 3)
    )
    rays = np.concatenate([centre_rays, corner_rays], axis=2)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # blocks whose rays are all NaN
        directions = _unit(np.nanmean(rays, axis=2))
        radii = _angle(rays, directions[:, :, None]).max(axis=2) + margin
    # rays outside a lens model's valid region are NaN: such blocks cannot be bounded, test them always
    radii[~np.isfinite(radii)] = np.inf
    directions[~np.isfinite(directions)] = 0.0
    return directions.reshape(-1, 3), radii.reshape(-1)


_TABLES: OrderedDict[tuple[Any, ...], _RayTables] = OrderedDict()


def _camera_key(camera: PixelRayCamera) -> tuple[Any, ...]:
    distortion = camera.distortion
    return (
        np.asarray(camera.K, dtype=np.float64).tobytes(),
        int(camera.width),
        int(camera.height),
        str(distortion.model),
        tuple(distortion.coeffs),
    )


def ray_tables(camera: PixelRayCamera) -> _RayTables:
    """The cached ray tables of `camera` (equal calibrations share one entry)."""
    key = _camera_key(camera)
    tables = _TABLES.pop(key, None) or _RayTables(camera)
    _TABLES[key] = tables
    while len(_TABLES) > CAMERA_CACHE_SIZE:
        _TABLES.popitem(last=False)
    return tables


@dataclass(frozen=True)
class _Instances:
    """The renderable spheres of a batch, flattened over (frame, sphere)."""

    frame: np.ndarray  # (N,) frame index
    index: np.ndarray  # (N,) sphere index within its frame
    centre: np.ndarray  # (N, 3) camera frame, m
    radius: np.ndarray  # (N,)
    x_axis: np.ndarray  # (N, 3) the sphere's local x axis in the camera frame (the texture's u direction)
    centre_x: np.ndarray  # (N,) centre · x_axis
    palette: np.ndarray  # (2N, 3) uint8: black and the flat colour of each sphere, for stripe lookups
    distance: np.ndarray  # (N,) |c|
    direction: np.ndarray  # (N, 3) c / |c|
    half_angle: np.ndarray  # (N,) asin(r / |c|)
    cos_sin: np.ndarray  # (N, 2) cos and sin of the half-angle

    @property
    def outside(self) -> np.ndarray:
        """|c|² - r², the constant term of the ray–sphere equation."""
        return self.distance**2 - self.radius**2


def _instances(
    centres: np.ndarray, radii: np.ndarray, rotations: np.ndarray, colours: np.ndarray
) -> _Instances:
    F, S = centres.shape[:2]
    frame, index = np.divmod(np.arange(F * S), S)  # frame-major, as the reshapes below
    centre = centres.reshape(-1, 3).astype(np.float64)
    radius = np.broadcast_to(radii, (F, S)).reshape(-1).astype(np.float64)
    x_axis = rotations.reshape(-1, 3, 3)[:, :, 0].astype(np.float64)
    distance = np.linalg.norm(centre, axis=-1)
    finite = np.isfinite(centre).all(-1) & np.isfinite(radius) & np.isfinite(x_axis).all(-1)
    with np.errstate(invalid="ignore"):
        keep = finite & (radius > 0) & (distance > radius)  # camera inside a sphere: culled (module doc)
    distance, radius = distance[keep], radius[keep]
    colour = colours.reshape(-1, 3)[keep].astype(np.uint8)
    return _Instances(
        frame=frame[keep],
        index=index[keep].astype(np.int16),
        centre=centre[keep],
        radius=radius,
        x_axis=x_axis[keep],
        centre_x=np.einsum("ni,ni->n", centre[keep], x_axis[keep]),
        palette=np.stack([np.zeros_like(colour), colour], axis=1).reshape(-1, 3),
        distance=distance,
        direction=centre[keep] / distance[:, None],
        half_angle=np.arcsin(radius / distance),
        cos_sin=np.stack([np.sqrt(1 - (radius / distance) ** 2), radius / distance], axis=-1),
    )


def _cone_overlap(
    cos_between: np.ndarray, block_cos_sin: np.ndarray, sphere_cos_sin: np.ndarray
) -> np.ndarray:
    """Whether block cones and sphere cones meet: angle between axes <= block radius + half-angle.

    Both angles are at most π/2 (see `_cos_sin`), so the sum is at most π and
    ``cos(a + b) = cos a cos b - sin a sin b`` decides it without a trigonometric function per pair.
    """
    ca, sa = block_cos_sin[..., 0], block_cos_sin[..., 1]
    cb, sb = sphere_cos_sin[..., 0], sphere_cos_sin[..., 1]
    return cos_between >= ca * cb - sa * sb


@dataclass(frozen=True)
class _Candidates:
    """(fine block, sphere) pairs that may hold hits, with two dot products per pixel of the block."""

    block: np.ndarray  # (K,)
    inst: np.ndarray  # (K,)
    along: np.ndarray  # (K, pixels per block): ray · centre
    across: np.ndarray  # (K, pixels per block): ray · the sphere's local x axis


def _candidates(tables: _RayTables, spheres: _Instances) -> _Candidates:
    coarse = _cone_overlap(
        tables.coarse_dirs @ spheres.direction.T, tables.coarse_cos_sin[:, None], spheres.cos_sin[None]
    )
    inst, coarse = np.nonzero(coarse.T)  # sphere-major: keys then run frame by frame (cache-friendly)
    children = tables.coarse_children.shape[1]
    block = tables.coarse_children[coarse].reshape(-1)
    inst = np.repeat(inst, children)
    cos_between = np.einsum("ij,ij->i", tables.fine_dirs[block], spheres.direction[inst])
    keep = _cone_overlap(cos_between, tables.fine_cos_sin[block], spheres.cos_sin[inst])
    block, inst = block[keep], inst[keep]
    axes = np.stack([spheres.centre[inst], spheres.x_axis[inst]], axis=-1)  # (K, 3, 2)
    dots = np.matmul(tables.block_rays[block], axes)  # (K, pixels, 2); einsum is far slower here
    return _Candidates(block, inst, dots[..., 0], dots[..., 1])


def _hit_distance(along: np.ndarray, outside: np.ndarray) -> np.ndarray:
    """Distance along unit rays to the first hit, +inf for misses, from ray·c and |c|² - r²."""
    disc = along * along - outside
    hit = (disc >= 0) & (along > 0)
    return np.where(hit, along - np.sqrt(np.where(hit, disc, 0.0)), np.inf)


def _shade(t: np.ndarray, across: np.ndarray, inst: np.ndarray, spheres: _Instances) -> np.ndarray:
    """Flat colour x stripe texture at hit distances t along rays with ray · x_axis = across, (n, 3) uint8."""
    x_local = t * across - spheres.centre_x[inst]
    coloured = stripe_coloured((x_local / spheres.radius[inst] + 1.0) / 2.0)
    return take_pixels(spheres.palette, 2 * inst + coloured)


def _nearest(key: np.ndarray, t: np.ndarray, zbuffer: np.ndarray) -> np.ndarray:
    """Indices of the nearest hit per key, using `zbuffer` (all +inf, and left so) as scratch.

    A key keeps several indices only for hits at exactly equal depth: the same sphere listed twice (edge
    blocks repeat pixels) or two coincident spheres; writing either gives the same picture.
    """
    np.minimum.at(zbuffer, key, t)
    winner = np.flatnonzero(t == zbuffer[key])
    zbuffer[key] = np.inf
    return winner


def render_sphere_frames(
    camera: PixelRayCamera,
    centres_camera: np.ndarray,
    radii_m: np.ndarray,
    R_camera_sphere: np.ndarray,
    colours: np.ndarray,
    supersample: int = 1,
) -> RenderedSpheres:
    """Render S spheres in each of F frames of one camera at once.

    Shapes: centres (F, S, 3) and rotations (F, S, 3, 3) in the camera frame, radii (F, S) or (S,) metres,
    colours (F, S, 3) uint8. Returns arrays with a leading F axis. Absent spheres: radius 0 or NaN centre.
    Frames are processed CHUNK_PIXELS at a time, so the per-pixel buffers stay in the CPU cache.
    """
    if supersample < 1:
        raise ValueError(f"supersample must be >= 1, got {supersample}")
    tables = ray_tables(camera)
    H, W = tables.shape
    centres_camera, R_camera_sphere = np.asarray(centres_camera), np.asarray(R_camera_sphere)
    colours = np.asarray(colours)
    F, S = centres_camera.shape[:2]
    out = RenderedSpheres(
        np.zeros((F, H, W, 3), np.uint8), np.zeros((F, H, W), np.float32), np.full((F, H, W), -1, np.int16)
    )
    radii = np.broadcast_to(np.asarray(radii_m, np.float64), (F, S))
    step = max(1, CHUNK_PIXELS // (H * W))
    for start in range(0, F, step):
        frames = slice(start, start + step)
        spheres = _instances(centres_camera[frames], radii[frames], R_camera_sphere[frames], colours[frames])
        if len(spheres.radius):
            rgb, alpha, sphere_id = (
                a[frames].reshape(-1, *a.shape[3:]) for a in (out.sphere_rgb, out.alpha, out.sphere_id)
            )
            _render_chunk(tables, spheres, supersample, rgb, alpha, sphere_id)
    return out


def _render_chunk(
    tables: _RayTables,
    spheres: _Instances,
    supersample: int,
    rgb: np.ndarray,
    alpha: np.ndarray,
    sphere_id: np.ndarray,
) -> None:
    """Render the spheres of a few frames into flat views of their output buffers, in place."""
    H, W = tables.shape
    found = _candidates(tables, spheres)
    t = _hit_distance(found.along, spheres.outside[found.inst][:, None]).reshape(-1)
    hit = np.flatnonzero(t < np.inf)
    inst = found.inst[hit // found.along.shape[1]]
    keys = (spheres.frame[found.inst] * (H * W))[:, None] + tables.fine_pixels[found.block]
    key = keys.reshape(-1)[hit]
    win = _nearest(key, t[hit], tables.zbuffer(alpha.size))
    key, inst = key[win], inst[win]
    put_pixels(rgb, key, _shade(t[hit[win]], found.across.reshape(-1)[hit[win]], inst, spheres))
    alpha[key] = 1.0
    sphere_id[key] = spheres.index[inst]
    if supersample > 1:
        _antialias(tables, spheres, found, supersample, rgb, alpha)


def _antialias(
    tables: _RayTables,
    spheres: _Instances,
    found: _Candidates,
    supersample: int,
    rgb: np.ndarray,
    alpha: np.ndarray,
) -> None:
    """Re-render the pixels a sphere rim crosses with supersample² rays each, in place."""
    H, W = tables.shape
    inst = np.repeat(found.inst, found.along.shape[1])
    pixel = tables.fine_pixels[found.block].reshape(-1)
    key = spheres.frame[inst] * (H * W) + pixel
    off_centre = np.arccos(np.clip(found.along.reshape(-1) / spheres.distance[inst], -1.0, 1.0))
    rim = np.abs(off_centre - spheres.half_angle[inst]) <= tables.footprint[pixel]
    on_rim = np.zeros(rgb.shape[0], bool)
    on_rim[key[rim]] = True
    rows = np.flatnonzero(on_rim[key])  # every candidate sphere of the rim pixels, rim or not
    _, first = np.unique(key[rows] * len(spheres.radius) + inst[rows], return_index=True)
    rows = rows[first]  # edge blocks list some pixels twice; coverage must count each sample once
    n_sub = supersample * supersample
    sub = np.tile(np.arange(n_sub), rows.size)
    inst, key = np.repeat(inst[rows], n_sub), np.repeat(key[rows], n_sub)
    rays = tables.subrays(supersample)[np.repeat(pixel[rows], n_sub), sub]
    t = _hit_distance(np.einsum("ij,ij->i", rays, spheres.centre[inst]), spheres.outside[inst])
    hit = np.flatnonzero(t < np.inf)
    _, dense = np.unique(key[hit] * n_sub + sub[hit], return_inverse=True)
    nearest = _nearest(dense, t[hit], tables.zbuffer(dense.size))
    _, first = np.unique(dense[nearest], return_index=True)  # each sub-ray counts once, even on a tie
    win = hit[nearest[first]]
    across = np.einsum("ij,ij->i", rays[win], spheres.x_axis[inst[win]])
    pixels = np.unique(key)
    slot = np.searchsorted(pixels, key[win])
    total = np.zeros((pixels.size, 3))
    np.add.at(total, slot, _shade(t[win], across, inst[win], spheres).astype(np.float64))
    put_pixels(rgb, pixels, np.rint(total / n_sub).astype(np.uint8))
    alpha[pixels] = (np.bincount(slot, minlength=pixels.size) / n_sub).astype(np.float32)


def render_spheres(
    camera: PixelRayCamera, spheres: Sequence[Sphere], supersample: int = 1
) -> RenderedSpheres:
    """Render spheres given in the camera frame into one image of `camera` (see the module docstring)."""
    H, W = camera.height, camera.width
    if not spheres:
        return RenderedSpheres(
            np.zeros((H, W, 3), np.uint8), np.zeros((H, W), np.float32), np.full((H, W), -1, np.int16)
        )
    frames = render_sphere_frames(
        camera,
        np.array([s.centre_camera for s in spheres], dtype=np.float64)[None],
        np.array([s.radius_m for s in spheres], dtype=np.float64)[None],
        np.array([s.R_camera_sphere for s in spheres], dtype=np.float64)[None],
        np.array([s.colour for s in spheres], dtype=np.uint8)[None],
        supersample=supersample,
    )
    return RenderedSpheres(frames.sphere_rgb[0], frames.alpha[0], frames.sphere_id[0])
