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


#: deflate never expands data more than about 1032-fold: a .gz whose header claims more
#: than this times its own size cannot hold it (a lie, or a truncated download).
MAX_GZIP_RATIO = 1032
#: Elements are read this many bytes at a time, so memory follows the bytes that arrive.
CHUNK = 1 << 20


def _open(path):
    return gzip.open(path, "rb") if os.fspath(path).endswith(".gz") else open(path, "rb")


def read_idx(path, magic):
    """The array stored in the IDX file at path, whose magic number must be `magic`.

    The header is read first and the elements streamed after it, so a file that claims or
    holds more than it should is refused without reading it whole. ValueError naming the
    file for a wrong magic number, or a size that does not match the header (a truncated
    file, or trailing bytes).
    """
    name = os.fspath(path)
    try:
        with _open(path) as f:
            return _read(f, name, magic)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise ValueError(f"{name!r} is not a readable gzip file (truncated or corrupt "
                         f"download? delete it and fetch it again): {exc}") from None


def _read(f, name, magic):
    head = f.read(4)
    if len(head) < 4:
        raise ValueError(f"{name!r} is too short ({len(head)} bytes) to be an IDX file")
    found = int.from_bytes(head, "big")
    if found != magic:
        raise ValueError(f"{name!r} has IDX magic number {found}, expected {magic} "
                         f"({'images' if magic == IMAGES_MAGIC else 'labels'}); is it the "
                         f"right file?")
    dtype = TYPES.get(head[2])
    if dtype is None:
        raise ValueError(f"{name!r}: unknown IDX element type 0x{head[2]:02x}")
    ndim = head[3]
    sizes = f.read(4 * ndim)
    if len(sizes) < 4 * ndim:
        raise ValueError(f"{name!r} is truncated: {4 + len(sizes)} bytes, less than its "
                         f"{4 + 4 * ndim}-byte header")
    shape = tuple(int.from_bytes(sizes[4 * i:4 * i + 4], "big") for i in range(ndim))
    header = 4 + 4 * ndim
    need = int(np.prod(shape, dtype=object)) * dtype.itemsize
    stored = os.path.getsize(name)
    limit = stored * MAX_GZIP_RATIO if name.endswith(".gz") else stored - header
    if need > limit:
        raise ValueError(f"{name!r} is truncated: its header (shape {shape}) needs "
                         f"{header + need} bytes, more than this {stored}-byte file can "
                         f"hold")
    data = bytearray()
    while len(data) < need:
        chunk = f.read(min(CHUNK, need - len(data)))
        if not chunk:
            break
        data += chunk
    trailing = f.read(1)
    if len(data) != need or trailing:
        problem = "truncated" if len(data) < need else "longer than its header says"
        raise ValueError(f"{name!r} is {problem}: its header (shape {shape}) needs "
                         f"{header + need} bytes")
    return np.frombuffer(data, dtype).reshape(shape)


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
