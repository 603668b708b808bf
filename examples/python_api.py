"""A tour of the genima-data Python API on the bundled demo dataset.

Run: python examples/python_api.py [WORKDIR]   (the test suite runs it too)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from genima_data import create_dataset, open_dataset
from genima_data.convert import convert
from genima_data.demo import build_demo, demo_episode


def main(workdir: Path) -> None:
    # 1. Build the small synthetic sample (a zarr store: the suffix picks the back-end).
    zarr_path = workdir / "sample.zarr"
    build_demo(zarr_path, episodes=2, frames=24, size=64)

    # 2. Open read-only: metadata is parsed, no array is loaded.
    ds = open_dataset(zarr_path)
    print(ds, "cameras:", [c.name for c in ds.manifest.cameras])

    # 3. Random access to one frame of one camera (the training-loader path).
    frame = ds.read_frame("episode1", "cameras/front/rgb", t=10)
    print("front rgb frame:", frame.shape, frame.dtype)

    # 4. Episodes are lazy: arrays are file-backed until indexed.
    with ds.episode("episode0") as ep:
        joints = ep.load("robot/joint_positions")
        print(
            ep.meta.instruction, "| joints", joints.shape, "| first frame", ep["cameras/wrist/rgb"][0].shape
        )

    # 5. Convert to the HDF5 back-end and back: bit-exact.
    h5_path = workdir / "sample_h5"
    convert(zarr_path, h5_path, to="hdf5")
    with open_dataset(h5_path).episode("episode0") as a, ds.episode("episode0") as b:
        assert all(np.array_equal(a[k][...], b[k][...]) for k in a.paths())

    # 6. Append an episode to an existing dataset (written atomically, indexed on commit).
    writer = create_dataset(h5_path, ds.manifest, append=True)
    writer.write_episode(demo_episode(2, frames=24, size=64))
    writer.commit()
    print("after append:", open_dataset(h5_path).episode_ids)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()))
