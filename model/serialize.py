"""Stored state as data: JSON fields, `.npy` arrays, files in their library's own format.

Every fitted piece of a `ChurnModel` (the feature transform, the scorer, the
calibrator) has ``to_state() -> State`` and ``from_state(State)``. A `State`
holds no class path: plain JSON fields, named numeric arrays (written with
``np.save(allow_pickle=False)``) and named files a library reads itself (the
XGBoost model file). `pack` lays a state out as files under a folder and
returns its JSON entry (each file with its sha256); `unpack` reads it back
through a ``read(name) -> bytes`` function, so the same entry can be read from
a bundle folder or from one archive file (`write_archive`).

Nothing here calls pickle: arrays of objects are refused on write and on read.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from churn_core.io import sha256_bytes

Reader = Callable[[str], bytes]

# a fixed timestamp keeps an archive's bytes (and so its sha256) a function of its contents
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass
class State:
    """One object's stored form.

    Args:
        fields: JSON-ready values (numbers, strings, lists, dicts).
        arrays: named numeric arrays, stored as `.npy`.
        files: named bytes in a library's own format (e.g. XGBoost's UBJSON model).
    """

    fields: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)


def npy_bytes(array: np.ndarray) -> bytes:
    """An array as `.npy` bytes (no pickle: object arrays raise ValueError)."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    return buf.getvalue()


def read_npy(data: bytes) -> np.ndarray:
    """An array from `.npy` bytes, refusing any that would need pickle."""
    array = np.load(io.BytesIO(data), allow_pickle=False)
    if not isinstance(array, np.ndarray):
        raise ValueError("not a single .npy array")
    return array


def json_bytes(payload: Mapping[str, Any]) -> bytes:
    """Pretty, key-sorted JSON: the same object always gives the same bytes."""
    return (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode()


def jsonable(value: Any) -> Any:
    """`value` with numpy scalars and tuples turned into plain JSON types."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def pack(state: State, folder: str) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Lay `state` out as files under `folder` ("" for none): (its JSON entry, {path: bytes}).

    The entry names every file with its sha256, so the entry's own bytes pin
    the whole state.
    """
    prefix = f"{folder}/" if folder else ""
    files: dict[str, bytes] = {}
    entry: dict[str, Any] = {"fields": jsonable(state.fields), "arrays": {}, "files": {}}
    for name, array in sorted(state.arrays.items()):
        path = f"{prefix}{name}.npy"
        files[path] = npy_bytes(array)
        entry["arrays"][name] = {"path": path, "sha256": sha256_bytes(files[path])}
    for name, data in sorted(state.files.items()):
        path = f"{prefix}{name}"
        files[path] = bytes(data)
        entry["files"][name] = {"path": path, "sha256": sha256_bytes(files[path])}
    return entry, files


def unpack(entry: Mapping[str, Any], read: Reader) -> State:
    """The `State` of a `pack` entry, each file checked against the entry's sha256."""

    def checked(item: Mapping[str, Any]) -> bytes:
        data = read(str(item["path"]))
        if sha256_bytes(data) != item["sha256"]:
            raise ValueError(f"{item['path']} does not match the sha256 its entry records")
        return data

    return State(
        fields=dict(entry["fields"]),
        arrays={name: read_npy(checked(item)) for name, item in entry["arrays"].items()},
        files={name: checked(item) for name, item in entry["files"].items()},
    )


def write_archive(files: Mapping[str, bytes]) -> bytes:
    """Files in one uncompressed zip whose bytes depend only on the names and contents."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as archive:
        for name in sorted(files):
            archive.writestr(zipfile.ZipInfo(name, date_time=_ZIP_TIME), files[name])
    return buf.getvalue()


def read_archive(data: bytes) -> dict[str, bytes]:
    """The files of a `write_archive` zip (ValueError when it is not one)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return {name: archive.read(name) for name in archive.namelist()}
    except zipfile.BadZipFile as err:
        raise ValueError(f"not a zip archive ({err})") from err
