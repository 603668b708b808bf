"""Delivery bundles: sha256sum-compatible checksums, verify, crash safety, refusing other deliveries."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from genima_data.atomic import TMP_PREFIX
from genima_data.deliver import CHECKSUMS, DeliveryError, deliver, verify
from genima_data.stats import DatasetStats, compute_stats
from genima_data.store import open_dataset

SHA256SUM = shutil.which("sha256sum")


@pytest.fixture(scope="module")
def bundle(demo_store_dir, tmp_path_factory):
    """`deliver demo/sample.zarr OUT`, made once; copy before modifying."""
    out = tmp_path_factory.mktemp("delivery") / "OUT"
    deliver(demo_store_dir / "sample.zarr", out)
    return out


@pytest.fixture
def bundle_copy(bundle, tmp_path):
    out = tmp_path / "OUT"
    shutil.copytree(bundle, out)
    return out


def flip_one_byte(path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def some_chunk(out):
    """A chunk file of the delivered zarr store (c.0.0 or, in older stores, c/0/0: any file but metadata)."""
    episodes = out / "sample.zarr" / "episodes"
    return next(p for p in sorted(episodes.rglob("*")) if p.is_file() and p.name != "zarr.json")


@pytest.mark.skipif(SHA256SUM is None, reason="needs coreutils' sha256sum")
def test_checksums_pass_sha256sum_and_fail_after_one_byte_changes(bundle_copy):
    ok = subprocess.run([SHA256SUM, "-c", CHECKSUMS], cwd=bundle_copy, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "DATASHEET.md: OK" in ok.stdout and "sample.zarr/zarr.json: OK" in ok.stdout
    chunk = some_chunk(bundle_copy)
    flip_one_byte(chunk)
    bad = subprocess.run([SHA256SUM, "-c", CHECKSUMS], cwd=bundle_copy, capture_output=True, text=True)
    assert bad.returncode == 1
    assert f"{chunk.relative_to(bundle_copy).as_posix()}: FAILED" in bad.stdout


def test_checksum_list_covers_every_other_file_with_relative_paths(bundle):
    lines = (bundle / CHECKSUMS).read_text().splitlines()
    listed = [re.fullmatch(r"[0-9a-f]{64}  (\S+)", line).group(1) for line in lines]
    on_disk = sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file())
    assert listed == [p for p in on_disk if p != CHECKSUMS]
    for name in ("DATASHEET.md", "stats.json", "validation.json", "delivery.json", "sample.zarr/stats.npz"):
        assert name in listed
    assert any(name.startswith("previews/") and name.endswith(".png") for name in listed)


def test_verify_passes_an_intact_bundle_and_names_a_changed_missing_and_unlisted_file(bundle_copy, run_cli):
    assert verify(bundle_copy).ok
    chunk = some_chunk(bundle_copy)
    flip_one_byte(chunk)
    (bundle_copy / "stats.json").unlink()
    (bundle_copy / "notes.txt").write_text("added after delivery")
    result = verify(bundle_copy)
    assert not result.ok
    assert result.checksums.changed == [chunk.relative_to(bundle_copy).as_posix()]
    assert (result.checksums.missing, result.checksums.unlisted) == (["stats.json"], ["notes.txt"])
    cli = run_cli("verify", bundle_copy)
    assert cli.exit_code == 1
    assert "changed: sample.zarr/episodes/" in cli.stderr and "missing: stats.json" in cli.stderr


def test_verify_cli_exit_0_on_an_intact_bundle(bundle_copy, run_cli, tmp_path):
    result = run_cli("verify", bundle_copy, "--json", tmp_path / "v.json")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "delivery verified" in result.stdout
    assert json.loads((tmp_path / "v.json").read_text())["validation"]["genima_ready"] is True


def test_bundle_stats_equal_a_fresh_computation_and_load_back_exactly(bundle, demo_store_dir):
    fresh = compute_stats(demo_store_dir / "sample.zarr")
    assert json.loads((bundle / "stats.json").read_text()) == json.loads(json.dumps(fresh.to_dict()))
    stored = DatasetStats.load(bundle / "sample.zarr" / "stats.npz")
    assert stored.field("robot/joint_positions").histograms == fresh.field("robot/joint_positions").histograms


def test_datasheet_references_only_figures_that_are_in_the_bundle(bundle):
    text = (bundle / "DATASHEET.md").read_text()
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert "previews/episode_lengths.png" in figures and "previews/joint_coverage.png" in figures
    assert "previews/camera_front.png" in figures
    for figure in figures:
        assert (bundle / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", figure
    assert "| panda_joint1 | 72 |" in text  # the statistics table: 3 episodes x 24 frames
    assert "| reach_target | 3 | 100 % |" in text


def test_delivering_the_same_dataset_again_replaces_the_bundle(bundle_copy, demo_store_dir):
    damaged = next((bundle_copy / "previews").glob("*.png"))
    damaged.write_bytes(b"old")
    deliver(demo_store_dir / "sample.zarr", bundle_copy)
    assert damaged.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert verify(bundle_copy).ok


def test_delivering_again_never_deletes_files_someone_added_to_the_folder(
    bundle_copy, demo_store_dir, run_cli
):
    (bundle_copy / "my_notes.txt").write_text("mine")
    (bundle_copy / "receipts").mkdir()
    (bundle_copy / "receipts" / "r1.txt").write_text("r")
    result = run_cli("deliver", demo_store_dir / "sample.zarr", bundle_copy)
    assert result.exit_code == 1
    assert "holds files that are not part of the delivery (my_notes.txt, receipts/r1.txt)" in " ".join(
        result.stderr.split()
    )
    assert (bundle_copy / "my_notes.txt").read_text() == "mine" and (
        bundle_copy / "receipts" / "r1.txt"
    ).exists()


def test_a_folder_holding_a_different_delivery_is_refused(bundle_copy, demo_copy, run_cli):
    with open_dataset(demo_copy, "a") as ds:
        ds.update_manifest(description="another delivery")
    before = (bundle_copy / CHECKSUMS).read_bytes()
    result = run_cli("deliver", demo_copy, bundle_copy)
    assert result.exit_code == 1
    assert re.search(
        r"OUT: already holds a different delivery \(dataset 'genima-demo', fingerprint", result.stderr
    )
    assert (bundle_copy / CHECKSUMS).read_bytes() == before


def test_a_non_empty_folder_that_is_not_a_delivery_is_refused(demo_store_dir, tmp_path):
    out = tmp_path / "OUT"
    out.mkdir()
    (out / "thesis.pdf").write_bytes(b"%PDF")
    with pytest.raises(DeliveryError, match="OUT: exists and is not a delivery"):
        deliver(demo_store_dir / "sample.zarr", out)


def test_validation_errors_stop_the_delivery_before_anything_is_written(demo_copy, tmp_path, run_cli):
    with open_dataset(demo_copy, "a") as ds:
        cameras = [c.model_dump() | ({"width": 64} if c.name == "front" else {}) for c in ds.manifest.cameras]
        ds.update_manifest(cameras=cameras)
    result = run_cli("deliver", demo_copy, tmp_path / "OUT")
    assert result.exit_code == 1
    assert "validation found" in result.stderr and "error(s); fix them" in result.stderr
    assert not (tmp_path / "OUT").exists()
    assert not list(tmp_path.glob(f"{TMP_PREFIX}*"))


def test_warnings_stop_the_delivery_unless_allowed(demo_copy, tmp_path):
    with open_dataset(demo_copy, "a") as ds:
        ds.update_manifest(robot=ds.manifest.robot.model_dump() | {"joint_velocity_limits": None})
    with pytest.raises(DeliveryError, match=r"1 warning\(s\); fix them or pass --allow-warnings"):
        deliver(demo_copy, tmp_path / "OUT")
    result = deliver(demo_copy, tmp_path / "OUT", allow_warnings=True)
    assert result.report.warnings and verify(tmp_path / "OUT").checksums.ok
    assert "validation warnings from `manifest`" in (tmp_path / "OUT" / "DATASHEET.md").read_text()


def test_a_crash_while_building_leaves_the_previous_delivery_intact(bundle_copy, demo_store_dir, monkeypatch):
    import genima_data.datasheet

    before = (bundle_copy / CHECKSUMS).read_bytes()

    def crash(inputs):
        raise KeyboardInterrupt

    monkeypatch.setattr(genima_data.datasheet, "render_datasheet", crash)
    with pytest.raises(KeyboardInterrupt):
        deliver(demo_store_dir / "sample.zarr", bundle_copy)
    assert (bundle_copy / CHECKSUMS).read_bytes() == before
    assert verify(bundle_copy).ok
    assert not list(bundle_copy.parent.glob(f"{TMP_PREFIX}*"))


def test_deliver_cli_writes_the_bundle_and_lists_what_is_pending(demo_store_dir, tmp_path, run_cli):
    info = tmp_path / "info.yaml"
    info.write_text("motivation: Teach a Panda to reach.\ncontact: data@vendor.example\n")
    result = run_cli("deliver", demo_store_dir / "sample.zarr", tmp_path / "OUT", "--info", info)
    assert result.exit_code == 0, result.stderr
    assert "delivered" in result.stdout and "checksums.sha256" in result.stdout
    text = (tmp_path / "OUT" / "DATASHEET.md").read_text()
    assert "Teach a Panda to reach." in text and "Contact: data@vendor.example" in text


def test_a_checksum_list_naming_files_outside_the_delivery_is_refused(bundle_copy):
    listing = bundle_copy / CHECKSUMS
    listing.write_text(listing.read_text() + f"{'0' * 64}  ../secrets.txt\n")
    with pytest.raises(DeliveryError, match=r"checksums.sha256: line \d+ names a file outside the delivery"):
        verify(bundle_copy)


def test_without_the_render_module_targets_and_sheets_are_reported_pending(
    demo_store_dir, tmp_path, monkeypatch
):
    import genima_data.deliver

    monkeypatch.setattr(genima_data.deliver, "_render_api", lambda: None)
    with pytest.raises(DeliveryError, match="--render-targets needs the render module"):
        deliver(demo_store_dir / "sample.zarr", tmp_path / "OUT", render_targets=True)
    result = deliver(demo_store_dir / "sample.zarr", tmp_path / "OUT")
    assert [p.split(" (")[0] for p in result.pending] == [
        "sphere targets are not stored for 3 episode(s): training renders them on the fly, or re-deliver "
        "with --render-targets",
        "sphere-target contact sheets",
    ]
    record = json.loads((tmp_path / "OUT" / "delivery.json").read_text())
    assert record["pending"] == result.pending
    assert "Sphere-target contact sheets are pending" in (tmp_path / "OUT" / "DATASHEET.md").read_text()


def test_render_targets_stores_targets_in_the_delivered_copy_only(demo_store_dir, tmp_path):
    pytest.importorskip("genima_data.render.preview", reason="needs the render module")
    source = demo_store_dir / "sample.zarr"
    result = deliver(source, tmp_path / "OUT", render_targets=True)
    assert result.pending == []
    with open_dataset(tmp_path / "OUT" / "sample.zarr") as ds, ds.episode("episode0") as episode:
        assert "targets/front/rgb" in episode and "targets/front/rnd_bg" in episode
    with open_dataset(source) as ds, ds.episode("episode0") as episode:
        assert "targets/front/rgb" not in episode
    text = (tmp_path / "OUT" / "DATASHEET.md").read_text()
    assert "![target contact sheet](previews/targets_episode0.png)" in text
    assert (tmp_path / "OUT" / "previews" / "targets_episode0.png").read_bytes()[:4] == b"\x89PNG"
    assert verify(tmp_path / "OUT").ok


def test_leftovers_of_interrupted_writes_are_not_delivered(demo_store_dir, tmp_path):
    dataset = tmp_path / "sample.zarr"
    shutil.copytree(demo_store_dir / "sample.zarr", dataset)
    leftover = dataset / "episodes" / "episode1" / "targets" / "front" / f"{TMP_PREFIX}rgb.123.abcd"
    leftover.mkdir(parents=True)
    (leftover / "zarr.json").write_text("{}")
    deliver(dataset, tmp_path / "OUT", allow_warnings=True)  # the leftover is a validation warning
    assert not [p for p in (tmp_path / "OUT").rglob("*") if p.name.startswith(TMP_PREFIX)]
    assert leftover.is_dir(), "the user's dataset is left as it was"
    assert verify(tmp_path / "OUT").ok


def test_a_folder_holding_a_delivery_of_other_data_with_the_same_manifest_is_refused(
    bundle_copy, demo_store_dir, tmp_path
):
    other = tmp_path / "sample.zarr"
    shutil.copytree(demo_store_dir / "sample.zarr", other)
    with open_dataset(other, "a") as ds, ds.episode("episode1") as ep:
        gripper = np.array(ep.load("robot/gripper_open"))
        manifest = ds.manifest.to_json()
        gripper[-1] = 0.5  # other data, same manifest and episode metadata
        ds.add_arrays("episode1", {"robot/gripper_open": gripper}, replace=True)
    with open_dataset(other) as ds:
        assert ds.manifest.to_json() == manifest
    before = (bundle_copy / CHECKSUMS).read_bytes()
    with pytest.raises(DeliveryError, match="already holds a different delivery"):
        deliver(other, bundle_copy)
    assert (bundle_copy / CHECKSUMS).read_bytes() == before


def test_verify_shows_the_validation_finding_that_failed(bundle_copy, run_cli):
    manifest = bundle_copy / "sample.zarr" / "zarr.json"
    node = json.loads(manifest.read_text())
    node["attributes"]["manifest"]["fps"] = 3.0  # the timestamps say 10 Hz
    manifest.write_text(json.dumps(node))
    listed = [
        f"{hashlib.sha256(manifest.read_bytes()).hexdigest()}  sample.zarr/zarr.json"
        if line.endswith("  sample.zarr/zarr.json")
        else line
        for line in (bundle_copy / CHECKSUMS).read_text().splitlines()
    ]
    (bundle_copy / CHECKSUMS).write_text("\n".join(listed) + "\n")
    result = run_cli("verify", bundle_copy)
    assert result.exit_code == 1
    assert "[timestamps]" in result.stdout and "fps" in result.stdout
