import math
import sys

import pytest

from genima_data.convert import convert
from genima_data.errors import FormatError, GenimaDataError
from genima_data.formats import get_format
from genima_data.parallel import run_tasks
from tests.test_convert import assert_datasets_equal


@pytest.fixture(scope="module")
def local_ray():
    """A small local Ray instance: 2 CPUs, the minimum object store, no dashboard (skips without Ray)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, object_store_memory=80 * 2**20, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_engine_converts_the_demo_exactly_like_the_local_pool(local_ray, demo_store_dir, tmp_path):
    result = convert(demo_store_dir / "sample.zarr", tmp_path / "h5", to="hdf5", workers=2, engine="ray")
    assert result.ok and result.written == ["episode0", "episode1", "episode2"]
    assert_datasets_equal(demo_store_dir / "sample.zarr", tmp_path / "h5")


def test_ray_engine_resumes_a_partial_conversion(local_ray, demo_store_dir, tmp_path):
    convert(demo_store_dir / "sample_h5", tmp_path / "out.zarr", episodes=["episode1"])
    again = convert(demo_store_dir / "sample_h5", tmp_path / "out.zarr", workers=2, engine="ray")
    assert again.skipped == ["episode1"] and again.written == ["episode0", "episode2"]
    assert_datasets_equal(demo_store_dir / "sample_h5", tmp_path / "out.zarr")


def test_ray_keeps_at_most_max_in_flight_tasks_submitted(local_ray):
    submitted = []

    def items():
        for i in range(20):
            submitted.append(i)
            yield float(i)

    results = {}
    for completed, (item, root) in enumerate(
        run_tasks(math.sqrt, items(), workers=2, engine="ray", max_in_flight=3), start=1
    ):
        assert len(submitted) <= completed - 1 + 3  # never more than 3 submitted and unfinished
        results[item] = root
    assert results == {float(i): math.sqrt(i) for i in range(20)}


def test_a_failing_task_raises_its_own_error_type(local_ray):
    with pytest.raises(FormatError, match="unknown format 'nope'"):
        list(run_tasks(get_format, ["zarr", "nope"], workers=2, engine="ray"))


def test_cli_engine_ray_converts_with_progress_and_exit_code_0(local_ray, demo_store_dir, tmp_path, run_cli):
    result = run_cli(
        "convert",
        demo_store_dir / "sample.zarr",
        tmp_path / "h5",
        "--to",
        "hdf5",
        "--engine",
        "ray",
        "-w",
        "2",
    )
    assert result.exit_code == 0, result.stderr
    assert "wrote 3" in result.stdout
    assert_datasets_equal(demo_store_dir / "sample.zarr", tmp_path / "h5")


def test_engine_ray_without_ray_installed_says_which_extra_to_install(
    demo_store_dir, tmp_path, monkeypatch, run_cli
):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the [ray] extra were not installed
    with pytest.raises(GenimaDataError, match=r"needs Ray: pip install 'genima-data\[ray\]'"):
        list(run_tasks(math.sqrt, [1.0], engine="ray"))
    result = run_cli(
        "convert", demo_store_dir / "sample.zarr", tmp_path / "h5", "--to", "hdf5", "--engine", "ray"
    )
    assert result.exit_code == 1 and "error: --engine ray needs Ray" in result.stderr
