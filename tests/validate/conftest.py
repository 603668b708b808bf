"""Helpers for `genima_data.validate` tests: damage a copy of the demo dataset in precise ways.

The store refuses to write malformed episodes, so structural damage goes straight through h5py / zarr.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import zarr
from zarr.storage import LocalStore

from genima_data.store import open_dataset
from genima_data.validate import Finding, validate_dataset


def is_zarr(dataset: Path) -> bool:
    return dataset.suffix == ".zarr"


def episode_file(dataset: Path, episode_id: str) -> Path:
    return dataset / "episodes" / (episode_id if is_zarr(dataset) else f"{episode_id}.h5")


def read_array(dataset: Path, episode_id: str, field: str) -> np.ndarray:
    with open_dataset(dataset).episode(episode_id) as ep:
        return ep.load(field)


def write_raw(dataset: Path, episode_id: str, field: str, values: np.ndarray | None) -> None:
    """Replace, add (or with None delete) one array of a stored episode, bypassing the store's checks."""
    if is_zarr(dataset):
        group = zarr.open_group(LocalStore(episode_file(dataset, episode_id)), mode="r+")
        parent_path, _, name = field.rpartition("/")
        parent = group.require_group(parent_path) if parent_path else group
        if name in parent:
            del parent[name]
        if values is not None:
            parent.create_array(name, shape=values.shape, dtype=values.dtype)[...] = values
    else:
        with h5py.File(episode_file(dataset, episode_id), "r+") as f:
            if field in f:
                del f[field]
            if values is not None:
                f.create_dataset(field, data=values)


def set_array(dataset: Path, episode_id: str, field: str, values: np.ndarray) -> None:
    """Replace an array through the store (values only: the shape and dtype stay valid)."""
    open_dataset(dataset, "a").add_arrays(episode_id, {field: values}, replace=True)


def edit_meta(dataset: Path, episode_id: str, /, *, reindex: bool = True, **changes: Any) -> None:
    """Change an episode's stored metadata; `reindex` updates the manifest's index line to match."""
    if is_zarr(dataset):
        node_file = episode_file(dataset, episode_id) / "zarr.json"
        node = json.loads(node_file.read_text())
        node["attributes"]["meta"].update(changes)
        node_file.write_text(json.dumps(node))
    else:
        with h5py.File(episode_file(dataset, episode_id), "r+") as f:
            f.attrs["meta"] = json.dumps({**json.loads(f.attrs["meta"]), **changes})
    if reindex:
        ds = open_dataset(dataset, "a")
        index = [e.model_dump() for e in ds.manifest.episodes]
        for line in index:
            if line["episode_id"] == episode_id:
                line.update({k: v for k, v in changes.items() if k in line})
        ds.update_manifest(episodes=index)


def update_camera(dataset: Path, name: str, **changes: Any) -> None:
    ds = open_dataset(dataset, "a")
    cameras = [
        {**c.model_dump(mode="json"), **(changes if c.name == name else {})} for c in ds.manifest.cameras
    ]
    ds.update_manifest(cameras=cameras)


def findings_of(dataset: Path, check: str, **kwargs: Any) -> list[Finding]:
    """Findings of one check (run alone) that are errors or warnings."""
    report = validate_dataset(dataset, checks=[check], **kwargs)
    return [f for f in report.findings if f.check == check and f.severity != "info"]


@pytest.fixture
def zarr_copy(demo_store_dir, tmp_path) -> Path:
    """A private copy of the zarr demo, for checks whose behaviour does not depend on the back-end."""
    dst = tmp_path / "sample.zarr"
    shutil.copytree(demo_store_dir / "sample.zarr", dst)
    return dst
