"""The IDX file format of MNIST and Fashion-MNIST, raw or gzip-compressed.

An IDX file is a 4-byte big-endian magic number ``0x0000TTDD`` (TT the element type, DD the
number of dimensions), DD big-endian int32 sizes, then the elements in row-major order.
MNIST's images are magic 2051 (unsigned bytes, 3 dimensions: count, rows, columns) and its
labels 2049 (unsigned bytes, 1 dimension: count).
"""
import gzip
import os
import zlib

import numpy as np

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
#: element type byte -> numpy dtype (IDX stores multi-byte types big-endian)
TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
         0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def _read_bytes(path):
    opener = gzip.open if os.fspath(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            return f.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise ValueError(f"{os.fspath(path)!r} is not a readable gzip file (truncated or "
                         f"corrupt download? delete it and fetch it again): {exc}") from None


def read_idx(path, magic):
    """The array stored in the IDX file at path, whose magic number must be `magic`.

    ValueError naming the file for a wrong magic number, or a size that does not match the
    header (a truncated file, or trailing bytes).
    """
    data = _read_bytes(path)
    name = os.fspath(path)
    if len(data) < 4:
        raise ValueError(f"{name!r} is too short ({len(data)} bytes) to be an IDX file")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise ValueError(f"{name!r} has IDX magic number {found}, expected {magic} "
                         f"({'images' if magic == IMAGES_MAGIC else 'labels'}); is it the "
                         f"right file?")
    dtype = TYPES.get(data[2])
    if dtype is None:
        raise ValueError(f"{name!r}: unknown IDX element type 0x{data[2]:02x}")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{name!r} is truncated: {len(data)} bytes, less than its "
                         f"{header}-byte header")
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        problem = "truncated" if len(data) < expected else "longer than its header says"
        raise ValueError(f"{name!r} is {problem}: {len(data)} bytes, but its header "
                         f"(shape {shape}) needs {expected}")
    return np.frombuffer(data, dtype, offset=header).reshape(shape)


def write_idx(path, array, compress=None):
    """Write array as an IDX file (gzip-compressed when path ends in .gz, or compress=True)."""
    array = np.asarray(array)
    codes = {dtype.newbyteorder("="): code for code, dtype in TYPES.items()}
    code = codes.get(array.dtype.newbyteorder("="))
    if code is None:
        raise TypeError(f"IDX cannot store dtype {array.dtype}; use one of "
                        f"{', '.join(str(d) for d in TYPES.values())}")
    header = bytes([0, 0, code, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape)
    body = np.ascontiguousarray(array, dtype=TYPES[code]).tobytes()
    if compress is None:
        compress = os.fspath(path).endswith(".gz")
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:
        f.write(header + body)
