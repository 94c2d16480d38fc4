"""Export to Megatron-LM's indexed dataset (`.bin` + `.idx`), and an independent reader written
from the published layout (Megatron-Core `indexed_dataset.py`, index version 1):

    magic  b"MMIDIDX\\x00\\x00"   version <Q = 1   dtype code <B
    sequence count <Q   document count <Q
    sequence lengths int32[sequence count]
    sequence pointers int64[sequence count] (byte offsets into .bin)
    document indices int64[document count] (0, 1, ..., n: every document is one sequence)
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from shardforge.dataset import open_dataset
from shardforge.dedup import PathLike

MAGIC = b"MMIDIDX\x00\x00"
VERSION = 1
# Megatron's dtype codes (DType enum); it has no uint32, so uint32 ids are stored as int32.
DTYPE_CODES: dict[np.dtype[Any], int] = {
    np.dtype(np.uint8): 1,
    np.dtype(np.int8): 2,
    np.dtype(np.int16): 3,
    np.dtype(np.int32): 4,
    np.dtype(np.int64): 5,
    np.dtype(np.float64): 6,
    np.dtype(np.float32): 7,
    np.dtype(np.uint16): 8,
}
CODE_DTYPES = {v: k for k, v in DTYPE_CODES.items()}


def export_megatron(dataset: PathLike, prefix: PathLike) -> dict[str, Any]:
    """Write `prefix.bin` and `prefix.idx` holding every document of the token dataset (EOS
    included, as Megatron's `--append-eod` does). Both files are written atomically."""
    ds = open_dataset(dataset)
    out_dtype = np.dtype(np.uint16) if ds.dtype.itemsize == 2 else np.dtype(np.int32)
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    bin_path, idx_path = prefix.with_name(prefix.name + ".bin"), prefix.with_name(prefix.name + ".idx")
    lengths: list[npt.NDArray[np.int32]] = []
    tmp_bin = bin_path.with_name(f".{bin_path.name}.tmp-{os.getpid()}")
    with open(tmp_bin, "wb") as f:
        for i in range(len(ds.shards)):
            tokens = ds.shard_tokens(i)
            for start in range(0, len(tokens), 1 << 24):
                f.write(np.ascontiguousarray(tokens[start : start + (1 << 24)], dtype=out_dtype).tobytes())
            lengths.append(ds._table(i)[1].astype(np.int32))
        f.flush()
        os.fsync(f.fileno())
    seq_lengths = np.concatenate(lengths) if lengths else np.zeros(0, np.int32)
    pointers = np.zeros(len(seq_lengths), np.int64)
    if len(seq_lengths) > 1:
        pointers[1:] = np.cumsum(seq_lengths[:-1], dtype=np.int64) * out_dtype.itemsize
    doc_indices = np.arange(len(seq_lengths) + 1, dtype=np.int64)
    header = MAGIC + struct.pack("<Q", VERSION) + struct.pack("<B", DTYPE_CODES[out_dtype])
    header += struct.pack("<Q", len(seq_lengths)) + struct.pack("<Q", len(doc_indices))
    tmp_idx = idx_path.with_name(f".{idx_path.name}.tmp-{os.getpid()}")
    with open(tmp_idx, "wb") as f:
        f.write(header + seq_lengths.tobytes() + pointers.tobytes() + doc_indices.tobytes())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp_bin, bin_path)
    os.replace(tmp_idx, idx_path)
    return {
        "bin": str(bin_path),
        "idx": str(idx_path),
        "documents": len(seq_lengths),
        "tokens": int(seq_lengths.sum()),
        "dtype": str(out_dtype),
    }


class MegatronReader:
    """Reads `prefix.idx` / `prefix.bin` by the layout above; `self[i]` is sequence i."""

    def __init__(self, prefix: PathLike) -> None:
        prefix = Path(prefix)
        idx = (prefix.with_name(prefix.name + ".idx")).read_bytes()
        if idx[:9] != MAGIC:
            raise ValueError(f"{prefix}.idx: not a Megatron index (bad magic)")
        (version,) = struct.unpack_from("<Q", idx, 9)
        if version != VERSION:
            raise ValueError(f"{prefix}.idx: index version {version}, expected {VERSION}")
        (code,) = struct.unpack_from("<B", idx, 17)
        self.dtype = CODE_DTYPES[code]
        n_seq, n_doc = struct.unpack_from("<QQ", idx, 18)
        pos = 34
        self.lengths = np.frombuffer(idx, np.int32, n_seq, pos)
        pos += 4 * n_seq
        self.pointers = np.frombuffer(idx, np.int64, n_seq, pos)
        pos += 8 * n_seq
        self.document_indices = np.frombuffer(idx, np.int64, n_doc, pos)
        if pos + 8 * n_doc != len(idx):
            raise ValueError(f"{prefix}.idx: {len(idx)} bytes, layout says {pos + 8 * n_doc}")
        self.bin = np.memmap(prefix.with_name(prefix.name + ".bin"), dtype=self.dtype, mode="r")

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, i: int) -> npt.NDArray[Any]:
        start = int(self.pointers[i]) // self.dtype.itemsize
        out: npt.NDArray[Any] = self.bin[start : start + int(self.lengths[i])]
        return out
