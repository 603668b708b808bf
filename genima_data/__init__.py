"""genima-data: robot demonstrations made usable for GENIMA (Generative Image as Action Models).

The public API the `genima-data` command line is a thin layer over::

    from genima_data import open_dataset, create_dataset, convert, Episode, Manifest
"""

__version__ = "0.1.0"

from genima_data.episode import Episode, LazyFrames
from genima_data.errors import GenimaDataError
from genima_data.schema import Camera, CameraCalibration, EpisodeMeta, Manifest, Robot, Task
from genima_data.store import create_dataset, open_dataset

__all__ = [
    "Camera",
    "CameraCalibration",
    "Episode",
    "EpisodeMeta",
    "GenimaDataError",
    "LazyFrames",
    "Manifest",
    "Robot",
    "Task",
    "__version__",
    "create_dataset",
    "open_dataset",
]
