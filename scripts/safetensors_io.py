#!/usr/bin/python3
"""Minimal safetensors reader and writer (numpy only), for the reference files and
checkpoints that the C side of diffusion.c reads and writes.

Format (https://huggingface.co/docs/safetensors): an 8-byte little-endian unsigned
header length N, then N bytes of JSON, then the raw data. The JSON maps each tensor
name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the
start of the data), plus an optional "__metadata__" object of string -> string.
Data is little-endian and C-ordered. We write the tensors in the order given, with
no padding between them, and pad the header with spaces to a multiple of 8 bytes
(as the reference implementation does) so the data is 8-byte aligned.

Only the dtypes this project uses are supported: F32, F64, I32, I64, U8.
"""
import json
import struct

import numpy as np

_DTYPES = {
    "F32": np.dtype("<f4"),
    "F64": np.dtype("<f8"),
    "I32": np.dtype("<i4"),
    "I64": np.dtype("<i8"),
    "U8": np.dtype("u1"),
}
_NAMES_BY_KIND = {(v.kind, v.itemsize): k for k, v in _DTYPES.items()}


class SafetensorsError(Exception):
    """A file that is not a valid safetensors file, or a tensor we cannot store."""


def save(path, tensors, metadata=None):
    """Writes `tensors` (name -> numpy array, in this order) and `metadata`
    (str -> str) to `path`."""
    header = {}
    if metadata:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise SafetensorsError(f"metadata must map str to str, got {k!r}: {v!r}")
        header["__metadata__"] = dict(metadata)
    blobs = []
    offset = 0
    for name, arr in tensors.items():
        if name == "__metadata__":
            raise SafetensorsError("a tensor cannot be named __metadata__")
        arr = np.asarray(arr)
        key = _NAMES_BY_KIND.get((arr.dtype.kind, arr.dtype.itemsize))
        if key is None:
            raise SafetensorsError(f"{name}: unsupported dtype {arr.dtype}")
        data = np.ascontiguousarray(arr, dtype=_DTYPES[key]).tobytes()
        header[name] = {"dtype": key, "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)


def load(path):
    """Returns (tensors, metadata): name -> numpy array in file order, str -> str.
    Raises SafetensorsError (naming the file) on anything malformed."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise SafetensorsError(f"{path}: cannot read: {e.strerror}") from None
    if len(raw) < 8:
        raise SafetensorsError(f"{path}: too short for a safetensors file ({len(raw)} bytes)")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8:
        raise SafetensorsError(f"{path}: header length {n} exceeds the file size {len(raw)}")
    try:
        header = json.loads(raw[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SafetensorsError(f"{path}: header is not JSON: {e}") from None
    if not isinstance(header, dict):
        raise SafetensorsError(f"{path}: header is not a JSON object")
    meta = header.pop("__metadata__", None) or {}
    data = raw[8 + n:]
    tensors = {}
    for name, info in header.items():
        try:
            dt = _DTYPES[info["dtype"]]
            shape = [int(s) for s in info["shape"]]
            b, e = (int(o) for o in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise SafetensorsError(f"{path}: tensor {name}: bad or unsupported entry {info!r}") from None
        count = int(np.prod(shape, dtype=np.int64))
        if not (0 <= b <= e <= len(data)) or e - b != count * dt.itemsize:
            raise SafetensorsError(f"{path}: tensor {name}: data_offsets {[b, e]} do not fit "
                                   f"shape {shape} {info['dtype']} in {len(data)} data bytes")
        tensors[name] = np.frombuffer(data[b:e], dtype=dt).reshape(shape).astype(dt.newbyteorder("="))
    return tensors, meta
