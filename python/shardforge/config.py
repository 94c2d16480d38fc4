"""Typed configuration of the dedup, tokenize and tokenizer-training jobs. Each serializes to the
JSON the Rust core reads, where unknown keys and bad values are rejected with a `ConfigError`."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Literal

SketchMethod = Literal["classic", "one_permutation"]
MinHashScheme = Literal["affine32", "legacy", "datatrove"]
KeepPolicy = Literal["first", "longest", "max_column"]
VerifyMode = Literal["none", "signature", "exact"]
OnError = Literal["raise", "skip"]
OutputFormat = Literal["input", "parquet"]


@dataclass
class NormalizeConfig:
    lowercase: bool = True
    strip_punctuation: bool = True
    fold_digits: bool = False
    nfkc: bool = False


@dataclass
class SketchConfig:
    method: SketchMethod = "classic"
    # Whose permutations the classic sketch reproduces bit for bit: datasketch >= 2.0 ("affine32"),
    # datasketch < 2.0 ("legacy") or datatrove ("datatrove").
    scheme: MinHashScheme = "affine32"
    num_perm: int = 128
    ngram: int = 5
    seed: int = 1
    normalize: NormalizeConfig = field(default_factory=NormalizeConfig)

    def to_json(self) -> str:
        return json.dumps(asdict(self))


@dataclass
class FieldConfig:
    text_field: str = "text"
    id_field: str | None = "id"
    key_field: str | None = None
    carry: list[str] = field(default_factory=list)


@dataclass
class DedupConfig:
    fields: FieldConfig = field(default_factory=FieldConfig)
    sketch: SketchConfig = field(default_factory=SketchConfig)
    exact: bool = True
    near: bool = True
    threshold: float = 0.8
    bands: int | None = None
    rows: int | None = None
    verify: VerifyMode = "none"
    keep: KeepPolicy = "first"
    on_error: OnError = "raise"
    output_format: OutputFormat = "input"
    memory_budget: int = 4 << 30
    threads: int | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


def parse_size(value: int | str) -> int:
    """`4GB`, `512M`, `1.5GiB` or a plain byte count → bytes (powers of 1024)."""
    if isinstance(value, int):
        return value
    m = _SIZE.match(value)
    if not m:
        raise ValueError(f"cannot read {value!r} as a size (e.g. 4GB, 512MB, 1048576)")
    scale = 1024 ** " kmgt".index(m.group(2).lower() or " ")
    return int(float(m.group(1)) * scale)


@dataclass
class TokenizeConfig:
    """Options of `shardforge.tokenize`; `metadata` lists carried fields as "name" or "name:type"
    (string, int64, float64, bool)."""

    tokenizer: str = ""
    fields: FieldConfig = field(default_factory=FieldConfig)
    metadata: list[str] = field(default_factory=list)
    eos_token: str | None = None
    add_bos: bool = False
    bos_token: str | None = None
    shard_tokens: int | None = None
    shard_bytes: int = 256 << 20
    on_error: OnError = "raise"
    threads: int | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))


@dataclass
class TrainConfig:
    """Options of `shardforge.train_tokenizer` (a byte-level BPE tokenizer)."""

    fields: FieldConfig = field(default_factory=FieldConfig)
    vocab_size: int = 32_000
    min_frequency: int = 2
    special_tokens: list[str] = field(default_factory=lambda: ["<|endoftext|>"])
    max_bytes: int = 1 << 30

    def to_json(self) -> str:
        return json.dumps(asdict(self))
