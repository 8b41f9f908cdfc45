"""A GGUF file's metadata and tensors, read with one memory map and no object per array element.

The `gguf` package's reader keeps a numpy view for every element of every array: a vocabulary of
262,144 tokens with 513,511 merges (Gemma 3) becomes millions of small objects, and building them
peaked at 765 MB for a 253 MB file. Here an array of strings is one list of `str`, an array of
numbers one numpy array, and a tensor a view of the map (nothing is copied).

Format (GGUF v2 and v3, little-endian): magic `GGUF`, version u32, tensor count u64, metadata count
u64; each metadata entry a string key, a u32 value type and the value (an array: element type u32,
count u64, elements); each tensor a string name, u32 dimension count, u64 dimensions
(fastest-first), u32 GGML type, u64 offset into the data, which starts at the next multiple of
`general.alignment` (default 32) after the tensor list. A string is a u64 length and UTF-8 bytes.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

MAGIC = b"GGUF"
VERSIONS = (2, 3)
STRING, ARRAY = 8, 9
# Scalar value types: struct format and numpy dtype.
SCALARS = {
    0: ("<B", np.uint8), 1: ("<b", np.int8), 2: ("<H", np.uint16), 3: ("<h", np.int16),
    4: ("<I", np.uint32), 5: ("<i", np.int32), 6: ("<f", np.float32), 7: ("<?", np.bool_),
    10: ("<Q", np.uint64), 11: ("<q", np.int64), 12: ("<d", np.float64),
}
# Tensor types stored as plain numbers; every other one as bytes of GGML blocks.
PLAIN = {
    GGMLQuantizationType.F32: np.float32, GGMLQuantizationType.F16: np.float16,
    GGMLQuantizationType.F64: np.float64, GGMLQuantizationType.I8: np.int8,
    GGMLQuantizationType.I16: np.int16, GGMLQuantizationType.I32: np.int32,
    GGMLQuantizationType.I64: np.int64,
}


@dataclass
class Tensor:
    """One tensor: its GGML type, dimensions fastest-first (as GGUF lists them) and its data, a
    view of the map: numbers for the plain types, shape `reversed(dims)`; bytes for block types,
    the last dimension in bytes (as the `gguf` package's reader gives them)."""

    name: str
    tensor_type: GGMLQuantizationType
    dims: tuple[int, ...]
    data: np.ndarray


class GgufFile:
    """`fields` (metadata by key: str, int, float, bool, list of str, or numpy array) and `tensors`."""

    def __init__(self, path: Path) -> None:
        with open(path, "rb") as f:
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self._buf = memoryview(self._map)
        self._at = 0
        self.path = path
        if bytes(self._buf[:4]) != MAGIC:
            raise ValueError(f"{path}: not a GGUF file (no GGUF magic)")
        self._at = 4
        try:
            self._read(path)
        except (struct.error, UnicodeDecodeError, ValueError) as e:
            raise ValueError(f"{path}: not a readable GGUF file (at byte {self._at}): {e}") from None

    def _read(self, path: Path) -> None:
        version = self._scalar("<I")
        if version not in VERSIONS:
            raise ValueError(f"{path}: GGUF version {version} is not supported (versions {VERSIONS})")
        tensor_count, field_count = self._scalar("<Q"), self._scalar("<Q")
        self.fields: dict[str, object] = {}
        for _ in range(field_count):
            key = self._string()
            self.fields[key] = self._value(self._scalar("<I"))
        infos = []
        for _ in range(tensor_count):
            name = self._string()
            dims = tuple(self._scalar("<Q") for _ in range(self._scalar("<I")))
            infos.append((name, GGMLQuantizationType(self._scalar("<I")), dims, self._scalar("<Q")))
        align = int(self.fields.get("general.alignment", 32))
        start = -(-self._at // align) * align
        data = np.frombuffer(self._map, dtype=np.uint8)
        self.tensors: list[Tensor] = []
        for name, qtype, dims, offset in infos:
            shape = tuple(reversed(dims))
            count = int(np.prod(dims))
            if qtype in PLAIN:
                dtype = np.dtype(PLAIN[qtype])
                nbytes = count * dtype.itemsize
            else:
                block, size = GGML_QUANT_SIZES[qtype]
                if shape[-1] % block:
                    raise ValueError(f"{path}: tensor {name} rows of {shape[-1]} are not whole {qtype.name} blocks")
                dtype, nbytes = np.dtype(np.uint8), count // block * size
                shape = (*shape[:-1], shape[-1] // block * size)
            lo = start + offset
            if lo + nbytes > len(data):
                raise ValueError(f"{path}: tensor {name} runs past the end of the file")
            self.tensors.append(Tensor(name, qtype, dims, data[lo:lo + nbytes].view(dtype).reshape(shape)))

    def _scalar(self, fmt: str):
        (v,) = struct.unpack_from(fmt, self._buf, self._at)
        self._at += struct.calcsize(fmt)
        return v

    def _string(self) -> str:
        n = self._scalar("<Q")
        s = str(self._buf[self._at:self._at + n], "utf-8")
        self._at += n
        return s

    def _value(self, vtype: int):
        if vtype == STRING:
            return self._string()
        if vtype in SCALARS:
            return self._scalar(SCALARS[vtype][0])
        if vtype != ARRAY:
            raise ValueError(f"{self.path}: unknown metadata value type {vtype} at byte {self._at}")
        etype, count = self._scalar("<I"), self._scalar("<Q")
        if etype == STRING:
            return [self._string() for _ in range(count)]
        if etype in SCALARS:
            dtype = np.dtype(SCALARS[etype][1]).newbyteorder("<")
            values = np.frombuffer(self._buf, dtype=dtype, count=count, offset=self._at).copy()
            self._at += count * dtype.itemsize
            return values
        return [self._value(etype) for _ in range(count)]


def token_bytes(g: GgufFile) -> int:
    """Bytes of weights a decoded token reads: every matrix in full, as stored, except the token
    embeddings when the model has an output head of its own (then a token reads one row of them);
    tied to the head, they are the head and count once."""
    names = {t.name for t in g.tensors}
    total = 0
    for t in g.tensors:
        if len(t.dims) < 2 or (t.name == "token_embd.weight" and "output.weight" in names):
            continue
        total += t.data.nbytes
    return total
