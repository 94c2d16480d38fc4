"""shardforge: a pretraining data engine. Rust core, Python API, one CLI.

import shardforge
report = shardforge.dedup("corpus/", "clean/", threshold=0.8)
"""

from shardforge._core import (
    ConfigError,
    MalformedRecordError,
    NoInputError,
    ParquetError,
    ShardforgeError,
    TruncatedInputError,
    __version__,
)
from shardforge.config import DedupConfig, FieldConfig, NormalizeConfig, SketchConfig
from shardforge.dedup import (
    Report,
    TextsResult,
    candidate_pairs,
    connected_components,
    dedup,
    dedup_texts,
    lsh_params,
    make_config,
    minhash,
    normalize_text,
    shingle_hashes,
)

__all__ = [
    "ConfigError",
    "DedupConfig",
    "FieldConfig",
    "MalformedRecordError",
    "NoInputError",
    "NormalizeConfig",
    "ParquetError",
    "Report",
    "ShardforgeError",
    "SketchConfig",
    "TextsResult",
    "TruncatedInputError",
    "__version__",
    "candidate_pairs",
    "connected_components",
    "dedup",
    "dedup_texts",
    "lsh_params",
    "make_config",
    "minhash",
    "normalize_text",
    "shingle_hashes",
]
