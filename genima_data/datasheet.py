"""DATASHEET.md for a delivery, after "Datasheets for Datasets" (Gebru et al., 2021) and model cards.

Everything the data can answer is filled in from the store, its statistics and its validation report:
composition (episodes, frames, durations, frame rates, tasks and instructions, success rate, streams),
the robot and its joint limits, the cameras with a calibration summary, the collection process
(provenance, source formats, frames left out at import), statistics tables, the validation summary,
known limitations and the licence. Questions only the data provider can answer (motivation, intended
uses, maintenance, contact) come from an optional info file and are marked as missing otherwise.

Figures (PNG, in the bundle's ``previews/``): episode length histogram, joint range coverage against the
joint limits, sample frames per camera; sphere-target contact sheets are made by `genima_data.deliver`.
"""

from __future__ import annotations

import io
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from genima_data import __version__
from genima_data.atomic import atomic_write_bytes
from genima_data.errors import GenimaDataError
from genima_data.schema import Camera, EpisodeMeta, Manifest
from genima_data.stats import DatasetStats, FieldStats, sample_frames
from genima_data.store import Dataset

INFO_SECTIONS = {  # info-file key -> what the section asks (Gebru et al.'s questions, condensed)
    "motivation": "For what purpose was the dataset created? Who created it and who funded it?",
    "collection": "How was the data collected (teleoperation device, operators, sites, period)?",
    "uses": "What tasks is it meant for, and what should it not be used for?",
    "maintenance": "Who maintains the dataset, how are errata reported, will it be updated?",
    "contact": "Whom to contact about the dataset.",
    "limitations": "Known limitations beyond those found automatically.",
}
MISSING = "_Not provided by the data provider (add it to the delivery's info file)._"
SHEET_TILE = 96  # camera sample frames are enlarged to at least this many pixels


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}g}"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- figures
def _figure() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - the deliver extra is installed in tests
        raise GenimaDataError("datasheet plots need matplotlib: pip install 'genima-data[deliver]'") from None
    return Figure


def _save_figure(fig: Any, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    atomic_write_bytes(path, buffer.getvalue())
    return path


def plot_episode_lengths(stats: DatasetStats, fps: float, path: Path) -> Path:
    """Histogram of episode lengths (frames, with seconds on a second axis)."""
    lengths = np.array([e.length for e in stats.episodes])
    fig = _figure()(figsize=(6, 3))
    ax = fig.add_subplot()
    bins = np.arange(lengths.min(), lengths.max() + 2) - 0.5 if np.ptp(lengths) < 30 else 20
    ax.hist(lengths, bins=bins, color="#3b7dd8", edgecolor="white")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("episode length (frames)")
    ax.set_ylabel("episodes")
    ax.set_title(
        f"{len(lengths)} episodes, median {np.median(lengths):g} frames ({np.median(lengths) / fps:.1f} s)"
    )
    seconds = ax.secondary_xaxis("top", functions=(lambda f: f / fps, lambda s: s * fps))
    seconds.set_xlabel("seconds at the nominal frame rate")
    return _save_figure(fig, path)


def plot_joint_coverage(
    joints: FieldStats, lower: Sequence[float], upper: Sequence[float], path: Path
) -> Path:
    """Per joint: its limits, the recorded range, the q01–q99 band and the mean."""
    n = len(joints.channels)
    fig = _figure()(figsize=(7, 0.45 * n + 1.2))
    ax = fig.add_subplot()
    y = np.arange(n)[::-1]
    ax.barh(y, np.subtract(upper, lower), left=lower, height=0.7, color="#dddddd", label="joint limits")
    ax.barh(
        y, joints.max - joints.min, left=joints.min, height=0.45, color="#9cc3f0", label="recorded min–max"
    )
    ax.barh(y, joints.q99 - joints.q01, left=joints.q01, height=0.45, color="#3b7dd8", label="q01–q99")
    ax.scatter(joints.mean, y, marker="|", s=200, color="black", label="mean", zorder=3)
    ax.set_yticks(y, joints.channels)
    ax.set_xlabel("joint position (rad)")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=4, fontsize="small", frameon=False)
    return _save_figure(fig, path)


def _enlarge(image: np.ndarray, size: int) -> np.ndarray:
    import cv2

    scale = max(1, math.ceil(size / max(image.shape[:2])))
    return (
        image if scale == 1 else cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    )


def camera_sample_sheet(
    dataset: Dataset, camera: str, path: Path, *, episodes: int = 4, frames: int = 4
) -> Path | None:
    """A grid of frames of one camera: rows are episodes spread over the dataset, columns times in them."""
    import cv2

    ids = dataset.episode_ids
    chosen = [
        ids[i] for i in np.unique(np.linspace(0, len(ids) - 1, min(episodes, len(ids))).round().astype(int))
    ]
    rows = []
    for eid in chosen:
        with dataset.episode(eid) as episode:
            stream = f"cameras/{camera}/rgb"
            if stream not in episode:
                continue
            tiles = []
            for t in sample_frames(episode.length, frames):
                tile = np.ascontiguousarray(_enlarge(episode.frame(stream, int(t)), SHEET_TILE))
                cv2.putText(
                    tile,
                    f"{eid} t={t}",
                    (3, 12),
                    cv2.FONT_HERSHEY_SIMPLEX,
                    0.35,
                    (255, 255, 255),
                    1,
                    cv2.LINE_AA,
                )
                tiles.append(tile)
            tiles += [np.zeros_like(tiles[0])] * (frames - len(tiles))
            rows.append(np.concatenate(tiles, axis=1))
    if not rows:
        return None
    _, png = cv2.imencode(".png", cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))
    atomic_write_bytes(path, png.tobytes())
    return path


# ------------------------------------------------------------------------------------------- sections
@dataclass
class DatasheetInputs:
    """What a datasheet is written from; paths of figures are relative to the datasheet."""

    manifest: Manifest
    metas: list[EpisodeMeta]
    stats: DatasetStats
    validation: dict[str, Any]  # ValidationReport.to_dict()
    dataset_dir: str
    streams: dict[str, str] = field(default_factory=dict)  # array -> "per-frame shape dtype"
    figures: dict[str, str] = field(default_factory=dict)  # lengths, joints, camera:<name>, targets:<episode>
    pending: list[str] = field(default_factory=list)
    info: dict[str, str] = field(default_factory=dict)


def _image(inputs: DatasheetInputs, key: str, alt: str) -> str:
    return f"![{alt}]({inputs.figures[key]})" if key in inputs.figures else ""


def _summary(inputs: DatasheetInputs) -> str:
    m, stats = inputs.manifest, inputs.stats
    labelled = [e.success for e in inputs.metas if e.success is not None]
    success = (
        f"{100 * sum(labelled) / len(labelled):.1f} % of {len(labelled)} labelled" if labelled else "unknown"
    )
    duration = sum(e.duration_s for e in stats.episodes)
    rows = [
        ("dataset", f"{m.name} (`{inputs.dataset_dir}`, {m.storage.backend if m.storage else '?'} store)"),
        ("episodes / frames", f"{len(stats.episodes)} / {stats.frames}"),
        ("recorded time", f"{duration:.1f} s ({duration / 60:.1f} min)"),
        ("robot", f"{m.robot.name} (`{m.robot.model}`, {m.robot.dof} joints)"),
        ("cameras", ", ".join(f"{c.name} {c.width}x{c.height}" for c in m.cameras)),
        ("tasks", ", ".join(t.name for t in m.tasks)),
        ("nominal frame rate", f"{m.fps:g} Hz"),
        ("success rate", success),
        ("GENIMA-ready", "yes" if inputs.validation["genima_ready"] else "**no**"),
        ("licence", m.license or "**not specified**"),
    ]
    return _table(("", ""), rows)


def _composition(inputs: DatasheetInputs) -> str:
    stats, m = inputs.stats, inputs.manifest
    lengths = np.array([e.length for e in stats.episodes])
    durations = np.array([e.duration_s for e in stats.episodes])
    rates = np.array([(e.length - 1) / e.duration_s for e in stats.episodes if e.duration_s > 0])
    out = [
        "Each episode is one demonstration: time-synchronised RGB per camera, arm joint positions and the "
        "gripper opening per frame, with the task, its instruction and a success label.",
        "",
        _table(
            ("", "min", "median", "max"),
            [
                ("length (frames)", lengths.min(), f"{np.median(lengths):g}", lengths.max()),
                (
                    "duration (s)",
                    _fmt(durations.min()),
                    _fmt(float(np.median(durations))),
                    _fmt(durations.max()),
                ),
                ("measured frame rate (Hz)", *(_fmt(f(rates)) for f in (np.min, np.median, np.max)))
                if len(rates)
                else ("measured frame rate (Hz)", "–", "–", "–"),
            ],
        ),
        "",
        _image(inputs, "lengths", "episode length histogram"),
        "",
        "### Tasks and instructions",
        "",
    ]
    rows = []
    for task in m.tasks:
        metas = [e for e in inputs.metas if e.task == task.name]
        labelled = [e.success for e in metas if e.success is not None]
        rate = f"{100 * sum(labelled) / len(labelled):.0f} %" if labelled else "–"
        used = sorted({e.instruction for e in metas if e.instruction})
        variations = sorted({e.variation for e in metas if e.variation is not None})
        rows.append(
            (task.name, len(metas), rate, len(variations) or "–", "; ".join(f"“{i}”" for i in used) or "–")
        )
    out += [_table(("task", "episodes", "success", "variations", "instructions used"), rows), ""]
    if inputs.streams:
        out += [
            "### Streams per episode",
            "",
            _table(("array", "per frame"), sorted(inputs.streams.items())),
            "",
        ]
    if m.splits:
        out += [
            "### Splits",
            "",
            _table(("split", "episodes"), [(k, len(v)) for k, v in m.splits.items()]),
            "",
        ]
    return "\n".join(out)


def _robot(m: Manifest) -> str:
    r = m.robot
    velocity = r.joint_velocity_limits or [None] * r.dof
    rows = [
        (name, _fmt(lo), _fmt(hi), _fmt(math.degrees(lo), 4), _fmt(math.degrees(hi), 4), _fmt(v))
        for name, lo, hi, v in zip(r.joint_names, r.joint_lower, r.joint_upper, velocity, strict=True)
    ]
    base = np.asarray(r.T_world_base)[:3, 3]
    return "\n".join(
        [
            f"{r.name}, kinematic model `{r.model}`, gripper: {r.gripper or 'not described'}; base at "
            f"({base[0]:.3f}, {base[1]:.3f}, {base[2]:.3f}) m in the world frame. Joint positions are "
            "radians; `gripper_open` is 1 when open, 0 when closed.",
            "",
            _table(
                ("joint", "lower (rad)", "upper (rad)", "lower (°)", "upper (°)", "max speed (rad/s)"), rows
            ),
        ]
    )


def _camera_row(cam: Camera) -> tuple:
    K = cam.K_array
    fov = math.degrees(2 * math.atan(cam.width / (2 * K[0, 0])))
    T = cam.T_world_camera_array()
    pose = "per frame / from FK"
    if T is not None:
        position, axis = T[:3, 3], T[:3, 2]
        where = ", ".join(f"{v:.3f}" for v in position)
        pose = f"at ({where}) m, looking ({', '.join(f'{v:+.2f}' for v in axis)})"
    elif cam.T_link_camera is not None:
        pose = f"fixed on `{cam.mount}` (hand-eye T_link_camera)"
    lens = (
        f"{cam.distortion.model} ({len(cam.distortion.coeffs)} coeffs)"
        if not cam.distortion.is_identity
        else "none"
    )
    return (
        cam.name,
        f"{cam.width}x{cam.height}",
        f"{K[0, 0]:.2f}, {K[1, 1]:.2f}",
        f"{K[0, 2]:.2f}, {K[1, 2]:.2f}",
        f"{fov:.1f}°",
        lens,
        cam.mount,
        pose,
    )


def _cameras(inputs: DatasheetInputs) -> str:
    m = inputs.manifest
    out = [
        "Intrinsics in OpenCV convention (pixel centres at integers); poses are `T_world_camera` (camera to "
        "robot base), OpenCV camera frame (x right, y down, z forward).",
        "",
        _table(
            ("camera", "size", "fx, fy (px)", "cx, cy (px)", "horizontal FOV", "distortion", "mount", "pose"),
            [_camera_row(c) for c in m.cameras],
        ),
        "",
    ]
    for cam in m.cameras:
        image = _image(inputs, f"camera:{cam.name}", f"sample frames of {cam.name}")
        if image:
            out += [f"**{cam.name}** — sample frames (rows: episodes, columns: times)", "", image, ""]
    return "\n".join(out)


def _collection(inputs: DatasheetInputs) -> str:
    m = inputs.manifest
    sources = Counter(e.source.format for e in inputs.metas if e.source is not None)
    dropped = [e.extras["raw_import"] for e in inputs.metas if "raw_import" in e.extras]
    lines = [
        f"- Provenance: {m.provenance or 'not recorded'}",
        f"- Source formats: {', '.join(f'{k} ({v} episodes)' for k, v in sources.items()) or 'not recorded'}",
        f"- Store written by: {m.storage.writer if m.storage else 'unknown'}; codecs "
        f"{', '.join(f'{k}: {v}' for k, v in (m.storage.codecs if m.storage else {}).items())} (lossless)",
    ]
    if dropped:
        left_out = sum(d["source_frames"] - d["kept_frames"] for d in dropped)
        total = sum(d["source_frames"] for d in dropped)
        lines.append(
            f"- Raw import: streams aligned to the `{dropped[0]['reference_camera']}` camera clock; "
            f"{left_out} of {total} camera frames were left out because a stream had no sample within "
            "tolerance (per episode in `extras.raw_import`)."
        )
    lines += ["", inputs.info.get("collection", MISSING)]
    return "\n".join(lines)


def _field_table(fs: FieldStats) -> str:
    rows = [
        (c, h.count, *(_fmt(h.summary()[k]) for k in ("min", "max", "mean", "std", "q01", "q99")))
        for c, h in zip(fs.channels, fs.histograms, strict=True)
    ]
    return _table(("channel", "count", "min", "max", "mean", "std", "q01", "q99"), rows)


def _statistics(inputs: DatasheetInputs) -> str:
    stats = inputs.stats
    out = [
        "Exact over every frame (q01/q99 by linear interpolation between order statistics, std with ddof 0); "
        "the same numbers are in `stats.json`, and exactly mergeable histograms in "
        f"`{inputs.dataset_dir}/stats.npz`. Joint positions in radians.",
        "",
    ]
    for name, fs in stats.fields.items():
        out += [f"**{name}**", "", _field_table(fs), ""]
    out += [_image(inputs, "joints", "joint range coverage against the joint limits"), ""]
    if stats.images:
        out += [
            f"**images** (grey levels 0–255, {stats.image_frames} sampled frames per episode and camera)",
            "",
        ]
        rows = [
            (cam, ch, *(_fmt(h.summary()[k]) for k in ("mean", "std", "q01", "q99")))
            for cam, fs in stats.images.items()
            for ch, h in zip(fs.channels, fs.histograms, strict=True)
        ]
        out += [_table(("camera", "channel", "mean", "std", "q01", "q99"), rows), ""]
    return "\n".join(out)


def _targets(inputs: DatasheetInputs) -> str:
    sheets = [k for k in inputs.figures if k.startswith("targets:")]
    if not sheets:
        return "Sphere-target contact sheets are pending (see Known limitations)."
    out = [
        "GENIMA's targets: spheres at the gripper and joints 1, 3, 5 of the frame 20 steps ahead, drawn on "
        "the observation and on a random background. Columns per camera: observation, target, random "
        "background.",
        "",
    ]
    for key in sheets:
        out += [f"**{key.split(':', 1)[1]}**", "", f"![target contact sheet]({inputs.figures[key]})", ""]
    return "\n".join(out)


def _validation(inputs: DatasheetInputs) -> str:
    v = inputs.validation
    verdict = "GENIMA-ready" if v["genima_ready"] else "NOT GENIMA-ready"
    counts = v["counts"]
    rows = [
        (c["name"], c["error"], c["warning"], c["info"])
        for c in v["checks"]
        if c["error"] or c["warning"] or c["info"]
    ]
    out = [
        f"`genima-data validate`: **{verdict}** — {counts['error']} errors, {counts['warning']} warnings, "
        f"{counts['info']} notes over {v['episodes']} episodes and {len(v['checks'])} checks (full report: "
        "`validation.json`).",
        "",
    ]
    if rows:
        out += [_table(("check", "errors", "warnings", "notes"), rows), ""]
    return "\n".join(out)


def _limitations(inputs: DatasheetInputs) -> str:
    v, m = inputs.validation, inputs.manifest
    items = [f"{name}: {what}" for name, what in (("pending", p) for p in inputs.pending)]
    by_check = Counter(f["check"] for f in v["findings"] if f["severity"] == "warning")
    items += [
        f"validation warnings from `{check}` ({n}; see validation.json)" for check, n in by_check.items()
    ]
    unlabelled = sum(e.success is None for e in inputs.metas)
    if unlabelled:
        items.append(f"{unlabelled} episodes have no success label")
    if len(m.tasks) == 1:
        items.append(
            f"a single task (`{m.tasks[0].name}`): policies trained on it will not generalise to others"
        )
    if "synthetic" in (m.provenance + m.description).lower():
        items.append("synthetic data: images are rendered, not photographs")
    if not m.license:
        items.append("no licence is specified: the data cannot be redistributed until one is")
    lines = [f"- {item}" for item in items] or ["- none found automatically"]
    return "\n".join([*lines, "", inputs.info.get("limitations", "")]).rstrip()


def render_datasheet(inputs: DatasheetInputs) -> str:
    """The DATASHEET.md text."""
    m = inputs.manifest
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    sections = [
        f"# Datasheet: {m.name}",
        "",
        f"> Generated by genima-data {__version__} on {today} from the dataset in `{inputs.dataset_dir}`, "
        "following “Datasheets for Datasets” (Gebru et al., 2021). Facts come from the data; sections the "
        "data cannot answer are marked.",
        "",
        m.description,
        "",
        _summary(inputs),
        "",
        "## Motivation",
        "",
        inputs.info.get("motivation", MISSING),
        "",
        "## Composition",
        "",
        _composition(inputs),
        "",
        "## Robot",
        "",
        _robot(m),
        "",
        "## Cameras and calibration",
        "",
        _cameras(inputs),
        "",
        "## Collection process",
        "",
        _collection(inputs),
        "",
        "## Statistics",
        "",
        _statistics(inputs),
        "",
        "## Sphere targets",
        "",
        _targets(inputs),
        "",
        "## Validation",
        "",
        _validation(inputs),
        "",
        "## Known limitations",
        "",
        _limitations(inputs),
        "",
        "## Uses",
        "",
        "Intended for training and evaluating GENIMA (diffusion agent and ACT controller) and other "
        "joint-space imitation-learning policies on this robot and these cameras.",
        "",
        inputs.info.get("uses", MISSING),
        "",
        "## Distribution",
        "",
        f"- Licence: {m.license or '**not specified**'}",
        "- Integrity: every file is listed in `checksums.sha256`; verify with "
        "`sha256sum -c checksums.sha256` in the delivery folder, or `genima-data verify <folder>` (checksums "
        "and validation).",
        "",
        "## Maintenance",
        "",
        inputs.info.get("maintenance", MISSING),
        "",
        f"Contact: {inputs.info.get('contact', MISSING)}",
        "",
    ]
    return "\n".join(sections)
