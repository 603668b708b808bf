"""MP4 video for foreign formats (LeRobot): encode RGB frames with PyAV, decode frames by timestamp.

Encoding follows LeRobot's own settings: AV1 through SVT-AV1 (``libsvtav1``) when this PyAV build has it,
H.264 (``libx264``) otherwise; ``yuv420p``; a keyframe every 2 frames (``g=2``) so a frame anywhere is at
most one frame away from a seek point; constant quality ``crf=30``. Frame i of a file is presented at
``i / fps``; several episodes are concatenated in one stream by continuing the count.

Decoding is lazy: `VideoReader.frame_at(t)` decodes forward from where it is when `t` lies just ahead
(sequential reads never re-seek) and seeks to the keyframe before `t` otherwise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from genima_data.errors import FormatError

PREFERRED_CODECS = ("libsvtav1", "libx264")
SEEK_AHEAD_S = 1.0  # decode forward rather than seek when the next frame is at most this far ahead


def import_av(purpose: str) -> Any:
    """PyAV, or a one-line error naming the extra that installs it."""
    try:
        import av
    except ImportError:  # pragma: no cover - the formats extra is installed in tests
        raise FormatError(f"{purpose} needs PyAV: pip install 'genima-data[formats]'") from None
    return av


def fps_fraction(fps: float) -> Fraction:
    """`fps` as the exact rational a video stream wants (29.97 → 30000/1001)."""
    return Fraction(fps).limit_denominator(1001)


@dataclass(frozen=True)
class VideoSettings:
    """Encoder settings; `vcodec` None picks the first of PREFERRED_CODECS this PyAV build has."""

    vcodec: str | None = None
    crf: int = 30
    gop: int = 2
    pix_fmt: str = "yuv420p"

    def codec(self) -> str:
        av = import_av("encoding video")
        if self.vcodec is not None:
            if self.vcodec not in av.codecs_available:
                raise FormatError(f"video codec '{self.vcodec}' is not available in this PyAV build")
            return self.vcodec
        for name in PREFERRED_CODECS:
            if name in av.codecs_available:
                return name
        raise FormatError(f"none of the video codecs {PREFERRED_CODECS} is available in this PyAV build")


class VideoWriter:
    """Appends RGB frames (H, W, 3) uint8 to one MP4 file; frame i is presented at i / fps."""

    def __init__(
        self, path: str | Path, fps: float, width: int, height: int, settings: VideoSettings
    ) -> None:
        if width % 2 or height % 2:
            raise FormatError(
                f"{settings.pix_fmt} video needs even image sizes, got {width}x{height}", file=path
            )
        av = import_av("encoding video")
        os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its banner at info level otherwise
        self.path = Path(path)
        self.codec = settings.codec()
        self._av = av
        self._container = av.open(str(self.path), "w", format="mp4")
        rate = fps_fraction(fps)
        options = {"g": str(settings.gop), "crf": str(settings.crf)}
        self._stream = self._container.add_stream(self.codec, rate=rate, options=options)
        self._stream.width, self._stream.height = width, height
        self._stream.pix_fmt = settings.pix_fmt
        self._time_base = 1 / rate
        self._stream.time_base = self._time_base
        self.shape = (height, width, 3)
        self.frames_written = 0

    def write(self, frame: np.ndarray) -> None:
        if frame.shape != self.shape or frame.dtype != np.uint8:
            raise FormatError(
                f"frame is {frame.shape} {frame.dtype}, expected {self.shape} uint8", file=self.path
            )
        video_frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        video_frame.pts = self.frames_written
        video_frame.time_base = self._time_base
        for packet in self._stream.encode(video_frame):
            self._container.mux(packet)
        self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder and finish the file."""
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()


class VideoReader:
    """Decodes frames of one video file by presentation time."""

    def __init__(self, path: str | Path) -> None:
        av = import_av("decoding video")
        self.path = Path(path)
        if not self.path.is_file():
            raise FormatError("video file is missing", file=self.path)
        try:
            self._container = av.open(str(self.path))
            self._stream = self._container.streams.video[0]
        except (av.error.FFmpegError, IndexError) as exc:
            raise FormatError(f"cannot open video: {exc}", file=self.path) from None
        self._frames: Any = None  # decoding generator positioned after `_last`
        self._last: tuple[float, np.ndarray] | None = None

    def _seek(self, time_s: float) -> None:
        self._container.seek(max(0, int(time_s / self._stream.time_base)), stream=self._stream, backward=True)
        self._frames = self._container.decode(self._stream)
        self._last = None

    def frame_at(self, time_s: float, tolerance_s: float) -> np.ndarray:
        """The RGB frame presented within `tolerance_s` of `time_s`; FormatError if there is none."""
        if self._last is not None and abs(self._last[0] - time_s) <= tolerance_s:
            return self._last[1]
        behind = self._last is None or time_s < self._last[0] or time_s > self._last[0] + SEEK_AHEAD_S
        if self._frames is None or behind:
            self._seek(time_s)
        for frame in self._frames:
            if frame.time is None or frame.time < time_s - tolerance_s:
                continue
            if frame.time > time_s + tolerance_s:
                break
            self._last = (float(frame.time), frame.to_ndarray(format="rgb24"))
            return self._last[1]
        self._frames = None
        raise FormatError(
            f"no video frame within {tolerance_s:g} s of t = {time_s:.4f} s "
            "(timestamps do not match the video)",
            file=self.path,
        )

    def close(self) -> None:
        self._container.close()


class VideoConcatenator:
    """Appends whole MP4 files encoded with the same settings to one MP4, copying packets (no re-encode).

    This is how one LeRobot v3 video file comes to hold many episodes: each episode is encoded on its own
    (so a failing episode never leaves frames behind) and then appended, its timestamps shifted by the
    frames already in the file.
    """

    def __init__(self, path: str | Path, fps: float) -> None:
        av = import_av("writing video")
        self.path = Path(path)
        self._rate = fps_fraction(fps)
        self._container = av.open(str(self.path), "w", format="mp4")
        self._stream: Any = None
        self.frames = 0

    def append(self, path: str | Path, frames: int) -> None:
        """Append the `frames` frames of the MP4 at `path`."""
        av = import_av("writing video")
        with av.open(str(path)) as source:
            stream = source.streams.video[0]
            if self._stream is None:
                self._stream = self._container.add_stream_from_template(stream, opaque=True)
            offset = round(Fraction(self.frames) / self._rate / stream.time_base)
            for packet in source.demux(stream):
                if packet.dts is None:  # the demuxer's end-of-stream marker
                    continue
                packet.pts += offset
                packet.dts += offset
                packet.stream = self._stream
                self._container.mux(packet)
        self.frames += frames

    def close(self) -> None:
        self._container.close()

    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self.path.stat().st_size if self.path.exists() else 0
