"""Named columns of robot log files: CSV (with a header row), JSON lines, NPZ arrays, HDF5 datasets.

`read_table(path)` picks the reader by suffix; `Table.column(name)` returns one column as a numpy array
(vector-valued JSON keys, NPZ arrays and HDF5 datasets may be (N, k)). A missing column is a one-line
error naming the file, the mapping field and the columns the file has; so is a value that is not a number.
NPZ files are read without pickles.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from genima_data.errors import FormatError

BOOLEAN_WORDS = {"true": 1.0, "false": 0.0}


class Table:
    """Columns of one log file, converted to numbers on first use."""

    def __init__(self, path: Path, raw: dict[str, Callable[[], np.ndarray]]) -> None:
        self.path = path
        self._raw = raw
        self._cache: dict[str, np.ndarray] = {}

    @property
    def names(self) -> list[str]:
        return list(self._raw)

    def column(self, name: str, *, field: str) -> np.ndarray:
        """Column `name` as a numeric array (booleans become 0/1); `field` names the mapping entry."""
        if name not in self._raw:
            raise FormatError(
                f"no column '{name}' (the file has: {', '.join(self.names) or 'nothing'})",
                file=self.path,
                field=field,
            )
        if name not in self._cache:
            values = self._raw[name]()
            if values.dtype == bool:
                values = values.astype(np.float64)
            if values.dtype.kind not in "iuf":
                raise FormatError(
                    f"column '{name}' is not numeric ({values.dtype})", file=self.path, field=field
                )
            self._cache[name] = values
        return self._cache[name]


def _number(text: str, *, path: Path, row: int, name: str) -> float:
    lowered = text.strip().lower()
    if lowered in BOOLEAN_WORDS:
        return BOOLEAN_WORDS[lowered]
    try:
        return float(text)
    except ValueError:
        raise FormatError(f"row {row}: '{text}' is not a number", file=path, field=name) from None


def _read_csv(path: Path) -> Table:
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header:
            raise FormatError("CSV file has no header row", file=path)
        rows = list(reader)
    header = [h.strip() for h in header]
    for i, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise FormatError(f"line {i} has {len(row)} values for {len(header)} columns", file=path)

    def loader(c: int, name: str) -> Callable[[], np.ndarray]:
        return lambda: np.array([_number(r[c], path=path, row=i, name=name) for i, r in enumerate(rows, 2)])

    return Table(path, {name: loader(c, name) for c, name in enumerate(header)})


def _read_json_lines(path: Path) -> Table:
    records = []
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise FormatError(f"line {i} is not JSON ({exc.msg})", file=path) from None
        if not isinstance(record, dict):
            raise FormatError(f"line {i} is not a JSON object", file=path)
        records.append((i, record))
    names = list(dict.fromkeys(k for _, r in records for k in r))

    def loader(name: str) -> Callable[[], np.ndarray]:
        def load() -> np.ndarray:
            missing = next((i for i, r in records if name not in r), None)
            if missing is not None:
                raise FormatError(f"line {missing} has no '{name}'", file=path, field=name)
            try:
                return np.asarray([r[name] for _, r in records])
            except ValueError as exc:
                raise FormatError(f"values of '{name}' differ in shape ({exc})", file=path) from None

        return load

    return Table(path, {name: loader(name) for name in names})


def _read_npz(path: Path) -> Table:
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (OSError, ValueError) as exc:
        raise FormatError(f"unreadable NPZ file ({exc})", file=path) from None
    return Table(path, {name: (lambda a=a: a) for name, a in arrays.items()})


def _read_hdf5(path: Path) -> Table:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            arrays: dict[str, np.ndarray] = {}

            def collect(name: str, obj: Any) -> None:  # returning a value would stop the visit
                if isinstance(obj, h5py.Dataset):
                    arrays[name] = obj[()]

            f.visititems(collect)
    except OSError as exc:
        raise FormatError(f"unreadable HDF5 file ({exc})", file=path) from None
    return Table(path, {name: (lambda a=a: np.asarray(a)) for name, a in arrays.items()})


TABLE_READERS: dict[str, Callable[[Path], Table]] = {
    ".csv": _read_csv,
    ".jsonl": _read_json_lines,
    ".ndjson": _read_json_lines,
    ".npz": _read_npz,
    ".h5": _read_hdf5,
    ".hdf5": _read_hdf5,
}


def read_table(path: str | Path) -> Table:
    """The columns of a log file, by suffix (see TABLE_READERS)."""
    path = Path(path)
    reader = TABLE_READERS.get(path.suffix.lower())
    if reader is None:
        raise FormatError(
            f"unknown log format '{path.suffix}'; use one of {', '.join(TABLE_READERS)}", file=path
        )
    if not path.is_file():
        raise FormatError("log file not found", file=path)
    return reader(path)
