"""A stand-in for rendered GENIMA spheres in detector tests: an orthographic striped disc."""

import numpy as np

# GENIMA's stripe texture across u: five coloured bands of 24/256 with black bands 24, 24, 24, 24, 40
STRIPES = np.concatenate(
    [np.full(w, c, bool) for w, c in [(24, True), (24, False)] * 4 + [(24, True), (40, False)]]
)


def draw_striped_sphere(image, centre, radius, colour, R_camera_sphere):
    """Orthographic view of a GENIMA sphere: flat colour, black stripes along its local x axis."""
    H, W = image.shape[:2]
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    dx, dy = u - centre[0], v - centre[1]
    inside = dx**2 + dy**2 <= radius**2
    dz = -np.sqrt(np.clip(radius**2 - dx**2 - dy**2, 0, None))  # the surface facing the camera
    x_local = (R_camera_sphere[0, 0] * dx + R_camera_sphere[1, 0] * dy + R_camera_sphere[2, 0] * dz) / radius
    coloured = STRIPES[np.clip(((x_local + 1) / 2 * 256).astype(int), 0, 255)]
    image[inside] = 0
    image[inside & coloured] = colour
