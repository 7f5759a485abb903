"""A small reader and writer of the safetensors layout, with numpy only:

    u64 little-endian N | N bytes of JSON header | raw little-endian data

The header maps each tensor name to {"dtype", "shape", "data_offsets":
[begin, end]} (offsets into the data that follows the header) and may hold
"__metadata__": {str: str}. The header is padded with spaces to a multiple
of 8 bytes, as the safetensors package writes it. mfx.torch.MoE.export
writes an MoE layer's weights in it (format "mfx-moe-1")."""

import json
import os
import struct
import tempfile

import numpy as np

DTYPES = {"F32": np.dtype("<f4"), "F64": np.dtype("<f8"), "I32": np.dtype("<i4"),
          "I8": np.dtype("i1"), "U8": np.dtype("u1"), "I64": np.dtype("<i8")}
HEADER_CAP = 100 << 20  # as the safetensors package: a header past 100 MB is refused


def _dtype_name(array):
    for name, dtype in DTYPES.items():
        if array.dtype == dtype or array.dtype == dtype.newbyteorder("="):
            return name
    raise ValueError(f"dtype {array.dtype} has no safetensors name here; expected one of "
                     f"{', '.join(DTYPES)}")


def encode(tensors, metadata=None):
    """The bytes of a safetensors file holding tensors {name: array}, in
    the order given, and metadata {str: str}."""
    header, chunks, offset = {}, [], 0
    if metadata is not None:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise ValueError("safetensors metadata must map strings to strings")
        header["__metadata__"] = dict(metadata)
    for name, value in tensors.items():
        if name == "__metadata__":
            raise ValueError("'__metadata__' is not a tensor name")
        array = np.asarray(value)
        dtype = _dtype_name(array)
        data = np.ascontiguousarray(array, dtype=DTYPES[dtype]).tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def write(path, tensors, metadata=None):
    """Writes encode(tensors, metadata) to path through a temporary file in
    the same folder, renamed into place."""
    data = encode(tensors, metadata)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".safetensors.", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def decode(data, where="safetensors"):
    """(tensors {name: array}, metadata dict) from the bytes of a file;
    ValueError naming what is wrong for a malformed one."""
    if len(data) < 8:
        raise ValueError(f"{where}: {len(data)} bytes; expected at least the 8-byte header length")
    (size,) = struct.unpack("<Q", data[:8])
    if size > HEADER_CAP or 8 + size > len(data):
        raise ValueError(f"{where}: header of {size} bytes does not fit the {len(data)}-byte file")
    try:
        header = json.loads(data[8:8 + size].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{where}: header is not JSON ({err})") from err
    if not isinstance(header, dict):
        raise ValueError(f"{where}: header is not a JSON object")
    body = data[8 + size:]
    metadata = header.pop("__metadata__", {})
    tensors = {}
    for name, entry in header.items():
        try:
            dtype = DTYPES[entry["dtype"]]
            shape = [int(d) for d in entry["shape"]]
            begin, end = (int(v) for v in entry["data_offsets"])
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{where}: tensor {name!r} has a malformed entry ({err!r})") from err
        count = int(np.prod(shape)) if shape else 1
        if min(shape, default=0) < 0 or not 0 <= begin <= end <= len(body) or \
                end - begin != count * dtype.itemsize:
            raise ValueError(f"{where}: tensor {name!r} {entry['dtype']} {shape} at "
                             f"[{begin}, {end}) does not fit the {len(body)} bytes of data")
        tensors[name] = np.frombuffer(body[begin:end], dtype=dtype).reshape(shape).copy()
    return tensors, metadata


def read(path):
    """decode() of the file at path."""
    with open(path, "rb") as f:
        return decode(f.read(), where=os.fspath(path))
