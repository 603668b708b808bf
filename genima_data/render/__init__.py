"""Sphere targets: the exact sphere rasteriser, GENIMA's target definition, backgrounds and tiling."""
