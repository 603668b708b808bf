"""RLBench pickles without rlbench and without executing anything.

Reading: `load_pickle` runs a restricted `pickle.Unpickler` whose ``find_class`` admits exactly the globals
an RLBench dataset contains — ``rlbench.demo.Demo`` and ``rlbench.backend.observation.Observation``
(mapped to the plain stand-ins `Demo` and `Observation` below), numpy's array and scalar reconstruction,
``numpy.ndarray`` and ``numpy.dtype``. Any other global (``os.system``, ``builtins.eval``, ...) is refused
before it is looked up, so a malicious pickle fails with a one-line `FormatError` and runs nothing. numpy's
own reconstruction is not called either: its C code trusts the state it is given (a damaged dtype state
crashes the process), so arrays, dtypes and scalars load through stand-ins that check every state and
build plain numeric arrays with `np.frombuffer`.

Writing: `dump_pickle` writes the stand-ins under rlbench's class paths and numpy's functions under
``numpy.core.multiarray`` (what RLBench's own files contain, loadable by numpy 1.x and 2.x), so plain
``pickle.load`` in an environment with rlbench installed yields real `Demo` / `Observation` objects.

`to_tagged_json` / `from_tagged_json` turn the values such pickles hold (numbers, strings, tuples, numpy
arrays and scalars, ...) into JSON and back without loss, for metadata that has no array slot.
"""

from __future__ import annotations

import base64
import io
import math
import pickle
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from genima_data.atomic import atomic_write_bytes
from genima_data.errors import FormatError

PICKLE_PROTOCOL = 4  # what RLBench's dataset generator writes (Python 3.8+ default)
DEMO_PATH = ("rlbench.demo", "Demo")
OBSERVATION_PATH = ("rlbench.backend.observation", "Observation")


class Demo:
    """Stand-in for ``rlbench.demo.Demo``: ``_observations`` plus whatever attributes the file carries."""

    def __init__(self, observations: list[Observation] | None = None, **attributes: Any) -> None:
        self._observations = list(observations or [])
        self.__dict__.update(attributes)

    def __len__(self) -> int:
        return len(self._observations)

    def __getitem__(self, i: int) -> Observation:
        return self._observations[i]

    def __iter__(self) -> Iterator[Observation]:
        return iter(self._observations)


class Observation:
    """Stand-in for ``rlbench.backend.observation.Observation``: a plain attribute bag."""

    def __init__(self, **attributes: Any) -> None:
        self.__dict__.update(attributes)


# numeric dtypes as numpy pickles them: (kind + size, (version 3, byte order, no fields/subarray, flags 0))
_DTYPE_SPEC = re.compile(r"(b1|[iu][1248]|f[248]|c(8|16))")
_DTYPE_BYTE_ORDERS = ("<", ">", "|", "=")
_PLAIN_DTYPE_STATE = (None, None, None, -1, -1, 0)


class _LoadedDType:
    """What ``numpy.dtype`` loads as: a plain numeric dtype built from a checked spec and state. numpy's own
    ``dtype.__setstate__`` trusts its input (a damaged state crashes the process), so it never sees one."""

    def __init__(self, spec: Any, align: Any = False, copy: Any = True) -> None:
        if not isinstance(spec, str) or not _DTYPE_SPEC.fullmatch(spec):
            raise pickle.UnpicklingError(f"refused dtype {spec!r}: RLBench arrays are numeric")
        self.dtype = np.dtype(spec)

    def __setstate__(self, state: Any) -> None:
        if (
            not isinstance(state, tuple)
            or len(state) != 8
            or state[0] != 3
            or state[1] not in _DTYPE_BYTE_ORDERS
            or state[2:] != _PLAIN_DTYPE_STATE
        ):
            raise pickle.UnpicklingError(f"refused dtype state {state!r}: not a plain numeric dtype")
        self.dtype = self.dtype.newbyteorder(state[1])


class _LoadedArray:
    """What numpy's ``_reconstruct`` loads as: its state checked, then the array built by `np.frombuffer`
    (`_plain_arrays` swaps these for the arrays once the whole file is loaded)."""

    def __init__(self, cls: Any, shape: Any, typecode: Any) -> None:
        if cls is not np.ndarray:
            raise pickle.UnpicklingError("refused an array subclass: RLBench arrays are plain ndarrays")
        self.array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) != 5 or state[0] != 1:
            raise pickle.UnpicklingError("refused an array state of an unknown layout")
        _, shape, dtype, fortran, data = state
        if (
            not isinstance(shape, tuple)
            or not all(isinstance(n, int) and n >= 0 for n in shape)
            or not isinstance(dtype, _LoadedDType)
            or not isinstance(fortran, bool)
            or not isinstance(data, bytes)
            or len(data) != math.prod(shape) * dtype.dtype.itemsize
        ):
            raise pickle.UnpicklingError(f"refused an array state (shape {shape!r}, dtype or data size)")
        flat = np.frombuffer(data, dtype=dtype.dtype).copy()  # a copy: writable, like numpy's own load
        self.array = flat.reshape(shape, order="F" if fortran else "C")


def _loaded_scalar(dtype: Any, data: Any) -> np.generic:
    """What numpy's ``scalar`` loads as: one value of a checked dtype from exactly its bytes."""
    if (
        not isinstance(dtype, _LoadedDType)
        or not isinstance(data, bytes)
        or len(data) != dtype.dtype.itemsize
    ):
        raise pickle.UnpicklingError("refused a numpy scalar that is not one plain numeric value")
    return np.frombuffer(data, dtype=dtype.dtype)[0]


def _plain_arrays(value: Any, done: dict[int, Any]) -> Any:
    """`value` with every `_LoadedArray` inside it (lists, tuples, dicts, stand-ins) replaced by its array."""
    key = id(value)
    if key in done:
        return done[key]
    if isinstance(value, _LoadedArray):
        if value.array is None:
            raise pickle.UnpicklingError("an array was never given its data")
        done[key] = value.array
    elif isinstance(value, list):
        done[key] = value
        value[:] = [_plain_arrays(v, done) for v in value]
    elif isinstance(value, dict):
        done[key] = value
        value.update({k: _plain_arrays(v, done) for k, v in value.items()})
    elif isinstance(value, tuple):
        done[key] = tuple(_plain_arrays(v, done) for v in value)
    elif isinstance(value, Demo | Observation):
        done[key] = value
        _plain_arrays(value.__dict__, done)
    else:
        done[key] = value
    return done[key]


_NUMPY_RECONSTRUCT = {"_reconstruct": np.ndarray.__reduce__(np.zeros(1))[0]}
_NUMPY_RECONSTRUCT["scalar"] = np.float64(0).__reduce__()[0]
_LOADED_AS = {"_reconstruct": _LoadedArray, "scalar": _loaded_scalar}
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    DEMO_PATH: Demo,
    OBSERVATION_PATH: Observation,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _LoadedDType,
    **{
        (module, name): fn
        for module in ("numpy.core.multiarray", "numpy._core.multiarray")
        for name, fn in _LOADED_AS.items()
    },
}
# what each admitted object is written as: rlbench's class paths, numpy's pre-2.0 module
WRITTEN_AS: dict[int, tuple[str, str]] = {
    id(Demo): DEMO_PATH,
    id(Observation): OBSERVATION_PATH,
    **{id(fn): ("numpy.core.multiarray", name) for name, fn in _NUMPY_RECONSTRUCT.items()},
}


# what the unpickler raises on damaged bytes (OverflowError, MemoryError: absurd frame or object lengths)
CORRUPT_PICKLE_ERRORS = (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    AttributeError,
    IndexError,
    OverflowError,
    MemoryError,
)


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BufferedIOBase, path: Path) -> None:
        super().__init__(file)
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise FormatError(
                f"refused to load global '{module}.{name}': RLBench pickles only contain rlbench's Demo and "
                "Observation and numpy arrays (the file may be malicious)",
                file=self._path,
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise FormatError("refused a persistent id: not an RLBench pickle", file=self._path)


def load_pickle(path: str | Path) -> Any:
    """Load an RLBench dataset pickle safely (see module docstring); one-line FormatError if it is bad."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FormatError("file is missing", file=path) from None
    except OSError as exc:
        raise FormatError(f"cannot read the pickle ({exc.strerror or exc})", file=path) from None
    try:
        # from memory: a corrupt length then reads short instead of allocating what it claims
        return _plain_arrays(_RestrictedUnpickler(io.BytesIO(data), path).load(), {})
    except FormatError:
        raise
    except CORRUPT_PICKLE_ERRORS as exc:
        reason = "truncated" if isinstance(exc, EOFError) or "truncated" in str(exc) else "corrupt"
        raise FormatError(f"pickle is {reason} ({type(exc).__name__}: {exc})", file=path) from None


class _RLBenchPickler(pickle._Pickler):  # the pure-Python pickler: its save_global can be overridden
    def save_global(self, obj: Any, name: str | None = None) -> None:
        written = WRITTEN_AS.get(id(obj))
        if written is None:
            super().save_global(obj, name)
            return
        self.save(written[0])
        self.save(written[1])
        self.write(pickle.STACK_GLOBAL)
        self.memoize(obj)


def dumps_pickle(obj: Any) -> bytes:
    """Pickle `obj` the way RLBench does (protocol 4, rlbench class paths, numpy.core globals)."""
    buffer = io.BytesIO()
    _RLBenchPickler(buffer, protocol=PICKLE_PROTOCOL).dump(obj)
    return buffer.getvalue()


def dump_pickle(obj: Any, path: str | Path) -> None:
    """Write `dumps_pickle(obj)` to `path` atomically."""
    atomic_write_bytes(path, dumps_pickle(obj))


# ---------------------------------------------------------------------------------------------------- JSON
def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def to_tagged_json(value: Any, *, where: str = "value") -> Any:
    """JSON for `value` that `from_tagged_json` turns back into an equal object of the same types."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"float": repr(value)}
    if isinstance(value, list):
        return [to_tagged_json(v, where=where) for v in value]
    if isinstance(value, tuple):
        return {"tuple": [to_tagged_json(v, where=where) for v in value]}
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"dict": {k: to_tagged_json(v, where=where) for k, v in value.items()}}
    if isinstance(value, np.ndarray) and value.dtype != object:
        return {
            "ndarray": {"dtype": value.dtype.str, "shape": list(value.shape), "b64": _b64(value.tobytes())}
        }
    if isinstance(value, np.generic) and not isinstance(value, np.object_):
        return {"np_scalar": {"dtype": value.dtype.str, "b64": _b64(value.tobytes())}}
    if isinstance(value, bytes):
        return {"bytes": _b64(value)}
    raise FormatError(f"cannot keep a value of type {type(value).__name__}", field=where)


def from_tagged_json(data: Any) -> Any:
    """Inverse of `to_tagged_json`."""
    if isinstance(data, list):
        return [from_tagged_json(v) for v in data]
    if not isinstance(data, dict):
        return data
    ((tag, body),) = data.items()
    if tag == "float":
        return float(body)
    if tag == "tuple":
        return tuple(from_tagged_json(v) for v in body)
    if tag == "dict":
        return {k: from_tagged_json(v) for k, v in body.items()}
    if tag == "ndarray":
        raw = base64.b64decode(body["b64"])
        return np.frombuffer(raw, dtype=np.dtype(body["dtype"])).reshape(body["shape"]).copy()
    if tag == "np_scalar":
        return np.frombuffer(base64.b64decode(body["b64"]), dtype=np.dtype(body["dtype"]))[0]
    if tag == "bytes":
        return base64.b64decode(body)
    raise FormatError(f"unknown tagged JSON value '{tag}'")
