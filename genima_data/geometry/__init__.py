"""Geometry: camera models and conventions, forward kinematics."""
