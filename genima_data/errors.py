"""Errors that name what went wrong and where: file, episode, field.

Every error a user can cause is a `GenimaDataError`; the CLI prints `str(error)` as one line and exits
non-zero. Anything else escaping to the CLI is a bug and is reported as such.
"""

from __future__ import annotations

from pathlib import Path


class GenimaDataError(Exception):
    """A problem with the user's input or environment, rendered as one line.

    `str(err)` reads ``<file>: episode <id>: <field>: <message>``, leaving out the parts that are unknown.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        episode: str | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.file = str(file) if file is not None else None
        self.episode = episode
        self.field = field
        super().__init__(self.one_line())

    def one_line(self) -> str:
        parts = []
        if self.file:
            parts.append(self.file)
        if self.episode is not None:
            parts.append(f"episode {self.episode}")
        if self.field:
            parts.append(self.field)
        parts.append(" ".join(self.message.split()))
        return ": ".join(parts)

    def located(
        self, *, file: str | Path | None = None, episode: str | None = None, field: str | None = None
    ) -> GenimaDataError:
        """The same error with missing location parts filled in (known parts are kept)."""
        return type(self)(
            self.message,
            file=self.file or file,
            episode=self.episode if self.episode is not None else episode,
            field=self.field or field,
        )


class SchemaError(GenimaDataError):
    """Metadata (manifest, calibration, episode metadata) does not satisfy the schema."""


class StoreError(GenimaDataError):
    """A dataset store is missing, incomplete, corrupt or not what the command expected."""


class CodecUnavailableError(StoreError):
    """Data is compressed with a codec this Python environment cannot decode."""


class FormatError(GenimaDataError):
    """A foreign-format source (RLBench, ALOHA, LeRobot, raw) is malformed or unsupported."""


class GeometryError(GenimaDataError):
    """Camera or robot geometry is missing, inconsistent or cannot be computed (poses, kinematics, URDF)."""
