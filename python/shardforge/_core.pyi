# Stub of the native module (rust/python). Checked against the module by `mypy.stubtest`.
from collections.abc import Callable
from typing import Any, final

import numpy as np
import numpy.typing as npt

__all__ = [
    "ConfigError",
    "CorruptDatasetError",
    "Encoder",
    "EvalIndex",
    "MalformedRecordError",
    "NoInputError",
    "ParquetError",
    "SampleIndex",
    "ShardforgeError",
    "TokenizerError",
    "TruncatedInputError",
    "__version__",
    "candidate_pairs",
    "connected_components",
    "decontaminate",
    "dedup",
    "dedup_texts",
    "filter_files",
    "filter_texts",
    "filter_words",
    "lsh_params",
    "minhash",
    "minhash_buffers",
    "normalize_text",
    "shingle_hashes",
    "tokenize",
    "train_tokenizer",
    "verify_dataset",
    "write_kept",
]

__version__: str

class ShardforgeError(Exception): ...
class ConfigError(ShardforgeError): ...
class NoInputError(ShardforgeError): ...
class MalformedRecordError(ShardforgeError): ...
class TruncatedInputError(ShardforgeError): ...
class ParquetError(ShardforgeError): ...
class TokenizerError(ShardforgeError): ...
class CorruptDatasetError(ShardforgeError): ...

def dedup(
    inputs: list[str],
    output: str,
    config_json: str,
    progress: Callable[[int, int, int, int, int], object] | None = None,
) -> str: ...
def decontaminate(
    inputs: list[str],
    output: str,
    config_json: str,
    progress: Callable[[int, int, int, int, int], object] | None = None,
) -> str: ...
def filter_files(
    inputs: list[str],
    output: str,
    config_json: str,
    progress: Callable[[int, int, int, int, int], object] | None = None,
) -> str: ...
def write_kept(
    path: str,
    rel: str,
    lines: list[int],
    dest: str,
    output_format: str,
    text_field: str,
    id_field: str | None,
) -> int: ...
def filter_texts(
    texts: list[str], config_json: str
) -> tuple[list[str], npt.NDArray[np.float64], list[list[str]], list[str | None]]: ...
def filter_words(text: str) -> list[str]: ...
def minhash(texts: list[str], sketch_json: str) -> npt.NDArray[np.uint32]: ...
def minhash_buffers(
    data: npt.NDArray[np.uint8], offsets: npt.NDArray[np.int64], sketch_json: str
) -> npt.NDArray[np.uint32]: ...
def lsh_params(
    threshold: float, num_perm: int, fp_weight: float = 0.5, fn_weight: float = 0.5
) -> tuple[int, int]: ...
def candidate_pairs(signatures: npt.NDArray[np.uint32], bands: int, rows: int) -> npt.NDArray[np.uint32]: ...
def connected_components(n: int, pairs: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint32]: ...
def dedup_texts(
    texts: list[str], config_json: str, keys: npt.NDArray[np.float64] | None = None
) -> dict[str, object]: ...
def normalize_text(text: str, normalize_json: str) -> str: ...
def shingle_hashes(text: str, sketch_json: str) -> npt.NDArray[np.uint64]: ...
def tokenize(
    inputs: list[str],
    output: str,
    config_json: str,
    progress: Callable[[int, int, int, int, int], object] | None = None,
) -> str: ...
def train_tokenizer(
    inputs: list[str],
    output: str,
    config_json: str,
    progress: Callable[[int, int, int, int, int], object] | None = None,
) -> str: ...
def verify_dataset(path: str) -> str: ...

@final
class Encoder:
    def __new__(cls, path: str, eos_token: str | None = None, bos_token: str | None = None) -> Encoder: ...
    @property
    def vocab_size(self) -> int: ...
    @property
    def eos_id(self) -> int: ...
    @property
    def bos_id(self) -> int | None: ...
    @property
    def pad_id(self) -> int | None: ...
    def encode_batch(
        self, texts: list[str], add_eos: bool = False, add_bos: bool = False
    ) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint64]]: ...
    def decode(self, ids: list[int]) -> str: ...

@final
class EvalIndex:
    def __new__(cls, config_json: str) -> EvalIndex: ...
    def __len__(self) -> int: ...
    def items(self) -> list[tuple[str, str]]: ...
    def stats(self) -> str: ...
    def scan(
        self, texts: list[str]
    ) -> tuple[list[int], list[int], list[int], list[int], list[int], list[str]]: ...
    def cut(self, texts: list[str]) -> list[list[str]]: ...

@final
class SampleIndex:
    def __new__(
        cls,
        spec_json: str,
        docs: list[tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint64], npt.NDArray[np.uint32]]],
    ) -> SampleIndex: ...
    @property
    def end(self) -> int | None: ...
    def plan(self) -> str: ...
    def phase(self, k: int) -> int: ...
    def pieces(self, k: int) -> tuple[int, int, list[tuple[int, int, int]]]: ...
    def batch(self, first: int, count: int) -> dict[str, npt.NDArray[Any]]: ...
